package policy

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Frame builders for the tlb/alb tests (with explicit MACs, unlike the
// hash tests' fixed ones).

func amac(n int) MAC { return MAC{0x02, 0, 0, 0, byte(n >> 8), byte(n)} }

func aeth(dst, src MAC, etype uint16) []byte {
	return binary.BigEndian.AppendUint16(cat(dst[:], src[:]), etype)
}

func atagged(dst, src MAC, tci, etype uint16) []byte {
	return cat(dst[:], src[:], u16(ethP8021Q), u16(tci), u16(etype))
}

func aipv4(dst, src MAC, sip, dip string, proto byte, payload int) []byte {
	h := make([]byte, 20+payload)
	h[0], h[9] = 0x45, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+payload))
	copy(h[12:], addr4(sip))
	copy(h[16:], addr4(dip))
	return cat(aeth(dst, src, ethPIPv4), h)
}

// aipv6 builds an IPv6 frame; icmpType >= 0 adds an ICMPv6 header.
func aipv6(dst, src MAC, sip, dip string, icmpType int) []byte {
	h := make([]byte, 48)
	h[0], h[6] = 0x60, ipprotoUDP
	if icmpType >= 0 {
		h[6], h[40] = ipprotoICMPv6, byte(icmpType)
	}
	copy(h[8:], addr16(sip))
	copy(h[24:], addr16(dip))
	return cat(aeth(dst, src, ethPIPv6), h)
}

func aarp(dst, src MAC, tci uint16) []byte {
	b := aeth(dst, src, ethPARP)
	if tci != 0 {
		b = atagged(dst, src, tci, ethPARP)
	}
	p := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	p = cat(p, src[:], addr4("10.0.0.1"), make([]byte, 6), addr4("10.0.0.2"))
	return cat(b, p)
}

