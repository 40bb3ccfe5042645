package lacp

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConvergeBackToBack(t *testing.T) {
	cases := []struct {
		name         string
		fastA, fastB bool
		coupA, coupB bool
		ports        int
		delay        time.Duration
		dropFirst    int // frames lost at the start, per direction
		within       time.Duration
	}{
		{"slow coupled", false, false, true, true, 1, 0, 0, 2500 * time.Millisecond},
		{"fast coupled", true, true, true, true, 1, 0, 0, 2500 * time.Millisecond},
		{"fast/slow mixed", true, false, true, true, 2, 0, 0, 2500 * time.Millisecond},
		{"independent", true, true, false, false, 2, 0, 0, 2500 * time.Millisecond},
		{"coupled/independent", false, true, true, false, 4, 0, 0, 2500 * time.Millisecond},
		{"delay 50ms", false, false, true, true, 2, 50 * time.Millisecond, 0, 2800 * time.Millisecond},
		{"delay 300ms independent", true, true, false, false, 2, 300 * time.Millisecond, 0, 4 * time.Second},
		{"first 2 frames lost, fast", true, true, true, true, 1, 0, 2, 4500 * time.Millisecond},
		{"first 2 frames lost, slow", false, false, true, true, 1, 0, 2, 4500 * time.Millisecond},
		{"first 3 frames lost, independent", false, false, false, false, 2, 0, 3, 5500 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNet(t)
			n.delay = c.delay
			lost := map[ep]int{}
			n.drop = func(from, to ep, f []byte) bool {
				if lost[from] < c.dropFirst {
					lost[from]++
					return true
				}
				return false
			}
			a := DefaultConfig([6]byte{})
			a.FastRate, a.CoupledControl = c.fastA, c.coupA
			b := DefaultConfig([6]byte{})
			b.FastRate, b.CoupledControl = c.fastB, c.coupB
			n.add(a)
			n.add(b)
			n.addPorts(0, c.ports, 10000)
			n.addPorts(1, c.ports, 10000)
			all := make([]int, c.ports)
			for p := range all {
				all[p] = p
				n.connect(ep{0, p}, ep{1, p})
			}
			took, ok := n.until(30*time.Second, func() bool { return n.aggregated(0, all...) && n.aggregated(1, all...) })
			if !ok || took > c.within {
				n.dumpTrace()
				t.Fatalf("converged=%v after %v, want within %v", ok, took, c.within)
			}
			if took < AggregateWaitTime {
				t.Fatalf("converged after %v, before the aggregate wait", took)
			}
			// Stays converged, and the partner's view becomes exact.
			n.run(90 * time.Second)
			for i := range 2 {
				if !n.aggregated(i, all...) {
					t.Fatalf("system %d lost aggregation", i)
				}
				checkInvariants(t, n.sys[i])
				st := n.sys[i].Status()
				if len(st.Aggregators) != 1 || !st.Aggregators[0].Active || len(st.Aggregators[0].Ports) != c.ports {
					t.Fatalf("aggregators %+v", st.Aggregators)
				}
				for _, ps := range st.Ports {
					if ps.ActorChurn != ChurnNone || ps.PartnerChurn != ChurnNone {
						t.Errorf("port %d churn %v/%v", ps.ID, ps.ActorChurn, ps.PartnerChurn)
					}
					peer := n.st(1-i, ps.ID)
					if !ps.Partner.State.Has(synColDis) || ps.Partner != peer.Actor {
						t.Errorf("port %d partner %+v, peer actor %+v", ps.ID, ps.Partner, peer.Actor)
					}
				}
			}
		})
	}
}

// TestPeriodicRates checks the Periodic machine against the partner's
// requested timeout: 1 s fast, 30 s slow.
func TestPeriodicRates(t *testing.T) {
	for _, fast := range []bool{false, true} {
		n := newNet(t)
		a := DefaultConfig([6]byte{})
		a.FastRate = fast // what A asks B for
		n.add(a)
		n.add(DefaultConfig([6]byte{}))
		n.addPorts(0, 1, 1000)
		n.addPorts(1, 1, 1000)
		n.connect(ep{0, 0}, ep{1, 0})
		n.run(20 * time.Second)
		from := len(n.txLog[ep{1, 0}])
		n.run(120 * time.Second)
		sent := len(n.txLog[ep{1, 0}]) - from
		want := 4 // every 30 s
		if fast {
			want = 120
		}
		if sent < want-1 || sent > want+1 {
			t.Errorf("fast=%v: B sent %d LACPDUs in 120 s, want %d", fast, sent, want)
		}
		if ps := n.st(1, 0); ps.PeriodicState != map[bool]PeriodicState{false: PeriodicSlow, true: PeriodicFast}[fast] {
			t.Errorf("fast=%v: periodic %v", fast, ps.PeriodicState)
		}
	}
}

