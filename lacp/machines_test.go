package lacp

import (
	"slices"
	"testing"
	"time"
)

// Receive machine (802.1AX-2014 6.4.12): one test per
// transition of the diagram, each checking the state's actions too.
func TestReceiveMachine(t *testing.T) {
	cfgFast := DefaultConfig([6]byte{})
	cfgFast.FastRate = true

	t.Run("BEGIN->INITIALIZE->PORT_DISABLED", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		if !slices.Equal(f.trace[:1], []string{"p0 rx INITIALIZE->INITIALIZE"}) || !f.saw("p0 rx INITIALIZE->PORT_DISABLED") {
			t.Fatal("no BEGIN sequence")
		}
		ps := f.port(0)
		if ps.RxState != RxPortDisabled || !ps.Actor.State.Has(StateDefaulted) || ps.Partner != (PortInfo{}) {
			t.Fatalf("%+v", ps)
		}
	})
	t.Run("PORT_DISABLED->EXPIRED", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.trace = nil
		f.up(0)
		if !f.saw("p0 rx PORT_DISABLED->EXPIRED") {
			t.Fatal()
		}
		ps := f.port(0)
		// EXPIRED: partner OUT_OF_SYNC and short timeout, actor Expired,
		// and an LACPDU goes out at once.
		if !ps.Actor.State.Has(StateExpired) || ps.Partner.State.Has(StateSync) || !ps.Partner.State.Has(StateTimeout) {
			t.Fatalf("actor %v partner %v", ps.Actor.State, ps.Partner.State)
		}
		if len(f.sent[0]) != 1 || !f.last(0).Actor.State.Has(StateExpired|StateDefaulted) {
			t.Fatalf("sent %+v", f.sent[0])
		}
		if ps.PeriodicState != PeriodicFast {
			t.Fatalf("periodic %v", ps.PeriodicState)
		}
	})
	t.Run("PORT_DISABLED->LACP_DISABLED->PORT_DISABLED", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.trace = nil
		f.s.SetLink(0, true, 100, false) // half duplex
		if !f.saw("p0 rx PORT_DISABLED->LACP_DISABLED") {
			t.Fatal()
		}
		ps := f.port(0)
		if ps.LACPEnabled || ps.Partner.State.Has(StateAggregation) || ps.Actor.State.Has(StateExpired) ||
			!ps.Actor.State.Has(StateDefaulted) || ps.Actor.State.Has(StateAggregation) {
			t.Fatalf("%+v", ps)
		}
		f.recv(0, actAgg|StateSync) // ignored
		if f.port(0).RxState != RxLACPDisabled || len(f.sent[0]) != 0 {
			t.Fatal("LACP_DISABLED reacted to a LACPDU or transmitted")
		}
		f.s.SetLink(0, true, 100, true) // full duplex: LACP_Enabled
		if !f.saw("p0 rx LACP_DISABLED->PORT_DISABLED") || f.port(0).RxState != RxExpired {
			t.Fatal()
		}
	})
	t.Run("EXPIRED->CURRENT", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.up(0)
		f.trace = nil
		f.recv(0, actAgg|StateTimeout)
		if !f.saw("p0 rx EXPIRED->CURRENT") {
			t.Fatal()
		}
		ps := f.port(0)
		if ps.Actor.State.Has(StateExpired) || ps.Actor.State.Has(StateDefaulted) || ps.Partner.Key != 77 ||
			ps.Partner.State != actAgg|StateTimeout {
			t.Fatalf("%+v", ps)
		}
	})
	t.Run("EXPIRED->DEFAULTED", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.up(0)
		f.recv(0, actAgg)
		f.tick(LongTimeoutTime) // CURRENT -> EXPIRED
		f.trace = nil
		f.tick(ShortTimeoutTime)
		if !f.saw("p0 rx EXPIRED->DEFAULTED") {
			t.Fatal()
		}
		ps := f.port(0)
		// recordDefault, update_Default_Selected, Expired cleared.
		if ps.Partner != (PortInfo{}) || !ps.Actor.State.Has(StateDefaulted) || ps.Actor.State.Has(StateExpired) {
			t.Fatalf("%+v", ps)
		}
		if a, _ := f.s.Status().Aggregator(ps.AggregatorID); !a.Individual {
			t.Fatal("defaulted port not Individual")
		}
	})
	t.Run("DEFAULTED->CURRENT", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 1)
		f.up(0)
		f.tick(ShortTimeoutTime + TickInterval)
		if f.port(0).RxState != RxDefaulted {
			t.Fatal("not defaulted")
		}
		f.trace = nil
		f.recv(0, actAgg)
		if !f.saw("p0 rx DEFAULTED->CURRENT") {
			t.Fatal()
		}
		ps := f.port(0)
		if ps.Selected == Unselected || ps.Actor.State.Has(StateDefaulted) {
			t.Fatalf("%+v", ps)
		}
		if a, _ := f.s.Status().Aggregator(ps.AggregatorID); a.Individual || a.PartnerKey != 77 {
			t.Fatalf("aggregator %+v", a)
		}
	})
	t.Run("CURRENT->CURRENT", func(t *testing.T) {
		f := newFixture(t, cfgFast, 1)
		f.up(0)
		f.recv(0, actAgg)
		f.tick(2 * time.Second)
		f.trace = nil
		f.recv(0, actAgg)
		if !f.saw("p0 rx CURRENT->CURRENT") {
			t.Fatal()
		}
		// current_while restarted: no expiry 2.9 s later.
		f.tick(2900 * time.Millisecond)
		if f.port(0).RxState != RxCurrent {
			t.Fatal("current_while not restarted")
		}
	})
	for _, c := range []struct {
		name    string
		cfg     Config
		timeout time.Duration
	}{{"CURRENT->EXPIRED short timeout", cfgFast, ShortTimeoutTime}, {"CURRENT->EXPIRED long timeout", DefaultConfig([6]byte{}), LongTimeoutTime}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.cfg, 1)
			f.up(0)
			f.recv(0, actAgg|StateSync)
			f.trace = nil
			f.tick(c.timeout - TickInterval)
			if f.port(0).RxState != RxCurrent {
				t.Fatal("expired early")
			}
			f.tick(TickInterval)
			if !f.saw("p0 rx CURRENT->EXPIRED") {
				t.Fatal()
			}
			ps := f.port(0)
			if ps.Partner.State.Has(StateSync) || !ps.Partner.State.Has(StateTimeout) || !ps.Actor.State.Has(StateExpired) ||
				ps.Partner.Key != 77 {
				t.Fatalf("%+v", ps)
			}
			if !f.last(0).Actor.State.Has(StateExpired) {
				t.Fatal("EXPIRED not advertised at once")
			}
		})
	}
	for _, from := range []RxState{RxCurrent, RxExpired, RxDefaulted, RxLACPDisabled} {
		t.Run(from.String()+"->PORT_DISABLED (port disabled)", func(t *testing.T) {
			f := newFixture(t, DefaultConfig([6]byte{}), 1)
			switch from {
			case RxLACPDisabled:
				f.s.SetLink(0, true, 1000, false)
			case RxCurrent:
				f.toCollDist(0)
			case RxExpired:
				f.up(0)
			case RxDefaulted:
				f.up(0)
				f.tick(ShortTimeoutTime + TickInterval)
			}
			if f.port(0).RxState != from {
				t.Fatalf("setup: %v", f.port(0).RxState)
			}
			f.trace = nil
			f.s.SetLink(0, false, 0, false)
			if !f.saw("p0 rx " + from.String() + "->PORT_DISABLED") {
				t.Fatal()
			}
			ps := f.port(0)
			if ps.Partner.State.Has(StateSync) || ps.Distributing || ps.PeriodicState != PeriodicNone {
				t.Fatalf("%+v", ps)
			}
			f.recv(0, actAgg|StateSync) // ignored while disabled
			if f.port(0).RxState != RxPortDisabled || f.port(0).Counters.LACPDUsRx == 0 {
				t.Fatal("PORT_DISABLED took a LACPDU")
			}
		})
	}
	t.Run("PORT_DISABLED->INITIALIZE (port_moved)", func(t *testing.T) {
		f := newFixture(t, DefaultConfig([6]byte{}), 2)
		f.toCollDist(0)
		f.up(1)
		f.s.SetLink(0, false, 0, false)
		if f.port(0).Partner.Port != 100 {
			t.Fatal("partner forgotten on link down")
		}
		f.trace = nil
		// The partner port that was on our port 0 now speaks on port 1.
		f.partner[1] = f.partner[0]
		f.recv(1, actAgg)
		if !f.saw("p0 rx PORT_DISABLED->INITIALIZE") {
			t.Fatal()
		}
		ps := f.port(0)
		if ps.RxState != RxPortDisabled || ps.Partner != (PortInfo{}) || !ps.Actor.State.Has(StateDefaulted) {
			t.Fatalf("%+v", ps)
		}
		// A different partner port does not move anything.
		f2 := newFixture(t, DefaultConfig([6]byte{}), 2)
		f2.toCollDist(0)
		f2.up(1)
		f2.s.SetLink(0, false, 0, false)
		f2.recv(1, actAgg)
		if f2.port(0).Partner.Port != 100 {
			t.Fatal("unrelated partner moved port 0")
		}
	})
}

