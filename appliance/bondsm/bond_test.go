package bondsm

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
)

// Every mode: the snapshot after start, after member 0 loses carrier and
// after it comes back.
func TestModesStartFailReturn(t *testing.T) {
	all := snapState{TX: []int{0, 1, 2}, RX: 7, Active: 0}
	tests := []struct {
		mode              string
		start, fail, back snapState
	}{
		{"balance-rr", all, snapState{[]int{1, 2}, 7, 1}, snapState{[]int{0, 1, 2}, 7, 1}},
		{"balance-xor", all, snapState{[]int{1, 2}, 7, 1}, snapState{[]int{0, 1, 2}, 7, 1}},
		{"broadcast", all, snapState{[]int{1, 2}, 7, 1}, snapState{[]int{0, 1, 2}, 7, 1}},
		{"active-backup", snapState{[]int{0}, 1, 0}, snapState{[]int{1}, 2, 1}, snapState{[]int{1}, 2, 1}},
		{"balance-tlb", snapState{[]int{0, 1, 2}, 1, 0}, snapState{[]int{1, 2}, 2, 1}, snapState{[]int{0, 1, 2}, 2, 1}},
		{"balance-alb", snapState{[]int{0, 1, 2}, 7, 0}, snapState{[]int{1, 2}, 7, 1}, snapState{[]int{0, 1, 2}, 7, 1}},
		// no partner: nothing is distributing
		{"802.3ad", snapState{nil, 0, -1}, snapState{nil, 0, -1}, snapState{nil, 0, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			b, out := newBond(t, parseBond(t, tc.mode, 3))
			if out.Snapshot == nil || out.Snapshot != b.Snapshot() {
				t.Fatal("New returns no first snapshot")
			}
			if got := stateOf(b.Snapshot()); !got.equal(tc.start) {
				t.Fatalf("start: %+v, want %+v", got, tc.start)
			}
			if (b.Snapshot().ALB != nil) != (tc.mode == "balance-tlb" || tc.mode == "balance-alb") {
				t.Fatalf("ALB table %v", b.Snapshot().ALB)
			}
			b.Link(at(10), 0, false)
			if got := stateOf(b.Snapshot()); !got.equal(tc.fail) {
				t.Fatalf("member 0 down: %+v, want %+v", got, tc.fail)
			}
			b.Link(at(20), 0, true)
			if got := stateOf(b.Snapshot()); !got.equal(tc.back) {
				t.Fatalf("member 0 back: %+v, want %+v", got, tc.back)
			}
			if st := b.Status(); st.Slaves[0].LinkFailureCount != 1 {
				t.Fatalf("link failure count %d", st.Slaves[0].LinkFailureCount)
			}
		})
	}
}

