package bondsm

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
	"github.com/bond-appliance/bond-appliance/lacp"
)

// lacpPeer is an Open vSwitch stand-in: a real lacp.System whose port i
// is wired to member i.
type lacpPeer struct {
	sys  *lacp.System
	toUs [][]byte
	ms   int
}

func newPeer(t *testing.T, ports int) *lacpPeer {
	p := &lacpPeer{}
	sys, err := lacp.New(lacp.DefaultConfig([6]byte{0x02, 0xfa, 0xce, 0, 0, 1}), func(port int, f []byte) {
		p.toUs = append(p.toUs, append([]byte{byte(port)}, f...))
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < ports; i++ {
		if err := sys.AddPort(i, lacp.PortConfig{Number: uint16(i + 1), MAC: [6]byte{0x02, 0xfa, 0xce, 1, 0, byte(i)}}); err != nil {
			t.Fatal(err)
		}
		sys.SetLink(i, true, 1000, true)
	}
	p.sys = sys
	return p
}

// run exchanges PDUs for d on the LACP period; it returns our LACPDUs.
func (p *lacpPeer) run(t *testing.T, b *Bond, d time.Duration) []lacp.LACPDU {
	var sent []lacp.LACPDU
	for end := p.ms + int(d/time.Millisecond); p.ms < end; {
		p.ms += 100
		out := b.TickLACP(at(p.ms))
		p.sys.Tick(time.Duration(p.ms) * time.Millisecond)
		for _, f := range out.Frames {
			if f.Class != ClassSlow {
				t.Fatalf("LACP frame with class %d", f.Class)
			}
			var pdu lacp.LACPDU
			if lacp.DecodeLACPDU(f.Data, &pdu) == nil {
				sent = append(sent, pdu)
			}
			p.sys.Receive(f.Member, f.Data, time.Duration(p.ms)*time.Millisecond)
		}
		in := p.toUs
		p.toUs = nil
		for _, f := range in {
			for _, g := range b.Receive(at(p.ms), int(f[0]), f[1:]).Frames {
				p.sys.Receive(g.Member, g.Data, time.Duration(p.ms)*time.Millisecond)
			}
		}
	}
	return sent
}

func Test8023ADWithPartner(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "802.3ad", 2, "lacp_rate: fast"))
	p := newPeer(t, 2)
	sent := p.run(t, b, 5*time.Second)
	if len(sent) == 0 {
		t.Fatal("no LACPDU sent")
	}
	if s := b.Snapshot(); !slices.Equal(s.TX, []int{0, 1}) || s.RX != 3 || s.Active != 0 || !b.Carrier() {
		t.Fatalf("with a partner: TX %v RX %b active %d carrier %v", s.TX, s.RX, s.Active, b.Carrier())
	}
	st := b.Status()
	if st.AD == nil || st.AD.ActiveAggregator == nil || st.Slaves[1].AD == nil || !st.Slaves[1].AD.Distributing ||
		st.AD.LACPRate != "fast" || st.AD.TickJitterMaxMs != 0 {
		t.Fatalf("802.3ad status %+v", st.AD)
	}
	// a member's carrier loss takes it out at once
	lo := b.Link(at(p.ms+1), 1, false)
	if s := b.Snapshot(); !slices.Equal(s.TX, []int{0}) {
		t.Fatalf("after member 1 lost carrier: TX %v", s.TX)
	}
	// and the log says which slaves distribute now
	if !slices.ContainsFunc(lo.Events, func(e Event) bool {
		return e.Msg == "802.3ad distributing" && slices.Equal(e.Args[:6], []any{"bond", "bond0", "slaves", "eth0", "count", 1})
	}) {
		t.Fatalf("events after member 1 lost carrier: %+v", lo.Events)
	}
	b.Link(at(p.ms+2), 1, true)
	p.run(t, b, 5*time.Second)
	if s := b.Snapshot(); !slices.Equal(s.TX, []int{0, 1}) {
		t.Fatalf("after member 1 came back: TX %v", s.TX)
	}
	// ad_user_port_key changes the actor key of the LACPDUs
	c := b.Config()
	c.ADUserPortKey = 5
	if _, err := b.Reconfigure(at(p.ms+3), c); err != nil {
		t.Fatal(err)
	}
	sent = p.run(t, b, 5*time.Second)
	want, _ := lacp.PortKey(1000, true, 5)
	if len(sent) == 0 || sent[len(sent)-1].Actor.Key != want {
		t.Fatalf("actor key after ad_user_port_key 5: %+v, want %d", sent, want)
	}
	if s := b.Snapshot(); !slices.Equal(s.TX, []int{0, 1}) {
		t.Fatalf("after the key change: TX %v", s.TX)
	}
	// lacp_rate slow: our LACPDUs ask for the long timeout
	c.LACPRate = config.LACPRateSlow
	out, err := b.Reconfigure(at(p.ms+4), c)
	if err != nil {
		t.Fatal(err)
	}
	sent = nil
	for _, f := range out.Frames {
		var pdu lacp.LACPDU
		if lacp.DecodeLACPDU(f.Data, &pdu) == nil {
			sent = append(sent, pdu)
		}
	}
	sent = append(sent, p.run(t, b, 2*time.Second)...)
	if len(sent) == 0 || sent[len(sent)-1].Actor.State.Has(lacp.StateTimeout) {
		t.Fatalf("lacp_rate slow: %+v", sent)
	}
	// a dropped PDU is counted
	b.Dropped(Frame{Class: ClassSlow})
	if st := b.Status(); st.AD.PDUTxQueueDrops != 1 {
		t.Fatalf("PDU drops %d", st.AD.PDUTxQueueDrops)
	}
	// removing a member says goodbye to the partner with a last LACPDU
	_, out, err = b.RemoveMember(at(p.ms+5), "eth1")
	if err != nil || len(out.Frames) != 1 || out.Frames[0].Member != 1 || !slices.Equal(b.Snapshot().TX, []int{0}) {
		t.Fatalf("remove: %v %+v TX %v", err, out.Frames, b.Snapshot().TX)
	}
}