// recordPDU's Partner_Oper_Port_State.Synchronization (6.4.9).
func TestRecordPDUSync(t *testing.T) {
	cases := []struct {
		name    string
		active  bool
		state   State
		mod     func(*LACPDU)
		wantSyn bool
	}{
		{"matched and in sync", true, actAgg | StateSync, nil, true},
		{"not in sync", true, actAgg, nil, false},
		{"partner's view of our key wrong", true, actAgg | StateSync, func(l *LACPDU) { l.Partner.Key++ }, false},
		{"partner's view of our port wrong", true, actAgg | StateSync, func(l *LACPDU) { l.Partner.Port++ }, false},
		{"partner's view of our system wrong", true, actAgg | StateSync, func(l *LACPDU) { l.Partner.System[5]++ }, false},
		{"partner's view of our aggregation wrong", true, actAgg | StateSync, func(l *LACPDU) { l.Partner.State &^= StateAggregation }, false},
		{"individual partner, view wrong", true, StateActivity | StateSync, func(l *LACPDU) { l.Partner = PortInfo{} }, true},
		{"passive partner, we active and it knows", true, StateAggregation | StateSync, nil, true},
		{"passive partner, we active but it thinks passive", true, StateAggregation | StateSync, func(l *LACPDU) { l.Partner.State &^= StateActivity }, false},
		{"both passive", false, StateAggregation | StateSync, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig([6]byte{})
			cfg.Active = c.active
			f := newFixture(t, cfg, 1)
			f.up(0)
			// Our actor information as the partner would echo it.
			f.sent[0] = append(f.sent[0], LACPDU{Actor: f.s.actor(f.s.ports[0])})
			f.recv(0, c.state, func(l *LACPDU) {
				if c.mod != nil {
					c.mod(l)
				}
			})
			if got := f.port(0).Partner.State.Has(StateSync); got != c.wantSyn {
				t.Fatalf("partner sync %v, want %v", got, c.wantSyn)
			}
		})
	}
}

