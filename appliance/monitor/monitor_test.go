package monitor

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The active slave loses its path at tick K: bond_ab_arp_inspect takes it
// down once nothing was received for missed_max intervals (the last reply
// came just after tick K-1, so at tick K+missed_max), the backup takes
// over, and the old active comes back one tick after its path returns
// because it sees the new active's broadcast probes through the switch.
func TestABTargetStopsAnswering(t *testing.T) {
	for _, v := range []Validate{ValidateNone, ValidateActive, ValidateBackup, ValidateAll,
		ValidateFilter, ValidateFilterActive, ValidateFilterBackup} {
		for _, missed := range []int{1, 2, 3, 5} {
			t.Run(v.String()+"/missed"+string(rune('0'+missed)), func(t *testing.T) {
				l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target},
					Validate: v, MissedMax: missed, Slaves: slaves(2)})
				const K, R = 10, 30
				l.run(K)
				if len(l.events) != 0 || l.m.Active() != 0 {
					t.Fatalf("steady state: events %v active %d", l.events, l.m.Active())
				}
				l.reach[0] = false
				l.run(R - K)
				l.reach[0] = true
				l.run(10)
				l.wantEvents(0, down(K+missed, 0), up(R+1, 0))
				l.wantEvents(1)
				l.wantEvents(-1, active(K+missed, 1))
				if st := l.m.Slave(0); st.Failures != 1 || st.Active || st.Link != LinkUp {
					t.Fatalf("slave 0 after recovery: %+v", st)
				}
				if !l.m.Slave(1).Active {
					t.Fatal("slave 1 not flagged active")
				}
			})
		}
	}
}

// Backups get one extra check: missed_max+1 intervals.
func TestABBackupExtraInterval(t *testing.T) {
	for _, missed := range []int{1, 2, 4} {
		l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, MissedMax: missed, Slaves: slaves(2)})
		const K = 10
		l.run(K)
		l.reach[1] = false // the backup stops seeing the flooded probes
		l.run(10)
		l.wantEvents(1, down(K+missed+1, 1))
		l.wantEvents(0)
	}
}

// Probes go out on the active slave only, from the bond's address in the
// target's subnet, with the slave's MAC.
func TestABProbes(t *testing.T) {
	cfg := Config{Mode: ActiveBackup, Targets: []netip.Addr{target, netip.MustParseAddr("198.51.100.7")},
		NSTargets: []netip.Addr{target6}, Slaves: slaves(2),
		Addrs: []Addr{
			{Prefix: netip.MustParsePrefix("10.9.9.9/8")},
			{Prefix: netip.MustParsePrefix("192.0.2.10/24"), VLAN: 42},
			{Prefix: netip.MustParsePrefix("fe80::10/64")},
			{Prefix: netip.MustParsePrefix("2001:db8::10/64")},
		}}
	l := newLab(t, cfg)
	l.step()
	if len(l.sent) != 3 {
		t.Fatalf("%d probes", len(l.sent))
	}
	for _, s := range l.sentOn {
		if s != 0 {
			t.Fatalf("probe on slave %d", s)
		}
	}
	a, _ := ParseARP(l.sent[0])
	if a.SenderIP != ourIP || a.VLAN != 42 || a.Src != slaveMAC(0) || a.SenderMAC != slaveMAC(0) || a.Dst != BroadcastMAC {
		t.Fatalf("probe 0: %+v", a)
	}
	a, _ = ParseARP(l.sent[1]) // off-link target: no route, 0.0.0.0, untagged
	if a.SenderIP != netip.IPv4Unspecified() || a.Tagged {
		t.Fatalf("probe 1: %+v", a)
	}
	ns, err := ParseND(l.sent[2])
	if err != nil || ns.IPSrc != ourIP6 || ns.IPDst != SolicitedNode(target6) || ns.Target != target6 || !ns.ChecksumOK {
		t.Fatalf("probe 2: %+v %v", ns, err)
	}
	if st := l.m.Slave(0); st.LastTx != 0 {
		t.Fatalf("last_tx %v", st.LastTx)
	}
	if st := l.m.Slave(1); st.LastTx >= 0 {
		t.Fatalf("backup sent: last_tx %v", st.LastTx)
	}
	if l.m.Tick(50*time.Millisecond) != nil || l.m.Next() != ival {
		t.Fatal("tick before due")
	}
}