// updelay and downdelay hold link changes; Tick runs the timers.
func TestDelays(t *testing.T) {
	type step struct {
		at      int
		link    int // 0: Tick, 1: carrier up, -1: carrier down (member 0)
		wantTX0 bool
		state   string
	}
	tests := []struct {
		name  string
		extra []string
		steps []step
	}{
		{"no delays", nil, []step{{0, -1, false, "down"}, {10, 1, true, "up"}}},
		// as bonding, a member going down keeps carrying traffic until
		// the downdelay expires
		{"downdelay holds", []string{"downdelay: 200"}, []step{
			{0, -1, true, "going down"}, {100, 0, true, "going down"}, {190, 0, true, "going down"}, {200, 0, false, "down"}}},
		{"recovers within downdelay", []string{"downdelay: 200"}, []step{{0, -1, true, "going down"}, {100, 1, true, "up"}, {300, 0, true, "up"}}},
		{"updelay holds", []string{"updelay: 300"}, []step{
			{0, -1, false, "down"}, {10, 1, false, "going back"}, {200, 0, false, "going back"}, {310, 0, true, "up"}}},
		{"lost again during updelay", []string{"updelay: 300"}, []step{
			{0, -1, false, "down"}, {10, 1, false, "going back"}, {50, -1, false, "down"}, {400, 0, false, "down"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// primary eth0: it takes the active role back as soon as it is up
			extra := append([]string{"primary: eth0"}, tc.extra...)
			b, _ := newBond(t, parseBond(t, "active-backup", 2, extra...))
			for _, s := range tc.steps {
				switch s.link {
				case 0:
					b.Tick(at(s.at), TickInput{})
				default:
					b.Link(at(s.at), 0, s.link > 0)
				}
				if got := b.Snapshot().Active == 0; got != s.wantTX0 {
					t.Fatalf("at %d ms: member 0 active %v, want %v", s.at, got, s.wantTX0)
				}
				if st := b.Members()[0].State; st != s.state {
					t.Fatalf("at %d ms: state %q, want %q", s.at, st, s.state)
				}
			}
		})
	}
}

func TestPrimaryReselect(t *testing.T) {
	tests := []struct {
		reselect string
		speed0   int // member 0's speed when it comes back
		want     int // active after member 0 (the primary) came back
	}{
		{"always", 1000, 0},
		{"better", 1000, 1},
		{"better", 10000, 0},
		{"failure", 10000, 1},
	}
	for _, tc := range tests {
		t.Run(tc.reselect, func(t *testing.T) {
			b, _ := newBond(t, parseBond(t, "active-backup", 3, "primary: eth0", "primary_reselect: "+tc.reselect))
			if a := b.Snapshot().Active; a != 0 {
				t.Fatalf("primary not active at start: %d", a)
			}
			b.Link(at(10), 0, false)
			if a := b.Snapshot().Active; a != 1 {
				t.Fatalf("after the primary failed: active %d", a)
			}
			b.LinkMode(at(15), 0, tc.speed0, "full")
			out := b.Link(at(20), 0, true)
			if a := b.Snapshot().Active; a != tc.want {
				t.Fatalf("primary back: active %d, want %d", a, tc.want)
			}
			if tc.want == 0 && !hasEvent(out, "active slave changed") {
				t.Fatalf("no active slave event: %+v", out.Events)
			}
		})
	}
	// highest prio wins without a primary
	c := parseBond(t, "active-backup", 3, "slaves: [eth0, {name: eth1, prio: 5}, eth2]")
	b, _ := newBond(t, c)
	if a := b.Snapshot().Active; a != 1 {
		t.Fatalf("prio: active %d", a)
	}
}

func TestRuntimeActiveSlave(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "active-backup", 3, "primary: eth0"))
	if _, err := b.SetActiveSlave(at(1), "eth2"); err != nil {
		t.Fatal(err)
	}
	if a := b.Snapshot().Active; a != 2 {
		t.Fatalf("active %d after active_slave eth2", a)
	}
	b.Tick(at(100), TickInput{})
	b.LinkMode(at(110), 1, 100, "full")
	if a := b.Snapshot().Active; a != 2 {
		t.Fatalf("manual choice not held: %d", a)
	}
	b.Link(at(200), 1, false) // the next link change ends it
	if a := b.Snapshot().Active; a != 0 {
		t.Fatalf("primary not reselected after a link change: %d", a)
	}
	for _, tc := range []struct{ name, want string }{
		{"eth9", `"eth9" is not an up slave`},
		{"eth1", `"eth1" is not an up slave`}, // down
	} {
		if _, err := b.SetActiveSlave(at(300), tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	b.SetActiveSlave(at(310), "eth2")
	if _, err := b.SetActiveSlave(at(320), ""); err != nil || b.Snapshot().Active != 0 {
		t.Fatalf("clearing: %v, active %d", err, b.Snapshot().Active)
	}
	x, _ := newBond(t, parseBond(t, "balance-xor", 2))
	if _, err := x.SetActiveSlave(at(1), "eth0"); err == nil || !strings.Contains(err.Error(), "only in active-backup mode") {
		t.Fatalf("xor: %v", err)
	}
	// at start, as configured
	c := parseBond(t, "active-backup", 3, "active_slave: eth1")
	s, _ := newBond(t, c)
	if a := s.Snapshot().Active; a != 1 {
		t.Fatalf("configured active_slave: %d", a)
	}
}

func TestFailOverMAC(t *testing.T) {
	// active: the bond takes the new active slave's MAC
	b, _ := newBond(t, parseBond(t, "active-backup", 2, "fail_over_mac: active"))
	out := b.Link(at(10), 0, false)
	hm := actionsOf(out, SetHostMAC)
	if len(hm) != 1 || hm[0].MAC.String() != permMAC(1).String() || b.MAC().String() != permMAC(1).String() {
		t.Fatalf("active: host MAC actions %+v, MAC %v", hm, b.MAC())
	}
	if !hasEvent(out, "fail_over_mac active: bond MAC follows the active slave") {
		t.Fatalf("events %+v", out.Events)
	}
	// follow: the bond MAC moves to the new active slave, the old one
	// takes the new one's former MAC
	b, _ = newBond(t, parseBond(t, "active-backup", 2, "fail_over_mac: follow"))
	out = b.Link(at(10), 0, false)
	mm := actionsOf(out, SetMemberMAC)
	if len(mm) != 2 || mm[0].Member != 1 || mm[0].MAC.String() != bondMAC.String() ||
		mm[1].Member != 0 || mm[1].MAC.String() != permMAC(1).String() || mm[0].Device != "eth1" {
		t.Fatalf("follow: member MAC actions %+v", mm)
	}
	if ms := b.Members(); ms[1].CurMAC.String() != bondMAC.String() || ms[0].CurMAC.String() != permMAC(1).String() {
		t.Fatalf("follow: members %+v", ms)
	}
	// none: nothing
	b, _ = newBond(t, parseBond(t, "active-backup", 2))
	if out = b.Link(at(10), 0, false); len(actionsOf(out, SetMemberMAC))+len(actionsOf(out, SetHostMAC)) != 0 {
		t.Fatalf("none: %+v", out.Actions)
	}
}

func TestPromiscFollowsHost(t *testing.T) {
	tests := []struct {
		mode string
		want []int // members made promiscuous
	}{
		{"active-backup", []int{0}},
		{"balance-tlb", []int{0}},
		{"balance-xor", []int{0, 1, 2}},
		{"broadcast", []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			b, _ := newBond(t, parseBond(t, tc.mode, 3))
			out := b.HostPromisc(at(1), true)
			var got []int
			for _, a := range actionsOf(out, SetMemberPromisc) {
				if !a.On {
					t.Fatalf("unexpected off: %+v", a)
				}
				got = append(got, a.Member)
			}
			if !slices.Equal(got, tc.want) || !hasEvent(out, "host device promiscuity changed; members follow") {
				t.Fatalf("promisc on %v, want %v (events %+v)", got, tc.want, out.Events)
			}
			out = b.Link(at(10), 0, false)
			pa := actionsOf(out, SetMemberPromisc)
			if len(tc.want) == 1 {
				// the role moves with the active slave
				if len(pa) != 2 || pa[0].Member != 0 || pa[0].On || pa[1].Member != 1 || !pa[1].On {
					t.Fatalf("after failover: %+v", pa)
				}
			} else if len(pa) != 0 {
				t.Fatalf("xor follows without an active slave: %+v", pa)
			}
			rel := actionsOf(b.Release(), SetMemberPromisc)
			if len(rel) != len(tc.want) {
				t.Fatalf("release: %+v", rel)
			}
			for _, m := range b.Members() {
				if m.Promisc {
					t.Fatalf("still promiscuous after Release: %+v", m)
				}
			}
		})
	}
}

