package lab

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
	"github.com/bond-appliance/bond-appliance/policy"
)

var applianceBin string

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if os.Geteuid() == 0 && !testing.Short() {
			dir, err := os.MkdirTemp("", "ba-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			applianceBin = filepath.Join(dir, "bond-appliance")
			args := []string{"build", "-o", applianceBin}
			if os.Getenv("BOND_APPLIANCE_RACE") == "1" {
				args = append(args, "-race")
			}
			out, err := exec.Command("go", append(args, "../../cmd/bond-appliance")...).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// privileged skips the test when it cannot run (not root, -short), unless
// BOND_APPLIANCE_PRIVILEGED=1 demands it run.
func privileged(t *testing.T) {
	t.Helper()
	must := os.Getenv("BOND_APPLIANCE_PRIVILEGED") == "1"
	switch {
	case os.Geteuid() != 0:
		if must {
			t.Fatal("BOND_APPLIANCE_PRIVILEGED=1 but not running as root")
		}
		t.Skip("needs root (network namespaces, XDP)")
	case testing.Short():
		// `make unit` runs everything with -short; `make integration` runs these
		t.Skip("integration test skipped in -short mode")
	}
	for _, tool := range []string{"ip", "bridge", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed", tool)
		}
	}
}

type env struct {
	t    *testing.T
	ctx  context.Context
	topo *Topo
	proc *Proc
}

// setup builds a topology with n members, IPv6 off (no neighbour-discovery
// noise in the counts), and starts the appliance with spec.
func setup(t *testing.T, n int, spec BondSpec) *env {
	t.Helper()
	return setupIP(t, n, spec, false)
}

// setupIP is setup with IPv6 left on when ipv6 is set.
func setupIP(t *testing.T, n int, spec BondSpec, ipv6 bool) *env {
	t.Helper()
	privileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	topo, err := NewTopo(ctx, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	for _, ns := range []string{topo.GW, topo.Peer} {
		if ipv6 {
			break
		}
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if _, err := Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", k); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := &env{t: t, ctx: ctx, topo: topo}
	if spec.Mode != "" {
		e.start(spec)
	}
	return e
}

// start runs the appliance with spec on the env's topology; it stops at
// the test's end, showing its status and log when the test failed.
func (e *env) start(spec BondSpec) {
	e.t.Helper()
	p, err := e.topo.Start(e.ctx, applianceBin, e.topo.Config(spec, "@SOCKET@"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("appliance status:\n%s\nlog:\n%s", p.StatusJSON(), p.Log())
		}
		p.Stop()
	})
}

func (e *env) status() appliance.BondStatus {
	e.t.Helper()
	st, err := e.proc.Status(BondName)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Bonds[0]
}

func (e *env) bondMAC() net.HardwareAddr {
	mac, err := net.ParseMAC(e.status().MAC)
	if err != nil {
		e.t.Fatal(err)
	}
	return mac
}

// waitActive waits until the bond reports an up active slave (or usable
// members) and returns the status.
func (e *env) waitUp() appliance.BondStatus {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := e.status()
		if s.MIIStatus == "up" {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("bond not up: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostToPeer sends frames from the host device and returns, per member
// index, the sequence numbers the peer side received on that member.
func (e *env) hostToPeer(frames [][]byte) [][]uint32 {
	e.t.Helper()
	tx, err := OpenPacket(e.topo.GW, BondName)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Close()
	var rx []*PacketSocket
	for _, p := range e.topo.Ports {
		s, err := OpenPacket(e.topo.Peer, p)
		if err != nil {
			e.t.Fatal(err)
		}
		defer s.Close()
		rx = append(rx, s)
	}
	for i, f := range frames {
		if err := tx.Send(f); err != nil {
			e.t.Fatal(err)
		}
		if i%32 == 31 {
			time.Sleep(200 * time.Microsecond) // stay below the host veth's backlog
		}
	}
	per := make([][]uint32, len(rx))
	for i, s := range rx {
		for _, f := range s.Recv(300*time.Millisecond, 100000) {
			if q, ok := TestSeq(f); ok {
				per[i] = append(per[i], q)
			}
		}
	}
	return per
}

// peerToHost sends count frames into each peer port and returns how many
// arrived on the host device from each.
func (e *env) peerToHost(count int) []int {
	e.t.Helper()
	rx, err := OpenPacket(e.topo.GW, BondName)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rx.Close()
	mac := e.bondMAC()
	peerMAC, _ := net.ParseMAC(PeerMAC)
	for i, p := range e.topo.Ports {
		s, err := OpenPacket(e.topo.Peer, p)
		if err != nil {
			e.t.Fatal(err)
		}
		for j := 0; j < count; j++ {
			if err := s.Send(UDPFrame(mac, peerMAC, uint16(i), 9, uint32(i*100000+j), 64)); err != nil {
				e.t.Fatal(err)
			}
		}
		s.Close()
	}
	got := make([]int, len(e.topo.Ports))
	for _, f := range rx.Recv(300*time.Millisecond, 100000) {
		if q, ok := TestSeq(f); ok {
			got[q/100000]++
		}
	}
	return got
}

func flowFrames(dst, src net.HardwareAddr, flows, perFlow int) [][]byte {
	var out [][]byte
	seq := uint32(0)
	for r := 0; r < perFlow; r++ {
		for f := 0; f < flows; f++ {
			out = append(out, UDPFrame(dst, src, uint16(10000+f), 5001, seq, 64))
			seq++
		}
	}
	return out
}

func TestIntegrationBalanceXOR(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "balance-xor", Options: map[string]string{"xmit_hash_policy": "layer3+4", "miimon": "100"}})
	s := e.waitUp()
	if s.TransmitHashPolicy != "layer3+4 (1)" {
		t.Fatalf("Transmit Hash Policy %q", s.TransmitHashPolicy)
	}
	peer, _ := net.ParseMAC(PeerMAC)
	frames := flowFrames(peer, e.bondMAC(), 64, 4)
	per := e.hostToPeer(frames)
	owner := map[uint32]int{}
	for m, seqs := range per {
		for _, q := range seqs {
			owner[q] = m
		}
	}
	if len(owner) < len(frames)*95/100 {
		t.Fatalf("only %d of %d frames reached the peer", len(owner), len(frames))
	}
	// every frame went where bond_xmit_hash says, so one flow stays on one member
	for q, m := range owner {
		want := policy.SlaveIndex(policy.Hash(frames[q], policy.Layer34), 2)
		if m != want {
			t.Fatalf("frame %d (flow %d) on member %d, layer3+4 hash says %d", q, q%64, m, want)
		}
	}
	if len(per[0]) < len(frames)/5 || len(per[1]) < len(frames)/5 {
		t.Fatalf("flows not spread: %d/%d", len(per[0]), len(per[1]))
	}
	got := e.peerToHost(50)
	if got[0] < 45 || got[1] < 45 {
		t.Fatalf("peer->host per member %v, want ~50 each", got)
	}
}

func TestIntegrationBalanceRR(t *testing.T) {
	for _, pps := range []int{1, 3} {
		t.Run(fmt.Sprintf("packets_per_slave=%d", pps), func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: "balance-rr", Options: map[string]string{"packets_per_slave": fmt.Sprint(pps)}})
			e.waitUp()
			peer, _ := net.ParseMAC(PeerMAC)
			frames := flowFrames(peer, e.bondMAC(), 1, 300)
			per := e.hostToPeer(frames)
			owner := map[uint32]int{}
			for m, seqs := range per {
				for _, q := range seqs {
					owner[q] = m
				}
			}
			if len(owner) < 290 {
				t.Fatalf("only %d of 300 frames arrived", len(owner))
			}
			// one flow is spread: runs of pps frames alternate between members
			changes, pairs := 0, 0
			for q := uint32(1); q < 300; q++ {
				a, okA := owner[q-1]
				b, okB := owner[q]
				if okA && okB {
					pairs++
					if a != b {
						changes++
					}
				}
			}
			want := pairs / pps
			if changes < want*9/10 || changes > want*11/10+1 {
				t.Fatalf("%d member changes over %d consecutive pairs, want ~%d for packets_per_slave %d", changes, pairs, want, pps)
			}
			got := e.peerToHost(50)
			if got[0] < 45 || got[1] < 45 {
				t.Fatalf("peer->host per member %v", got)
			}
		})
	}
}