// With arp_validate filter*, non-ARP traffic does not keep a slave up.
func TestValidateFilterIgnoresNonARP(t *testing.T) {
	ipv4 := func(l *lab, s int, now time.Duration) { l.m.Traffic(s, EtherTypeIPv4, now) }
	ipv6 := func(l *lab, s int, now time.Duration) { l.m.Traffic(s, EtherTypeIPv6, now) }
	ipv4Rx := func(l *lab, s int, now time.Duration) {
		f := make([]byte, 60)
		copy(f, BroadcastMAC[:])
		f[12], f[13] = 0x08, 0x00
		l.m.Rx(s, f, now)
	}
	foreignARP := func(l *lab, s int, now time.Duration) {
		b := make([]byte, 60)
		n, _ := BuildARPProbe(b, 0, MAC{2, 7, 7, 7, 7, 7}, netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("192.0.2.78"))
		l.m.Rx(s, b[:n], now)
	}
	tests := []struct {
		name  string
		v     Validate
		noise func(*lab, int, time.Duration)
		down  bool
	}{
		{"none/ipv4", ValidateNone, ipv4, false},
		{"filter/ipv4", ValidateFilter, ipv4, true},
		{"filter/ipv4 frame", ValidateFilter, ipv4Rx, true},
		{"filter/foreign arp", ValidateFilter, foreignARP, false},
		{"filter/ipv6", ValidateFilter, ipv6, false}, // bond_rcv_validate counts any IPv6 frame
		{"filter_active/foreign arp", ValidateFilterActive, foreignARP, false},
		{"filter_backup/foreign arp", ValidateFilterBackup, foreignARP, true},
		{"all/foreign arp", ValidateAll, foreignARP, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Validate: tc.v, Slaves: slaves(2)})
			l.alive[target], l.flood = false, false
			l.noise[1] = tc.noise
			l.run(4)
			l.wantEvents(0, down(3, 0)) // no replies: down once the 2.5-interval grace is over
			if tc.down {
				// ... and, nothing being active, it is probed next.
				l.wantEventsUntil(1, 3, down(3, 1), back(3, 1))
			} else {
				l.wantEvents(1)
				l.wantEvents(-1, active(3, 1))
			}
		})
	}
}

// rxCase feeds one frame to a slave and says whether it must count.
type rxCase struct {
	name  string
	frame func(t *testing.T) []byte
	// want[v] for slave 0 (active) and slave 1 (backup)
	active, backup map[Validate]bool
}

func arpFrame(t *testing.T, dst MAC, op uint16, sip, tip netip.Addr) []byte {
	return arpFrameTB(t, dst, op, sip, tip)
}

