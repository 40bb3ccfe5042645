package lacp

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"
)

// ep names a port of a System in a testNet.
type ep struct{ sys, port int }

type pending struct {
	at    time.Duration
	to    ep
	frame []byte
}

// testNet wires Systems back to back through their TxFuncs. Frames are
// queued and delivered after delay (optionally dropped); time advances in
// TickInterval steps and every System is ticked each step. Every LACPDU
// sent is checked against the Transmit machine's rate limit and must
// decode.
type testNet struct {
	t      testing.TB
	now    time.Duration
	sys    []*System
	peer   map[ep]ep
	queue  []pending
	delay  time.Duration
	drop   func(from, to ep, frame []byte) bool
	txLog  map[ep][]time.Duration // LACPDU transmissions
	lastRx map[ep]time.Duration   // last LACPDU delivered to a port
	trace  []string
}

func newNet(t testing.TB) *testNet {
	return &testNet{t: t, peer: map[ep]ep{}, txLog: map[ep][]time.Duration{}, lastRx: map[ep]time.Duration{}}
}

func sysMAC(i int) [6]byte     { return [6]byte{0x02, 0x5a, 0, 0, 0, byte(i + 1)} }
func portMAC(i, p int) [6]byte { return [6]byte{0x02, 0x5b, 0, byte(i), 0, byte(p)} }

// add creates a System; cfg.SystemID is filled in when zero.
func (n *testNet) add(cfg Config) *System {
	i := len(n.sys)
	if cfg.SystemID == ([6]byte{}) {
		cfg.SystemID = sysMAC(i)
	}
	s, err := New(cfg, n.txFunc(i))
	if err != nil {
		n.t.Fatal(err)
	}
	s.trace = func(id int, m, from, to string) {
		n.trace = append(n.trace, fmt.Sprintf("%v s%d/p%d %s %s->%s", n.now, i, id, m, from, to))
	}
	n.sys = append(n.sys, s)
	return s
}

// addPorts adds ports 0..count-1 with numbers 1..count, link up.
func (n *testNet) addPorts(i, count, speed int) {
	for p := 0; p < count; p++ {
		n.addPort(i, p, PortConfig{Number: uint16(p + 1), MAC: portMAC(i, p)}, speed)
	}
}

func (n *testNet) addPort(i, p int, pc PortConfig, speed int) {
	if pc.MAC == ([6]byte{}) {
		pc.MAC = portMAC(i, p)
	}
	if err := n.sys[i].AddPort(p, pc); err != nil {
		n.t.Fatal(err)
	}
	if speed > 0 {
		n.sys[i].SetLink(p, true, speed, true)
	}
}

func (n *testNet) connect(a, b ep) {
	n.peer[a] = b
	n.peer[b] = a
}

// cut disconnects a cable: both ends lose link.
func (n *testNet) cut(a ep) {
	b := n.peer[a]
	n.sys[a.sys].SetLink(a.port, false, 0, false)
	n.sys[b.sys].SetLink(b.port, false, 0, false)
}

func (n *testNet) txFunc(i int) TxFunc {
	return func(port int, frame []byte) {
		from := ep{i, port}
		if len(frame) != FrameLen {
			n.t.Errorf("%v %v: frame of %d octets", n.now, from, len(frame))
		}
		if frame[offSubtype] == SubtypeLACP {
			var p LACPDU
			if err := DecodeLACPDU(frame, &p); err != nil {
				n.t.Errorf("%v %v: own LACPDU does not decode: %v", n.now, from, err)
			}
			log := append(n.txLog[from], n.now)
			n.txLog[from] = log
			if k := len(log); k > MaxTxPerPeriod && log[k-1]-log[k-1-MaxTxPerPeriod] < FastPeriodicTime {
				n.t.Errorf("%v %v: %d LACPDUs within %v: %v", n.now, from, MaxTxPerPeriod+1,
					log[k-1]-log[k-1-MaxTxPerPeriod], log[k-1-MaxTxPerPeriod:])
			}
		}
		to, ok := n.peer[from]
		if !ok || (n.drop != nil && n.drop(from, to, frame)) {
			return
		}
		n.queue = append(n.queue, pending{n.now + n.delay, to, bytes.Clone(frame)})
	}
}

// deliver hands over every frame that is due, including the answers they
// provoke, in order.
func (n *testNet) deliver() {
	for range 100000 {
		k := -1
		for i, f := range n.queue {
			if f.at <= n.now && (k < 0 || f.at < n.queue[k].at) {
				k = i
			}
		}
		if k < 0 {
			return
		}
		f := n.queue[k]
		n.queue = slices.Delete(n.queue, k, k+1)
		if f.frame[offSubtype] == SubtypeLACP {
			n.lastRx[f.to] = n.now
		}
		n.sys[f.to.sys].Receive(f.to.port, f.frame, n.now)
	}
	n.t.Fatal("frame storm")
}