func TestPartnerSilent(t *testing.T) {
	for _, c := range []struct {
		fast    bool
		timeout time.Duration
	}{{true, ShortTimeoutTime}, {false, LongTimeoutTime}} {
		t.Run(map[bool]string{true: "fast", false: "slow"}[c.fast], func(t *testing.T) {
			n := newNet(t)
			a := DefaultConfig([6]byte{})
			a.FastRate = c.fast
			n.add(a)
			n.add(DefaultConfig([6]byte{}))
			n.addPorts(0, 2, 10000)
			n.addPorts(1, 2, 10000)
			n.connect(ep{0, 0}, ep{1, 0})
			n.connect(ep{0, 1}, ep{1, 1})
			if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
				t.Fatal("no aggregation")
			}
			n.run(5 * time.Second)
			// B's port 0 goes silent (a hung switch port: link stays up).
			silent := true
			n.drop = func(from, to ep, f []byte) bool { return silent && from == ep{1, 0} }
			start := n.now
			var expiredAt, defaultedAt time.Duration
			for n.now-start < c.timeout+30*time.Second && defaultedAt == 0 {
				n.step()
				checkInvariants(t, n.sys[0])
				ps := n.st(0, 0)
				if ps.RxState == RxExpired && expiredAt == 0 {
					expiredAt = n.now
					if ps.Distributing || ps.Collecting {
						t.Fatal("expired port still in use")
					}
					if d, _ := n.sys[0].Distributing(); !slices.Equal(d, []int{1}) {
						t.Fatalf("distributing %v", d)
					}
					if !ps.Actor.State.Has(StateExpired) || ps.Partner.State.Has(StateSync) {
						t.Fatalf("expired: actor %v partner %v", ps.Actor.State, ps.Partner.State)
					}
				}
				if ps.RxState == RxDefaulted {
					defaultedAt = n.now
				}
			}
			last := n.lastRx[ep{0, 0}]
			if expiredAt == 0 || defaultedAt == 0 {
				t.Fatalf("expired at %v, defaulted at %v", expiredAt, defaultedAt)
			}
			if got := expiredAt - last; got < c.timeout || got > c.timeout+TickInterval {
				t.Errorf("EXPIRED %v after the last LACPDU, want %v", got, c.timeout)
			}
			if got := defaultedAt - expiredAt; got < ShortTimeoutTime || got > ShortTimeoutTime+TickInterval {
				t.Errorf("DEFAULTED %v after EXPIRED, want %v", got, ShortTimeoutTime)
			}
			ps := n.st(0, 0)
			if !ps.Actor.State.Has(StateDefaulted) || ps.Actor.State.Has(StateExpired) || ps.Partner != (PortInfo{}) {
				t.Errorf("defaulted: actor %v partner %+v", ps.Actor.State, ps.Partner)
			}
			st := n.sys[0].Status()
			if a, _ := st.Aggregator(ps.AggregatorID); !a.Individual || a.Active {
				t.Errorf("defaulted port's aggregator %+v", a)
			}
			// The partner speaks again: the port rejoins.
			silent = false
			if _, ok := n.until(c.timeout+35*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
				n.dumpTrace()
				t.Fatal("port did not rejoin")
			}
		})
	}
}

func TestLinkDown(t *testing.T) {
	for _, coupled := range []bool{true, false} {
		n := newNet(t)
		c := DefaultConfig([6]byte{})
		c.CoupledControl = coupled
		n.add(c)
		n.add(c)
		n.addPorts(0, 3, 10000)
		n.addPorts(1, 3, 10000)
		for p := range 3 {
			n.connect(ep{0, p}, ep{1, p})
		}
		if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1, 2) && n.aggregated(1, 0, 1, 2) }); !ok {
			t.Fatal("no aggregation")
		}
		v := n.sys[0].Version()
		// Link down on one side only: removed at once, no tick needed.
		n.sys[0].SetLink(1, false, 0, false)
		if d, up := n.sys[0].Distributing(); !slices.Equal(d, []int{0, 2}) || !up {
			t.Fatalf("coupled=%v: distributing %v up %v", coupled, d, up)
		}
		if n.sys[0].Version() == v {
			t.Fatal("version did not change")
		}
		ps := n.st(0, 1)
		if ps.RxState != RxPortDisabled || ps.MuxState != MuxAttached || ps.Actor.State.Has(StateCollecting) {
			t.Fatalf("down port: rx %v mux %v actor %v", ps.RxState, ps.MuxState, ps.Actor.State)
		}
		checkInvariants(t, n.sys[0])
		// The other side notices through its timeout (slow: 90 s).
		n.run(LongTimeoutTime + time.Second)
		if d, _ := n.sys[1].Distributing(); !slices.Equal(d, []int{0, 2}) {
			t.Fatalf("peer distributing %v", d)
		}
		// A cable cut: both sides at once.
		n.cut(ep{0, 2})
		if d, _ := n.sys[1].Distributing(); !slices.Equal(d, []int{0}) {
			t.Fatalf("peer distributing %v after cut", d)
		}
		// Links back: the ports rejoin.
		n.sys[0].SetLink(1, true, 10000, true)
		n.sys[0].SetLink(2, true, 10000, true)
		n.sys[1].SetLink(2, true, 10000, true)
		if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1, 2) && n.aggregated(1, 0, 1, 2) }); !ok {
			n.dumpTrace()
			t.Fatal("ports did not rejoin")
		}
	}
}

func TestActivePassive(t *testing.T) {
	cases := []struct {
		activeA, activeB bool
		aggregate        bool
	}{
		{true, true, true},
		{true, false, true},
		{false, true, true},
		{false, false, false},
	}
	for _, c := range cases {
		n := newNet(t)
		a := DefaultConfig([6]byte{})
		a.Active = c.activeA
		b := DefaultConfig([6]byte{})
		b.Active = c.activeB
		n.add(a)
		n.add(b)
		n.addPorts(0, 2, 10000)
		n.addPorts(1, 2, 10000)
		n.connect(ep{0, 0}, ep{1, 0})
		n.connect(ep{0, 1}, ep{1, 1})
		_, ok := n.until(60*time.Second, func() bool { return n.aggregated(0, 0, 1) && n.aggregated(1, 0, 1) })
		if ok != c.aggregate {
			t.Errorf("active %v/%v: aggregated %v", c.activeA, c.activeB, ok)
		}
		if !c.activeA && !c.activeB {
			if len(n.txLog) != 0 {
				t.Errorf("passive systems transmitted: %v", n.txLog)
			}
			if ps := n.st(0, 0); ps.RxState != RxDefaulted || ps.PeriodicState != PeriodicNone {
				t.Errorf("passive: rx %v periodic %v", ps.RxState, ps.PeriodicState)
			}
			continue
		}
		// A passive side speaks only after it was spoken to.
		for i, active := range []bool{c.activeA, c.activeB} {
			if active {
				continue
			}
			first := n.txLog[ep{i, 0}][0]
			peerFirst := n.txLog[ep{1 - i, 0}][0]
			if first < peerFirst {
				t.Errorf("passive system %d sent at %v before its partner at %v", i, first, peerFirst)
			}
		}
		// Silence the active side: the passive one falls silent too once
		// it has defaulted.
		for i, active := range []bool{c.activeA, c.activeB} {
			if active && !(c.activeA && c.activeB) {
				n.sys[i].SetConfig(func() Config { c := n.sys[i].Config(); c.Active = false; return c }())
				n.run(LongTimeoutTime + ShortTimeoutTime + 2*time.Second)
				before := len(n.txLog[ep{0, 0}]) + len(n.txLog[ep{1, 0}])
				n.run(2 * time.Minute)
				if after := len(n.txLog[ep{0, 0}]) + len(n.txLog[ep{1, 0}]); after != before {
					t.Errorf("passive/passive still transmitting: %d frames", after-before)
				}
			}
		}
	}
}