func TestHostCarrier(t *testing.T) {
	b, out := newBond(t, parseBond(t, "balance-xor", 2))
	if hc := actionsOf(out, SetHostCarrier); len(hc) != 1 || !hc[0].On || hc[0].Device != "bond0" {
		t.Fatalf("start: %+v", hc)
	}
	steps := []struct {
		member  int
		carrier bool
		want    []bool
	}{
		{0, false, nil},
		{1, false, []bool{false}},
		{1, false, nil},
		{1, true, []bool{true}},
		{0, true, nil},
	}
	for i, s := range steps {
		out := b.Link(at(10*(i+1)), s.member, s.carrier)
		var got []bool
		for _, a := range actionsOf(out, SetHostCarrier) {
			got = append(got, a.On)
		}
		if !slices.Equal(got, s.want) || b.Carrier() != (len(b.Snapshot().TX) > 0) {
			t.Fatalf("step %d: carrier actions %v, want %v", i, got, s.want)
		}
	}
}

func TestSnapshotOnlyWhenChanged(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "balance-xor", 2))
	first := b.Snapshot()
	if out := b.Link(at(1), 0, true); out.Snapshot != nil {
		t.Fatal("a carrier that did not change published a snapshot")
	}
	if out := b.Tick(at(10), TickInput{}); out.Snapshot != nil || b.Snapshot() != first {
		t.Fatal("an idle tick published a snapshot")
	}
}