// update_NTT and update_Selected (6.4.9).
func TestUpdateNTTAndSelected(t *testing.T) {
	f := newFixture(t, DefaultConfig([6]byte{}), 1)
	f.toCollDist(0)
	n := len(f.sent[0])
	f.recv(0, actAgg|synColDis) // up-to-date view: no transmission
	if len(f.sent[0]) != n {
		t.Fatal("LACPDU sent for an up-to-date partner")
	}
	f.tick(time.Second)
	n = len(f.sent[0])
	f.recv(0, actAgg|synColDis, func(l *LACPDU) { l.Partner.State ^= StateTimeout })
	if len(f.sent[0]) != n+1 {
		t.Fatalf("stale timeout view: %d LACPDUs", len(f.sent[0])-n)
	}
	f.tick(time.Second)
	n = len(f.sent[0])
	f.recv(0, actAgg|synColDis, func(l *LACPDU) { l.Partner.State ^= StateCollecting })
	if len(f.sent[0]) != n {
		t.Fatal("Collecting is not part of update_NTT")
	}
	// Partner port priority change: update_Selected unselects.
	f.trace = nil
	f.recv(0, actAgg|synColDis, func(l *LACPDU) { l.Actor.PortPriority = 1 })
	if !f.saw("p0 mux COLLECTING_DISTRIBUTING->ATTACHED") {
		t.Fatal("partner identity change did not unselect")
	}
}

