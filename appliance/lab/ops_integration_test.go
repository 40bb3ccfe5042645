package lab

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
	"github.com/bond-appliance/bond-appliance/policy"
)

// cli runs the appliance binary as a client against e's control socket.
func (e *env) cli(args ...string) (string, error) {
	return Sh(e.ctx, applianceBin, append(args, "--socket", e.proc.Socket)...)
}

func TestIntegrationRuntimeSet(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "balance-xor", Options: map[string]string{"miimon": "100", "xmit_hash_policy": "layer3+4"}})
	e.waitUp()
	out, err := e.cli("set", "bond0", "xmit_hash_policy", "layer2+3")
	if err != nil || !strings.Contains(out, "layer2+3") {
		t.Fatalf("set xmit_hash_policy: %v %s", err, out)
	}
	if s := e.status(); s.TransmitHashPolicy != "layer2+3 (2)" {
		t.Fatalf("status after set: %q", s.TransmitHashPolicy)
	}
	// traffic follows the new policy: one IP pair, many ports -> one member
	peer, _ := net.ParseMAC(PeerMAC)
	per := e.hostToPeer(flowFrames(peer, e.bondMAC(), 32, 4))
	if len(per[0]) != 0 && len(per[1]) != 0 {
		t.Fatalf("layer2+3 with one address pair split over both members: %d/%d", len(per[0]), len(per[1]))
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "bond0", "mode", "1"}, "can only be changed while the bond"},
		{[]string{"set", "bond0", "miimon", "abc"}, "miimon"},
		{[]string{"set", "bond0", "lacp_rate", "fast"}, "not supported in mode"},
		{[]string{"set", "bond0", "no_such_option", "1"}, "unknown option"},
		{[]string{"set", "bond9", "miimon", "100"}, "no bond"},
	} {
		out, err := e.cli(c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Fatalf("%v: err %v, output %q, want an error containing %q", c.args, err, out, c.want)
		}
	}
	if s := e.status(); s.TransmitHashPolicy != "layer2+3 (2)" || s.Mode != "balance-xor" {
		t.Fatalf("a refused set changed the bond: %+v", s)
	}
	out, err = e.cli("set", "bond0", "miimon", "50")
	if err != nil || e.status().MIIPollingInterval != 50 {
		t.Fatalf("set miimon 50: %v %s", err, out)
	}
}

// TestIntegrationReload: a reload applies only the difference while a
// stream keeps flowing without loss; bad or start-only changes are refused
// and change nothing.
func TestIntegrationReload(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "balance-xor", Options: map[string]string{"miimon": "100", "xmit_hash_policy": "layer3+4"}})
	e.waitUp()
	cfgPath := filepath.Join(e.proc.Dir, "bond.yaml")
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// a stream across the reload
	peer, _ := net.ParseMAC(PeerMAC)
	frames := flowFrames(peer, e.bondMAC(), 16, 125) // 2000 frames
	done := make(chan [][]uint32)
	go func() { done <- e.hostToPeerPaced(frames, 2*time.Millisecond) }()
	time.Sleep(300 * time.Millisecond)
	write(strings.Replace(string(orig), "miimon: 100", "miimon: 200", 1))
	out, err := e.cli("reload")
	if err != nil || !strings.Contains(out, "miimon=200") {
		t.Fatalf("reload: %v %s", err, out)
	}
	per := <-done
	if n := len(per[0]) + len(per[1]); n != len(frames) {
		t.Fatalf("%d of %d frames arrived across the reload", n, len(frames))
	}
	if s := e.status(); s.MIIPollingInterval != 200 {
		t.Fatalf("miimon after reload: %d", s.MIIPollingInterval)
	}
	for _, bad := range []struct{ from, to, want string }{
		{"miimon: 100", "miimon: 10x", "miimon"},
		{"mode: balance-xor", "mode: active-backup", "no slaves"},
		{"ring_size: 1024", "ring_size: 512", "dataplane settings changed"},
	} {
		write(strings.Replace(string(orig), bad.from, bad.to, 1))
		out, err := e.cli("reload")
		if err == nil || !strings.Contains(out, bad.want) {
			t.Fatalf("reload with %q: err %v output %q, want a refusal naming %q", bad.to, err, out, bad.want)
		}
		if s := e.status(); s.MIIPollingInterval != 200 || s.Mode != "balance-xor" || len(s.Slaves) != 2 {
			t.Fatalf("a refused reload changed the bond: %+v", s)
		}
	}
	// slaves removed in the file leave the running bond
	write(strings.Replace(strings.Replace(string(orig), "miimon: 100", "miimon: 200", 1), "slaves: [m0, m1]", "slaves: [m0]", 1))
	out, err = e.cli("reload")
	if err != nil || !strings.Contains(out, "slave m1 removed") {
		t.Fatalf("reload removing m1: %v %s", err, out)
	}
	if s := e.status(); len(s.Slaves) != 1 || s.Slaves[0].Name != "m0" {
		t.Fatalf("after reload removing m1: %+v", s.Slaves)
	}
}