// twoSwitches builds System 0 (the appliance) with its ports split over
// two partner Systems: ports 0..len(speedsB)-1 to System 1 ("switch B")
// and the rest to System 2 ("switch C").
func twoSwitches(t *testing.T, cfg Config, speedsB, speedsC []int, prio []uint16) *testNet {
	n := newNet(t)
	n.add(cfg)
	n.add(DefaultConfig([6]byte{}))
	n.add(DefaultConfig([6]byte{}))
	p := 0
	for i, sp := range append(append([]int{}, speedsB...), speedsC...) {
		pc := PortConfig{Number: uint16(p + 1)}
		if prio != nil {
			pc.Priority = prio[i]
		}
		n.addPort(0, p, pc, sp)
		sw, sp2 := 1, i
		if i >= len(speedsB) {
			sw, sp2 = 2, i-len(speedsB)
		}
		n.addPort(sw, sp2, PortConfig{Number: uint16(sp2 + 1)}, sp)
		n.connect(ep{0, p}, ep{sw, sp2})
		p++
	}
	return n
}

func TestAdSelect(t *testing.T) {
	cases := []struct {
		name    string
		sel     Select
		speedsB []int
		speedsC []int
		prio    []uint16
		want    []int // distributing ports of System 0
	}{
		{"bandwidth prefers 1x10G over 2x1G", SelectBandwidth, []int{1000, 1000}, []int{10000}, nil, []int{2}},
		{"count prefers 2x1G over 1x10G", SelectCount, []int{1000, 1000}, []int{10000}, nil, []int{0, 1}},
		{"count tie falls back to bandwidth", SelectCount, []int{1000}, []int{10000}, nil, []int{1}},
		{"stable initially by bandwidth", SelectStable, []int{1000, 1000}, []int{10000}, nil, []int{2}},
		{"prio: sum of actor port priorities", SelectActorPortPrio, []int{10000, 10000}, []int{10000}, []uint16{10, 10, 100}, []int{2}},
		{"prio tie falls back to count", SelectActorPortPrio, []int{10000, 10000}, []int{10000}, []uint16{50, 50, 100}, []int{0, 1}},
		{"same speed, more ports", SelectBandwidth, []int{10000, 10000, 10000}, []int{10000, 10000}, nil, []int{0, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig([6]byte{})
			cfg.Select = c.sel
			n := twoSwitches(t, cfg, c.speedsB, c.speedsC, c.prio)
			n.run(10 * time.Second)
			checkInvariants(t, n.sys[0])
			if !n.aggregated(0, c.want...) {
				d, up := n.sys[0].Distributing()
				n.dumpTrace()
				t.Fatalf("distributing %v up %v, want %v", d, up, c.want)
			}
			st := n.sys[0].Status()
			if len(st.Aggregators) != 2 {
				t.Fatalf("want 2 aggregators, got %+v", st.Aggregators)
			}
			// The other aggregator's ports wait in STANDBY, OUT_OF_SYNC,
			// so the switch does not send on them either.
			for _, ps := range st.Ports {
				if slices.Contains(c.want, ps.ID) {
					continue
				}
				if ps.Selected != Standby || ps.MuxState != MuxWaiting || ps.Actor.State.Has(StateSync) {
					t.Errorf("port %d: %v %v %v", ps.ID, ps.Selected, ps.MuxState, ps.Actor.State)
				}
				sw, sp := 1, ps.ID
				if ps.ID >= len(c.speedsB) {
					sw, sp = 2, ps.ID-len(c.speedsB)
				}
				if d, _ := n.sys[sw].Distributing(); len(d) != 0 && slices.Contains(d, sp) {
					t.Errorf("switch %d distributes on port %d towards a standby port", sw, sp)
				}
				if ps.RxState != RxCurrent {
					t.Errorf("standby port %d rx %v", ps.ID, ps.RxState)
				}
			}
		})
	}
}

func TestAdSelectReselection(t *testing.T) {
	// B: 2 x 1G (ports 0,1), C: 1 x 10G (port 2). Then C's link fails and
	// comes back; then B gains bandwidth (a third port, 3, comes up at
	// 10G... different key: own aggregator) - use count to see changes.
	for _, sel := range []Select{SelectStable, SelectBandwidth} {
		t.Run(sel.String(), func(t *testing.T) {
			cfg := DefaultConfig([6]byte{})
			cfg.Select = sel
			n := twoSwitches(t, cfg, []int{1000, 1000}, []int{10000}, nil)
			n.run(10 * time.Second)
			if !n.aggregated(0, 2) {
				t.Fatal("10G not chosen")
			}
			// The 10G link fails: both policies move to B.
			n.cut(ep{0, 2})
			if _, ok := n.until(5*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
				t.Fatal("no failover to B")
			}
			// It comes back: bandwidth moves back, stable stays on B.
			n.sys[0].SetLink(2, true, 10000, true)
			n.sys[2].SetLink(0, true, 10000, true)
			n.run(10 * time.Second)
			checkInvariants(t, n.sys[0])
			want := []int{2}
			if sel == SelectStable {
				want = []int{0, 1}
			}
			if !n.aggregated(0, want...) {
				d, _ := n.sys[0].Distributing()
				t.Fatalf("after recovery distributing %v want %v", d, want)
			}
			if sel == SelectStable {
				// One of B's two ports fails: stable still stays.
				n.cut(ep{0, 0})
				n.run(5 * time.Second)
				if !n.aggregated(0, 1) {
					t.Fatal("stable left an aggregator with a port up")
				}
				// All of B's ports fail: reselect.
				n.cut(ep{0, 1})
				if _, ok := n.until(5*time.Second, func() bool { return n.aggregated(0, 2) }); !ok {
					t.Fatal("stable did not reselect")
				}
			}
		})
	}
}