func TestIntegrationBroadcast(t *testing.T) {
	e := setup(t, 3, BondSpec{Mode: "broadcast"})
	e.waitUp()
	peer, _ := net.ParseMAC(PeerMAC)
	per := e.hostToPeer(flowFrames(peer, e.bondMAC(), 4, 50))
	for m := range per {
		if len(per[m]) < 190 {
			t.Fatalf("member %d carried %d of 200 frames; broadcast sends every frame on every member", m, len(per[m]))
		}
	}
}

func TestIntegrationActiveBackup(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{"miimon": "100", "primary": "m1"}})
	s := e.waitUp()
	if s.CurrentlyActiveSlave != "m1" {
		t.Fatalf("active %q, want the primary m1", s.CurrentlyActiveSlave)
	}
	peer, _ := net.ParseMAC(PeerMAC)
	per := e.hostToPeer(flowFrames(peer, e.bondMAC(), 16, 10))
	if len(per[0]) != 0 || len(per[1]) < 150 {
		t.Fatalf("active-backup: backup carried %d, active %d of 160", len(per[0]), len(per[1]))
	}
	got := e.peerToHost(40)
	if got[0] != 0 || got[1] < 36 {
		t.Fatalf("peer->host %v: frames on the backup must be dropped, the active's delivered", got)
	}
	// failover: carrier loss on the active member
	if err := e.topo.SetPort(e.ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for e.status().CurrentlyActiveSlave != "m0" {
		if time.Now().After(deadline) {
			t.Fatalf("no failover to m0: %+v", e.status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := e.status(); s.Slaves[1].MIIStatus != "down" || s.Slaves[1].LinkFailureCount != 1 {
		t.Fatalf("m1 after carrier loss: %+v", s.Slaves[1])
	}
	per = e.hostToPeer(flowFrames(peer, e.bondMAC(), 16, 10))
	if len(per[0]) < 150 {
		t.Fatalf("after failover m0 carried %d of 160", len(per[0]))
	}
	// failback to the primary (primary_reselect always)
	if err := e.topo.SetPort(e.ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for e.status().CurrentlyActiveSlave != "m1" {
		if time.Now().After(deadline) {
			t.Fatalf("no failback to primary m1: %+v", e.status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// the peer reaches the host through m1: its bridge has learnt the
	// bond MAC on m1's port
	e.addHostIP()
	e.pingUntil(time.Now(), 5*time.Second)
	// runtime active_slave through the control socket
	resp, err := appliance.Call(e.proc.Socket, appliance.Request{Cmd: "set", Bond: BondName, Option: "active_slave", Value: "m0"})
	if err != nil || !resp.OK {
		t.Fatalf("set active_slave m0: %v %+v", err, resp)
	}
	if a := e.status().CurrentlyActiveSlave; a != "m0" {
		t.Fatalf("active %q after set active_slave m0", a)
	}
	// a manual change is a failover: the gratuitous ARP on m0 moves the
	// bridge's entry, or the peer's frames would go on reaching the backup
	// m1 (dropped) until the entry aged out, and the host, which only
	// answers, would never send on m0 to correct it
	e.pingUntil(time.Now(), 3*time.Second)
}

func TestIntegrationPing(t *testing.T) {
	for _, hd := range []string{"veth", "tap"} {
		t.Run(hd, func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: "balance-xor", HostDevice: hd, Options: map[string]string{"xmit_hash_policy": "layer3+4"}})
			e.waitUp()
			if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
				t.Fatal(err)
			}
			if out, err := e.topo.InGW(e.ctx, "ping", "-c", "5", "-i", "0.1", "-W", "1", PeerIP); err != nil {
				t.Fatalf("ping through %s host device: %v\n%s", hd, err, out)
			}
			if out, err := e.topo.InPeer(e.ctx, "ping", "-c", "3", "-i", "0.1", "-s", "1400", "-W", "1", HostIP); err != nil {
				t.Fatalf("ping peer->host %s: %v\n%s", hd, err, out)
			}
		})
	}
}

// TestIntegrationShutdownRestores checks that SIGTERM leaves no XDP program,
// no host device and every member MAC as it was.
func TestIntegrationShutdownRestores(t *testing.T) {
	e := setup(t, 2, BondSpec{})
	before := map[string]string{}
	for _, m := range e.topo.Members {
		out, err := e.topo.InGW(e.ctx, "cat", "/sys/class/net/"+m+"/address")
		if err != nil {
			t.Fatal(err)
		}
		before[m] = strings.TrimSpace(out)
	}
	p, err := e.topo.Start(e.ctx, applianceBin, e.topo.Config(BondSpec{Mode: "balance-rr", Options: map[string]string{"mac": `"02:00:5e:00:00:99"`}}, "@SOCKET@"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.topo.Members {
		out, _ := e.topo.InGW(e.ctx, "ip", "-d", "link", "show", m)
		// balance-rr's received frames go to the host in the kernel: the
		// member carries the fast path's TC program, no XDP program
		id, err := memberTC(e, m)
		if strings.Contains(out, "prog/xdp") || err != nil || id == 0 || !strings.Contains(out, "02:00:5e:00:00:99") {
			p.Stop()
			t.Fatalf("%s while running: want the TC program (id %d, %v), no XDP program, and the bond MAC:\n%s", m, id, err, out)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("appliance exit: %v\n%s", err, p.Log())
	}
	for _, m := range e.topo.Members {
		out, _ := e.topo.InGW(e.ctx, "ip", "-d", "link", "show", m)
		if strings.Contains(out, "prog/xdp") {
			t.Fatalf("%s still has an XDP program after shutdown:\n%s", m, out)
		}
		if id, err := memberTC(e, m); err != nil || id != 0 {
			t.Fatalf("%s still has the fast path's TC program (id %d, %v) after shutdown", m, id, err)
		}
		mac, _ := e.topo.InGW(e.ctx, "cat", "/sys/class/net/"+m+"/address")
		if strings.TrimSpace(mac) != before[m] {
			t.Fatalf("%s MAC %s after shutdown, was %s", m, strings.TrimSpace(mac), before[m])
		}
	}
	out, _ := e.topo.InGW(e.ctx, "ip", "-o", "link", "show")
	if strings.Contains(out, BondName) {
		t.Fatalf("host device left after shutdown:\n%s", out)
	}
}

// TestIntegrationRefusals: each bad start gives a one-line error, a non-zero
// exit and changes nothing.
func TestIntegrationRefusals(t *testing.T) {
	e := setup(t, 2, BondSpec{})
	macs := func() string {
		out, _ := e.topo.InGW(e.ctx, "ip", "-o", "link", "show")
		return out
	}
	before := macs()
	run := func(yaml string, args ...string) (string, error) {
		dir := t.TempDir()
		f := filepath.Join(dir, "bond.yaml")
		os.WriteFile(f, []byte(strings.ReplaceAll(strings.ReplaceAll(yaml, "@SOCKET@", filepath.Join(dir, "s.sock")), "@STATEDIR@", filepath.Join(dir, "state"))), 0o600)
		return Sh(e.ctx, "ip", append([]string{"netns", "exec", e.topo.GW, applianceBin, "-c", f}, args...)...)
	}
	// --check, read-only, says what the start would refuse, and accepts
	// what it would run
	if out, err := run(e.topo.Config(BondSpec{Mode: "balance-xor"}, "@SOCKET@"), "--check"); err != nil || !strings.Contains(out, "the machine can run it") {
		t.Fatalf("--check of a good configuration: %v\n%s", err, out)
	}
	cases := []struct{ name, yaml, want string }{
		{"missing interface", strings.Replace(e.topo.Config(BondSpec{Mode: "balance-xor"}, "@SOCKET@"), "m1", "nosuch0", 1), "nosuch0"},
		{"too few queues", strings.Replace(e.topo.Config(BondSpec{Mode: "balance-xor", Cores: []int{0, 1}}, "@SOCKET@"), "queues: 2", "queues: 2", 1), "queues"},
		{"bad mode", strings.Replace(e.topo.Config(BondSpec{Mode: "balance-xor"}, "@SOCKET@"), "balance-xor", "balance-xyz", 1), "mode"},
	}
	for _, c := range cases {
		if out, err := run(c.yaml, "--check"); err == nil || !strings.Contains(out, c.want) {
			t.Fatalf("%s: --check: err %v, output does not name %q:\n%s", c.name, err, c.want, out)
		}
		out, err := run(c.yaml)
		if err == nil {
			t.Fatalf("%s: started", c.name)
		}
		if !strings.Contains(out, c.want) {
			t.Fatalf("%s: error does not name %q:\n%s", c.name, c.want, out)
		}
		if after := macs(); after != before {
			t.Fatalf("%s: interfaces changed:\nbefore %s\nafter %s", c.name, before, after)
		}
	}
	// a member already holding the first appliance's program (XDP, or the
	// fast path's TC program while the kernel delivers its frames)
	p, err := e.topo.Start(e.ctx, applianceBin, e.topo.Config(BondSpec{Mode: "balance-xor"}, "@SOCKET@"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	y := strings.Replace(e.topo.Config(BondSpec{Mode: "balance-xor"}, "@SOCKET@"), "name: bond0", "name: bond1", 1)
	if out, err := run(y, "--check"); err == nil || !strings.Contains(out, "XDP program") && !strings.Contains(out, "TC program") {
		t.Fatalf("--check of a second appliance on the same members: err %v\n%s", err, out)
	}
	if out, err := run(e.topo.Config(BondSpec{Mode: "balance-xor"}, "@SOCKET@"), "--check"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("--check with bond0 taken: err %v\n%s", err, out)
	}
	out, err := run(y)
	if err == nil || !strings.Contains(out, "XDP program") && !strings.Contains(out, "TC program") {
		t.Fatalf("second appliance on the same members: err %v\n%s", err, out)
	}
}

// TestIntegrationHostCarrier: the host device loses carrier when no member
// can carry traffic and regains it when one comes back.
func TestIntegrationHostCarrier(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "balance-xor", Options: map[string]string{"miimon": "100"}})
	e.waitUp()
	hostCarrier := func() string {
		out, err := e.topo.InGW(e.ctx, "cat", "/sys/class/net/"+BondName+"/carrier")
		if err != nil {
			return "0" // reading carrier of a down-lower device fails with EINVAL
		}
		return strings.TrimSpace(out)
	}
	wait := func(want string) {
		deadline := time.Now().Add(3 * time.Second)
		for hostCarrier() != want {
			if time.Now().After(deadline) {
				t.Fatalf("host device carrier %q, want %q; status %+v", hostCarrier(), want, e.status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("1")
	for i := range e.topo.Ports {
		if err := e.topo.SetPort(e.ctx, i, false); err != nil {
			t.Fatal(err)
		}
	}
	wait("0")
	if s := e.status(); s.MIIStatus != "down" {
		t.Fatalf("bond MII Status %q with every member down", s.MIIStatus)
	}
	if err := e.topo.SetPort(e.ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	wait("1")
	peer, _ := net.ParseMAC(PeerMAC)
	per := e.hostToPeer(flowFrames(peer, e.bondMAC(), 8, 10))
	if len(per[1]) < 75 || len(per[0]) != 0 {
		t.Fatalf("after recovery of m1 only: m0 %d m1 %d of 80", len(per[0]), len(per[1]))
	}
}