func (n *testNet) step() {
	n.now += TickInterval
	for _, s := range n.sys {
		s.Tick(n.now)
	}
	n.deliver()
}

func (n *testNet) run(d time.Duration) {
	for end := n.now + d; n.now < end; {
		n.step()
	}
}

// until steps until cond holds, at most max; it returns the elapsed time.
func (n *testNet) until(max time.Duration, cond func() bool) (time.Duration, bool) {
	start := n.now
	for n.now-start <= max {
		if cond() {
			return n.now - start, true
		}
		n.step()
	}
	return n.now - start, false
}

func (n *testNet) st(i, p int) PortStatus {
	st := n.sys[i].Status()
	ps, ok := st.Port(p)
	if !ok {
		n.t.Fatalf("no port %d/%d", i, p)
	}
	return ps
}

const synColDis = StateSync | StateCollecting | StateDistributing

// aggregated reports whether the ports of System i distribute with SYN,
// COL and DIS set in the actor state and SYN and COL in the partner's (with
// independent control a partner entering DISTRIBUTING does not transmit, so
// its DIS bit is learnt at its next periodic LACPDU), are the only
// distributing ports, and the aggregator is up.
func (n *testNet) aggregated(i int, ports ...int) bool {
	dist, up := n.sys[i].Distributing()
	if !up || !slices.Equal(dist, ports) {
		return false
	}
	for _, p := range ports {
		ps := n.st(i, p)
		if !ps.Actor.State.Has(synColDis) || !ps.Partner.State.Has(StateSync|StateCollecting) {
			return false
		}
		if ps.MuxState != MuxCollectingDistributing && ps.MuxState != MuxDistributing {
			return false
		}
	}
	return true
}

func (n *testNet) dumpTrace() {
	for _, l := range n.trace {
		n.t.Log(l)
	}
}

// checkInvariants verifies what must hold at any time: distributing ports
// are collecting, belong to the active aggregator and are in a
// distributing Mux state; carrier needs min_links; ports of other
// aggregators are not SELECTED.
func checkInvariants(t testing.TB, s *System) {
	t.Helper()
	st := s.Status()
	dist, up := s.Distributing()
	coll := s.Collecting()
	for _, d := range dist {
		if !slices.Contains(coll, d) {
			t.Errorf("port %d distributes without collecting", d)
		}
	}
	if up && (len(dist) == 0 || len(dist) < s.cfg.MinLinks) {
		t.Errorf("up with %d distributing ports, min_links %d", len(dist), s.cfg.MinLinks)
	}
	if !up && len(dist) >= max(1, s.cfg.MinLinks) {
		t.Errorf("down with %d distributing ports", len(dist))
	}
	if st.ActiveAggregator != s.ActiveAggregator() || st.Up != up {
		t.Errorf("status disagrees with results")
	}
	for _, ps := range st.Ports {
		inDist, inColl := slices.Contains(dist, ps.ID), slices.Contains(coll, ps.ID)
		if inColl && (ps.AggregatorID != st.ActiveAggregator || !ps.LinkUp) {
			t.Errorf("port %d collects outside the active aggregator (%d, active %d)", ps.ID, ps.AggregatorID, st.ActiveAggregator)
		}
		if inDist && ps.MuxState != MuxDistributing && ps.MuxState != MuxCollectingDistributing {
			t.Errorf("port %d distributes in mux %v", ps.ID, ps.MuxState)
		}
		if ps.Selected == Selected && ps.AggregatorID != st.ActiveAggregator {
			t.Errorf("port %d SELECTED for inactive aggregator %d", ps.ID, ps.AggregatorID)
		}
		if ps.Selected != Unselected && ps.AggregatorID == 0 {
			t.Errorf("port %d selected without aggregator", ps.ID)
		}
		if ps.Actor.State.Has(StateCollecting) && !ps.Actor.State.Has(StateSync) {
			t.Errorf("port %d collects out of sync", ps.ID)
		}
		if !ps.LinkUp && (ps.RxState != RxPortDisabled && ps.RxState != RxInitialize || inColl) {
			t.Errorf("port %d down but rx %v collecting %v", ps.ID, ps.RxState, inColl)
		}
	}
	// the model's own links: every member points back at its aggregator,
	// every port's own aggregator and the active one are the System's
	for _, a := range s.aggs {
		for _, m := range a.members {
			if m.sel != a || !slices.Contains(s.ports, m) {
				t.Errorf("aggregator %d lists port %d, which selected %p", a.id, m.id, m.sel)
			}
		}
	}
	for _, p := range s.ports {
		if !slices.Contains(s.aggs, p.agg) {
			t.Errorf("port %d's own aggregator is gone", p.id)
		}
		if p.sel != nil && (!slices.Contains(s.aggs, p.sel) || !slices.Contains(p.sel.members, p)) {
			t.Errorf("port %d selected an aggregator that does not list it", p.id)
		}
	}
	if s.active != nil && !slices.Contains(s.aggs, s.active) {
		t.Errorf("active aggregator %d is gone", s.active.id)
	}
	seen := map[int]bool{}
	for _, a := range st.Aggregators {
		for _, p := range a.Ports {
			if seen[p] {
				t.Errorf("port %d in two aggregators", p)
			}
			seen[p] = true
		}
		if a.Individual && len(a.Ports) != 1 {
			t.Errorf("individual aggregator %d with ports %v", a.ID, a.Ports)
		}
	}
}