func arpFrameTB(t testing.TB, dst MAC, op uint16, sip, tip netip.Addr) []byte {
	t.Helper()
	b := make([]byte, 64)
	a := ARP{Dst: dst, Src: peerMAC, Op: op, SenderMAC: peerMAC, SenderIP: sip, TargetIP: tip}
	n, err := BuildARP(b, &a)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func all(v bool) map[Validate]bool {
	return map[Validate]bool{ValidateNone: v, ValidateActive: v, ValidateBackup: v, ValidateAll: v}
}

// onlyUnvalidated: counted exactly when the slave does not validate.
func onlyUnvalidated(role Validate) map[Validate]bool {
	m := all(true)
	m[role], m[ValidateAll] = false, false
	return m
}

// Validation rules of bond_arp_rcv / bond_na_rcv for the active slave
// (case a) and a backup (case b: swapped, once the active has received).
func TestValidationRules(t *testing.T) {
	other := netip.MustParseAddr("192.0.2.99")
	cases := []rxCase{
		{"reply target->us", func(t *testing.T) []byte { return arpFrame(t, slaveMAC(0), ARPReply, target, ourIP) },
			all(true), onlyUnvalidated(ValidateBackup)},
		{"reply non-target", func(t *testing.T) []byte { return arpFrame(t, slaveMAC(0), ARPReply, other, ourIP) },
			onlyUnvalidated(ValidateActive), onlyUnvalidated(ValidateBackup)},
		{"reply to other ip", func(t *testing.T) []byte { return arpFrame(t, slaveMAC(0), ARPReply, target, other) },
			onlyUnvalidated(ValidateActive), onlyUnvalidated(ValidateBackup)},
		{"our broadcast probe", func(t *testing.T) []byte { return arpFrame(t, BroadcastMAC, ARPRequest, ourIP, target) },
			onlyUnvalidated(ValidateActive), all(true)},
		{"reply to other station", func(t *testing.T) []byte { return arpFrame(t, MAC{2, 1, 2, 3, 4, 5}, ARPReply, target, ourIP) },
			onlyUnvalidated(ValidateActive), onlyUnvalidated(ValidateBackup)},
		{"na target->us", func(t *testing.T) []byte {
			b := make([]byte, 128)
			return b[:buildNA(t, b, slaveMAC(0), target6, ourIP6)]
		}, all(true), onlyUnvalidated(ValidateBackup)},
		{"unsolicited na target", func(t *testing.T) []byte {
			b := make([]byte, 128)
			n, _ := BuildUnsolicitedNA(b, 0, peerMAC, target6, false)
			return b[:n]
		}, all(true), onlyUnvalidated(ValidateBackup)},
		{"our ns", func(t *testing.T) []byte {
			b := make([]byte, 128)
			n, _ := BuildNS(b, 0, slaveMAC(0), ourIP6, target6)
			return b[:n]
		}, onlyUnvalidated(ValidateActive), all(true)},
		{"ipv4", func(t *testing.T) []byte {
			f := make([]byte, 60)
			f[12] = 0x08
			return f
		}, onlyUnvalidated(ValidateActive), onlyUnvalidated(ValidateBackup)},
	}
	for _, tc := range cases {
		for _, v := range []Validate{ValidateNone, ValidateActive, ValidateBackup, ValidateAll} {
			for slave, want := range []map[Validate]bool{tc.active, tc.backup} {
				m, err := New(Config{Mode: ActiveBackup, Interval: ival, Targets: []netip.Addr{target},
					NSTargets: []netip.Addr{target6}, Validate: v, Slaves: slaves(2), Addrs: ourAddr}, 0)
				if err != nil {
					t.Fatal(err)
				}
				m.Tick(0) // probes sent on slave 0
				// The active has received a validated reply since it
				// became active (bond_arp_rcv case b holds).
				if !m.Rx(0, arpFrame(t, slaveMAC(0), ARPReply, target, ourIP), 5*time.Millisecond) {
					t.Fatal("reply on active not counted")
				}
				before := m.Slave(slave).LastRx
				f := tc.frame(t)
				if slave == 1 {
					// Same frame as seen on the backup: unicast to it.
					if d, s1 := MAC(f[0:6]), slaveMAC(1); d == slaveMAC(0) {
						copy(f[0:6], s1[:])
					}
				}
				got := m.Rx(slave, f, 10*time.Millisecond)
				if got != want[v] || (m.Slave(slave).LastRx != before) != got {
					t.Errorf("%s on slave %d, arp_validate %v: counted %v, want %v", tc.name, slave, v, got, want[v])
				}
			}
		}
	}
}

// With no active slave, bond_ab_arp_probe rotates current_arp_slave over
// the slaves with carrier (BACK, then FAIL when unanswered); the first one
// answered comes up and becomes active.
func TestABProbeRotation(t *testing.T) {
	l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Validate: ValidateAll, Slaves: slaves(3)})
	l.alive[target], l.flood = false, false
	l.run(3) // ticks 0..2: grace
	l.m.SetLink(2, false)
	l.step() // tick 3: everything down, slave 1 probed
	l.wantEvents(-1, active(3, -1))
	if l.m.ARPSlave() != 1 {
		t.Fatalf("arp slave %d", l.m.ARPSlave())
	}
	l.step() // tick 4: slave 1 unanswered -> FAIL, slave 0 probed (slave 2 has no carrier)
	if l.m.ARPSlave() != 0 || len(l.sent) != 1 || l.sentOn[0] != 0 {
		t.Fatalf("tick 4: arp slave %d, probes on %v", l.m.ARPSlave(), l.sentOn)
	}
	l.alive[target] = true
	l.step() // tick 5: slave 0 -> FAIL, slave 1 probed again, answered
	l.step() // tick 6: slave 1 -> up and active
	l.flood = true
	l.reach[2] = false // no carrier
	l.run(3)           // slave 0 sees slave 1's probes from tick 7: up at tick 8
	l.wantEvents(0, down(3, 0), back(4, 0), fail(5, 0), up(8, 0))
	l.wantEvents(1, down(3, 1), back(3, 1), fail(4, 1), back(5, 1), up(6, 1))
	l.wantEvents(2, down(3, 2))
	l.wantEvents(-1, active(3, -1), active(6, 1))
	if l.m.ARPSlave() != -1 || l.m.Active() != 1 {
		t.Fatalf("arp slave %d active %d", l.m.ARPSlave(), l.m.Active())
	}
}

