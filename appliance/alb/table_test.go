package alb

import (
	"bytes"
	"testing"
)

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