func TestDifferentKeys(t *testing.T) {
	// Same partner, but our ports have different user keys (and one a
	// different speed): three aggregators.
	n := newNet(t)
	cfg := DefaultConfig([6]byte{})
	cfg.Select = SelectCount
	n.add(cfg)
	n.add(DefaultConfig([6]byte{}))
	n.addPort(0, 0, PortConfig{Number: 1, UserKey: 1}, 10000)
	n.addPort(0, 1, PortConfig{Number: 2, UserKey: 1}, 10000)
	n.addPort(0, 2, PortConfig{Number: 3, UserKey: 2}, 10000)
	n.addPort(0, 3, PortConfig{Number: 4, UserKey: 1}, 1000)
	for p := range 4 {
		sp := 10000
		if p == 3 {
			sp = 1000
		}
		n.addPort(1, p, PortConfig{Number: uint16(p + 1)}, sp)
		n.connect(ep{0, p}, ep{1, p})
	}
	n.run(10 * time.Second)
	st := n.sys[0].Status()
	if len(st.Aggregators) != 3 {
		t.Fatalf("aggregators: %+v", st.Aggregators)
	}
	keys := map[uint16][]int{}
	for _, a := range st.Aggregators {
		keys[a.ActorKey] = a.Ports
	}
	k1, _ := PortKey(10000, true, 1)
	k2, _ := PortKey(10000, true, 2)
	k3, _ := PortKey(1000, true, 1)
	if !slices.Equal(keys[k1], []int{0, 1}) || !slices.Equal(keys[k2], []int{2}) || !slices.Equal(keys[k3], []int{3}) {
		t.Fatalf("aggregators by key: %v", keys)
	}
	if !n.aggregated(0, 0, 1) {
		t.Fatal("count should pick the two-port aggregator")
	}
	checkInvariants(t, n.sys[0])
	// The partner puts its ports in one LAG from its side? No: its keys
	// match but our key differs, so it sees three partner keys: its own
	// aggregators split the same way.
	if st := n.sys[1].Status(); len(st.Aggregators) != 3 {
		t.Fatalf("partner aggregators %+v", st.Aggregators)
	}
}

func TestMinLinks(t *testing.T) {
	n := newNet(t)
	cfg := DefaultConfig([6]byte{})
	cfg.MinLinks = 2
	n.add(cfg)
	n.add(DefaultConfig([6]byte{}))
	n.addPorts(0, 2, 10000)
	n.addPorts(1, 2, 10000)
	n.connect(ep{0, 0}, ep{1, 0})
	n.connect(ep{0, 1}, ep{1, 1})
	n.run(5 * time.Second)
	if !n.aggregated(0, 0, 1) {
		t.Fatal("no aggregation")
	}
	n.cut(ep{0, 1})
	d, up := n.sys[0].Distributing()
	if up || !slices.Equal(d, []int{0}) {
		t.Fatalf("min_links 2 with one port: %v up=%v", d, up)
	}
	checkInvariants(t, n.sys[0])
	if st := n.sys[0].Status(); st.Up || st.ActiveAggregator == 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestLoopback(t *testing.T) {
	cases := []struct {
		name string
		wire func(n *testNet)
	}{
		{"two own ports cabled together", func(n *testNet) { n.connect(ep{0, 0}, ep{0, 1}) }},
		{"port looped onto itself", func(n *testNet) { n.peer[ep{0, 0}] = ep{0, 0}; n.peer[ep{0, 1}] = ep{0, 1} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNet(t)
			n.add(DefaultConfig([6]byte{}))
			n.addPorts(0, 2, 10000)
			c.wire(n)
			n.run(2 * time.Minute)
			checkInvariants(t, n.sys[0])
			if d, up := n.sys[0].Distributing(); len(d) != 0 || up {
				t.Fatalf("looped ports distribute: %v %v", d, up)
			}
			for p := range 2 {
				ps := n.st(0, p)
				if !ps.Loopback || ps.Counters.LoopbackRx == 0 || ps.RxState != RxDefaulted {
					t.Errorf("port %d: loopback %v rx %v counters %+v", p, ps.Loopback, ps.RxState, ps.Counters)
				}
				if ps.Partner.System == n.sys[0].Config().SystemID {
					t.Errorf("port %d recorded itself as partner", p)
				}
			}
			// Recabled to a real partner: it aggregates and the flag clears.
			n.add(DefaultConfig([6]byte{}))
			n.addPorts(1, 2, 10000)
			n.connect(ep{0, 0}, ep{1, 0})
			n.connect(ep{0, 1}, ep{1, 1})
			for p := range 2 {
				n.sys[0].SetLink(p, false, 0, false)
				n.sys[0].SetLink(p, true, 10000, true)
			}
			if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
				t.Fatal("no aggregation after recabling")
			}
			if n.st(0, 0).Loopback {
				t.Fatal("loopback flag stuck")
			}
		})
	}
}