// fnvHash stands in for bond_xmit_hash.
func fnvHash(f []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range f {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

func TestTLBHashIndex(t *testing.T) {
	ucast, bond := amac(99), amac(1)
	igmp := aipv4(MAC{0x01, 0, 0x5e, 0, 0, 1}, bond, "10.0.0.1", "224.0.0.1", ipprotoIGMP, 8)
	mcastUDP := aipv4(MAC{0x01, 0, 0x5e, 0, 0, 9}, bond, "10.0.0.1", "239.0.0.9", 17, 8)
	tcpf := aipv4(ucast, bond, "10.0.0.1", "10.1.2.3", 6, 20)
	tcpTagged := cat(atagged(ucast, bond, 7, ethPIPv4), tcpf[ethHdrLen:])
	qinq := cat(atagged(ucast, bond, 7, ethP8021Q), tcpTagged[ethHdrLen:])
	limited := aipv4(BroadcastMAC, bond, "10.0.0.1", "255.255.255.255", 17, 8)
	ipBcastUcastMAC := aipv4(ucast, bond, "10.0.0.1", "255.255.255.255", 17, 8)
	v6 := aipv6(ucast, bond, "2001:db8::1", "2001:db8::2:3", -1)
	v6ns := aipv6(MAC{0x33, 0x33, 0xff, 0, 0, 2}, bond, "2001:db8::1", "ff02::1:ff00:2", ndNS)
	v6naUcast := aipv6(ucast, bond, "2001:db8::1", "2001:db8::2", ndNA)
	v6echo := aipv6(ucast, bond, "2001:db8::1", "2001:db8::2", 128)
	v6allNodes := aipv6(v6AllNodes, bond, "fe80::1", "ff02::1", 128)
	v6dad := aipv6(ucast, bond, "::", "2001:db8::2", 128)
	v6short := aipv6(ucast, bond, "2001:db8::1", "2001:db8::2", -1)[:ethHdrLen+30]
	arpReq := aarp(BroadcastMAC, bond, 0)
	v4short := tcpf[:ethHdrLen+19]

	simple4 := uint32(10 ^ 1 ^ 2 ^ 3)
	simple6 := uint32(simpleHash(addr16("2001:db8::2:3")))
	for _, tc := range []struct {
		name      string
		frame     []byte
		mode      Mode
		dynamic   bool
		useActive bool
		hash      uint32 // 0: the fnv hash
	}{
		{"tlb/tcp", tcpf, BalanceTLB, true, false, 0},
		{"tlb/tcp tagged", tcpTagged, BalanceTLB, true, false, 0},
		{"tlb/qinq is not IP", qinq, BalanceTLB, true, true, 0},
		{"tlb/multicast", mcastUDP, BalanceTLB, true, true, 0},
		{"tlb/broadcast", limited, BalanceTLB, true, true, 0},
		{"tlb/ipv4 bcast to unicast MAC", ipBcastUcastMAC, BalanceTLB, true, false, 0},
		{"tlb/ipv6", v6, BalanceTLB, true, false, 0},
		{"tlb/ipv6 echo", v6echo, BalanceTLB, true, false, 0},
		{"tlb/ipv6 NA unicast", v6naUcast, BalanceTLB, true, true, 0},
		{"tlb/ipv6 truncated", v6short, BalanceTLB, true, true, 0},
		{"tlb/arp", arpReq, BalanceTLB, true, true, 0},
		{"tlb/not dynamic", tcpf, BalanceTLB, false, false, 0},
		{"tlb/runt", tcpf[:10], BalanceTLB, true, true, 0},
		{"alb/tcp", tcpf, BalanceALB, true, false, simple4},
		{"alb/tcp tagged", tcpTagged, BalanceALB, true, false, simple4},
		{"alb/tcp not dynamic", tcpf, BalanceALB, false, false, 0},
		{"alb/multicast udp is balanced", mcastUDP, BalanceALB, true, false, uint32(239 ^ 9)},
		{"alb/igmp", igmp, BalanceALB, true, true, 0},
		{"alb/limited broadcast", limited, BalanceALB, true, true, 0},
		{"alb/255.255.255.255 to unicast MAC", ipBcastUcastMAC, BalanceALB, true, true, 0},
		{"alb/ipv4 truncated", v4short, BalanceALB, true, true, 0},
		{"alb/ipv6", v6, BalanceALB, true, false, simple6},
		{"alb/ipv6 NS", v6ns, BalanceALB, true, true, 0},
		{"alb/ipv6 all nodes", v6allNodes, BalanceALB, true, true, 0},
		{"alb/ipv6 DAD", v6dad, BalanceALB, true, true, 0},
		{"alb/arp", arpReq, BalanceALB, true, true, 0},
		{"alb/runt", tcpf[:13], BalanceALB, true, true, 0},
		{"alb/empty", nil, BalanceALB, true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			h, ua := TLBHashIndex(tc.frame, tc.mode, tc.dynamic, func(f []byte) uint32 { calls++; return fnvHash(f) })
			if ua != tc.useActive {
				t.Fatalf("useActive %t, want %t", ua, tc.useActive)
			}
			if ua {
				if calls != 0 {
					t.Fatal("xmitHash called for an unbalanced frame")
				}
				return
			}
			want := tc.hash
			if want == 0 {
				want = fnvHash(tc.frame)
			}
			if h != want {
				t.Fatalf("hash %#x, want %#x", h, want)
			}
		})
	}
}

// albTable is a two-slave table: slave i has address amac(i+1), the bond
// amac(1), slave 0 active, every hash index on slot[i] = i%2.
func albTable(mode Mode, dynamic, allActive bool) *ALBTable {
	t := &ALBTable{Mode: mode, Dynamic: dynamic, RLB: mode == BalanceALB, AllSlavesActive: allActive,
		Active: 0, Usable: []int{0, 1}, Bond: amac(1)}
	for i := range t.Slot {
		t.Slot[i] = int8(i % 2)
	}
	t.MAC[0], t.MAC[1] = amac(1), amac(2)
	return t
}

func TestALBPick(t *testing.T) {
	tcpf := aipv4(amac(99), amac(1), "10.0.0.1", "10.1.2.3", 6, 20)
	idx := int(10 ^ 1 ^ 2 ^ 3) // simple hash of 10.1.2.3
	igmp := aipv4(MAC{0x01, 0, 0x5e, 0, 0, 1}, amac(1), "10.0.0.1", "224.0.0.1", ipprotoIGMP, 8)
	arpReq := aarp(BroadcastMAC, amac(1), 0)
	noActive := albTable(BalanceALB, true, false)
	noActive.Active = -1
	for i := range noActive.Slot {
		noActive.Slot[i] = -1
	}
	for _, tc := range []struct {
		name           string
		tab            *ALBTable
		frame          []byte
		slave, counter int
	}{
		{"alb balanced", albTable(BalanceALB, true, false), tcpf, idx % 2, idx},
		{"alb arp to control", albTable(BalanceALB, true, false), arpReq, ALBToControl, -1},
		{"alb tagged arp to control", albTable(BalanceALB, true, false), aarp(BroadcastMAC, amac(1), 5), ALBToControl, -1},
		{"alb igmp unbalanced", albTable(BalanceALB, true, false), igmp, 0, ALBUnbalanced},
		{"alb not dynamic", albTable(BalanceALB, false, false), tcpf, int(fnvHash(tcpf) % 2), -1},
		{"tlb arp on active", albTable(BalanceTLB, true, false), arpReq, 0, ALBUnbalanced},
		{"tlb balanced", albTable(BalanceTLB, true, false), tcpf, int(uint8(fnvHash(tcpf))) % 2, int(uint8(fnvHash(tcpf)))},
		{"no slave", noActive, tcpf, -1, ALBUnbalanced},
		{"runt", albTable(BalanceALB, true, false), []byte{1}, 0, ALBUnbalanced},
		{"empty", albTable(BalanceTLB, false, false), nil, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := tc.tab.Pick(tc.frame, fnvHash)
			if s != tc.slave || c != tc.counter {
				t.Fatalf("Pick = %d,%d want %d,%d", s, c, tc.slave, tc.counter)
			}
		})
	}
}