// fixture drives one System from a scripted partner: tests craft the
// partner's LACPDUs themselves.
type fixture struct {
	t     *testing.T
	s     *System
	now   time.Duration
	sent  map[int][]LACPDU
	marks map[int][]Marker
	src   map[int][][6]byte
	trace []string
	// partner is the identity the scripted partner uses on each port.
	partner map[int]PortInfo
}

var fakeSys = [6]byte{0x02, 0xfa, 0xce, 0, 0, 1}

func newFixture(t *testing.T, cfg Config, ports int) *fixture {
	f := &fixture{t: t, sent: map[int][]LACPDU{}, marks: map[int][]Marker{}, src: map[int][][6]byte{}, partner: map[int]PortInfo{}}
	if cfg.SystemID == ([6]byte{}) {
		cfg.SystemID = sysMAC(0)
	}
	s, err := New(cfg, func(port int, frame []byte) {
		var src [6]byte
		copy(src[:], frame[6:12])
		f.src[port] = append(f.src[port], src)
		switch frame[offSubtype] {
		case SubtypeLACP:
			var p LACPDU
			if err := DecodeLACPDU(frame, &p); err != nil {
				t.Errorf("bad own LACPDU: %v", err)
			}
			f.sent[port] = append(f.sent[port], p)
		case SubtypeMarker:
			var m Marker
			if err := DecodeMarker(frame, &m); err != nil {
				t.Errorf("bad own marker: %v", err)
			}
			f.marks[port] = append(f.marks[port], m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.trace = func(id int, m, from, to string) {
		f.trace = append(f.trace, fmt.Sprintf("p%d %s %s->%s", id, m, from, to))
	}
	f.s = s
	for p := 0; p < ports; p++ {
		if err := s.AddPort(p, PortConfig{Number: uint16(p + 1), MAC: portMAC(0, p)}); err != nil {
			t.Fatal(err)
		}
		f.partner[p] = PortInfo{SystemPriority: 32768, System: fakeSys, Key: 77, PortPriority: 32768, Port: uint16(100 + p)}
	}
	s.Tick(0)
	return f
}

func (f *fixture) tick(d time.Duration) {
	for end := f.now + d; f.now < end; {
		f.now += TickInterval
		f.s.Tick(f.now)
	}
}

func (f *fixture) up(p int) { f.s.SetLink(p, true, 10000, true) }

// last is the last LACPDU the System sent on port p.
func (f *fixture) last(p int) LACPDU {
	l := f.sent[p]
	if len(l) == 0 {
		f.t.Fatalf("nothing sent on port %d", p)
	}
	return l[len(l)-1]
}

// pdu builds the scripted partner's LACPDU on port p with actor state st.
// Its partner information echoes what we last sent (so it "matches"),
// unless mod changes it.
func (f *fixture) pdu(p int, st State, mod ...func(*LACPDU)) []byte {
	l := LACPDU{Version: 1, Actor: f.partner[p]}
	l.Actor.State = st
	if len(f.sent[p]) > 0 {
		l.Partner = f.last(p).Actor
	}
	for _, m := range mod {
		m(&l)
	}
	b := make([]byte, FrameLen)
	if _, err := EncodeLACPDU(b, [6]byte{0x02, 0xfa, 0xce, 0, 1, byte(p)}, &l); err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) recv(p int, st State, mod ...func(*LACPDU)) {
	f.s.Receive(p, f.pdu(p, st, mod...), f.now)
}

func (f *fixture) port(p int) PortStatus {
	st := f.s.Status()
	ps, _ := st.Port(p)
	return ps
}

// saw reports whether the trace has the transition, and clears the trace.
func (f *fixture) saw(want string) bool {
	ok := slices.Contains(f.trace, want)
	if !ok {
		f.t.Logf("trace: %q", f.trace)
	}
	f.trace = nil
	return ok
}

const actAgg = StateActivity | StateAggregation

// toCollDist brings port p to the point where the partner is in sync and
// we collect and distribute (coupled) or distribute (independent).
func (f *fixture) toCollDist(p int) {
	f.up(p)
	f.recv(p, actAgg)
	f.tick(AggregateWaitTime + TickInterval)
	f.recv(p, actAgg|synColDis)
	f.tick(TickInterval)
	f.recv(p, actAgg|synColDis)
	ps := f.port(p)
	if ps.MuxState != MuxCollectingDistributing && ps.MuxState != MuxDistributing {
		f.t.Fatalf("port %d: mux %v rx %v sel %v", p, ps.MuxState, ps.RxState, ps.Selected)
	}
}