func TestChurn(t *testing.T) {
	t.Run("partner never in sync", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.up(0)
		for range 70 { // partner: active, aggregatable, never in sync
			f.recv(0, actAgg)
			f.tick(time.Second)
		}
		ps := f.port(0)
		if ps.PartnerChurn != Churned || ps.Counters.PartnerChurnCount != 1 {
			t.Fatalf("partner churn %v count %d", ps.PartnerChurn, ps.Counters.PartnerChurnCount)
		}
		if ps.ActorChurn != ChurnNone || ps.MuxState != MuxAttached {
			t.Fatalf("actor churn %v mux %v", ps.ActorChurn, ps.MuxState)
		}
		// Sync arrives: no churn.
		f.recv(0, actAgg|StateSync)
		if ps := f.port(0); ps.PartnerChurn != ChurnNone {
			t.Fatalf("partner churn %v after sync", ps.PartnerChurn)
		}
	})
	t.Run("churn timing", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.up(0)
		start := f.now
		var at time.Duration
		for f.now-start < 2*ChurnDetectionTime && at == 0 {
			f.tick(TickInterval)
			if f.port(0).PartnerChurn == Churned {
				at = f.now - start
			}
		}
		if at < ChurnDetectionTime || at > ChurnDetectionTime+TickInterval {
			t.Fatalf("partner churned after %v", at)
		}
		if ps := f.port(0); ps.ActorChurn != ChurnNone {
			// defaulted and alone: attached and in sync itself
			t.Fatalf("actor churn %v (mux %v)", ps.ActorChurn, ps.MuxState)
		}
	})
	t.Run("actor churn on a standby port", func(t *testing.T) {
		cfg := DefaultConfig([6]byte{})
		cfg.Select = SelectBandwidth
		n := twoSwitches(t, cfg, []int{1000}, []int{10000}, nil)
		n.run(ChurnDetectionTime + 5*time.Second)
		ps := n.st(0, 0)
		if ps.ActorChurn != Churned || ps.Counters.ActorChurnCount != 1 || ps.PartnerChurn != ChurnNone {
			t.Fatalf("standby port: actor churn %v (%d) partner %v", ps.ActorChurn, ps.Counters.ActorChurnCount, ps.PartnerChurn)
		}
		if ps := n.st(0, 1); ps.ActorChurn != ChurnNone || ps.PartnerChurn != ChurnNone {
			t.Fatalf("active port churn %v/%v", ps.ActorChurn, ps.PartnerChurn)
		}
		// Link down: back to monitoring, and no churn while down.
		n.cut(ep{0, 0})
		n.run(2 * ChurnDetectionTime)
		if ps := n.st(0, 0); ps.ActorChurn != ChurnMonitoring || ps.PartnerChurn != ChurnMonitoring {
			t.Fatalf("down port churn %v/%v", ps.ActorChurn, ps.PartnerChurn)
		}
	})
}