func TestAddRemoveMember(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "balance-xor", 2))
	steps := []struct {
		add, name string // add or remove name
		wantIdx   int
		wantErr   string
		wantTX    []int
	}{
		{"add", "eth2", 2, "", []int{0, 1, 2}},
		{"add", "eth2", -1, "already a slave", nil},
		{"del", "eth1", 1, "", []int{0, 2}},
		{"del", "eth1", -1, "not a slave", nil},
		{"add", "eth3", 1, "", []int{0, 1, 2}}, // reuses the tombstone
		{"del", "eth0", 0, "", []int{1, 2}},
		{"del", "eth2", 2, "", []int{1}},
		{"del", "eth3", -1, "last slave", nil},
	}
	for i, s := range steps {
		var idx int
		var out Output
		var err error
		if s.add == "add" {
			idx, out, err = b.AddMember(at(i+1), testMember(s.name, 5+i, true))
		} else {
			idx, out, err = b.RemoveMember(at(i+1), s.name)
		}
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("step %d: error %v, want %q", i, err, s.wantErr)
			}
			continue
		}
		if err != nil || idx != s.wantIdx {
			t.Fatalf("step %d: %d %v, want index %d", i, idx, err, s.wantIdx)
		}
		if !slices.Equal(b.Snapshot().TX, s.wantTX) {
			t.Fatalf("step %d: TX %v, want %v", i, b.Snapshot().TX, s.wantTX)
		}
		if msg := map[string]string{"add": "slave added", "del": "slave removed"}[s.add]; !hasEvent(out, msg) {
			t.Fatalf("step %d: events %+v", i, out.Events)
		}
	}
	if ms := b.Members(); len(ms) != 3 || !ms[0].Removed || ms[1].Name != "eth3" || len(b.Config().Slaves) != 1 {
		t.Fatalf("members %+v, slaves %+v", ms, b.Config().Slaves)
	}
	if st := b.Status(); len(st.Slaves) != 1 || st.Slaves[0].Index != 1 {
		t.Fatalf("status slaves %+v", st.Slaves)
	}
	for _, mode := range []string{"balance-tlb", "balance-alb"} {
		a, _ := newBond(t, parseBond(t, mode, 2))
		if _, _, err := a.AddMember(at(1), testMember("eth2", 2, true)); err == nil || !strings.Contains(err.Error(), "adding slaves to a running") {
			t.Fatalf("%s add: %v", mode, err)
		}
		if _, _, err := a.RemoveMember(at(1), "eth1"); err == nil || !strings.Contains(err.Error(), "removing slaves from a running") {
			t.Fatalf("%s remove: %v", mode, err)
		}
	}
	// at most 64
	x, _ := newBond(t, parseBond(t, "broadcast", 1))
	for i := 1; i < 64; i++ {
		if _, _, err := x.AddMember(at(i), testMember("m"+string(rune('A'+i%26))+string(rune('a'+i/26)), i, true)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := x.AddMember(at(100), testMember("over", 64, true)); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Fatalf("65th member: %v", err)
	}
}

