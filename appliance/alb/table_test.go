package alb

import (
	"bytes"
	"testing"
)

func TestTLBHashIndex(t *testing.T) {
	ucast, bond := mac(99), mac(1)
	igmp := ipv4(MAC{0x01, 0, 0x5e, 0, 0, 1}, bond, "10.0.0.1", "224.0.0.1", ipprotoIGMP, 8)
	mcastUDP := ipv4(MAC{0x01, 0, 0x5e, 0, 0, 9}, bond, "10.0.0.1", "239.0.0.9", 17, 8)
	tcp := ipv4(ucast, bond, "10.0.0.1", "10.1.2.3", 6, 20)
	tcpTagged := append(tagged(ucast, bond, 7, ethPIPv4), tcp[ethHdrLen:]...)
	qinq := append(tagged(ucast, bond, 7, ethP8021Q), tcpTagged[ethHdrLen:]...)
	limited := ipv4(broadcast, bond, "10.0.0.1", "255.255.255.255", 17, 8)
	ipBcastUcastMAC := ipv4(ucast, bond, "10.0.0.1", "255.255.255.255", 17, 8)
	v6 := ipv6(ucast, bond, "2001:db8::1", "2001:db8::2:3", -1)
	v6ns := ipv6(MAC{0x33, 0x33, 0xff, 0, 0, 2}, bond, "2001:db8::1", "ff02::1:ff00:2", ndNS)
	v6naUcast := ipv6(ucast, bond, "2001:db8::1", "2001:db8::2", ndNA)
	v6echo := ipv6(ucast, bond, "2001:db8::1", "2001:db8::2", 128)
	v6allNodes := ipv6(v6AllNodes, bond, "fe80::1", "ff02::1", 128)
	v6dad := ipv6(ucast, bond, "::", "2001:db8::2", 128)
	v6short := ipv6(ucast, bond, "2001:db8::1", "2001:db8::2", -1)[:ethHdrLen+30]
	arpReq := arp(1, broadcast, bond, bond, "10.0.0.1", MAC{}, "10.0.0.2", 0)
	v4short := tcp[:ethHdrLen+19]

	simple4 := uint32(10 ^ 1 ^ 2 ^ 3)
	d := ip6("2001:db8::2:3")
	simple6 := uint32(simpleHash(d[:]))
	for _, tc := range []struct {
		name      string
		frame     []byte
		mode      Mode
		dynamic   bool
		useActive bool
		hash      uint32 // 0: the fnv hash
	}{
		{"tlb/tcp", tcp, ModeTLB, true, false, 0},
		{"tlb/tcp tagged", tcpTagged, ModeTLB, true, false, 0},
		{"tlb/qinq is not IP", qinq, ModeTLB, true, true, 0},
		{"tlb/multicast", mcastUDP, ModeTLB, true, true, 0},
		{"tlb/broadcast", limited, ModeTLB, true, true, 0},
		{"tlb/ipv4 bcast to unicast MAC", ipBcastUcastMAC, ModeTLB, true, false, 0},
		{"tlb/ipv6", v6, ModeTLB, true, false, 0},
		{"tlb/ipv6 echo", v6echo, ModeTLB, true, false, 0},
		{"tlb/ipv6 NA unicast", v6naUcast, ModeTLB, true, true, 0},
		{"tlb/ipv6 truncated", v6short, ModeTLB, true, true, 0},
		{"tlb/arp", arpReq, ModeTLB, true, true, 0},
		{"tlb/not dynamic", tcp, ModeTLB, false, false, 0},
		{"tlb/runt", tcp[:10], ModeTLB, true, true, 0},
		{"alb/tcp", tcp, ModeALB, true, false, simple4},
		{"alb/tcp tagged", tcpTagged, ModeALB, true, false, simple4},
		{"alb/tcp not dynamic", tcp, ModeALB, false, false, 0},
		{"alb/multicast udp is balanced", mcastUDP, ModeALB, true, false, uint32(239 ^ 9)},
		{"alb/igmp", igmp, ModeALB, true, true, 0},
		{"alb/limited broadcast", limited, ModeALB, true, true, 0},
		{"alb/255.255.255.255 to unicast MAC", ipBcastUcastMAC, ModeALB, true, true, 0},
		{"alb/ipv4 truncated", v4short, ModeALB, true, true, 0},
		{"alb/ipv6", v6, ModeALB, true, false, simple6},
		{"alb/ipv6 NS", v6ns, ModeALB, true, true, 0},
		{"alb/ipv6 all nodes", v6allNodes, ModeALB, true, true, 0},
		{"alb/ipv6 DAD", v6dad, ModeALB, true, true, 0},
		{"alb/arp", arpReq, ModeALB, true, true, 0},
		{"alb/runt", tcp[:13], ModeALB, true, true, 0},
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

func TestPickAndSetSource(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000)
	tab := b.Table()
	tcp := ipv4(mac(99), mac(1), "10.0.0.1", "10.1.2.3", 6, 20)
	idx := int(10 ^ 1 ^ 2 ^ 3)
	s, c := tab.Pick(tcp, fnvHash)
	if c != idx || s != int(tab.Slot[idx]) {
		t.Fatalf("Pick = %d,%d want slot[%d]=%d,%d", s, c, idx, tab.Slot[idx], idx)
	}
	arpReq := arp(1, broadcast, mac(1), mac(1), "10.0.0.1", MAC{}, "10.0.0.2", 0)
	if s, c := tab.Pick(arpReq, fnvHash); s != ToControl || c != -1 {
		t.Fatalf("ARP in alb: %d,%d want ToControl", s, c)
	}
	igmp := ipv4(MAC{0x01, 0, 0x5e, 0, 0, 1}, mac(1), "10.0.0.1", "224.0.0.1", ipprotoIGMP, 8)
	if s, c := tab.Pick(igmp, fnvHash); s != 0 || c != Unbalanced {
		t.Fatalf("IGMP: %d,%d want active 0, Unbalanced", s, c)
	}
	f := bytes.Clone(tcp)
	tab.SetSource(f, 0)
	if !bytes.Equal(f, tcp) {
		t.Fatal("SetSource changed a frame sent on the active slave")
	}
	tab.SetSource(f, 1)
	if [6]byte(f[6:12]) != mac(2) || !bytes.Equal(f[12:], tcp[12:]) {
		t.Fatalf("source on slave 1 = % x", f[6:12])
	}
	tab.SetSource(f[:5], 1) // no panic
	tab.SetSource(f, 200)
	// balance-tlb: ARP goes to the active slave
	tb := newBond(t, ModeTLB, 1000, 1000)
	if s, c := tb.Table().Pick(arpReq, fnvHash); s != 0 || c != Unbalanced {
		t.Fatalf("ARP in tlb: %d,%d want active, Unbalanced", s, c)
	}
}

func TestDeliver(t *testing.T) {
	ucastTo := func(dst MAC) []byte { return ipv4(dst, mac(99), "10.0.0.9", "10.0.0.1", 6, 20) }
	bcast := arp(1, broadcast, mac(99), mac(99), "10.0.0.9", MAC{}, "10.0.0.1", 0)
	for _, tc := range []struct {
		name      string
		mode      Mode
		allActive bool
		slave     int
		frame     []byte
		deliver   bool
		dst       MAC // expected destination afterwards
	}{
		{"tlb active unicast", ModeTLB, false, 0, ucastTo(mac(1)), true, mac(1)},
		{"tlb active broadcast", ModeTLB, false, 0, bcast, true, broadcast},
		{"tlb inactive unicast", ModeTLB, false, 1, ucastTo(mac(1)), false, mac(1)},
		{"tlb inactive all_slaves_active", ModeTLB, true, 1, ucastTo(mac(1)), true, mac(1)},
		{"alb active", ModeALB, false, 0, ucastTo(mac(1)), true, mac(1)},
		{"alb inactive own address", ModeALB, false, 1, ucastTo(mac(2)), true, mac(1)},
		{"alb inactive other unicast", ModeALB, false, 1, ucastTo(mac(77)), true, mac(77)},
		{"alb inactive broadcast", ModeALB, false, 1, bcast, false, broadcast},
		{"alb inactive broadcast all_slaves_active", ModeALB, true, 1, bcast, true, broadcast},
		{"alb active runt", ModeALB, false, 0, []byte{1, 2, 3}, true, MAC{}},
		{"alb bad slave", ModeALB, false, -1, ucastTo(mac(2)), false, mac(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBond(t, tc.mode, 1000, 1000)
			b.sh.allActive = tc.allActive
			b.sh.dirty = true
			f := bytes.Clone(tc.frame)
			if got := b.Table().Deliver(tc.slave, f); got != tc.deliver {
				t.Fatalf("Deliver = %t, want %t", got, tc.deliver)
			}
			if len(f) >= 6 && [6]byte(f[:6]) != tc.dst {
				t.Fatalf("destination %x, want %s", f[:6], tc.dst)
			}
		})
	}
}

func TestDataPathDoesNotAllocate(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000)
	tab := b.Table()
	var c Counters
	frames := [][]byte{
		ipv4(mac(99), mac(1), "10.0.0.1", "10.1.2.3", 6, 20),
		ipv6(mac(99), mac(1), "2001:db8::1", "2001:db8::2", -1),
		arp(1, broadcast, mac(1), mac(1), "10.0.0.1", MAC{}, "10.0.0.2", 0),
		ipv4(mac(2), mac(99), "10.0.0.9", "10.0.0.1", 6, 20),
		{1, 2},
	}
	policy := uint8(3)
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			// a closure over the lane's state, as the lane would pass
			s, n := tab.Pick(f, func(b []byte) uint32 { return fnvHash(b) ^ uint32(policy) })
			c.Add(n, uint64(len(f)))
			tab.SetSource(f, s)
			tab.Deliver(1, f)
			TLBHashIndex(f, ModeTLB, true, fnvHash)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Add(3, 100)
	c.Add(3, 50)
	c.Add(Unbalanced, 7)
	c.Add(-1, 1)
	c.Add(TableSize+1, 1)
	var l Loads
	c.AddTo(&l)
	c.AddTo(&l)
	if l.Index[3] != 300 || l.Unbalanced != 14 {
		t.Fatalf("loads %d %d", l.Index[3], l.Unbalanced)
	}
}