func TestARPMonitor(t *testing.T) {
	target := netip.MustParseAddr("10.0.0.1")
	b, _ := newBond(t, parseBond(t, "active-backup", 2, "miimon: 0", "arp_interval: 100", "arp_ip_target: [10.0.0.1]"))
	b.HostAddrs(at(0), []monitor.Addr{{Prefix: netip.MustParsePrefix("10.0.0.2/24")}})
	if !b.Snapshot().CopyARP {
		t.Fatal("the snapshot does not copy ARP to control")
	}
	reply := func(to int) []byte {
		buf := make([]byte, 64)
		n, err := monitor.BuildARP(buf, &monitor.ARP{Dst: monitor.MAC(bondMAC), Src: monitor.MAC{2, 9, 9, 9, 9, 9}, Op: monitor.ARPReply,
			SenderMAC: monitor.MAC{2, 9, 9, 9, 9, 9}, SenderIP: target, TargetMAC: monitor.MAC(bondMAC), TargetIP: netip.MustParseAddr("10.0.0.2")})
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	probes := 0
	var sawUp, sawDown bool
	answer := true
	for ms := 10; ms <= 3000; ms += 10 {
		if ms == 1500 {
			answer = false
		}
		out := b.Tick(at(ms), TickInput{})
		for _, f := range out.Frames {
			a, err := monitor.ParseARP(f.Data)
			if f.Class != ClassNeigh || err != nil || a.Op != monitor.ARPRequest {
				t.Fatalf("probe %+v: %v", f, err)
			}
			if a.TargetIP == target {
				probes++
			} else if a.SenderIP != a.TargetIP {
				t.Fatalf("neither a probe nor a gratuitous ARP: %+v", a)
			}
		}
		if hasEvent(out, "ARP/NS monitor verdict") {
			if len(b.Snapshot().TX) > 0 {
				sawUp = true
			} else {
				sawDown = true
			}
		}
		if answer && ms%50 == 0 {
			for m := 0; m < 2; m++ {
				b.Receive(at(ms), m, reply(m))
			}
		}
		if ms == 1400 && len(b.Snapshot().TX) != 1 {
			t.Fatalf("replies did not bring a member up: %+v", b.Snapshot())
		}
	}
	if probes == 0 || !sawUp || !sawDown || len(b.Snapshot().TX) != 0 {
		t.Fatalf("probes %d, up %v, down %v, TX %v", probes, sawUp, sawDown, b.Snapshot().TX)
	}
	st := b.Status()
	if st.Monitor == nil || st.Monitor.ProbesSent != uint64(probes) || st.Slaves[0].ArpMonitor == "" || st.Slaves[0].ArpMonitor == "up" {
		t.Fatalf("monitor status %+v %+v", st.Monitor, st.Slaves)
	}
}

// A failover in active-backup sends gratuitous ARPs for the host's
// addresses on the new active slave.
func TestPeerNotification(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "active-backup", 2, "num_grat_arp: 2"))
	b.HostAddrs(at(0), []monitor.Addr{{Prefix: netip.MustParsePrefix("10.0.0.2/24")}})
	b.Link(at(5), 0, false)
	garps := 0
	for ms := 10; ms < 1000; ms += 10 {
		for _, f := range b.Tick(at(ms), TickInput{}).Frames {
			a, err := monitor.ParseARP(f.Data)
			if err != nil || f.Member != 1 || f.Class != ClassNeigh || a.SenderIP != a.TargetIP {
				t.Fatalf("notification %+v %v", f, err)
			}
			garps++
		}
	}
	if garps != 2 {
		t.Fatalf("%d gratuitous ARPs, want 2", garps)
	}
}