func muxFixture(t *testing.T, coupled bool) *fixture {
	cfg := DefaultConfig([6]byte{})
	cfg.CoupledControl = coupled
	return newFixture(t, cfg, 1)
}

// Mux machine (6.4.15), coupled and independent control: one test per
// transition.
func TestMuxMachine(t *testing.T) {
	for _, coupled := range []bool{true, false} {
		name := map[bool]string{true: "coupled", false: "independent"}[coupled]
		t.Run(name+"/BEGIN->DETACHED", func(t *testing.T) {
			f := muxFixture(t, coupled)
			if !f.saw("p0 mux DETACHED->DETACHED") || f.port(0).Actor.State.Has(StateSync) {
				t.Fatal()
			}
		})
		t.Run(name+"/DETACHED->WAITING->ATTACHED", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.up(0)
			f.recv(0, actAgg)
			if !f.saw("p0 mux DETACHED->WAITING") {
				t.Fatal()
			}
			f.tick(AggregateWaitTime - TickInterval)
			if f.port(0).MuxState != MuxWaiting {
				t.Fatal("attached before the aggregate wait")
			}
			f.tick(TickInterval)
			if !f.saw("p0 mux WAITING->ATTACHED") {
				t.Fatal()
			}
			ps := f.port(0)
			if !ps.Actor.State.Has(StateSync) || ps.Actor.State.Has(StateCollecting) || !f.last(0).Actor.State.Has(StateSync) {
				t.Fatalf("attached: %v, sent %v", ps.Actor.State, f.last(0).Actor.State)
			}
		})
		t.Run(name+"/WAITING->DETACHED (UNSELECTED)", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.up(0)
			f.recv(0, actAgg)
			f.tick(time.Second)
			f.trace = nil
			f.recv(0, actAgg, func(l *LACPDU) { l.Actor.Key = 78 })
			if !f.saw("p0 mux WAITING->DETACHED") {
				t.Fatal()
			}
			if f.port(0).MuxState != MuxWaiting {
				t.Fatal("did not reselect")
			}
		})
		t.Run(name+"/ATTACHED->DETACHED (UNSELECTED)", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.up(0)
			f.recv(0, actAgg)
			f.tick(AggregateWaitTime + TickInterval)
			f.trace = nil
			f.recv(0, actAgg, func(l *LACPDU) { l.Actor.Key = 78 })
			if !f.saw("p0 mux ATTACHED->DETACHED") {
				t.Fatal()
			}
		})
		if coupled {
			t.Run(name+"/ATTACHED->COLLECTING_DISTRIBUTING", func(t *testing.T) {
				f := muxFixture(t, coupled)
				f.up(0)
				f.recv(0, actAgg)
				f.tick(AggregateWaitTime + TickInterval)
				f.trace = nil
				f.recv(0, actAgg|StateSync)
				if !f.saw("p0 mux ATTACHED->COLLECTING_DISTRIBUTING") {
					t.Fatal()
				}
				if ps := f.port(0); !ps.Actor.State.Has(synColDis) || !ps.Distributing || !ps.Collecting ||
					!f.last(0).Actor.State.Has(synColDis) {
					t.Fatalf("%+v", ps)
				}
			})
			t.Run(name+"/COLLECTING_DISTRIBUTING->ATTACHED (!Partner.Sync)", func(t *testing.T) {
				f := muxFixture(t, coupled)
				f.toCollDist(0)
				f.trace = nil
				f.recv(0, actAgg)
				if !f.saw("p0 mux COLLECTING_DISTRIBUTING->ATTACHED") {
					t.Fatal()
				}
				if ps := f.port(0); ps.Actor.State.Has(StateCollecting) || ps.Distributing || !ps.Actor.State.Has(StateSync) {
					t.Fatalf("%+v", ps)
				}
			})
			t.Run(name+"/COLLECTING_DISTRIBUTING->ATTACHED (UNSELECTED)", func(t *testing.T) {
				f := muxFixture(t, coupled)
				f.toCollDist(0)
				f.trace = nil
				f.recv(0, actAgg|synColDis, func(l *LACPDU) { l.Actor.Key = 78 })
				want := []string{"p0 mux COLLECTING_DISTRIBUTING->ATTACHED", "p0 mux ATTACHED->DETACHED", "p0 mux DETACHED->WAITING"}
				if got := muxTrace(f.trace); !slices.Equal(got, want) {
					t.Fatalf("trace %q", got)
				}
			})
			continue
		}
		t.Run(name+"/ATTACHED->COLLECTING->DISTRIBUTING", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.up(0)
			f.recv(0, actAgg)
			f.tick(AggregateWaitTime + TickInterval)
			f.trace = nil
			f.recv(0, actAgg|StateSync) // partner in sync, not collecting
			if !f.saw("p0 mux ATTACHED->COLLECTING") {
				t.Fatal()
			}
			ps := f.port(0)
			if !ps.Actor.State.Has(StateSync|StateCollecting) || ps.Actor.State.Has(StateDistributing) ||
				!ps.Collecting || ps.Distributing || !f.last(0).Actor.State.Has(StateCollecting) {
				t.Fatalf("%+v", ps)
			}
			if c := f.s.Collecting(); !slices.Equal(c, []int{0}) {
				t.Fatalf("collecting %v", c)
			}
			f.recv(0, actAgg|StateSync|StateCollecting)
			if !f.saw("p0 mux COLLECTING->DISTRIBUTING") {
				t.Fatal()
			}
			if ps := f.port(0); !ps.Actor.State.Has(synColDis) || !ps.Distributing {
				t.Fatalf("%+v", ps)
			}
		})
		t.Run(name+"/DISTRIBUTING->COLLECTING (!Partner.Collecting)", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.toCollDist(0)
			f.trace = nil
			f.recv(0, actAgg|StateSync)
			if !f.saw("p0 mux DISTRIBUTING->COLLECTING") {
				t.Fatal()
			}
			if ps := f.port(0); ps.Distributing || !ps.Collecting || ps.Actor.State.Has(StateDistributing) {
				t.Fatalf("%+v", ps)
			}
		})
		t.Run(name+"/DISTRIBUTING->COLLECTING->ATTACHED (!Partner.Sync)", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.toCollDist(0)
			f.trace = nil
			f.recv(0, actAgg|StateCollecting)
			want := []string{"p0 mux DISTRIBUTING->COLLECTING", "p0 mux COLLECTING->ATTACHED"}
			if got := muxTrace(f.trace); !slices.Equal(got, want) {
				t.Fatalf("trace %q", got)
			}
		})
		t.Run(name+"/COLLECTING->ATTACHED (!Partner.Sync)", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.up(0)
			f.recv(0, actAgg)
			f.tick(AggregateWaitTime + TickInterval)
			f.recv(0, actAgg|StateSync)
			f.trace = nil
			f.recv(0, actAgg)
			if !f.saw("p0 mux COLLECTING->ATTACHED") {
				t.Fatal()
			}
		})
		t.Run(name+"/DISTRIBUTING->COLLECTING (UNSELECTED)", func(t *testing.T) {
			f := muxFixture(t, coupled)
			f.toCollDist(0)
			f.trace = nil
			f.recv(0, actAgg|synColDis, func(l *LACPDU) { l.Actor.Key = 78 })
			want := []string{"p0 mux DISTRIBUTING->COLLECTING", "p0 mux COLLECTING->ATTACHED",
				"p0 mux ATTACHED->DETACHED", "p0 mux DETACHED->WAITING"}
			if got := muxTrace(f.trace); !slices.Equal(got, want) {
				t.Fatalf("trace %q", got)
			}
		})
	}
}