func TestStatus(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "active-backup", 2, "primary: eth1"))
	st := b.Status()
	if st.Mode != "active-backup" || st.CurrentlyActiveSlave != "eth1" || st.PrimarySlave != "eth1" ||
		st.PrimaryReselect != "always (0)" || st.MIIStatus != "up" || st.MIIPollingInterval != 100 ||
		st.HostDevice != "veth" || st.MAC != bondMAC.String() || len(st.Slaves) != 2 || st.Slaves[1].Index != 1 ||
		st.Slaves[0].Speed != 1000 || st.Slaves[0].Duplex != "full" || st.Monitor == nil {
		t.Fatalf("status %+v", st)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"currently_active_slave":"eth1"`, `"mii_polling_interval_ms":100`, `"slaves":[{"name":"eth0"`, `"host_counters":{`} {
		if !strings.Contains(string(data), k) {
			t.Fatalf("JSON lacks %s: %s", k, data)
		}
	}
	if strings.Contains(string(data), `"Index"`) {
		t.Fatal("Index is in the JSON")
	}
	x, _ := newBond(t, parseBond(t, "balance-xor", 2, "xmit_hash_policy: layer3+4"))
	if st := x.Status(); st.TransmitHashPolicy != "layer3+4 (1)" || st.PrimarySlave != "" {
		t.Fatalf("xor status %+v", st)
	}
}

func TestNewErrors(t *testing.T) {
	c := parseBond(t, "balance-xor", 2)
	tests := []struct {
		name   string
		mutate func(*Setup)
	}{
		{"no members", func(s *Setup) { s.Members = nil }},
		{"duplicate", func(s *Setup) { s.Members[1].Name = "eth0" }},
		{"bad mode", func(s *Setup) { s.Config.Mode = 9 }},
		{"no MAC", func(s *Setup) { s.Members[0].PermMAC = nil }},
	}
	for _, tc := range tests {
		s := setupFor(c)
		tc.mutate(&s)
		if _, _, err := New(s, t0); err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
	}
	if UsesOwnMACs(parseBond(t, "balance-tlb", 2)) || !UsesOwnMACs(parseBond(t, "balance-alb", 2)) ||
		!UsesOwnMACs(parseBond(t, "active-backup", 2, "fail_over_mac: follow")) || UsesOwnMACs(parseBond(t, "active-backup", 2)) {
		t.Fatal("UsesOwnMACs")
	}
}

// During downdelay ("going down") a member keeps transmitting and keeps
// its role; when the downdelay expires it is gone. During updelay ("going
// back") it does not transmit yet. In 802.3ad its LACP port follows the
// committed MII state: it stays distributing through the downdelay.
func TestDowndelayKeepsTraffic(t *testing.T) {
	type step struct {
		at     int  // ms
		link   int  // 0: Tick, 1: carrier up, -1: carrier down (member 0)
		lacp   bool // 802.3ad: exchange LACPDUs with the partner up to at
		want   snapState
		state0 string
	}
	both, only1 := []int{0, 1}, []int{1}
	tests := []struct {
		name  string
		mode  string
		extra []string
		steps []step
	}{
		{"balance-xor", "balance-xor", []string{"downdelay: 300", "updelay: 200"}, []step{
			{0, -1, false, snapState{both, 3, 0}, "going down"},
			{150, 0, false, snapState{both, 3, 0}, "going down"},
			{290, 0, false, snapState{both, 3, 0}, "going down"},
			{300, 0, false, snapState{only1, 3, 1}, "down"},
			{400, 1, false, snapState{only1, 3, 1}, "going back"},
			{590, 0, false, snapState{only1, 3, 1}, "going back"},
			{600, 0, false, snapState{both, 3, 1}, "up"}}},
		{"balance-xor flap", "balance-xor", []string{"downdelay: 300"}, []step{
			{0, -1, false, snapState{both, 3, 0}, "going down"},
			{100, 1, false, snapState{both, 3, 0}, "up"},
			{500, 0, false, snapState{both, 3, 0}, "up"}}},
		{"active-backup active member", "active-backup", []string{"downdelay: 300", "updelay: 200"}, []step{
			{0, -1, false, snapState{[]int{0}, 1, 0}, "going down"},
			{290, 0, false, snapState{[]int{0}, 1, 0}, "going down"},
			{300, 0, false, snapState{only1, 2, 1}, "down"},
			{400, 1, false, snapState{only1, 2, 1}, "going back"},
			{600, 0, false, snapState{only1, 2, 1}, "up"}}},
		{"active-backup flap", "active-backup", []string{"downdelay: 300"}, []step{
			{0, -1, false, snapState{[]int{0}, 1, 0}, "going down"},
			{200, 1, false, snapState{[]int{0}, 1, 0}, "up"},
			{500, 0, false, snapState{[]int{0}, 1, 0}, "up"}}},
		// the primary is in updelay: the active slave stays where it is
		{"active-backup primary going back", "active-backup", []string{"primary: eth0", "downdelay: 300", "updelay: 200"}, []step{
			{0, -1, false, snapState{[]int{0}, 1, 0}, "going down"},
			{300, 0, false, snapState{only1, 2, 1}, "down"},
			{400, 1, false, snapState{only1, 2, 1}, "going back"},
			{600, 0, false, snapState{[]int{0}, 1, 0}, "up"}}},
		{"802.3ad", "802.3ad", []string{"lacp_rate: fast", "downdelay: 500"}, []step{
			{3000, 0, true, snapState{both, 3, 0}, "up"},
			{3000, -1, false, snapState{both, 3, 0}, "going down"},
			{3400, 0, true, snapState{both, 3, 0}, "going down"},
			{3500, 0, false, snapState{only1, 2, 1}, "down"},
			{4000, 0, true, snapState{only1, 2, 1}, "down"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newBond(t, parseBond(t, tc.mode, 2, tc.extra...))
			var p *lacpPeer
			if tc.mode == "802.3ad" {
				p = newPeer(t, 2)
			}
			for _, s := range tc.steps {
				switch {
				case s.lacp:
					p.run(t, b, time.Duration(s.at-p.ms)*time.Millisecond)
				case s.link == 0:
					b.Tick(at(s.at), TickInput{})
				default:
					b.Link(at(s.at), 0, s.link > 0)
				}
				if got := stateOf(b.Snapshot()); !got.equal(s.want) {
					t.Fatalf("at %d ms: %+v, want %+v", s.at, got, s.want)
				}
				if st := b.Members()[0].State; st != s.state0 {
					t.Fatalf("at %d ms: member 0 %q, want %q", s.at, st, s.state0)
				}
				if !b.Carrier() {
					t.Fatalf("at %d ms: no carrier", s.at)
				}
				if p != nil {
					st := b.Status()
					dist := st.Slaves[0].AD != nil && st.Slaves[0].AD.Distributing
					if want := s.state0 != "down"; dist != want {
						t.Fatalf("at %d ms: member 0 distributing %v, want %v (%+v)", s.at, dist, want, st.Slaves[0].AD)
					}
				}
			}
		})
	}
}

// A runtime active_slave names a member; when that member leaves, the
// request goes with it, so the live configuration still validates.
func TestRemoveMemberClearsActiveSlave(t *testing.T) {
	b, _ := newBond(t, parseBond(t, "active-backup", 3, "miimon: 100"))
	if _, err := b.SetActiveSlave(at(10), "eth1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.RemoveMember(at(20), "eth1"); err != nil {
		t.Fatal(err)
	}
	c := b.Config()
	if c.ActiveSlave != "" {
		t.Fatalf("active_slave %q after its member left", c.ActiveSlave)
	}
	cfg := config.Defaults()
	cfg.Bonds = []config.Bond{c}
	if _, err := cfg.Validate(); err != nil {
		t.Fatalf("live configuration no longer validates: %v", err)
	}
}

// A runtime active_slave change is a failover like any other, as
// bonding's bond_change_active_slave: it is logged, the peers are told on
// the new active slave (gratuitous ARPs: a switch would otherwise keep
// sending to the old one, and with nothing sent on the new one it would
// never learn), and fail_over_mac moves the MACs.
func TestRuntimeActiveSlaveIsAFailover(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		check       func(t *testing.T, out Output)
	}{
		{"gratuitous ARPs", "num_grat_arp: 1", nil},
		{"fail_over_mac active", "fail_over_mac: active", func(t *testing.T, out Output) {
			if hm := actionsOf(out, SetHostMAC); len(hm) != 1 || hm[0].MAC.String() != permMAC(1).String() {
				t.Fatalf("host MAC actions %+v", hm)
			}
		}},
		{"fail_over_mac follow", "fail_over_mac: follow", func(t *testing.T, out Output) {
			if mm := actionsOf(out, SetMemberMAC); len(mm) != 2 || mm[0].Member != 1 || mm[0].MAC.String() != bondMAC.String() {
				t.Fatalf("member MAC actions %+v", mm)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newBond(t, parseBond(t, "active-backup", 3, "miimon: 100", tc.extra))
			b.HostAddrs(at(0), []monitor.Addr{{Prefix: netip.MustParsePrefix("10.0.0.2/24")}})
			for ms := 10; ms < 500; ms += 10 { // the start-up notification goes first
				b.Tick(at(ms), TickInput{})
			}
			out, err := b.SetActiveSlave(at(500), "eth1")
			if err != nil {
				t.Fatal(err)
			}
			if b.Snapshot().Active != 1 {
				t.Fatalf("active %d", b.Snapshot().Active)
			}
			if !slices.ContainsFunc(out.Events, func(e Event) bool {
				return e.Msg == "active slave changed" && slices.Contains(e.Args, any("eth0")) && slices.Contains(e.Args, any("eth1"))
			}) {
				t.Fatalf("events %+v", out.Events)
			}
			if tc.check != nil {
				tc.check(t, out)
			}
			garps := 0
			for ms := 500; ms < 1500; ms += 10 {
				o := b.Tick(at(ms), TickInput{})
				if ms == 500 {
					o.Frames = append(out.Frames, o.Frames...)
				}
				for _, f := range o.Frames {
					if a, err := monitor.ParseARP(f.Data); err == nil && a.SenderIP == a.TargetIP && f.Member == 1 {
						garps++
					}
				}
			}
			if garps == 0 {
				t.Fatal("no gratuitous ARP on the new active slave")
			}
			// clearing the request selects again from no active slave, as
			// bonding does: eth0 comes first; the log names the real
			// previous one
			out, err = b.SetActiveSlave(at(1500), "")
			if err != nil {
				t.Fatal(err)
			}
			if b.Snapshot().Active != 0 || !slices.ContainsFunc(out.Events, func(e Event) bool {
				return e.Msg == "active slave changed" && slices.Equal(e.Args, []any{"bond", "bond0", "from", "eth1", "to", "eth0"})
			}) {
				t.Fatalf("clearing active_slave: active %d, events %+v", b.Snapshot().Active, out.Events)
			}
		})
	}
}