func TestALB(t *testing.T) {
	for _, mode := range []string{"balance-tlb", "balance-alb"} {
		t.Run(mode, func(t *testing.T) {
			b, out := newBond(t, parseBond(t, mode, 2, "lp_interval: 1"))
			s := b.Snapshot()
			if s.ALB == nil || !s.ALB.Dynamic || s.XmitHash == nil || s.ALB.Active != 0 {
				t.Fatalf("table %+v", s.ALB)
			}
			if mode == "balance-alb" {
				// the bond MAC moves onto the active slave (it is member 0's already)
				for _, a := range actionsOf(out, SetMemberMAC) {
					if a.Member == 0 && a.MAC.String() != bondMAC.String() {
						t.Fatalf("alb MAC action %+v", a)
					}
				}
			}
			learning := func(from, to int) int {
				n := 0
				for ms := from; ms < to; ms += 10 {
					for _, f := range b.Tick(at(ms), TickInput{}).Frames {
						if f.Class != ClassNeigh {
							t.Fatalf("alb frame class %d", f.Class)
						}
						n++
					}
				}
				return n
			}
			if n := learning(10, 3000); n == 0 {
				t.Fatal("no learning packets with lp_interval 1")
			}
			c := b.Config()
			c.LPInterval = 30
			c.TLBDynamicLB = false
			out, err := b.Reconfigure(at(3000), c)
			if err != nil {
				t.Fatal(err)
			}
			if out.Snapshot == nil || out.Snapshot.ALB.Dynamic || b.Snapshot().ALB.Active != 0 {
				t.Fatalf("tlb_dynamic_lb 0: %+v", b.Snapshot().ALB)
			}
			if n := learning(3010, 8000); n != 0 {
				t.Fatalf("%d frames within 5 s with lp_interval 30", n)
			}
			b.Link(at(8000), 0, false)
			if tb := b.Snapshot().ALB; tb.Active != 1 || !slices.Equal(tb.Usable, []int{1}) {
				t.Fatalf("after failover: %+v", tb)
			}
			if st := b.Status(); st.ALB == nil || st.ALB.DynamicLB {
				t.Fatalf("alb status %+v", st.ALB)
			}
		})
	}
}