func TestALBSetSource(t *testing.T) {
	tab := albTable(BalanceTLB, true, false)
	tcpf := aipv4(amac(99), amac(1), "10.0.0.1", "10.1.2.3", 6, 20)
	for _, tc := range []struct {
		name  string
		frame []byte
		slave int
		src   MAC // expected source afterwards (zero: frame unchanged)
	}{
		{"active keeps the bond's", bytes.Clone(tcpf), 0, MAC{}},
		{"other slave gets its own", bytes.Clone(tcpf), 1, amac(2)},
		{"short frame", bytes.Clone(tcpf[:11]), 1, MAC{}},
		{"bad slave", bytes.Clone(tcpf), 200, MAC{}},
		{"negative slave", bytes.Clone(tcpf), -1, MAC{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.frame)
			tab.SetSource(tc.frame, tc.slave)
			if tc.src == (MAC{}) {
				if !bytes.Equal(orig, tc.frame) {
					t.Fatal("frame changed")
				}
				return
			}
			if MAC(tc.frame[6:12]) != tc.src || !bytes.Equal(tc.frame[12:], orig[12:]) || !bytes.Equal(tc.frame[:6], orig[:6]) {
				t.Fatalf("source % x", tc.frame[6:12])
			}
		})
	}
}

func TestALBDeliverAndTeach(t *testing.T) {
	ucastTo := func(dst MAC) []byte { return aipv4(dst, amac(99), "10.0.0.9", "10.0.0.1", 6, 20) }
	bcast := aarp(BroadcastMAC, amac(99), 0)
	for _, tc := range []struct {
		name      string
		mode      Mode
		allActive bool
		slave     int
		frame     []byte
		deliver   bool
		dst       MAC // expected destination afterwards
		teachDst  MAC // after TeachDisabled(frame, 3) with slave 2 at amac(3)
	}{
		{"tlb active unicast", BalanceTLB, false, 0, ucastTo(amac(1)), true, amac(1), amac(1)},
		{"tlb active broadcast", BalanceTLB, false, 0, bcast, true, BroadcastMAC, BroadcastMAC},
		{"tlb inactive unicast", BalanceTLB, false, 1, ucastTo(amac(1)), false, amac(1), amac(1)},
		{"tlb inactive all_slaves_active", BalanceTLB, true, 1, ucastTo(amac(1)), true, amac(1), amac(1)},
		{"tlb never teaches", BalanceTLB, false, 0, ucastTo(amac(3)), true, amac(3), amac(3)},
		{"alb active", BalanceALB, false, 0, ucastTo(amac(1)), true, amac(1), amac(1)},
		{"alb inactive own address", BalanceALB, false, 1, ucastTo(amac(2)), true, amac(1), amac(1)},
		{"alb inactive other unicast", BalanceALB, false, 1, ucastTo(amac(77)), true, amac(77), amac(77)},
		{"alb failed slave's address", BalanceALB, false, 0, ucastTo(amac(3)), true, amac(3), amac(1)},
		{"alb inactive broadcast", BalanceALB, false, 1, bcast, false, BroadcastMAC, BroadcastMAC},
		{"alb inactive broadcast all_slaves_active", BalanceALB, true, 1, bcast, true, BroadcastMAC, BroadcastMAC},
		{"alb active runt", BalanceALB, false, 0, []byte{1, 2, 3}, true, MAC{}, MAC{}},
		{"alb active 13 bytes", BalanceALB, false, 0, ucastTo(amac(3))[:13], true, amac(3), amac(3)},
		{"alb active empty", BalanceALB, false, 0, []byte{}, true, MAC{}, MAC{}},
		{"alb inactive runt", BalanceALB, false, 1, []byte{1}, false, MAC{}, MAC{}},
		{"alb bad slave", BalanceALB, false, -1, ucastTo(amac(2)), false, amac(2), amac(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := albTable(tc.mode, true, tc.allActive)
			tab.MAC[2] = amac(3)
			f := bytes.Clone(tc.frame)
			if got := tab.Deliver(tc.slave, f); got != tc.deliver {
				t.Fatalf("Deliver = %t, want %t", got, tc.deliver)
			}
			if len(f) >= 6 && MAC(f[:6]) != tc.dst {
				t.Fatalf("destination %x, want %s", f[:6], tc.dst)
			}
			tab.TeachDisabled(f, 3)
			if len(f) >= 6 && MAC(f[:6]) != tc.teachDst {
				t.Fatalf("after TeachDisabled destination %x, want %s", f[:6], tc.teachDst)
			}
			if len(f) < 6 && !bytes.Equal(f, tc.frame) {
				t.Fatal("runt changed")
			}
		})
	}
}