func TestMarkerResponder(t *testing.T) {
	f := newFixture(t, DefaultConfig([6]byte{}), 2)
	f.up(0)
	info := Marker{RequesterPort: 9, RequesterSystem: fakeSys, TransactionID: 0x01020304}
	frame := make([]byte, FrameLen)
	EncodeMarker(frame, [6]byte{2, 9, 9, 9, 9, 9}, &info)
	f.s.Receive(0, frame, f.now)
	if len(f.marks[0]) != 1 {
		t.Fatalf("responses: %v", f.marks[0])
	}
	r := f.marks[0][0]
	want := info
	want.Response, want.Version = true, 1
	if r != want {
		t.Fatalf("response %+v want %+v", r, want)
	}
	if f.src[0][len(f.src[0])-1] != portMAC(0, 0) {
		t.Fatal("response not sent from the port's address")
	}
	// A response is not answered; a down port does not answer.
	resp := make([]byte, FrameLen)
	EncodeMarker(resp, [6]byte{2, 9, 9, 9, 9, 9}, &want)
	f.s.Receive(0, resp, f.now)
	f.s.Receive(1, frame, f.now)
	if len(f.marks[0]) != 1 || len(f.marks[1]) != 0 {
		t.Fatalf("unexpected responses %v %v", f.marks[0], f.marks[1])
	}
	c := f.port(0).Counters
	if c.MarkerPDUsRx != 1 || c.MarkerResponsePDUsTx != 1 || c.MarkerResponsePDUsRx != 1 || c.LACPDUsRx != 0 {
		t.Fatalf("counters %+v", c)
	}
	if c := f.port(1).Counters; c.MarkersDropped != 1 {
		t.Fatalf("down port counters %+v", c)
	}
	// A flood is answered at most MaxMarkersPerSecond times a second.
	for range 50 {
		f.s.Receive(0, frame, f.now)
	}
	if got := len(f.marks[0]); got != MaxMarkersPerSecond {
		t.Fatalf("%d responses in one instant", got)
	}
	f.tick(time.Second)
	f.s.Receive(0, frame, f.now)
	if got := len(f.marks[0]); got != MaxMarkersPerSecond+1 {
		t.Fatalf("%d responses after a second", got)
	}
	// Marker generator.
	f.tick(time.Second)
	if err := f.s.SendMarker(0, 42); err != nil {
		t.Fatal(err)
	}
	if m := f.marks[0][len(f.marks[0])-1]; m.Response || m.TransactionID != 42 || m.RequesterPort != 1 ||
		m.RequesterSystem != f.s.Config().SystemID {
		t.Fatalf("marker %+v", m)
	}
	if err := f.s.SendMarker(1, 1); err == nil {
		t.Fatal("marker on a down port")
	}
	if err := f.s.SendMarker(5, 1); err == nil {
		t.Fatal("marker on a missing port")
	}
	for range MaxMarkersPerSecond - 1 {
		if err := f.s.SendMarker(0, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.SendMarker(0, 1); err == nil {
		t.Fatal("marker rate not limited")
	}
}

func TestRateLimit(t *testing.T) {
	n := newNet(t)
	n.add(DefaultConfig([6]byte{}))
	n.addPorts(0, 1, 1000)
	// A storm of LACPDUs, 100 a second for 5 s, each with a partner view
	// that disagrees with us, so each one sets NTT. The harness checks
	// every transmission against the sliding one-second window.
	for i := range 500 {
		l := LACPDU{Version: 1, Actor: PortInfo{System: fakeSys, Key: 1, Port: 1, State: actAgg}}
		l.Partner.Key = uint16(i)
		b := make([]byte, FrameLen)
		EncodeLACPDU(b, fakeSys, &l)
		n.now += 10 * time.Millisecond
		n.sys[0].Receive(0, b, n.now)
		if i%10 == 9 {
			n.sys[0].Tick(n.now)
		}
	}
	times := n.txLog[ep{0, 0}]
	if len(times) < 3*5-1 || len(times) > 3*5+1 {
		t.Fatalf("%d LACPDUs in 5 s of NTT storm: %v", len(times), times)
	}
	// The NTT still pending when the storm ends is not lost.
	before := len(times)
	n.run(2 * time.Second)
	if len(n.txLog[ep{0, 0}]) == before {
		t.Fatal("deferred NTT never sent")
	}
}

func TestBadFrames(t *testing.T) {
	f := newFixture(t, DefaultConfig([6]byte{}), 1)
	f.toCollDist(0)
	v := f.s.Version()
	good := f.pdu(0, actAgg|synColDis)
	edit := func(off int, b byte) []byte { c := bytes.Clone(good); c[off] = b; return c }
	cases := []struct {
		name                         string
		frame                        []byte
		illegal, unknown, nonconform uint64
	}{
		{"nil", nil, 0, 1, 0},
		{"3 octets", []byte{1, 2, 3}, 0, 1, 0},
		{"IPv4", edit(12, 0x08), 0, 1, 0},
		{"OAM", edit(14, 3), 0, 1, 0},
		{"OSSP", edit(14, 10), 0, 1, 0},
		{"runt LACPDU", good[:60], 1, 0, 0},
		{"actor length", edit(17, 0), 1, 0, 0},
		{"subtype 0", edit(14, 0), 1, 0, 0},
		{"subtype 200", edit(14, 200), 1, 0, 0},
		{"marker TLV 7", func() []byte { b := goldenMarker(1); b[16] = 7; return b }(), 1, 0, 0},
		{"version 0 (processed)", edit(15, 0), 0, 0, 1},
		{"actor TLV_type 9 (processed)", edit(16, 9), 0, 0, 1},
		{"marker version 0 (answered)", func() []byte { b := goldenMarker(1); b[15] = 0; return b }(), 0, 0, 1},
	}
	for _, c := range cases {
		before := f.port(0).Counters
		f.s.Receive(0, c.frame, f.now)
		after := f.port(0).Counters
		if after.IllegalRx-before.IllegalRx != c.illegal || after.UnknownRx-before.UnknownRx != c.unknown ||
			after.NonConformantRx-before.NonConformantRx != c.nonconform {
			t.Errorf("%s: illegal +%d unknown +%d nonconformant +%d", c.name, after.IllegalRx-before.IllegalRx,
				after.UnknownRx-before.UnknownRx, after.NonConformantRx-before.NonConformantRx)
		}
		if c.nonconform != 0 && after.LACPDUsRx+after.MarkerPDUsRx != before.LACPDUsRx+before.MarkerPDUsRx+1 {
			t.Errorf("%s: not processed", c.name)
		}
	}
	if ps := f.port(0); ps.LastRxError != ErrVersion || ps.Counters.MarkerResponsePDUsTx != 1 {
		t.Fatalf("last rx error %v", ps.LastRxError)
	}
	f.s.Receive(7, good, f.now) // no such port
	if st := f.s.Status(); st.UnknownPortRx != 1 {
		t.Fatalf("unknown port rx %d", st.UnknownPortRx)
	}
	if f.s.Version() != v || f.port(0).MuxState != MuxCollectingDistributing {
		t.Fatal("bad frames changed the state")
	}
}

func TestConfigAndPorts(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Error("zero system id accepted")
	}
	if _, err := New(Config{SystemID: [6]byte{1, 0, 0, 0, 0, 1}}, nil); err == nil {
		t.Error("multicast system id accepted")
	}
	if _, err := New(Config{SystemID: macA, Select: 9}, nil); err == nil {
		t.Error("bad ad_select accepted")
	}
	if _, err := New(Config{SystemID: macA, MinLinks: -1}, nil); err == nil {
		t.Error("negative min_links accepted")
	}
	s, err := New(Config{SystemID: macA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Config().SystemPriority != 65535 {
		t.Error("default system priority")
	}
	if err := s.AddPort(0, PortConfig{Number: 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id int
		pc PortConfig
	}{{0, PortConfig{Number: 2}}, {1, PortConfig{Number: 1}}, {1, PortConfig{}}, {-1, PortConfig{Number: 3}},
		{1, PortConfig{Number: 3, UserKey: 1024}}} {
		if s.AddPort(c.id, c.pc) == nil {
			t.Errorf("AddPort(%d, %+v) accepted", c.id, c.pc)
		}
	}
	if st := s.Status(); st.Ports[0].Actor.PortPriority != 255 {
		t.Error("default port priority")
	}
	for _, v := range []struct {
		s    string
		want Select
	}{{"stable", 0}, {"1", 1}, {"count", 2}, {"actor_port_prio", 3}, {"prio", 3}, {"3", 3}} {
		if got, err := ParseSelect(v.s); err != nil || got != v.want {
			t.Errorf("ParseSelect(%q) = %v, %v", v.s, got, err)
		}
	}
	if _, err := ParseSelect("fastest"); err == nil {
		t.Error("ParseSelect accepted junk")
	}
	if Select(7).String() != "Select(7)" || SelectActorPortPrio.String() != "actor_port_prio" {
		t.Error("Select.String")
	}
	// Methods on unknown ports do nothing.
	s.SetLink(5, true, 1000, true)
	s.RemovePort(5)
	s.Tick(0)
	s.Receive(5, nil, 0)
}

func TestRemovePort(t *testing.T) {
	n := newNet(t)
	n.add(DefaultConfig([6]byte{}))
	n.add(DefaultConfig([6]byte{}))
	n.addPorts(0, 3, 10000)
	n.addPorts(1, 3, 10000)
	for p := range 3 {
		n.connect(ep{0, p}, ep{1, p})
	}
	if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1, 2) }); !ok {
		t.Fatal("no aggregation")
	}
	agg := n.sys[0].ActiveAggregator()
	owner := int(agg) - 1 // aggregator id is the owner's port number
	n.sys[0].RemovePort(owner)
	rest := slices.DeleteFunc([]int{0, 1, 2}, func(p int) bool { return p == owner })
	checkInvariants(t, n.sys[0])
	// The LAG stays in use on the other ports: they keep collecting and
	// distributing without a break (bonding moves them to a free
	// aggregator; a new wait_while_timer would cost 2 s of traffic).
	if d, up := n.sys[0].Distributing(); !up || !slices.Equal(d, rest) {
		t.Fatalf("right after removing the aggregator's owner %d: distributing %v up %v, want %v", owner, d, up, rest)
	}
	if a := n.sys[0].ActiveAggregator(); a == agg || a == 0 {
		t.Fatalf("active aggregator %d after removing its owner (was %d)", a, agg)
	}
	n.step()
	// The partner was told: its port left at once (Individual, no sync).
	if d, _ := n.sys[1].Distributing(); slices.Contains(d, owner) {
		t.Fatalf("partner still distributes on %d: %v", owner, d)
	}
	for range 5 * time.Second / TickInterval {
		if !n.aggregated(0, rest...) {
			n.dumpTrace()
			t.Fatalf("remaining ports %v left the aggregate at %v", rest, n.now)
		}
		if d, up := n.sys[1].Distributing(); !up || len(d) != len(rest) {
			t.Fatalf("partner distributing %v at %v, want %d ports", d, n.now, len(rest))
		}
		checkInvariants(t, n.sys[0])
		n.step()
	}
	// Re-adding works and rejoins.
	n.addPort(0, owner, PortConfig{Number: uint16(owner + 1)}, 10000)
	if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1, 2) }); !ok {
		t.Fatal("re-added port did not join")
	}
}