func muxTrace(tr []string) (r []string) {
	for _, l := range tr {
		if len(l) > 7 && l[3:6] == "mux" {
			r = append(r, l)
		}
	}
	return r
}

// STANDBY: the active aggregator moves (ad_select count) and the ports of
// the old one go COLLECTING_DISTRIBUTING/DISTRIBUTING -> ATTACHED ->
// DETACHED -> WAITING, while those of the new one leave WAITING.
func TestMuxStandby(t *testing.T) {
	for _, coupled := range []bool{true, false} {
		cfg := DefaultConfig([6]byte{})
		cfg.Select = SelectCount
		cfg.CoupledControl = coupled
		f := newFixture(t, cfg, 3)
		other := [6]byte{0x02, 0x0e, 0, 0, 0, 9}
		for p := 1; p < 3; p++ {
			pi := f.partner[p]
			pi.System = other
			f.partner[p] = pi
		}
		f.toCollDist(0)
		f.up(1)
		f.up(2)
		f.recv(1, actAgg)
		f.recv(2, actAgg)
		f.tick(AggregateWaitTime + TickInterval)
		f.recv(1, actAgg|StateSync)
		f.recv(2, actAgg|StateSync)
		ps0 := f.port(0)
		if ps0.Selected != Standby || ps0.MuxState != MuxWaiting || ps0.Actor.State.Has(StateSync) {
			t.Fatalf("old aggregator port: %+v", ps0)
		}
		first := "p0 mux COLLECTING_DISTRIBUTING->ATTACHED"
		if !coupled {
			first = "p0 mux DISTRIBUTING->COLLECTING"
		}
		tr := muxTrace(f.trace)
		i := slices.Index(tr, first)
		if i < 0 || !slices.Contains(tr[i:], "p0 mux ATTACHED->DETACHED") || !slices.Contains(tr[i:], "p0 mux DETACHED->WAITING") {
			t.Fatalf("coupled=%v trace %q", coupled, tr)
		}
		if f.s.ActiveAggregator() != 2 {
			t.Fatalf("active aggregator %d", f.s.ActiveAggregator())
		}
		if d, up := f.s.Distributing(); up || len(d) != 0 {
			// ports 1 and 2 have attached; they distribute once the
			// partner reports them collecting.
			if !slices.Equal(d, []int{1, 2}) {
				t.Fatalf("distributing %v", d)
			}
		}
		f.recv(1, actAgg|synColDis)
		f.recv(2, actAgg|synColDis)
		if d, up := f.s.Distributing(); !up || !slices.Equal(d, []int{1, 2}) {
			t.Fatalf("coupled=%v distributing %v %v", coupled, d, up)
		}
		// Aggregator 2 loses both links: back to aggregator 1, whose port
		// waited long enough to attach at once.
		f.s.SetLink(1, false, 0, false)
		f.s.SetLink(2, false, 0, false)
		// Its partner stayed in sync, so it distributes at once.
		if ps := f.port(0); ps.Selected != Selected || !ps.Distributing {
			t.Fatalf("failover: %+v", ps)
		}
		if d, up := f.s.Distributing(); !up || !slices.Equal(d, []int{0}) {
			t.Fatalf("failover distributing %v %v", d, up)
		}
		checkInvariants(t, f.s)
	}
}

// Ready (6.4.8): a port waits for the others selecting the same
// aggregator; they attach together.
func TestMuxReady(t *testing.T) {
	f := newFixture(t, DefaultConfig([6]byte{}), 2)
	f.up(0)
	f.up(1)
	f.recv(0, actAgg)
	f.tick(1500 * time.Millisecond)
	f.recv(1, actAgg)
	if a, _ := f.s.Status().Aggregator(1); !slices.Equal(a.Ports, []int{0, 1}) || a.Ready {
		t.Fatalf("aggregator %+v", a)
	}
	f.tick(600 * time.Millisecond) // port 0's timer has expired, port 1's not
	if ps := f.port(0); ps.MuxState != MuxWaiting {
		t.Fatalf("port 0 attached before port 1 was ready: %v", ps.MuxState)
	}
	f.tick(1500 * time.Millisecond)
	if f.port(0).MuxState != MuxAttached || f.port(1).MuxState != MuxAttached {
		t.Fatal("ports did not attach together")
	}
}