func TestALBCounters(t *testing.T) {
	var c ALBCounters
	c.Add(3, 100)
	c.Add(3, 50)
	c.Add(ALBUnbalanced, 7)
	c.Add(-1, 1)
	c.Add(ALBTableSize+1, 1)
	var l ALBLoads
	c.AddTo(&l)
	c.AddTo(&l)
	if l.Index[3] != 300 || l.Unbalanced != 14 {
		t.Fatalf("loads %d %d", l.Index[3], l.Unbalanced)
	}
	var sum uint64
	for _, v := range l.Index {
		sum += v
	}
	if sum != 300 {
		t.Fatalf("out-of-range counters counted: total %d", sum)
	}
}

func TestMACPredicates(t *testing.T) {
	for _, tc := range []struct {
		m                         MAC
		zero, mcast, bcast, valid bool
		str                       string
	}{
		{MAC{}, true, false, false, false, "00:00:00:00:00:00"},
		{amac(1), false, false, false, true, "02:00:00:00:00:01"},
		{BroadcastMAC, false, true, true, false, "ff:ff:ff:ff:ff:ff"},
		{v6AllNodes, false, true, false, false, "33:33:00:00:00:01"},
	} {
		if tc.m.IsZero() != tc.zero || tc.m.IsMulticast() != tc.mcast || tc.m.IsBroadcast() != tc.bcast ||
			tc.m.Valid() != tc.valid || tc.m.String() != tc.str {
			t.Errorf("%s: predicates wrong", tc.str)
		}
	}
}

func TestALBDataPathDoesNotAllocate(t *testing.T) {
	tab := albTable(BalanceALB, true, false)
	var c ALBCounters
	frames := [][]byte{
		aipv4(amac(99), amac(1), "10.0.0.1", "10.1.2.3", 6, 20),
		aipv6(amac(99), amac(1), "2001:db8::1", "2001:db8::2", -1),
		aarp(BroadcastMAC, amac(1), 0),
		aipv4(amac(2), amac(99), "10.0.0.9", "10.0.0.1", 6, 20),
		{1, 2},
	}
	pol := uint8(3)
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			s, n := tab.Pick(f, func(b []byte) uint32 { return fnvHash(b) ^ uint32(pol) })
			c.Add(n, uint64(len(f)))
			tab.SetSource(f, s)
			tab.Deliver(1, f)
			tab.TeachDisabled(f, 2)
			TLBHashIndex(f, BalanceTLB, true, fnvHash)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

func FuzzALBTable(f *testing.F) {
	f.Add(aipv4(amac(99), amac(1), "10.0.0.1", "10.1.2.3", 6, 20), uint8(0))
	f.Add(aipv6(amac(99), amac(1), "2001:db8::1", "2001:db8::2", ndNS), uint8(1))
	f.Add(aarp(BroadcastMAC, amac(1), 7), uint8(2))
	f.Add([]byte{}, uint8(3))
	f.Fuzz(func(t *testing.T, frame []byte, slave uint8) {
		for _, tab := range []*ALBTable{albTable(BalanceALB, true, false), albTable(BalanceTLB, false, true)} {
			s, c := tab.Pick(frame, fnvHash)
			if s != ALBToControl && (s < -1 || s > 1) || c < -1 || c > ALBUnbalanced {
				t.Fatalf("Pick = %d,%d", s, c)
			}
			n := len(frame)
			tab.SetSource(frame, int(slave)-1)
			tab.Deliver(int(slave)-1, frame)
			tab.TeachDisabled(frame, int(slave))
			if len(frame) != n {
				t.Fatal("length changed")
			}
		}
	})
}
