package appliance

import (
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/policy"
)

func testBond(mode policy.Mode, n int, mutate func(*config.Bond)) *bond {
	names := []string{"eth0", "eth1", "eth2", "eth3"}[:n]
	bc := config.DefaultBond("bond0", names...)
	bc.Mode = int(mode)
	if mutate != nil {
		mutate(&bc)
	}
	b := &bond{cfg: bc, mode: mode, active: -1, lanes: []*lane.Bond{{}}}
	for i, s := range bc.Slaves {
		b.members = append(b.members, &member{idx: i, cfg: s, name: s.Name, state: linkUp, carrier: true, speed: 1000, duplex: "full"})
	}
	return b
}

func TestUpdateLinkDelays(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at      int
		carrier bool
		want    linkState
	}
	tests := []struct {
		name     string
		up, down int
		steps    []step
		failures int
	}{
		{"no delays", 0, 0, []step{{0, false, linkDown}, {10, true, linkUp}}, 1},
		{"downdelay holds", 0, 200, []step{{0, false, linkFail}, {100, false, linkFail}, {200, false, linkDown}}, 1},
		{"recovers within downdelay", 0, 200, []step{{0, false, linkFail}, {100, true, linkUp}}, 0},
		{"updelay holds", 300, 0, []step{{0, false, linkDown}, {10, true, linkBack}, {200, true, linkBack}, {310, true, linkUp}}, 1},
		{"lost again during updelay", 300, 0, []step{{0, false, linkDown}, {10, true, linkBack}, {50, false, linkDown}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := testBond(policy.ActiveBackup, 1, func(c *config.Bond) { c.Updelay, c.Downdelay = tc.up, tc.down })
			m := b.members[0]
			for _, s := range tc.steps {
				b.updateLink(m, s.carrier, ms(s.at))
				if m.state != s.want {
					t.Fatalf("at %d ms carrier %v: state %v, want %v", s.at, s.carrier, m.state, s.want)
				}
			}
			if m.failures != tc.failures {
				t.Fatalf("link failure count %d, want %d", m.failures, tc.failures)
			}
		})
	}
}

func TestSelectActive(t *testing.T) {
	tests := []struct {
		name     string
		primary  string
		reselect int
		prio     []int
		speeds   []int
		cur      int
		down     []int
		want     string
	}{
		{"first up slave without primary", "", 0, nil, nil, -1, nil, "eth0"},
		{"highest prio", "", 0, []int{0, 5, 1}, nil, -1, nil, "eth1"},
		{"primary wins", "eth2", 0, nil, nil, -1, nil, "eth2"},
		{"current kept when up and no primary", "", 0, nil, nil, 1, nil, "eth1"},
		{"failover off a down current", "", 0, nil, nil, 0, []int{0}, "eth1"},
		{"primary_reselect always takes primary back", "eth0", 0, nil, nil, 1, nil, "eth0"},
		{"primary_reselect better: not better, keep", "eth0", 1, nil, []int{1000, 1000, 1000}, 1, nil, "eth1"},
		{"primary_reselect better: faster primary", "eth0", 1, nil, []int{10000, 1000, 1000}, 1, nil, "eth0"},
		{"primary_reselect failure keeps current", "eth0", 2, nil, nil, 1, nil, "eth1"},
		{"primary_reselect failure: current down -> primary", "eth0", 2, nil, nil, 1, []int{1}, "eth0"},
		{"all down", "", 0, nil, nil, 0, []int{0, 1, 2}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := testBond(policy.ActiveBackup, 3, func(c *config.Bond) {
				c.Primary, c.PrimaryReselect = tc.primary, tc.reselect
				for i := range c.Slaves {
					if tc.prio != nil {
						c.Slaves[i].Prio = tc.prio[i]
					}
				}
			})
			for i, m := range b.members {
				m.cfg = b.cfg.Slaves[i]
				if tc.speeds != nil {
					m.speed = tc.speeds[i]
				}
			}
			for _, d := range tc.down {
				b.members[d].state = linkDown
			}
			b.active = tc.cur
			b.rebuild()
			got := ""
			if b.active >= 0 {
				got = b.members[b.active].name
			}
			if got != tc.want {
				t.Fatalf("active %q, want %q", got, tc.want)
			}
			s := b.lanes[0].Snapshot()
			if tc.want == "" {
				if len(s.TX) != 0 || b.carrier {
					t.Fatalf("no slave up but snapshot TX %v carrier %v", s.TX, b.carrier)
				}
				return
			}
			if len(s.TX) != 1 || s.TX[0] != b.active || s.RX != 1<<uint(b.active) {
				t.Fatalf("snapshot %+v for active %d", s, b.active)
			}
		})
	}
}

