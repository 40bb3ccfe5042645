package monitor

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

var testMAC = MAC{0x02, 0, 0, 0, 0, 0x01}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sum16 is an independent RFC 1071 sum used to check builders' checksums:
// a correct checksum makes the folded sum over the covered bytes 0xffff.
func sum16(parts ...[]byte) uint16 {
	var s uint64
	for _, p := range parts {
		for i := 0; i+1 < len(p); i += 2 {
			s += uint64(binary.BigEndian.Uint16(p[i:]))
		}
		if len(p)%2 == 1 {
			s += uint64(p[len(p)-1]) << 8
		}
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// l3 returns the ethertype and payload offset after an optional tag.
func l3(frame []byte) (uint16, int) {
	et := binary.BigEndian.Uint16(frame[12:])
	if et == EtherTypeVLAN {
		return binary.BigEndian.Uint16(frame[16:]), 18
	}
	return et, 14
}

// checkICMPv6Sum verifies an ICMPv6 checksum by recomputation.
func checkICMPv6Sum(t *testing.T, frame []byte) {
	t.Helper()
	_, off := l3(frame)
	ip := frame[off:]
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	pseudo := make([]byte, 40)
	copy(pseudo, ip[8:40])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(plen))
	pseudo[39] = 58
	if s := sum16(pseudo, ip[40:40+plen]); s != 0xffff {
		t.Fatalf("ICMPv6 checksum does not verify: sum %#04x", s)
	}
}

// checkIGMPSums verifies the IPv4 header and IGMP checksums.
func checkIGMPSums(t *testing.T, frame []byte) {
	t.Helper()
	_, off := l3(frame)
	ip := frame[off:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if s := sum16(ip[:ihl]); s != 0xffff {
		t.Fatalf("IPv4 header checksum does not verify: %#04x", s)
	}
	if s := sum16(ip[ihl:total]); s != 0xffff {
		t.Fatalf("IGMP checksum does not verify: %#04x", s)
	}
}

func TestBuildersGolden(t *testing.T) {
	a4 := netip.MustParseAddr
	tests := []struct {
		name  string
		build func(b []byte) (int, error)
		want  string
		check func(*testing.T, []byte)
	}{
		{"arp probe", func(b []byte) (int, error) {
			return BuildARPProbe(b, 0, testMAC, a4("192.0.2.10"), a4("192.0.2.1"))
		}, "ffffffffffff02000000000108060001080006040001020000000001c000020a000000000000c0000201000000000000000000000000000000000000", nil},
		{"arp probe vlan", func(b []byte) (int, error) {
			return BuildARPProbe(b, 100, testMAC, a4("192.0.2.10"), a4("192.0.2.1"))
		}, "ffffffffffff0200000000018100006408060001080006040001020000000001c000020a000000000000c00002010000000000000000000000000000", nil},
		{"arp probe from 0.0.0.0", func(b []byte) (int, error) {
			return BuildARPProbe(b, 0, testMAC, netip.Addr{}, a4("198.51.100.1"))
		}, "ffffffffffff0200000000010806000108000604000102000000000100000000000000000000c6336401000000000000000000000000000000000000", nil},
		{"gratuitous arp", func(b []byte) (int, error) {
			return BuildGratuitousARP(b, 0, testMAC, a4("192.0.2.10"))
		}, "ffffffffffff02000000000108060001080006040001020000000001c000020a000000000000c000020a000000000000000000000000000000000000", nil},
		{"ns", func(b []byte) (int, error) {
			return BuildNS(b, 0, testMAC, a4("2001:db8::10"), a4("2001:db8::1"))
		}, "3333ff00000102000000000186dd6000000000203aff20010db8000000000000000000000010ff0200000000000000000001ff00000187001c1a0000000020010db80000000000000000000000010101020000000001", checkICMPv6Sum},
		{"ns from :: tagged", func(b []byte) (int, error) {
			return BuildNS(b, 7, testMAC, netip.IPv6Unspecified(), a4("fe80::1"))
		}, "3333ff0000010200000000018100000786dd6000000000183aff00000000000000000000000000000000ff0200000000000000000001ff00000187007c2500000000fe800000000000000000000000000001", checkICMPv6Sum},
		{"unsolicited na", func(b []byte) (int, error) {
			return BuildUnsolicitedNA(b, 0, testMAC, a4("2001:db8::10"), false)
		}, "33330000000102000000000186dd6000000000203aff20010db8000000000000000000000010ff0200000000000000000000000000018800f90c2000000020010db80000000000000000000000100201020000000001", checkICMPv6Sum},
		{"unsolicited na router tagged", func(b []byte) (int, error) {
			return BuildUnsolicitedNA(b, 10, testMAC, a4("2001:db8::10"), true)
		}, "3333000000010200000000018100000a86dd6000000000203aff20010db8000000000000000000000010ff0200000000000000000000000000018800790ca000000020010db80000000000000000000000100201020000000001", checkICMPv6Sum},
		{"igmpv2 report", func(b []byte) (int, error) {
			return BuildIGMPv2Report(b, 0, testMAC, a4("192.0.2.10"), a4("239.1.2.3"))
		}, "01005e010203020000000001080046c000200000400001023109c000020aef010203940400001600f8faef0102030000000000000000000000000000", checkIGMPSums},
		{"igmpv3 report tagged", func(b []byte) (int, error) {
			return BuildIGMPv3Report(b, 5, testMAC, a4("192.0.2.10"), []netip.Addr{a4("239.1.2.3"), a4("224.0.0.251")})
		}, "01005e00001602000000000181000005080046c0003000004000010241e7c000020ae000001694040000220007fd0000000202000000ef01020302000000e00000fb", checkIGMPSums},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xaa}, 256) // garbage must not leak
			n, err := tc.build(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := mustHex(t, tc.want)
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("frame\n got %x\nwant %x", buf[:n], want)
			}
			if tc.check != nil {
				tc.check(t, buf[:n])
			}
			// Too small a buffer is refused, never overrun.
			if _, err := tc.build(make([]byte, n-1)); !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("short buffer: err %v", err)
			}
		})
	}
}