// bond_arp_rcv case (c): while searching, a reply on any slave counts if
// the current ARP slave sent a probe within the last interval; a request
// does not.
func TestValidationCurrentARPSlave(t *testing.T) {
	m, err := New(Config{Mode: ActiveBackup, Interval: ival, Targets: []netip.Addr{target},
		Validate: ValidateAll, Slaves: slaves(3), Addrs: ourAddr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 4 {
		m.Tick(time.Duration(k) * ival)
	}
	if m.Active() != -1 || m.ARPSlave() != 1 {
		t.Fatalf("active %d arp slave %d", m.Active(), m.ARPSlave())
	}
	now := 3*ival + 10*time.Millisecond
	if m.Rx(2, arpFrame(t, slaveMAC(2), ARPRequest, target, ourIP), now) {
		t.Fatal("request counted")
	}
	if !m.Rx(2, arpFrame(t, slaveMAC(2), ARPReply, target, ourIP), now) {
		t.Fatal("reply not counted")
	}
	if m.Rx(2, arpFrame(t, slaveMAC(2), ARPReply, target, ourIP), 5*ival+time.Millisecond) {
		t.Fatal("reply counted long after the probe")
	}
}

func TestAllTargets(t *testing.T) {
	t2 := netip.MustParseAddr("2001:db8::2")
	tests := []struct {
		name    string
		all     AllTargets
		targets []netip.Addr
		ns      []netip.Addr
		dead    netip.Addr
		down    bool
	}{
		{"any/one dead", TargetsAny, []netip.Addr{target, target2}, nil, target2, false},
		{"all/one dead", TargetsAll, []netip.Addr{target, target2}, nil, target2, true},
		{"all/none dead", TargetsAll, []netip.Addr{target, target2}, nil, netip.Addr{}, false},
		{"all/ns dead", TargetsAll, []netip.Addr{target}, []netip.Addr{target6}, target6, true},
		{"any/ns dead", TargetsAny, []netip.Addr{target}, []netip.Addr{target6}, target6, false},
		{"all/ns only, one dead", TargetsAll, nil, []netip.Addr{target6, t2}, t2, true},
		{"all/ns only", TargetsAll, nil, []netip.Addr{target6, t2}, netip.Addr{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, Config{Mode: ActiveBackup, Targets: tc.targets, NSTargets: tc.ns,
				Validate: ValidateAll, AllTargets: tc.all, Slaves: slaves(2)})
			if tc.dead.IsValid() {
				l.alive[tc.dead] = false
			}
			l.run(10)
			if tc.down {
				l.wantEventsUntil(0, 3, down(3, 0))
			} else {
				l.wantEvents(0)
				l.wantEvents(1)
			}
		})
	}
}

// The NS monitor follows the same rules as the ARP monitor.
func TestNSMonitor(t *testing.T) {
	for _, v := range []Validate{ValidateNone, ValidateActive, ValidateAll} {
		t.Run(v.String(), func(t *testing.T) {
			l := newLab(t, Config{Mode: ActiveBackup, NSTargets: []netip.Addr{target6}, Validate: v, Slaves: slaves(2)})
			l.run(10)
			l.reach[0] = false
			l.run(10)
			l.reach[0] = true
			l.run(5)
			l.wantEvents(0, down(12, 0), up(21, 0))
			l.wantEvents(-1, active(12, 1))
			if len(l.sent) != 1 || l.sentOn[0] != 1 {
				t.Fatalf("probes on %v", l.sentOn)
			}
		})
	}
	// A bond without IPv6 address solicits from ::; the answer goes to
	// ff02::1 and validates.
	l := newLab(t, Config{Mode: ActiveBackup, NSTargets: []netip.Addr{target6}, Validate: ValidateAll,
		Slaves: slaves(2), Addrs: []Addr{{Prefix: netip.MustParsePrefix("192.0.2.10/24")}}})
	l.run(10)
	ns, _ := ParseND(l.sent[0])
	if !ns.IPSrc.IsUnspecified() || ns.HasLinkAddr {
		t.Fatalf("NS from %v with SLLAO %v", ns.IPSrc, ns.HasLinkAddr)
	}
	l.wantEvents(0)
}

// Load-balancing modes judge every slave on probes sent and traffic
// received, probe all slaves with carrier, and move curr_active_slave when
// it fails.
func TestLoadBalance(t *testing.T) {
	for _, missed := range []int{1, 2, 3} {
		l := newLab(t, Config{Mode: LoadBalance, Targets: []netip.Addr{target}, MissedMax: missed, Slaves: slaves(3)})
		l.flood = false
		l.run(5)
		if len(l.sent) != 3 || len(l.events) != 0 || l.m.Active() != 0 {
			t.Fatalf("steady: %d probes, events %v, active %d", len(l.sent), l.events, l.m.Active())
		}
		l.reach[2] = false
		l.run(10)
		l.reach[2] = true
		l.run(3)
		l.wantEvents(2, down(5+missed, 2), up(16, 2))
		l.reach[0] = false
		l.run(10)
		l.wantEvents(0, down(18+missed, 0))
		l.wantEvents(-1, active(18+missed, 1))
		if l.m.Slave(0).Active || !l.m.Slave(1).Active {
			t.Fatal("slave state flags not following links")
		}
		// Without carrier a slave is not probed, so it stays down.
		l.m.SetLink(0, false)
		l.reach[0] = true
		l.run(5)
		l.wantEvents(0, down(18+missed, 0))
		l.m.SetLink(0, true)
		l.run(2)
		l.wantEvents(0, down(18+missed, 0), up(l.tick-1, 0))
	}
}

// In load-balancing modes any received frame counts unless arp_validate
// filters or validates.
func TestLoadBalanceTraffic(t *testing.T) {
	l := newLab(t, Config{Mode: LoadBalance, Targets: []netip.Addr{target}, Slaves: slaves(2)})
	l.alive[target], l.flood = false, false
	l.noise[1] = func(l *lab, s int, now time.Duration) { l.m.Traffic(s, EtherTypeIPv4, now) }
	l.run(10)
	l.wantEvents(0, down(2, 0))
	l.wantEvents(1)
	l.wantEvents(-1, active(2, 1))
}

func TestPrimaryAndPrio(t *testing.T) {
	s := slaves(3)
	s[2].Primary = true
	l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Slaves: s})
	if l.m.Active() != 2 {
		t.Fatalf("primary not selected: %d", l.m.Active())
	}
	l.run(5)
	l.reach[2] = false
	l.run(5)
	l.wantEvents(-1, active(7, 0))
	l.reach[2] = true
	l.run(3)
	// The primary comes back: bond_ab_arp_commit fails over to it.
	l.wantEvents(2, down(7, 2), up(11, 2))
	l.wantEvents(-1, active(7, 0), active(11, 2))

	s = slaves(2)
	s[1].Prio = 5
	l = newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Slaves: s})
	if l.m.Active() != 1 {
		t.Fatalf("highest prio not selected: %d", l.m.Active())
	}
	s = slaves(2)
	s[0].Primary = true
	s[0].Speed, s[1].Speed = 100, 1000
	l = newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Slaves: s, PrimaryReselect: ReselectBetter})
	l.run(5)
	l.reach[0] = false
	l.run(5)
	l.reach[0] = true
	l.run(3)
	l.wantEvents(-1, active(7, 1)) // primary slower: stays on slave 1
}