func TestSnapshotModes(t *testing.T) {
	for _, mode := range []policy.Mode{policy.BalanceRR, policy.BalanceXOR, policy.Broadcast} {
		b := testBond(mode, 3, nil)
		b.members[1].state = linkDown
		var carrier []bool
		b.onCarrier = func(up bool) { carrier = append(carrier, up) }
		b.rebuild()
		s := b.lanes[0].Snapshot()
		if len(s.TX) != 2 || s.TX[0] != 0 || s.TX[1] != 2 || s.RX != 7 || s.Mode != mode {
			t.Fatalf("%v: snapshot %+v", mode, s)
		}
		for _, m := range b.members {
			m.state = linkDown
		}
		b.rebuild()
		if len(carrier) != 2 || !carrier[0] || carrier[1] {
			t.Fatalf("%v: host carrier changes %v, want [true false]", mode, carrier)
		}
	}
	b := testBond(policy.ActiveBackup, 2, func(c *config.Bond) { c.AllSlavesActive = true })
	b.rebuild()
	if s := b.lanes[0].Snapshot(); s.RX != 3 {
		t.Fatalf("all_slaves_active: RX mask %b", s.RX)
	}
}

func TestFormatText(t *testing.T) {
	b := testBond(policy.ActiveBackup, 2, func(c *config.Bond) { c.Primary = "eth1"; c.Miimon = 100 })
	b.members[0].failures = 2
	b.mac = []byte{2, 0, 0, 0, 0, 1}
	b.rebuild()
	st := &Status{Version: "test", Bonds: []BondStatus{b.status("veth")}}
	txt := FormatText(st)
	for _, want := range []string{
		"Bonding Mode: fault-tolerance (active-backup)\n",
		"Primary Slave: eth1 (primary_reselect always (0))\n",
		"Currently Active Slave: eth1\n",
		"MII Status: up\n",
		"MII Polling Interval (ms): 100\n",
		"Slave Interface: eth0\nMII Status: up\nSpeed: 1000 Mbps\nDuplex: full\nLink Failure Count: 2\n",
	} {
		if !strings.Contains(txt, want) {
			t.Fatalf("status text lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "Transmit Hash Policy") {
		t.Fatal("active-backup prints no transmit hash policy")
	}
	b = testBond(policy.BalanceXOR, 2, func(c *config.Bond) { c.XmitHashPolicy = int(policy.Layer34) })
	b.hash = policy.Layer34
	b.rebuild()
	txt = FormatText(&Status{Bonds: []BondStatus{b.status("veth")}})
	if !strings.Contains(txt, "Transmit Hash Policy: layer3+4 (1)\n") {
		t.Fatalf("xor status:\n%s", txt)
	}
}

func TestIGMPGroups(t *testing.T) {
	data := []byte("Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n" +
		"1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n" +
		"5\tbond0     :     2      V3\n\t\t\t\t010101EF     1 0:00000000\t\t0\n\t\t\t\t010000E0     1 0:00000000\t\t0\n")
	g := igmpGroups(data, "bond0")
	if len(g) != 2 || g[0].Addr.String() != "239.1.1.1" || g[1].Addr.String() != "224.0.0.1" {
		t.Fatalf("groups %v", g)
	}
	if len(igmpGroups(data, "eth9")) != 0 {
		t.Fatal("groups for an absent device")
	}
}