// hostToPeerPaced is hostToPeer with a pause between frames.
func (e *env) hostToPeerPaced(frames [][]byte, gap time.Duration) [][]uint32 {
	tx, err := OpenPacket(e.topo.GW, BondName)
	if err != nil {
		e.t.Error(err)
		return nil
	}
	defer tx.Close()
	var rx []*PacketSocket
	for _, p := range e.topo.Ports {
		s, err := OpenPacket(e.topo.Peer, p)
		if err != nil {
			e.t.Error(err)
			return nil
		}
		defer s.Close()
		rx = append(rx, s)
	}
	per := make([][]uint32, len(rx))
	got := make(chan struct{}, len(rx))
	stop := make(chan struct{})
	for i, s := range rx {
		go func() {
			defer func() { got <- struct{}{} }()
			for {
				for _, f := range s.Recv(100*time.Millisecond, 100000) {
					if q, ok := TestSeq(f); ok {
						per[i] = append(per[i], q)
					}
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	for _, f := range frames {
		_ = tx.Send(f)
		time.Sleep(gap)
	}
	time.Sleep(time.Second)
	close(stop)
	for range rx {
		<-got
	}
	return per
}

func TestIntegrationEvents(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{"miimon": "100"}})
	e.waitUp()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	evs := make(chan appliance.Event, 16)
	go appliance.Stream(e.proc.Socket, appliance.Request{Cmd: "events"}, func(r *appliance.Response) bool {
		if r.Event != nil {
			evs <- *r.Event
		}
		return ctx.Err() == nil
	})
	time.Sleep(200 * time.Millisecond)
	active := e.status().CurrentlyActiveSlave
	port := 0
	if active == "m1" {
		port = 1
	}
	if err := e.topo.SetPort(e.ctx, port, false); err != nil {
		t.Fatal(err)
	}
	var sawDown, sawFailover bool
	for !(sawDown && sawFailover) {
		select {
		case ev := <-evs:
			if ev.Msg == "slave link state" && ev.Fields["slave"] == active && ev.Fields["to"] == "down" && ev.Fields["bond"] == BondName {
				sawDown = true
			}
			if ev.Msg == "active slave changed" && ev.Fields["from"] == active {
				sawFailover = true
			}
		case <-ctx.Done():
			t.Fatalf("events: link down seen %v, failover seen %v", sawDown, sawFailover)
		}
	}
}

// TestIntegrationMetrics scrapes the Prometheus endpoint of a running
// 802.3ad-less bond and checks the main series.
func TestIntegrationMetrics(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "balance-xor", Options: map[string]string{"miimon": "100"}, Metrics: "127.0.0.1:9469"})
	e.waitUp()
	peer, _ := net.ParseMAC(PeerMAC)
	e.hostToPeer(flowFrames(peer, e.bondMAC(), 8, 8))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return DialInNetns(e.topo.GW, network, addr)
		},
	}}
	var body string
	waitFor(t, 5*time.Second, "metrics endpoint", func() bool {
		resp, err := client.Get("http://127.0.0.1:9469/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	for _, want := range []string{
		`bond_appliance_bond_up{bond="bond0"} 1`,
		`bond_appliance_slave_mii_up{bond="bond0",slave="m0"} 1`,
		`bond_appliance_slave_transmit_packets_total{bond="bond0",slave="m0"}`,
		`bond_appliance_host_receive_packets_total{bond="bond0"}`,
		`bond_appliance_slave_dropped_packets_total{bond="bond0",reason="tx_full",slave="m1"}`,
		`bond_appliance_port_xsk_fill_ring_empty_total{lane="0",port="m0",queue="0"}`,
		`bond_appliance_lane_busy_ratio{lane="0"}`,
		`bond_appliance_slave_link_failures_total{bond="bond0",slave="m1"} 0`,
		`bond_appliance_info{version=`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

// TestIntegrationSlaveAddDel hot-adds and removes members while a flow on
// another member keeps running: no frame of that flow is lost; the added
// member carries traffic; the removed one is restored (MAC, no XDP).
func TestIntegrationSlaveAddDel(t *testing.T) {
	e := setup(t, 3, BondSpec{Mode: "balance-xor", Options: map[string]string{
		"miimon": "100", "xmit_hash_policy": "layer3+4", "slaves": "[m0, m1]"}})
	e.waitUp()
	const permM1 = "02:42:b0:00:00:02" // the lab's permanent MAC of m1 (it carries the bond MAC while enslaved)
	peer, _ := net.ParseMAC(PeerMAC)
	mac := e.bondMAC()
	// a flow that layer3+4 puts on m0 with two slaves and with three
	var flow uint16
	for f := uint16(20000); f < 21000; f++ {
		fr := UDPFrame(peer, mac, f, 5001, 0, 64)
		if policy.SlaveIndex(policy.Hash(fr, policy.Layer34), 2) == 0 && policy.SlaveIndex(policy.Hash(fr, policy.Layer34), 3) == 0 {
			flow = f
			break
		}
	}
	var frames [][]byte
	for i := 0; i < 1500; i++ {
		frames = append(frames, UDPFrame(peer, mac, flow, 5001, uint32(i), 64))
	}
	done := make(chan [][]uint32)
	go func() { done <- e.hostToPeerPaced(frames, time.Millisecond) }()
	time.Sleep(300 * time.Millisecond)
	if out, err := e.cli("slave", "bond0", "add", "m2"); err != nil {
		t.Fatalf("slave add: %v %s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	if out, err := e.cli("slave", "bond0", "del", "m1"); err != nil {
		t.Fatalf("slave del: %v %s", err, out)
	}
	per := <-done
	if len(per[0]) != len(frames) {
		t.Fatalf("flow on m0 lost frames across slave add/del: %d of %d", len(per[0]), len(frames))
	}
	s := e.status()
	if len(s.Slaves) != 2 || s.Slaves[0].Name != "m0" || s.Slaves[1].Name != "m2" {
		t.Fatalf("slaves after add m2 / del m1: %+v", s.Slaves)
	}
	// m2 carries traffic, m1 none
	per = e.hostToPeer(flowFrames(peer, mac, 32, 4))
	if len(per[2]) == 0 || len(per[1]) != 0 {
		t.Fatalf("after add/del: m0 %d m1 %d m2 %d frames", len(per[0]), len(per[1]), len(per[2]))
	}
	out, _ := e.topo.InGW(e.ctx, "ip", "-d", "link", "show", "m1")
	if strings.Contains(out, "prog/xdp") {
		t.Fatalf("m1 keeps an XDP program after removal:\n%s", out)
	}
	if got := e.linkMAC(e.topo.GW, "m1"); got != permM1 {
		t.Fatalf("m1 MAC %s after removal, was %s", got, permM1)
	}
	for _, c := range []struct{ args []string }{
		{[]string{"slave", "bond0", "add", "m0"}},
		{[]string{"slave", "bond0", "del", "m1"}},
		{[]string{"slave", "bond0", "add", "nosuch9"}},
	} {
		if out, err := e.cli(c.args...); err == nil {
			t.Fatalf("%v succeeded: %s", c.args, out)
		}
	}
}

// TestIntegrationBondAddDel brings a second bond up and down at runtime
// while a flow runs on the first: no frame of it is lost; the new bond
// forwards; after removal its devices are gone and its members restored.
func TestIntegrationBondAddDel(t *testing.T) {
	e := setup(t, 4, BondSpec{Mode: "balance-xor", Options: map[string]string{"miimon": "100", "slaves": "[m0, m1]"}})
	e.waitUp()
	cfgPath := filepath.Join(e.proc.Dir, "bond.yaml")
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := net.ParseMAC(PeerMAC)
	frames := flowFrames(peer, e.bondMAC(), 8, 200)
	done := make(chan [][]uint32)
	go func() { done <- e.hostToPeerPaced(frames, time.Millisecond) }()
	time.Sleep(200 * time.Millisecond)
	add := string(orig) + "  - name: bond1\n    mode: active-backup\n    miimon: 100\n    slaves: [m2, m3]\n"
	if err := os.WriteFile(cfgPath, []byte(add), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := e.cli("bond", "add", "bond1"); err != nil {
		t.Fatalf("bond add: %v %s", err, out)
	}
	st, err := e.proc.Status("bond1")
	if err != nil || st.Bonds[0].CurrentlyActiveSlave == "None" {
		t.Fatalf("bond1 status: %v %+v", err, st)
	}
	// bond1 forwards: frames from its host device reach its members' peers
	tx, err := OpenPacket(e.topo.GW, "bond1")
	if err != nil {
		t.Fatal(err)
	}
	port := "p2" // the active slave's peer
	if st.Bonds[0].CurrentlyActiveSlave == "m3" {
		port = "p3"
	}
	rx, err := OpenPacket(e.topo.Peer, port)
	if err != nil {
		t.Fatal(err)
	}
	mac1, _ := net.ParseMAC(st.Bonds[0].MAC)
	for i := 0; i < 20; i++ {
		tx.Send(UDPFrame(peer, mac1, 7, 7, uint32(900000+i), 64))
	}
	n := 0
	for _, f := range rx.Recv(300*time.Millisecond, 1000) {
		if q, ok := TestSeq(f); ok && q >= 900000 {
			n++
		}
	}
	tx.Close()
	rx.Close()
	if n < 18 {
		t.Fatalf("bond1 forwarded %d of 20 frames to its active slave's peer %s", n, port)
	}
	if out, err := e.cli("bond", "del", "bond1"); err != nil {
		t.Fatalf("bond del: %v %s", err, out)
	}
	per := <-done
	if got := len(per[0]) + len(per[1]); got != len(frames) {
		t.Fatalf("bond0 lost frames while bond1 came and went: %d of %d", got, len(frames))
	}
	if _, err := e.proc.Status("bond1"); err == nil {
		t.Fatal("bond1 still reported after bond del")
	}
	out, _ := e.topo.InGW(e.ctx, "ip", "-o", "link", "show")
	if strings.Contains(out, "bond1") {
		t.Fatalf("bond1 devices left after bond del:\n%s", out)
	}
	for _, m := range []string{"m2", "m3"} {
		o, _ := e.topo.InGW(e.ctx, "ip", "-d", "link", "show", m)
		if strings.Contains(o, "prog/xdp") {
			t.Fatalf("%s keeps an XDP program after bond del", m)
		}
	}
	if got := e.linkMAC(e.topo.GW, "m3"); got != "02:42:b0:00:00:04" {
		t.Fatalf("m3 MAC %s after bond del, want its own 02:42:b0:00:00:04", got)
	}
}

func TestIntegrationStatusWatch(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{"miimon": "100"}})
	e.waitUp()
	ctx, cancel := context.WithTimeout(e.ctx, 2500*time.Millisecond)
	defer cancel()
	out, _ := exec.CommandContext(ctx, applianceBin, "status", "--watch", "--interval", "1s", "--socket", e.proc.Socket).Output()
	if n := strings.Count(string(out), "Bonding Mode: fault-tolerance (active-backup)"); n < 2 {
		t.Fatalf("status --watch refreshed %d times in 2.5 s:\n%s", n, out)
	}
	if !strings.Contains(string(out), "\033[H\033[2J") {
		t.Fatal("status --watch does not redraw in place")
	}
	// a refused bond command
	if out, err := e.cli("bond", "del", "bond0"); err == nil || !strings.Contains(out, "last bond") {
		t.Fatalf("bond del of the last bond: %v %s", err, out)
	}
	if out, err := e.cli("bond", "add", "bond7"); err == nil || !strings.Contains(out, "no bond") {
		t.Fatalf("bond add of an undefined bond: %v %s", err, out)
	}
}