func TestSetActive(t *testing.T) {
	l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Slaves: slaves(3)})
	l.run(2)
	acts := l.m.Tick(2 * ival)
	n := len(acts)
	if !l.m.SetActive(2, 2*ival+time.Millisecond) || l.m.Active() != 2 {
		t.Fatal("SetActive refused")
	}
	if len(acts) != n || acts[0].Kind != ActionSend || acts[0].Slave != 0 {
		t.Fatal("SetActive clobbered the last Tick's actions")
	}
	if st := l.m.Slave(2); !st.Active || st.LastLinkUp != 2*ival+time.Millisecond {
		t.Fatalf("new active %+v", st)
	}
	if l.m.Slave(0).Active {
		t.Fatal("old active still flagged active")
	}
	l.m.SetLink(1, false)
	if l.m.SetActive(1, 3*ival) {
		t.Fatal("SetActive to a slave without carrier")
	}
	if !l.m.SetActive(-1, 3*ival) || l.m.Active() != 0 {
		t.Fatalf("clear: active %d", l.m.Active())
	}
	lb := newLab(t, Config{Mode: LoadBalance, Targets: []netip.Addr{target}, Slaves: slaves(2)})
	if lb.m.SetActive(1, 0) {
		t.Fatal("SetActive in load-balancing mode")
	}
}

