package policy

import "testing"

func TestEtherType(t *testing.T) {
	tcp4 := flowTCP()
	cases := []struct {
		name   string
		frame  []byte
		etype  uint16
		l3off  int
		tci    uint16
		tagged bool
	}{
		{"empty", nil, 0, 0, 0, false},
		{"13 bytes", frameIPv4TCP()[:13], 0, 0, 0, false},
		{"untagged ipv4", frameIPv4TCP(), 0x0800, 14, 0, false},
		{"header only", eth(0x86dd), 0x86dd, 14, 0, false},
		{"lacp", cat(eth(0x8809), []byte{1, 1}), 0x8809, 14, 0, false},
		{"802.1q", cat(macs(), tag(0x8100, 0xa064), u16(0x0800), tcp4), 0x0800, 18, 0xa064, true},
		{"802.1ad", cat(macs(), tag(0x88a8, 0x0fff), u16(0x86dd)), 0x86dd, 18, 0x0fff, true},
		{"qinq", cat(macs(), tag(0x88a8, 10), tag(0x8100, 100), u16(0x0800), tcp4), 0x0800, 22, 10, true},
		{"double 802.1q", cat(macs(), tag(0x8100, 1), tag(0x8100, 2), u16(0x0806)), 0x0806, 22, 1, true},
		{"three tags: third not skipped", cat(macs(), tag(0x88a8, 1), tag(0x8100, 2), tag(0x8100, 3), u16(0x0800)), 0x8100, 22, 1, true},
		{"tag truncated", cat(macs(), u16(0x8100), u16(7)), 0, 0, 0, false},
		{"inner tag truncated", cat(macs(), tag(0x88a8, 1), u16(0x8100), u16(2)), 0, 0, 0, false},
		{"0x9100 is not a tag", cat(macs(), tag(0x9100, 1), u16(0x0800)), 0x9100, 14, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, off, tci, tagged := EtherType(c.frame)
			if e != c.etype || off != c.l3off || tci != c.tci || tagged != c.tagged {
				t.Fatalf("EtherType = (%#04x, %d, %#04x, %v), want (%#04x, %d, %#04x, %v)",
					e, off, tci, tagged, c.etype, c.l3off, c.tci, c.tagged)
			}
		})
	}
}

func TestIsSlowProtocol(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"lacpdu", cat(eth(0x8809), []byte{0x01, 0x01}, make([]byte, 108)), true},
		{"marker header only", eth(0x8809), true},
		{"short", eth(0x8809)[:13], false},
		{"ipv4", frameIPv4TCP(), false},
		{"tagged 0x8809", cat(macs(), tag(0x8100, 1), u16(0x8809), []byte{1, 1}), false},
	}
	for _, c := range cases {
		if got := IsSlowProtocol(c.frame); got != c.want {
			t.Errorf("%s: IsSlowProtocol = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestIsIGMP(t *testing.T) {
	igmp := cat(ipv4(2, "192.168.1.10", "224.0.0.22", 0, 8), []byte{0x22, 0, 0, 0, 0, 0, 0, 0})
	cases := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"igmp", cat(eth(0x0800), igmp), true},
		{"igmp header only", cat(eth(0x0800), igmp[:20]), true},
		{"ipv4 header truncated", cat(eth(0x0800), igmp[:19]), false},
		{"tcp", frameIPv4TCP(), false},
		{"802.1q igmp (tag out of band)", cat(macs(), tag(0x8100, 5), u16(0x0800), igmp), true},
		{"qinq igmp (protocol 0x8100)", cat(macs(), tag(0x88a8, 5), tag(0x8100, 6), u16(0x0800), igmp), false},
		{"ipv6 with next header 2", cat(eth(0x86dd), ipv6(2, "::1", "::2", 0)), false},
		{"igmp fragment still igmp", cat(eth(0x0800), ipv4(2, "10.0.0.1", "224.0.0.1", 0x00b9, 8)), true},
		{"empty", nil, false},
	}
	for _, c := range cases {
		if got := IsIGMP(c.frame); got != c.want {
			t.Errorf("%s: IsIGMP = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestFrameHelpersNoPanicNoAlloc(t *testing.T) {
	f := cat(macs(), tag(0x88a8, 1), tag(0x8100, 2), u16(0x0800), ipv4(2, "1.1.1.1", "2.2.2.2", 0, 0))
	for n := 0; n <= len(f); n++ {
		_, _, _, _ = EtherType(f[:n])
		_ = IsSlowProtocol(f[:n])
		_ = IsIGMP(f[:n])
	}
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _, _ = EtherType(f)
		_ = IsSlowProtocol(f)
		_ = IsIGMP(f)
	})
	if allocs != 0 {
		t.Errorf("%v allocs", allocs)
	}
}
