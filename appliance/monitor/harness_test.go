package monitor

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

const ival = 100 * time.Millisecond

var (
	ourIP   = netip.MustParseAddr("192.0.2.10")
	ourIP6  = netip.MustParseAddr("2001:db8::10")
	target  = netip.MustParseAddr("192.0.2.1")
	target2 = netip.MustParseAddr("192.0.2.2")
	target6 = netip.MustParseAddr("2001:db8::1")
	peerMAC = MAC{0x02, 0xee, 0, 0, 0, 0x01}
	ourAddr = []Addr{
		{Prefix: netip.MustParsePrefix("192.0.2.10/24")},
		{Prefix: netip.MustParsePrefix("2001:db8::10/64")},
	}
)

func slaveMAC(i int) MAC { return MAC{0x02, 0, 0, 0, 0, byte(0x10 + i)} }

func slaves(n int) []Slave {
	s := make([]Slave, n)
	for i := range s {
		s[i].MAC = slaveMAC(i)
	}
	return s
}

// event is a link or active change seen at tick k.
type event struct {
	tick  int
	kind  ActionKind
	slave int
	link  LinkState
}

func (e event) String() string {
	if e.kind == ActionActive {
		return fmt.Sprintf("t%d active=%d", e.tick, e.slave)
	}
	return fmt.Sprintf("t%d slave%d %v", e.tick, e.slave, e.link)
}

// lab is a fake network around a Monitor: a switch that floods broadcast
// and multicast probes to the other slaves (flood), targets that answer
// ARP and NS (alive), and per-slave paths that can be cut (reach).
type lab struct {
	t      *testing.T
	m      *Monitor
	tick   int // index of the next tick; tick k runs at k*ival
	reach  []bool
	flood  bool
	alive  map[netip.Addr]bool
	noise  map[int]func(l *lab, slave int, now time.Duration) // extra rx per tick
	events []event
	sent   [][]byte // probes of the last tick
	sentOn []int
}

func newLab(t *testing.T, cfg Config) *lab {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = ival
	}
	if cfg.Addrs == nil {
		cfg.Addrs = ourAddr
	}
	m, err := New(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, m: m, reach: make([]bool, len(cfg.Slaves)), flood: true,
		alive: map[netip.Addr]bool{}, noise: map[int]func(*lab, int, time.Duration){}}
	for i := range l.reach {
		l.reach[i] = true
	}
	for _, a := range cfg.Targets {
		l.alive[a] = true
	}
	for _, a := range cfg.NSTargets {
		l.alive[a] = true
	}
	return l
}

// step runs one tick and delivers its probes.
func (l *lab) step() {
	now := time.Duration(l.tick) * ival
	acts := l.m.Tick(now)
	l.sent, l.sentOn = l.sent[:0], l.sentOn[:0]
	for _, a := range acts {
		switch a.Kind {
		case ActionLink, ActionActive:
			l.events = append(l.events, event{l.tick, a.Kind, a.Slave, a.Link})
		case ActionSend:
			l.sent = append(l.sent, append([]byte(nil), a.Frame...))
			l.sentOn = append(l.sentOn, a.Slave)
		}
	}
	for i, f := range l.sent {
		l.deliver(l.sentOn[i], f, now)
	}
	for s, f := range l.noise {
		if l.reach[s] {
			f(l, s, now+3*time.Millisecond)
		}
	}
	l.tick++
}

func (l *lab) run(n int) {
	for range n {
		l.step()
	}
}

// deliver carries a probe sent on slave through the switch.
func (l *lab) deliver(slave int, f []byte, now time.Duration) {
	if !l.reach[slave] {
		return
	}
	if l.flood {
		for j := range l.reach {
			if j != slave && l.reach[j] {
				l.m.Rx(j, f, now+time.Millisecond)
			}
		}
	}
	buf := make([]byte, 128)
	if a, err := ParseARP(f); err == nil && a.Op == ARPRequest && l.alive[a.TargetIP] {
		r := ARP{Dst: a.SenderMAC, Src: peerMAC, Op: ARPReply, SenderMAC: peerMAC, SenderIP: a.TargetIP,
			TargetMAC: a.SenderMAC, TargetIP: a.SenderIP, VLAN: a.VLAN}
		n, err := BuildARP(buf, &r)
		if err != nil {
			l.t.Fatal(err)
		}
		l.m.Rx(slave, buf[:n], now+2*time.Millisecond)
	}
	if ns, err := ParseND(f); err == nil && ns.Type == ICMPv6NeighborSolicitation && l.alive[ns.Target] {
		n := buildNA(l.t, buf, ns.Src, ns.Target, ns.IPSrc)
		l.m.Rx(slave, buf[:n], now+2*time.Millisecond)
	}
}

// buildNA writes a solicited NA from tgt to dst (ff02::1 when dst is ::),
// unicast to ethDst.
func buildNA(t testing.TB, buf []byte, ethDst MAC, tgt, dst netip.Addr) int {
	t.Helper()
	if dst.IsUnspecified() {
		dst = AllNodes
	}
	s, d := tgt.As16(), dst.As16()
	n, err := buildND(buf, 0, ethDst, peerMAC, &s, &d, ICMPv6NeighborAdvertisement,
		naFlagSolic|naFlagOver, &s, ndOptTLLAO, peerMAC)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// linkEvents returns the link/active events of slave s (-1: active only).
func (l *lab) eventsOf(s int) []event {
	var out []event
	for _, e := range l.events {
		if (s < 0 && e.kind == ActionActive) || (s >= 0 && e.kind == ActionLink && e.slave == s) {
			out = append(out, e)
		}
	}
	return out
}

func (l *lab) wantEvents(s int, want ...event) {
	l.t.Helper()
	l.wantEventsUntil(s, l.tick, want...)
}

// wantEventsUntil checks the events of slave s up to tick last.
func (l *lab) wantEventsUntil(s, last int, want ...event) {
	l.t.Helper()
	var got []event
	for _, e := range l.eventsOf(s) {
		if e.tick <= last {
			got = append(got, e)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		l.t.Fatalf("slave %d events\n got %v\nwant %v\nall %v", s, got, want, l.events)
	}
}

func down(tick, s int) event   { return event{tick, ActionLink, s, LinkDown} }
func up(tick, s int) event     { return event{tick, ActionLink, s, LinkUp} }
func fail(tick, s int) event   { return event{tick, ActionLink, s, LinkFail} }
func back(tick, s int) event   { return event{tick, ActionLink, s, LinkBack} }
func active(tick, s int) event { return event{tick, ActionActive, s, 0} }