func TestSetAddrs(t *testing.T) {
	l := newLab(t, Config{Mode: ActiveBackup, Targets: []netip.Addr{target}, Validate: ValidateActive,
		Slaves: slaves(2), Addrs: []Addr{}})
	l.step()
	a, _ := ParseARP(l.sent[0])
	if !a.SenderIP.IsUnspecified() {
		t.Fatalf("source %v without address", a.SenderIP)
	}
	// Replies to 0.0.0.0 never validate: the active goes down.
	l.run(3)
	l.wantEvents(0, down(3, 0))
	if err := l.m.SetAddrs(ourAddr); err != nil {
		t.Fatal(err)
	}
	l.step()
	a, _ = ParseARP(l.sent[0])
	if a.SenderIP != ourIP {
		t.Fatalf("source %v", a.SenderIP)
	}
	if err := l.m.SetAddrs([]Addr{{}}); err == nil {
		t.Fatal("invalid prefix accepted")
	}
}

func TestNewErrors(t *testing.T) {
	ok := Config{Mode: ActiveBackup, Interval: ival, Targets: []netip.Addr{target}, Slaves: slaves(1)}
	many := make([]netip.Addr, 17)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"mode", func(c *Config) { c.Mode = 9 }, "mode"},
		{"interval", func(c *Config) { c.Interval = 0 }, "arp_interval"},
		{"validate", func(c *Config) { c.Validate = 7 }, "arp_validate"},
		{"all targets", func(c *Config) { c.AllTargets = 2 }, "arp_all_targets"},
		{"missed", func(c *Config) { c.MissedMax = 256 }, "arp_missed_max"},
		{"missed negative", func(c *Config) { c.MissedMax = -1 }, "arp_missed_max"},
		{"reselect", func(c *Config) { c.PrimaryReselect = 3 }, "primary_reselect"},
		{"no slaves", func(c *Config) { c.Slaves = nil }, "no slaves"},
		{"no targets", func(c *Config) { c.Targets = nil }, "no arp_ip_target"},
		{"17 targets", func(c *Config) { c.Targets = many }, "more than 16"},
		{"zeronet", func(c *Config) { c.Targets = []netip.Addr{netip.MustParseAddr("0.1.2.3")} }, "invalid"},
		{"broadcast", func(c *Config) { c.Targets = []netip.Addr{netip.MustParseAddr("255.255.255.255")} }, "invalid"},
		{"v6 in v4", func(c *Config) { c.Targets = []netip.Addr{target6} }, "not IPv4"},
		{"dup", func(c *Config) { c.Targets = []netip.Addr{target, target} }, "duplicate"},
		{"ns multicast", func(c *Config) { c.NSTargets = []netip.Addr{netip.MustParseAddr("ff02::1")} }, "invalid ns"},
		{"ns loopback", func(c *Config) { c.NSTargets = []netip.Addr{netip.IPv6Loopback()} }, "invalid ns"},
		{"ns dup", func(c *Config) { c.NSTargets = []netip.Addr{target6, target6} }, "duplicate"},
		{"addr vlan", func(c *Config) { c.Addrs = []Addr{{Prefix: netip.MustParsePrefix("10.0.0.1/8"), VLAN: 4095}} }, "VLAN"},
	}
	for _, tc := range tests {
		c := ok
		tc.mod(&c)
		_, err := New(c, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(ok, 0); err != nil {
		t.Fatal(err)
	}
}

func TestMonitorAllocs(t *testing.T) {
	m, err := New(Config{Mode: LoadBalance, Interval: ival, Targets: []netip.Addr{target, target2},
		NSTargets: []netip.Addr{target6}, Validate: ValidateAll, Slaves: slaves(4), Addrs: ourAddr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	reply := arpFrame(t, slaveMAC(0), ARPReply, target, ourIP)
	b := make([]byte, 128)
	na := b[:buildNA(t, b, slaveMAC(0), target6, ourIP6)]
	now := time.Duration(0)
	if a := testing.AllocsPerRun(200, func() {
		m.Tick(now)
		m.Rx(0, reply, now+time.Millisecond)
		m.Rx(0, na, now+time.Millisecond)
		m.Traffic(1, EtherTypeIPv4, now)
		now += ival
	}); a != 0 {
		t.Fatalf("%v allocs per tick", a)
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []interface{ String() string }{ActiveBackup, LoadBalance, ValidateFilterBackup, Validate(9),
		LinkUp, LinkFail, LinkDown, LinkBack, LinkState(9), ActionSend, ActionLink, ActionActive, ActionKind(0),
		ReasonReceived, ReasonReselect, Reason(99), testMAC} {
		if s.String() == "" {
			t.Errorf("%#v: empty String", s)
		}
	}
}