// Ports removed, added back and flapped at random, on both sides: the
// model stays consistent at every step, and once the churn stops every
// port aggregates again.
func TestRemoveAddChurn(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		n := newNet(t)
		n.add(DefaultConfig([6]byte{}))
		n.add(DefaultConfig([6]byte{}))
		const ports = 4
		n.addPorts(0, ports, 10000)
		n.addPorts(1, ports, 10000)
		for p := range ports {
			n.connect(ep{0, p}, ep{1, p})
		}
		n.run(5 * time.Second)
		present := [2][ports]bool{}
		for i := range present {
			for p := range present[i] {
				present[i][p] = true
			}
		}
		for range 200 {
			i, p := rng.IntN(2), rng.IntN(ports)
			switch rng.IntN(3) {
			case 0:
				if present[i][p] {
					n.sys[i].RemovePort(p)
				} else {
					n.addPort(i, p, PortConfig{Number: uint16(p + 1)}, 10000)
					n.connect(ep{0, p}, ep{1, p})
				}
				present[i][p] = !present[i][p]
			case 1:
				n.sys[i].SetLink(p, false, 10000, true)
				n.step()
				n.sys[i].SetLink(p, true, 10000, true)
			}
			for range rng.IntN(25) {
				n.step()
				checkInvariants(t, n.sys[0])
				checkInvariants(t, n.sys[1])
			}
		}
		for i := range present {
			for p := range present[i] {
				if !present[i][p] {
					n.addPort(i, p, PortConfig{Number: uint16(p + 1)}, 10000)
					n.connect(ep{0, p}, ep{1, p})
				}
			}
		}
		if _, ok := n.until(15*time.Second, func() bool { return n.aggregated(0, 0, 1, 2, 3) && n.aggregated(1, 0, 1, 2, 3) }); !ok {
			n.dumpTrace()
			t.Fatalf("seed %d: not all ports aggregated after the churn", seed)
		}
	}
}

func TestSetConfig(t *testing.T) {
	n := newNet(t)
	n.add(DefaultConfig([6]byte{}))
	n.add(DefaultConfig([6]byte{}))
	n.addPorts(0, 2, 10000)
	n.addPorts(1, 2, 10000)
	n.connect(ep{0, 0}, ep{1, 0})
	n.connect(ep{0, 1}, ep{1, 1})
	n.run(5 * time.Second)
	// lacp_rate fast: the partner learns at once and speeds up.
	c := n.sys[0].Config()
	c.FastRate = true
	if err := n.sys[0].SetConfig(c); err != nil {
		t.Fatal(err)
	}
	n.step()
	if ps := n.st(1, 0); !ps.Partner.State.Has(StateTimeout) || ps.PeriodicState != PeriodicFast {
		t.Fatalf("partner did not learn the rate: %v %v", ps.Partner.State, ps.PeriodicState)
	}
	// New system id: everything re-forms with the new id.
	c.SystemID = [6]byte{0x02, 0x99, 0, 0, 0, 1}
	if err := n.sys[0].SetConfig(c); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.until(10*time.Second, func() bool {
		return n.aggregated(0, 0, 1) && n.aggregated(1, 0, 1) && n.st(1, 0).Partner.System == c.SystemID
	}); !ok {
		t.Fatal("no re-aggregation with the new system id")
	}
	// Independent control at run time.
	c.CoupledControl = false
	n.sys[0].SetConfig(c)
	if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
		t.Fatal("no re-aggregation with independent control")
	}
	if n.st(0, 0).MuxState != MuxDistributing {
		t.Fatal("not using independent control")
	}
	if err := n.sys[0].SetConfig(Config{}); err == nil {
		t.Fatal("invalid config accepted")
	}
}