func TestARPRoundTrip(t *testing.T) {
	for _, a := range []ARP{
		{Dst: BroadcastMAC, Src: testMAC, Op: ARPRequest, SenderMAC: testMAC,
			SenderIP: netip.MustParseAddr("10.0.0.1"), TargetIP: netip.MustParseAddr("10.0.0.2")},
		{Dst: testMAC, Src: MAC{2, 9, 9, 9, 9, 9}, Tagged: true, VLAN: 4094, Op: ARPReply,
			SenderMAC: MAC{2, 9, 9, 9, 9, 9}, SenderIP: netip.MustParseAddr("10.0.0.2"),
			TargetMAC: testMAC, TargetIP: netip.MustParseAddr("10.0.0.1")},
	} {
		buf := make([]byte, 64)
		n, err := BuildARP(buf, &a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseARP(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if got != a {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, a)
		}
	}
}

func TestNDRoundTrip(t *testing.T) {
	buf := make([]byte, 128)
	addr := netip.MustParseAddr("2001:db8::10")
	n, err := BuildUnsolicitedNA(buf, 10, testMAC, addr, true)
	if err != nil {
		t.Fatal(err)
	}
	na, err := ParseNA(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	want := ND{Dst: MAC{0x33, 0x33, 0, 0, 0, 1}, Src: testMAC, Tagged: true, VLAN: 10,
		IPSrc: addr, IPDst: AllNodes, HopLimit: 255, Type: ICMPv6NeighborAdvertisement,
		Router: true, Override: true, Target: addr, LinkAddr: testMAC, HasLinkAddr: true, ChecksumOK: true}
	if na != want {
		t.Fatalf("NA\n got %+v\nwant %+v", na, want)
	}

	target := netip.MustParseAddr("2001:db8::1")
	n, err = BuildNS(buf, 0, testMAC, addr, target)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ParseND(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	want = ND{Dst: MAC{0x33, 0x33, 0xff, 0, 0, 1}, Src: testMAC, IPSrc: addr,
		IPDst: netip.MustParseAddr("ff02::1:ff00:1"), HopLimit: 255, Type: ICMPv6NeighborSolicitation,
		Target: target, LinkAddr: testMAC, HasLinkAddr: true, ChecksumOK: true}
	if ns != want {
		t.Fatalf("NS\n got %+v\nwant %+v", ns, want)
	}
	if _, err := ParseNA(buf[:n]); !errors.Is(err, ErrNotNA) {
		t.Fatalf("ParseNA(NS) err %v", err)
	}
	// A flipped bit is reported, not rejected.
	buf[n-1] ^= 1
	if ns, err := ParseND(buf[:n]); err != nil || ns.ChecksumOK {
		t.Fatalf("corrupted NS: %+v %v", ns, err)
	}
}

func TestParseErrors(t *testing.T) {
	buf := make([]byte, 128)
	n, _ := BuildARPProbe(buf, 0, testMAC, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	arp := bytes.Clone(buf[:n])
	n, _ = BuildUnsolicitedNA(buf, 0, testMAC, netip.MustParseAddr("2001:db8::1"), false)
	na := bytes.Clone(buf[:n])
	mod := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	tests := []struct {
		name  string
		parse func([]byte) error
		frame []byte
		want  error
	}{
		{"arp empty", parseARPErr, nil, ErrShort},
		{"arp truncated", parseARPErr, arp[:14+27], ErrShort},
		{"arp truncated tag", parseARPErr, mod(arp[:16], func(b []byte) { b[12], b[13] = 0x81, 0 }), ErrShort},
		{"arp ipv4 ethertype", parseARPErr, mod(arp, func(b []byte) { b[13] = 0 }), ErrEtherType},
		{"arp hw type", parseARPErr, mod(arp, func(b []byte) { b[15] = 6 }), ErrUnsupported},
		{"arp hlen", parseARPErr, mod(arp, func(b []byte) { b[18] = 8 }), ErrUnsupported},
		{"arp ptype", parseARPErr, mod(arp, func(b []byte) { b[17] = 0xdd }), ErrUnsupported},
		{"na short", parseNAErr, na[:50], ErrShort},
		{"na payload beyond frame", parseNAErr, na[:len(na)-1], ErrShort},
		{"na not icmpv6", parseNAErr, mod(na, func(b []byte) { b[20] = 17 }), ErrUnsupported},
		{"na version", parseNAErr, mod(na, func(b []byte) { b[14] = 0x40 }), ErrUnsupported},
		{"na echo", parseNAErr, mod(na, func(b []byte) { b[54] = 128 }), ErrUnsupported},
		{"na code", parseNAErr, mod(na, func(b []byte) { b[55] = 1 }), ErrUnsupported},
		{"na zero option length", parseNAErr, mod(na, func(b []byte) { b[14+40+25] = 0 }), ErrMalformed},
		{"na option beyond payload", parseNAErr, mod(na, func(b []byte) { b[14+40+25] = 2 }), ErrMalformed},
		{"na body short", parseNAErr, mod(na, func(b []byte) { b[18], b[19] = 0, 20 }), ErrMalformed},
	}
	for _, tc := range tests {
		if err := tc.parse(tc.frame); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func parseARPErr(b []byte) error { _, err := ParseARP(b); return err }
func parseNAErr(b []byte) error  { _, err := ParseNA(b); return err }

func TestBuilderArgErrors(t *testing.T) {
	buf := make([]byte, 256)
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	for name, f := range map[string]func() (int, error){
		"probe v6 target": func() (int, error) { return BuildARPProbe(buf, 0, testMAC, v4, v6) },
		"probe no target": func() (int, error) { return BuildARPProbe(buf, 0, testMAC, v4, netip.Addr{}) },
		"garp v6":         func() (int, error) { return BuildGratuitousARP(buf, 0, testMAC, v6) },
		"ns v4 target":    func() (int, error) { return BuildNS(buf, 0, testMAC, v6, v4) },
		"na v4":           func() (int, error) { return BuildUnsolicitedNA(buf, 0, testMAC, v4, false) },
		"igmp unicast":    func() (int, error) { return BuildIGMPv2Report(buf, 0, testMAC, v4, v4) },
		"igmpv3 none":     func() (int, error) { return BuildIGMPv3Report(buf, 0, testMAC, v4, nil) },
	} {
		if _, err := f(); !errors.Is(err, ErrAddress) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := BuildGratuitousARP(buf, 4095, testMAC, v4); !errors.Is(err, ErrVLAN) {
		t.Errorf("vlan 4095: err %v", err)
	}
}

func TestCodecAllocs(t *testing.T) {
	buf := make([]byte, 128)
	n, _ := BuildARPProbe(buf, 3, testMAC, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	arp := bytes.Clone(buf[:n])
	n, _ = BuildUnsolicitedNA(buf, 3, testMAC, netip.MustParseAddr("2001:db8::1"), false)
	na := bytes.Clone(buf[:n])
	src, tgt := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	groups := []netip.Addr{netip.MustParseAddr("239.0.0.1")}
	for name, f := range map[string]func(){
		"ParseARP": func() { _, _ = ParseARP(arp) },
		"ParseNA":  func() { _, _ = ParseNA(na) },
		"BuildNS":  func() { _, _ = BuildNS(buf, 0, testMAC, src, tgt) },
		"BuildARP": func() { _, _ = BuildARPProbe(buf, 0, testMAC, netip.Addr{}, netip.MustParseAddr("10.0.0.2")) },
		"IGMPv3":   func() { _, _ = BuildIGMPv3Report(buf, 0, testMAC, netip.Addr{}, groups) },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s: %v allocs", name, a)
		}
	}
}

func TestSolicitedNode(t *testing.T) {
	got := SolicitedNode(netip.MustParseAddr("2001:db8::abcd:1234:5678"))
	if want := netip.MustParseAddr("ff02::1:ff34:5678"); got != want {
		t.Fatalf("got %v want %v", got, want)
	}
}
