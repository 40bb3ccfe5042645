package appliance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/bondsm"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/lacp"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
)

// The control plane's concurrency, without devices: an Appliance whose
// bonds have members that do not exist (netlink calls about them fail and
// are logged), one lane that is not running (so every layout counts as
// adopted), the real control loop, worker and control socket. Run with
// -race: these tests exist because requests from many goroutines used to
// share bond state under locks that did not cover it.

func testBond(t *testing.T, name, mode string, slaves ...string) config.Bond {
	t.Helper()
	y := fmt.Sprintf("bonds:\n  - name: %s\n    mode: %s\n    slaves: [%s]\n", name, mode, strings.Join(slaves, ", "))
	if mode == "802.3ad" {
		y += "    lacp_rate: fast\n"
	}
	c, _, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c.Bonds[0]
}

func testAppliance(t *testing.T, bonds ...config.Bond) *Appliance {
	t.Helper()
	cfg := config.Defaults()
	cfg.Dataplane.Cores, cfg.Dataplane.Queues = []int{0}, 1
	cfg.Bonds = bonds
	cfg.Control.Socket = filepath.Join(t.TempDir(), "control.sock")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &Appliance{
		cfg: cfg, log: log, started: time.Now(),
		reqs: make(chan func(*ctl)), results: make(chan func(*ctl), 64), jobs: make(chan func(*worker), 256), probes: make(chan func() func(*ctl), 16),
		stop: make(chan struct{}), loopEnd: make(chan struct{}), workEnd: make(chan struct{}),
	}
	u, err := umem.New(umem.Config{NumFrames: 4096, FrameSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	a.umems = []*umem.UMEM{u}
	a.lanes = []*lane.Lane{lane.New(lane.Config{ID: 0, CPU: -1, Batch: 64, RingSize: 256}, u, nil)}
	a.w = &worker{dp: cfg.Dataplane, log: log, lanes: a.lanes, laneFirst: make([]*xsk.Socket, 1)}
	c := newCtl(a)
	for i, bc := range bonds {
		mac := net.HardwareAddr{2, 0, 0, 0, byte(i), 1}
		bd := &bondDevs{hostPorts: []*lane.Port{{Name: bc.Name, FD: -1}}}
		bd.setup = bondsm.Setup{Config: bc, MAC: mac, MTU: 1500, HostDevice: "veth"}
		for j, s := range bc.Slaves {
			bd.setup.Members = append(bd.setup.Members, bondsm.Member{Name: s.Name, Ifindex: 100000 + 10*i + j,
				PermMAC: net.HardwareAddr{2, 0, 0, 1, byte(i), byte(j)}, CurMAC: mac, Carrier: true, Speed: 1000, Duplex: "full", Slave: s})
			bd.members = append(bd.members, &memberDev{name: s.Name, slowFD: -1, ports: []*lane.Port{{Name: s.Name, FD: -1}}})
		}
		b, out, err := c.addBond(bd, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c.applyDirect(b, out)
	}
	c.publishLayouts()
	a.startLoops(c)
	srv, err := startControl(cfg.Control, a)
	if err != nil {
		t.Fatal(err)
	}
	a.server = srv
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func statusOf(t *testing.T, a *Appliance, bond string) BondStatus {
	t.Helper()
	st, err := a.Status(bond)
	if err != nil {
		t.Fatal(err)
	}
	return st.Bonds[0]
}

// Many goroutines set options, read status, reload-style ops and subscribe
// to events (one never reads) while the loop ticks LACP: no race, every
// request answered, and shutdown is bounded.
func TestLoopConcurrentRequests(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "802.3ad", "ba0", "ba1"), testBond(t, "bond1", "balance-xor", "ba2", "ba3", "ba4"))
	never, err := a.subscribe() // an events subscriber that never reads
	if err != nil {
		t.Fatal(err)
	}
	_ = never
	stop := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	run(func(i int) error {
		_, err := a.SetOption("bond0", "lacp_rate", []string{"slow", "fast"}[i%2])
		return err
	})
	run(func(i int) error {
		_, err := a.SetOption("bond1", "xmit_hash_policy", []string{"layer2", "layer3+4"}[i%2])
		return err
	})
	run(func(i int) error {
		_, err := a.SetOption("bond1", "miimon", fmt.Sprint(50+i%100))
		return err
	})
	run(func(int) error {
		st, err := a.Status("")
		if err == nil && len(st.Bonds) != 2 {
			err = fmt.Errorf("status has %d bonds", len(st.Bonds))
		}
		return err
	})
	run(func(int) error {
		ch, err := a.subscribe()
		if err == nil {
			a.unsubscribe(ch)
		}
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t0 := time.Now()
	if err := a.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := a.Status(""); err == nil {
		t.Fatal("status answered after shutdown")
	}
}

// A LACPDU a lane passed up behind a flood of ARP copies reaches LACP at
// the next tick: slow protocols have their own ring and are drained first.
func TestLoopSlowProtocolsFirst(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "802.3ad", "ba0", "ba1"))
	l := a.lanes[0]
	var cf lane.CtrlFrame
	arp := make([]byte, 60)
	copy(arp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 9, 9, 0x08, 0x06})
	n := 0
	for ; n < 5000; n++ {
		cf.Bond, cf.Member, cf.Len = 0, 0, uint16(copy(cf.Data[:], arp))
		if !l.ToCtrlNeigh.Push(&cf) {
			break
		}
	}
	pdu := lacp.LACPDU{Actor: lacp.PortInfo{SystemPriority: 1, System: [6]byte{2, 0xfa, 0xce, 0, 0, 1}, Key: 9, PortPriority: 255, Port: 1, State: 0x3d}}
	k, err := lacp.EncodeLACPDU(cf.Data[:], [6]byte{2, 0xfa, 0xce, 0, 0, 1}, &pdu)
	if err != nil {
		t.Fatal(err)
	}
	cf.Bond, cf.Member, cf.Len = 0, 0, uint16(k)
	if !l.ToCtrlSlow.Push(&cf) {
		t.Fatal("slow ring full")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := statusOf(t, a, "bond0")
		if s.Slaves[0].AD != nil && s.Slaves[0].AD.Counters.LACPDUsRx == 1 {
			t.Logf("LACPDU taken behind %d ARP copies", n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LACPDU not received by LACP: %+v", s.Slaves[0].AD)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Hot removal waits for the lanes and the worker without holding up the
// loop; the last member is refused; status shows the change.
func TestLoopDelSlave(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "balance-xor", "ba0", "ba1", "ba2"))
	if err := a.DelSlave("bond0", "ba1"); err != nil {
		t.Fatal(err)
	}
	s := statusOf(t, a, "bond0")
	if len(s.Slaves) != 2 || s.Slaves[0].Name != "ba0" || s.Slaves[1].Name != "ba2" {
		t.Fatalf("slaves after del: %+v", s.Slaves)
	}
	if err := a.DelSlave("bond0", "ba1"); err == nil || !strings.Contains(err.Error(), "not a slave") {
		t.Fatalf("second del: %v", err)
	}
	if err := a.DelSlave("bond0", "ba0"); err != nil {
		t.Fatal(err)
	}
	if err := a.DelSlave("bond0", "ba2"); err == nil || !strings.Contains(err.Error(), "last slave") {
		t.Fatalf("del of the last slave: %v", err)
	}
	if n := len(a.lanes[0].Ports()); n != 2 { // the host port and ba2
		t.Fatalf("layout has %d ports after removals", n)
	}
	if err := a.DelBond("bond0"); err == nil || !strings.Contains(err.Error(), "last bond") {
		t.Fatalf("del of the last bond: %v", err)
	}
}

// tlb/alb refuse hot add and del with a clear error, before any device work.
func TestLoopSlaveRefusals(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "balance-tlb", "ba0", "ba1"))
	if err := a.AddSlave("bond0", "ba9"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("tlb add: %v", err)
	}
	if err := a.AddSlave("bond0", "ba0"); err == nil || !strings.Contains(err.Error(), "already a slave") {
		t.Fatalf("add of a member: %v", err)
	}
	if err := a.AddSlave("nobond", "ba9"); err == nil || !strings.Contains(err.Error(), "no bond") {
		t.Fatalf("add to a missing bond: %v", err)
	}
}

// Clients that stop reading, or never send anything, cannot hold up
// shutdown.
func TestLoopShutdownWithStuckClients(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
	path := a.cfg.Control.Socket
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ev, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if _, err := ev.Write([]byte(`{"cmd":"events"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(ev).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// events pile up in the socket buffer of the client that does not read
	for i := 0; i < 2000; i++ {
		v := []string{"50", "100"}[i%2]
		if _, err := a.SetOption("bond0", "miimon", v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := Call(path, Request{Cmd: "status"})
	if err != nil || !resp.OK {
		t.Fatalf("status while a client is stuck: %v %+v", err, resp)
	}
	t0 := time.Now()
	_ = a.Close()
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("shutdown took %v with stuck clients", d)
	}
}

// A malformed or unknown request gets an error answer, not a dropped
// connection or a crash.
func TestLoopBadRequests(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
	c, err := net.Dial("unix", a.cfg.Control.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, tc := range []struct{ req, want string }{
		{"{not json\n", "malformed request"},
		{`{"cmd":"frobnicate"}` + "\n", "unknown command"},
		{`{"cmd":"set","bond":"bond0","option":"mode","value":"4"}` + "\n", "only be changed while the bond has no slaves"},
		{`{"cmd":"set","bond":"bond0","option":"miimon","value":"-5"}` + "\n", "miimon"},
		{`{"cmd":"set","bond":"bond9","option":"miimon","value":"5"}` + "\n", "no bond"},
		{`{"cmd":"slave","bond":"bond0","option":"swap","value":"x"}` + "\n", "not add or del"},
	} {
		if _, err := c.Write([]byte(tc.req)); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", tc.req, err)
		}
		var resp Response
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.OK || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%q: got %+v, want an error with %q", tc.req, resp, tc.want)
		}
	}
}

// A link update without a link (what a closed events channel yields) is
// ignored, never dereferenced (it panicked the control loop in a soak when
// the kernel dropped events and the subscription ended).
func TestLoopEmptyLinkUpdate(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "802.3ad", "ba0", "ba1"))
	if err := a.do(func(c *ctl) {
		c.onLinkUpdate(netlink.LinkUpdate{})
		c.pollAll()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Status(""); err != nil {
		t.Fatalf("control loop gone after an empty link update: %v", err)
	}
}

// TestLoopMonitorSwitch: at runtime the link monitor set last wins, as
// bonding's sysfs does: arp_interval turns MII monitoring off, miimon
// turns ARP monitoring (and arp_validate) off.
func TestLoopMonitorSwitch(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
	defer a.Close()
	mon := func() (int, int, string) {
		st, err := a.Status("bond0")
		if err != nil || len(st.Bonds) != 1 {
			t.Fatalf("status: %v", err)
		}
		b := st.Bonds[0]
		return b.MIIPollingInterval, b.ArpInterval, b.ArpValidate
	}
	for _, step := range []struct {
		opt, val       string
		wantMII, wantA int
	}{
		{"arp_ip_target", "192.0.2.1", 100, 0},
		{"arp_interval", "200", 0, 200},
		{"arp_validate", "active", 0, 200},
		{"miimon", "50", 50, 0},
		{"arp_interval", "100", 0, 100},
	} {
		if _, err := a.SetOption("bond0", step.opt, step.val); err != nil {
			t.Fatalf("set %s %s: %v", step.opt, step.val, err)
		}
		mii, arp, val := mon()
		if mii != step.wantMII || arp != step.wantA {
			t.Fatalf("after set %s %s: miimon %d arp_interval %d, want %d %d", step.opt, step.val, mii, arp, step.wantMII, step.wantA)
		}
		if step.opt == "miimon" && !strings.HasPrefix(val, "none") {
			t.Fatalf("after set miimon: arp_validate %q, want none", val)
		}
	}
}