func TestSpeedChange(t *testing.T) {
	n := newNet(t)
	n.add(DefaultConfig([6]byte{}))
	n.add(DefaultConfig([6]byte{}))
	n.addPorts(0, 2, 10000)
	n.addPorts(1, 2, 10000)
	n.connect(ep{0, 0}, ep{1, 0})
	n.connect(ep{0, 1}, ep{1, 1})
	n.run(5 * time.Second)
	// Port 1 renegotiates at 1G on both sides: new key, own aggregator.
	n.sys[0].SetLink(1, true, 1000, true)
	n.sys[1].SetLink(1, true, 1000, true)
	if d, _ := n.sys[0].Distributing(); !slices.Equal(d, []int{0}) {
		t.Fatalf("distributing %v", d)
	}
	n.run(5 * time.Second)
	st := n.sys[0].Status()
	if len(st.Aggregators) != 2 {
		t.Fatalf("aggregators %+v", st.Aggregators)
	}
	k, _ := PortKey(1000, true, 0)
	if ps := n.st(0, 1); ps.Actor.Key != k || ps.Selected != Standby {
		t.Fatalf("port 1 key %d selected %v", ps.Actor.Key, ps.Selected)
	}
	// Half duplex: LACP disabled, Individual, no LACPDUs.
	before := n.st(0, 1).Counters.LACPDUsTx
	n.sys[0].SetLink(1, true, 100, false)
	n.run(10 * time.Second)
	ps := n.st(0, 1)
	if ps.LACPEnabled || ps.RxState != RxLACPDisabled || ps.Counters.LACPDUsTx != before || ps.Actor.State.Has(StateAggregation) {
		t.Fatalf("half duplex: %+v", ps)
	}
	st = n.sys[0].Status()
	if a, ok := st.Aggregator(ps.AggregatorID); !ok || !a.Individual || !slices.Equal(a.Ports, []int{1}) {
		t.Fatalf("half-duplex port aggregator %+v", a)
	}
	checkInvariants(t, n.sys[0])
	// Back to full duplex 10G: rejoins.
	n.sys[0].SetLink(1, true, 10000, true)
	n.sys[1].SetLink(1, true, 10000, true)
	if _, ok := n.until(10*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
		t.Fatal("did not rejoin")
	}
}

func TestProcOutput(t *testing.T) {
	n := newNet(t)
	n.add(DefaultConfig([6]byte{0x02, 0, 0, 0, 0, 0x10}))
	n.add(DefaultConfig([6]byte{0x02, 0, 0, 0, 0, 0x20}))
	n.addPorts(0, 2, 10000)
	n.addPorts(1, 2, 10000)
	n.connect(ep{0, 0}, ep{1, 0})
	n.connect(ep{0, 1}, ep{1, 1})
	n.run(5 * time.Second)
	st := n.sys[0].Status()
	var b strings.Builder
	if err := st.WriteProcBond(&b, "bond0"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\n802.3ad info\nLACP active: on\nLACP rate: slow\nLACP coupled_control: on\nMin links: 0\n",
		"Aggregator selection policy (ad_select): stable\nSystem priority: 65535\nSystem MAC address: 02:00:00:00:00:10\n",
		"Active Aggregator Info:\n\tAggregator ID: 1\n\tNumber of ports: 2\n\tActor Key: 15\n\tPartner Key: 15\n\tPartner Mac Address: 02:00:00:00:00:20\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("bond info lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	st.WriteProcPort(&b, 1)
	want := "Aggregator ID: 1\nActor Churn State: none\nPartner Churn State: none\nActor Churned Count: 0\nPartner Churned Count: 0\n" +
		"details actor lacp pdu:\n    system priority: 65535\n    system mac address: 02:00:00:00:00:10\n    port key: 15\n" +
		"    port priority: 255\n    port number: 2\n    port state: 61\n" +
		"details partner lacp pdu:\n    system priority: 65535\n    system mac address: 02:00:00:00:00:20\n    oper key: 15\n" +
		"    port priority: 255\n    port number: 2\n    port state: 61\n"
	if b.String() != want {
		t.Errorf("port info:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	st.WriteProcPort(&b, 9)
	if b.String() != "Aggregator ID: N/A\n" {
		t.Errorf("unknown port: %q", b.String())
	}
	empty, _ := New(DefaultConfig(macA), nil)
	est := empty.Status()
	b.Reset()
	est.WriteProcBond(&b, "bond1")
	if !strings.HasSuffix(b.String(), "bond bond1 has no active aggregator\n") {
		t.Errorf("no aggregator: %q", b.String())
	}
	for _, s := range []string{RxState(9).String(), MuxState(9).String(), PeriodicState(9).String(), ChurnState(9).String(),
		Selected.String(), Standby.String(), Unselected.String()} {
		if s == "" {
			t.Error("empty state name")
		}
	}
}

// An Individual link whose partner answers (its Aggregation bit is 0) beats
// a defaulted one, and distributes alone.
func TestIndividualPartner(t *testing.T) {
	f := newFixture(t, DefaultConfig([6]byte{}), 2)
	f.up(1) // defaulted: Individual, no partner
	f.tick(5 * time.Second)
	f.up(0)
	f.recv(0, StateActivity|StateSync|StateCollecting|StateDistributing)
	f.tick(AggregateWaitTime + TickInterval)
	f.recv(0, StateActivity|synColDis)
	st := f.s.Status()
	a, _ := st.Aggregator(st.ActiveAggregator)
	if !a.Individual || !slices.Equal(a.Ports, []int{0}) || a.PartnerSystem != fakeSys {
		t.Fatalf("active %+v", a)
	}
	if d, up := f.s.Distributing(); !up || !slices.Equal(d, []int{0}) {
		t.Fatalf("distributing %v %v", d, up)
	}
	if ps := f.port(1); ps.Selected != Standby {
		t.Fatalf("defaulted port %v", ps.Selected)
	}
}

// A TxFunc that calls back into the System does not break it.
func TestReentrantTxFunc(t *testing.T) {
	var s *System
	calls := 0
	s, err := New(DefaultConfig(macA), func(port int, frame []byte) {
		calls++
		call := calls
		s.Receive(port, frame, 0)           // our own frame: loopback
		s.Receive(port, goldenMarker(1), 0) // answered with the marker buffer
		s.SetLink(port, true, 10000, true)  // no change
		if err := s.AddPort(9, PortConfig{Number: 9}); err == nil {
			t.Error("AddPort from TxFunc succeeded")
		}
		if err := s.SetConfig(s.Config()); err == nil {
			t.Error("SetConfig from TxFunc succeeded")
		}
		if call == 3 {
			s.RemovePort(1)
		}
		_ = s.Status()
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range 3 {
		s.AddPort(p, PortConfig{Number: uint16(p + 1)})
		s.SetLink(p, true, 10000, true)
	}
	for now := time.Duration(0); now < 10*time.Second; now += TickInterval {
		s.Tick(now)
		checkInvariants(t, s)
	}
	st := s.Status()
	if len(st.Ports) != 2 || calls == 0 {
		t.Fatalf("ports %d calls %d", len(st.Ports), calls)
	}
}