func TestReconfigure(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		extra  []string
		change func(*config.Bond)
		check  func(t *testing.T, b *Bond, out Output)
	}{
		{"xmit_hash_policy", "balance-xor", nil, func(c *config.Bond) { c.XmitHashPolicy = config.XmitLayer34 },
			func(t *testing.T, b *Bond, out Output) {
				if out.Snapshot == nil || int(b.Snapshot().Hash) != config.XmitLayer34 {
					t.Fatalf("hash %v", b.Snapshot().Hash)
				}
			}},
		{"packets_per_slave", "balance-rr", nil, func(c *config.Bond) { c.PacketsPerSlave = 7 },
			func(t *testing.T, b *Bond, out Output) {
				if b.Snapshot().PacketsPerSlave != 7 {
					t.Fatal(b.Snapshot().PacketsPerSlave)
				}
			}},
		{"all_slaves_active", "active-backup", nil, func(c *config.Bond) { c.AllSlavesActive = true },
			func(t *testing.T, b *Bond, out Output) {
				if b.Snapshot().RX != 3 {
					t.Fatalf("RX %b", b.Snapshot().RX)
				}
			}},
		{"primary", "active-backup", nil, func(c *config.Bond) { c.Primary = "eth1" },
			func(t *testing.T, b *Bond, out Output) {
				if b.Snapshot().Active != 1 || !hasEvent(out, "active slave changed") {
					t.Fatalf("active %d", b.Snapshot().Active)
				}
			}},
		{"updelay", "balance-xor", nil, func(c *config.Bond) { c.Updelay = 500 },
			func(t *testing.T, b *Bond, out Output) {
				b.Link(at(100), 0, false)
				b.Link(at(200), 0, true)
				b.Tick(at(600), TickInput{})
				if slices.Contains(b.Snapshot().TX, 0) {
					t.Fatal("up before updelay")
				}
				b.Tick(at(700), TickInput{})
				if !slices.Contains(b.Snapshot().TX, 0) {
					t.Fatal("not up after updelay")
				}
			}},
		{"arp monitor on", "balance-xor", nil, func(c *config.Bond) {
			c.Miimon, c.ArpInterval, c.ArpIPTargets = 0, 200, []netip.Addr{netip.MustParseAddr("10.0.0.1")}
		}, func(t *testing.T, b *Bond, out Output) {
			if !b.Snapshot().CopyARP {
				t.Fatal("no ARP copies")
			}
			if fr := b.Tick(at(10), TickInput{}).Frames; len(fr) != 2 {
				t.Fatalf("probes %+v", fr)
			}
		}},
		{"min_links", "802.3ad", nil, func(c *config.Bond) { c.MinLinks = 2 },
			func(t *testing.T, b *Bond, out Output) {
				if st := b.Status(); st.AD.MinLinks != 2 {
					t.Fatalf("min_links %d", st.AD.MinLinks)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newBond(t, parseBond(t, tc.mode, 2, tc.extra...))
			c := b.Config()
			tc.change(&c)
			out, err := b.Reconfigure(at(1), c)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, b, out)
		})
	}
	// errors change nothing
	b, _ := newBond(t, parseBond(t, "balance-xor", 2))
	before := b.Config()
	for _, f := range []func(*config.Bond){
		func(c *config.Bond) { c.Mode = config.ModeBroadcast; c.XmitHashPolicy = 1 },
		func(c *config.Bond) { c.Name = "bond1" },
		func(c *config.Bond) { c.Miimon, c.ArpInterval, c.ArpIPTargets = 0, 100, make([]netip.Addr, 40) },
	} {
		c := b.Config()
		f(&c)
		if _, err := b.Reconfigure(at(2), c); err == nil {
			t.Fatalf("no error for %+v", c)
		}
		if b.Config().XmitHashPolicy != before.XmitHashPolicy || b.Config().ArpInterval != 0 {
			t.Fatal("a failed Reconfigure changed options")
		}
	}
}

// A runtime change that rebuilds the notifier right after a failover (a
// set storm changing primary) does not cancel the failover's gratuitous
// ARPs: the switch would keep sending to the old active slave.
func TestPeerNotificationSurvivesRebuild(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "active-backup", 2, "num_grat_arp: 2"))
	b.HostAddrs(at(0), []monitor.Addr{{Prefix: netip.MustParsePrefix("10.0.0.2/24")}})
	b.Link(at(5), 0, false)
	c := b.Config()
	c.Primary = "eth1" // rebuilds the monitor and the notifier
	if _, err := b.Reconfigure(at(6), c); err != nil {
		t.Fatal(err)
	}
	garps := 0
	for ms := 10; ms < 1000; ms += 10 {
		for _, f := range b.Tick(at(ms), TickInput{}).Frames {
			if a, err := monitor.ParseARP(f.Data); err == nil && f.Member == 1 && a.SenderIP == a.TargetIP {
				garps++
			}
		}
	}
	if garps == 0 {
		t.Fatal("no gratuitous ARP after a failover followed by a runtime change")
	}
}
