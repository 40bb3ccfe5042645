package policy

import (
	"fmt"
	"testing"
)

// expect is a hand-computed hash and the slave it selects among 2 and 3.
type expect struct {
	hash uint32
	idx2 int
	idx3 int
}

// All policies, in numeric order.
var allPolicies = []HashPolicy{Layer2, Layer34, Layer23, Encap23, Encap34, VlanSrcMac}

// Recurring values (arithmetic shown once here, re-used by the table).
//
// fold(h) is bond_ip_hash without the final shift:
//
//	h ^= h >> 16; h ^= h >> 8
//
// and the 3+4 policies then take fold(h) >> 1.
var (
	// layer2, IPv4: 0x55 ^ 0x66 ^ 0x0800 = 0x0833 (2099).
	// 2099 % 2 = 1; 2099 = 3*699 + 2.
	l2IPv4 = expect{0x00000833, 1, 2}

	// layer2+3, IPv4 main flow: h = 0x0833 ^ 0x1e000000 = 0x1e000833
	//   h ^= h>>16 (0x00001e00) -> 0x1e001633
	//   h ^= h>>8  (0x001e0016) -> 0x1e1e1625 (505288229, odd; 505288229 = 3*168429409 + 2)
	l23IPv4 = expect{0x1e1e1625, 1, 2}

	// layer3+4, IPv4/TCP main flow: h = 0xbb01409c ^ 0x1e000000 = 0xa501409c
	//   h ^= h>>16 (0x0000a501) -> 0xa501e59d
	//   h ^= h>>8  (0x00a501e5) -> 0xa5a4e478
	//   h >>= 1                 -> 0x52d2723c (1389523516, even; = 3*463174505 + 1)
	l34IPv4TCP = expect{0x52d2723c, 0, 1}

	// layer3+4 with ports 0 (fragments): h = 0x1e000000
	//   ^ 0x1e00 -> 0x1e001e00; ^ 0x001e001e -> 0x1e1e1e1e; >> 1 -> 0x0f0f0f0f
	//   (252645135, odd, divisible by 3)
	l34IPv4NoPorts = expect{0x0f0f0f0f, 1, 0}

	// vlan+srcmac, untagged: 0 ^ 0x001b21 ^ 0xaabb66 = 0xaaa047 (11182151 = 3*3727383 + 2)
	srcMacUntagged = expect{0x00aaa047, 1, 2}
)

func TestHashVectors(t *testing.T) {
	type row struct {
		name  string
		frame []byte
		want  map[HashPolicy]expect
	}

	rows := []row{
		{
			name:  "IPv4 TCP (DF set: not a fragment)",
			frame: frameIPv4TCP(),
			want: map[HashPolicy]expect{
				Layer2:  l2IPv4,
				Layer23: l23IPv4,
				Layer34: l34IPv4TCP,
				// The generic dissector agrees with bond_flow_ip on a plain packet.
				Encap23:    l23IPv4,
				Encap34:    l34IPv4TCP,
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// 192.168.1.10:5353 -> 192.168.1.20:53, ports 14 e9 00 35 -> 0x3500e914
			// h = 0x3500e914 ^ 0x1e000000 = 0x2b00e914
			//   ^ 0x00002b00 -> 0x2b00c214; ^ 0x002b00c2 -> 0x2b2bc2d6; >>1 -> 0x1595e16b
			//   (362144107: odd; % 3 = 1)
			name:  "IPv4 UDP",
			frame: cat(eth(0x0800), ipv4(17, ipA, ipB, 0, 8), udp(5353, 53, 0)),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    l23IPv4,
				Layer34:    {0x1595e16b, 1, 1},
				Encap23:    l23IPv4,
				Encap34:    {0x1595e16b, 1, 1},
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// ipv6_addr_hash(2001:db8::1) = 0xb80d0120 ^ 0 ^ 0 ^ 0x01000000 = 0xb90d0120
			// ipv6_addr_hash(2001:db8::2) = 0xb80d0120 ^ 0 ^ 0 ^ 0x02000000 = 0xba0d0120
			// src ^ dst = 0x03000000
			// layer2: 0x33 ^ 0x86dd = 0x86ee (34542, even, divisible by 3)
			// layer2+3: 0x86ee ^ 0x03000000 = 0x030086ee; ^0x0300 -> 0x030085ee;
			//   ^0x00030085 -> 0x0303856b (50562411: odd, divisible by 3)
			// layer3+4: 0xbb01409c ^ 0x03000000 = 0xb801409c; ^0xb801 -> 0xb801f89d;
			//   ^0x00b801f8 -> 0xb8b9f965; >>1 -> 0x5c5cfcb2 (1549597874: even, % 3 = 2)
			name:  "IPv6 TCP",
			frame: cat(eth(0x86dd), ipv6(6, "2001:db8::1", "2001:db8::2", 20), tcp(40000, 443)),
			want: map[HashPolicy]expect{
				Layer2:     {0x000086ee, 0, 0},
				Layer23:    {0x0303856b, 1, 0},
				Layer34:    {0x5c5cfcb2, 0, 2},
				Encap23:    {0x0303856b, 1, 0},
				Encap34:    {0x5c5cfcb2, 0, 2},
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// MF set, offset 0: ip_is_fragment() is true, so neither bond_flow_ip
			// nor the dissector (no FLOW_DISSECTOR_F_PARSE_1ST_FRAG) reads the
			// TCP header that is present: ports 0.
			name:  "IPv4 first fragment",
			frame: cat(eth(0x0800), ipv4(6, ipA, ipB, 0x2000, 20), tcp(40000, 443)),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    l23IPv4,
				Layer34:    l34IPv4NoPorts,
				Encap23:    l23IPv4,
				Encap34:    l34IPv4NoPorts,
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// Offset 185*8, MF clear: a last fragment; its payload bytes (made to
			// look like the TCP header) are not ports.
			name:  "IPv4 later fragment",
			frame: cat(eth(0x0800), ipv4(6, ipA, ipB, 0x00b9, 20), tcp(40000, 443)),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    l23IPv4,
				Layer34:    l34IPv4NoPorts,
				Encap23:    l23IPv4,
				Encap34:    l34IPv4NoPorts,
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// TCI 0xa064 = PCP 5, DEI 0, VID 100. The tag is out of band in the
			// kernel, so layer2 sees h_proto 0x0800 (0x0833, not 0x33^0x8100)
			// and the L3/L4 policies see the untagged flow.
			// vlan+srcmac: 0xa064 ^ 0xaaa047 = 0xaa0023 (the whole TCI, PCP
			// included) = 11141155: odd, % 3 = 1.
			name:  "VLAN 802.1Q tagged IPv4 TCP",
			frame: cat(macs(), tag(0x8100, 0xa064), u16(0x0800), flowTCP()),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    l23IPv4,
				Layer34:    l34IPv4TCP,
				Encap23:    l23IPv4,
				Encap34:    l34IPv4TCP,
				VlanSrcMac: {0x00aa0023, 1, 1},
			},
		},
		{
			// Outer 802.1ad TCI 0x000a out of band; the inner 802.1Q tag (VID
			// 100) stays in the data, so h_proto = skb->protocol = 0x8100:
			// layer2 = 0x33 ^ 0x8100 = 0x8133 (33075: odd, divisible by 3), and
			// bond_flow_ip does not know 0x8100, so layer2+3 and layer3+4 fall
			// back to it. The encap policies' dissector takes the first VLAN
			// from skb->protocol, reads the in-band one, then IPv4:
			// encap2+3: 0x8133 ^ 0x1e000000 = 0x1e008133; ^0x1e00 -> 0x1e009f33;
			//   ^0x001e009f -> 0x1e1e9fac (505323436: even, % 3 = 1)
			// encap3+4: the main flow's 0x52d2723c.
			// vlan+srcmac: outer TCI only: 0x000a ^ 0xaaa047 = 0xaaa04d.
			name:  "QinQ 802.1ad + 802.1Q IPv4 TCP",
			frame: cat(macs(), tag(0x88a8, 0x000a), tag(0x8100, 0x0064), u16(0x0800), flowTCP()),
			want: map[HashPolicy]expect{
				Layer2:     {0x00008133, 1, 0},
				Layer23:    {0x00008133, 1, 0},
				Layer34:    {0x00008133, 1, 0},
				Encap23:    {0x1e1e9fac, 0, 1},
				Encap34:    l34IPv4TCP,
				VlanSrcMac: {0x00aaa04d, 1, 2},
			},
		},
		{
			// Non-IP. layer2: 0x33 ^ 0x0806 = 0x0835 (2101: odd, % 3 = 1), and
			// layer2+3 / layer3+4 fall back to it. The generic dissector
			// *succeeds* on ARP (bonding uses no ARP key) with no address and
			// no ports, so encap2+3 = fold(0x0835) = 0x0835 ^ 0x08 = 0x083d
			// (2109: odd, divisible by 3) and encap3+4 = fold(0) >> 1 = 0.
			name: "ARP request (non-IP)",
			frame: cat(eth(0x0806), u16(1), u16(0x0800), []byte{6, 4}, u16(1),
				testSrcMAC, addr4(ipA), make([]byte, 6), addr4(ipB)),
			want: map[HashPolicy]expect{
				Layer2:     {0x00000835, 1, 1},
				Layer23:    {0x00000835, 1, 1},
				Layer34:    {0x00000835, 1, 1},
				Encap23:    {0x0000083d, 1, 0},
				Encap34:    {0, 0, 0},
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// Echo request id 0x1234: flow.icmp = {type 8, code 0, id 0x1234}
			// (id in host order), memcpy'd to u32: 0x12340008.
			// layer3+4: 0x12340008 ^ 0x1e000000 = 0x0c340008; ^0x0c34 -> 0x0c340c3c;
			//   ^0x000c340c -> 0x0c383830; >>1 -> 0x061c1c18 (102505496: even, % 3 = 2)
			name:  "ICMP echo request",
			frame: cat(eth(0x0800), ipv4(1, ipA, ipB, 0, 8), icmp(8, 0, 0x1234, 1)),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    l23IPv4,
				Layer34:    {0x061c1c18, 0, 2},
				Encap23:    l23IPv4,
				Encap34:    {0x061c1c18, 0, 2},
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// Echo reply (type 0) with id 0: the id is stored as 1, so
			// flow.icmp = 0x00010000.
			// 0x00010000 ^ 0x1e000000 = 0x1e010000; ^0x1e01 -> 0x1e011e01;
			//   ^0x001e011e -> 0x1e1f1f1f; >>1 -> 0x0f0f8f8f (252678031: odd, % 3 = 1)
			name:  "ICMP echo reply id 0",
			frame: cat(eth(0x0800), ipv4(1, ipA, ipB, 0, 8), icmp(0, 0, 0, 7)),
			want: map[HashPolicy]expect{
				Layer34: {0x0f0f8f8f, 1, 1},
				Encap34: {0x0f0f8f8f, 1, 1},
			},
		},
		{
			// Destination unreachable from router 192.168.1.1 to 192.168.1.10,
			// quoting 192.168.1.10:5353 -> 8.8.8.8:53 (UDP).
			// bond_flow_dissect re-parses the quoted header (icmp_is_err), so
			// layer2+3/3+4 hash the quoted flow: 192.168.1.10 ^ 8.8.8.8 =
			//   0x0a01a8c0 ^ 0x08080808 = 0x0209a0c8
			// layer2+3: 0x0833 ^ 0x0209a0c8 = 0x0209a8fb; ^0x0209 -> 0x0209aaf2;
			//   ^0x000209aa -> 0x020ba358 (34317144: even, divisible by 3)
			// layer3+4: 0x3500e914 ^ 0x0209a0c8 = 0x370949dc; ^0x3709 -> 0x37097ed5;
			//   ^0x0037097e -> 0x373e77ab; >>1 -> 0x1b9f3bd5 (463420373: odd, % 3 = 2)
			// The dissector (encap) does not: outer 192.168.1.1 ^ 192.168.1.10 =
			//   0x0101a8c0 ^ 0x0a01a8c0 = 0x0b000000, no ICMP id, ICMP has no ports:
			// encap2+3: 0x0b000833 -> ^0x0b00 -> 0x0b000333 -> ^0x000b0003 -> 0x0b0b0330
			//   (185271088: even, % 3 = 1)
			// encap3+4: 0x0b000000 -> 0x0b000b00 -> 0x0b0b0b0b -> >>1 0x05858585
			//   (92636549: odd, % 3 = 2)
			name: "ICMP error quoting UDP",
			frame: cat(eth(0x0800), ipv4(1, "192.168.1.1", ipA, 0, 36), icmp(3, 3, 0, 0),
				ipv4(17, ipA, "8.8.8.8", 0, 8), udp(5353, 53, 0)),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    {0x020ba358, 0, 0},
				Layer34:    {0x1b9f3bd5, 1, 2},
				Encap23:    {0x0b0b0330, 0, 1},
				Encap34:    {0x05858585, 1, 2},
				VlanSrcMac: srcMacUntagged,
			},
		},
		{
			// 10.0.0.1 -> 10.0.0.2, GRE (flags 0, proto 0x0800), then the main flow.
			// Outer: 0x0100000a ^ 0x0200000a = 0x03000000; GRE has no ports.
			// layer2+3: 0x03000833 -> ^0x0300 -> 0x03000b33 -> ^0x0003000b -> 0x03030b38
			//   (50531128: even, % 3 = 1)
			// layer3+4: 0x03000000 -> 0x03000300 -> 0x03030303 -> >>1 0x01818181
			//   (25264513: odd, % 3 = 1)
			// encap2+3 / encap3+4 look through GRE: the inner flow's values.
			name:  "GRE-encapsulated IPv4 TCP",
			frame: cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 64), u16(0), u16(0x0800), flowTCP()),
			want: map[HashPolicy]expect{
				Layer2:     l2IPv4,
				Layer23:    {0x03030b38, 0, 1},
				Layer34:    {0x01818181, 1, 1},
				Encap23:    l23IPv4,
				Encap34:    l34IPv4TCP,
				VlanSrcMac: srcMacUntagged,
			},
		},
	}

	for _, r := range rows {
		for p, w := range r.want {
			t.Run(fmt.Sprintf("%s/%s", r.name, p), func(t *testing.T) {
				got := Hash(r.frame, p)
				if got != w.hash {
					t.Fatalf("Hash = %#08x, want %#08x", got, w.hash)
				}
				if i := SlaveIndex(got, 2); i != w.idx2 {
					t.Errorf("SlaveIndex(%#x, 2) = %d, want %d", got, i, w.idx2)
				}
				if i := SlaveIndex(got, 3); i != w.idx3 {
					t.Errorf("SlaveIndex(%#x, 3) = %d, want %d", got, i, w.idx3)
				}
			})
		}
	}
}

// TestHashKernelCorners pins behaviour that differs between the bonding
// parser (layer2+3/3+4) and the flow dissector (encap), or that is easy to
// get subtly wrong.
func TestHashKernelCorners(t *testing.T) {
	const (
		v6nop = 0x01818181 // fold(0x03000000) >> 1, the IPv6 pair without ports
		v6tcp = 0x5c5cfcb2 // IPv6 TCP, see TestHashVectors
	)
	hop := []byte{6, 0, 0, 0, 0, 0, 0, 0} // hop-by-hop: next TCP, length 0 (8 bytes), PadN
	frag := cat([]byte{6, 0}, u16(0x0001), u32(0xcafe))
	greTEB := func(flags uint16, opts ...[]byte) []byte {
		return cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 100), u16(flags), u16(0x6558),
			cat(opts...), eth(0x0800), flowTCP())
	}
	cases := []struct {
		name  string
		frame []byte
		p     HashPolicy
		want  uint32
	}{
		// IPv6 extension headers: bond_flow_ip takes nexthdr as the L4
		// protocol (0 has no ports); the dissector walks to TCP.
		{"ipv6 hop-by-hop layer3+4", cat(eth(0x86dd), ipv6(0, "2001:db8::1", "2001:db8::2", 28), hop, tcp(40000, 443)), Layer34, v6nop},
		{"ipv6 hop-by-hop encap3+4", cat(eth(0x86dd), ipv6(0, "2001:db8::1", "2001:db8::2", 28), hop, tcp(40000, 443)), Encap34, v6tcp},
		{"ipv6 dstopts+routing encap3+4", cat(eth(0x86dd), ipv6(60, "2001:db8::1", "2001:db8::2", 44),
			[]byte{43, 0, 1, 4, 0, 0, 0, 0}, []byte{6, 0, 0, 0, 0, 0, 0, 0}, tcp(40000, 443)), Encap34, v6tcp},
		// Fragment header (even the first fragment): no ports either way.
		{"ipv6 fragment layer3+4", cat(eth(0x86dd), ipv6(44, "2001:db8::1", "2001:db8::2", 28), frag, tcp(40000, 443)), Layer34, v6nop},
		{"ipv6 fragment encap3+4", cat(eth(0x86dd), ipv6(44, "2001:db8::1", "2001:db8::2", 28), frag, tcp(40000, 443)), Encap34, v6nop},
		// IPIP: layer3+4 sees outer 10.0.0.1/2 and protocol 4 (no ports).
		{"ipip layer3+4", cat(eth(0x0800), ipv4(4, "10.0.0.1", "10.0.0.2", 0, 40), flowTCP()), Layer34, 0x01818181},
		{"ipip encap3+4", cat(eth(0x0800), ipv4(4, "10.0.0.1", "10.0.0.2", 0, 40), flowTCP()), Encap34, 0x52d2723c},
		// SIT (IPv6 in IPv4) and IPv6-in-IPv6.
		{"sit encap3+4", cat(eth(0x0800), ipv4(41, "10.0.0.1", "10.0.0.2", 0, 60),
			ipv6(6, "2001:db8::1", "2001:db8::2", 20), tcp(40000, 443)), Encap34, v6tcp},
		{"ip6ip6 encap3+4", cat(eth(0x86dd), ipv6(41, "2001:db8:ffff::1", "2001:db8:ffff::2", 60),
			ipv6(6, "2001:db8::1", "2001:db8::2", 20), tcp(40000, 443)), Encap34, v6tcp},
		// GRE transparent Ethernet bridging, with checksum, key and sequence.
		{"gre teb csum+key+seq encap3+4", greTEB(0xb000, u32(0), u32(42), u32(7)), Encap34, 0x52d2723c},
		{"gre teb encap2+3", greTEB(0), Encap23, 0x1e1e1625},
		// GRE with the routing bit: dissection stops with the outer flow.
		{"gre routing encap3+4", greTEB(0x4000), Encap34, 0x01818181},
		// PPTP (GRE v1, key set, PPP IPv4).
		{"pptp encap3+4", cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 64), u16(0x2001), u16(0x880b),
			u32(0x00280001), []byte{0xff, 0x03, 0x00, 0x21}, flowTCP()), Encap34, 0x52d2723c},
		// VXLAN is UDP: the dissector does not enter it, so encap3+4 equals
		// layer3+4 on the outer header (checked for equality below too).
		{"vxlan encap3+4 = outer", cat(eth(0x0800), ipv4(17, ipA, ipB, 0, 8+8+14+40), udp(40000, 4789, 62),
			u32(0x08000000), u32(0x00006400), eth(0x0800), flowTCP()), Encap34,
			// ports 9c 40 12 b5 -> 0xb512409c; ^0x1e000000 = 0xab12409c; ^0xab12 -> 0xab12eb8e;
			// ^0x00ab12eb -> 0xabb9f965; >>1 -> 0x55dcfcb2
			0x55dcfcb2},
		// PPPoE session: bond_flow_ip does not know 0x8864 (layer2 fallback:
		// 0x33 ^ 0x8864 = 0x8857); the dissector walks into PPP IPv4.
		{"pppoe layer3+4", cat(eth(0x8864), []byte{0x11, 0, 0, 1}, u16(42), u16(0x0021), flowTCP()), Layer34, 0x8857},
		{"pppoe encap3+4", cat(eth(0x8864), []byte{0x11, 0, 0, 1}, u16(42), u16(0x0021), flowTCP()), Encap34, 0x52d2723c},
		// MPLS: the dissector succeeds without reading (no MPLS key):
		// encap2+3 = fold(0x33 ^ 0x8847 = 0x8874) = 0x8874 ^ 0x88 = 0x88fc; encap3+4 = 0.
		{"mpls encap2+3", cat(eth(0x8847), u32(0x00064140), flowTCP()), Encap23, 0x88fc},
		{"mpls encap3+4", cat(eth(0x8847), u32(0x00064140), flowTCP()), Encap34, 0},
		// Unknown ethertype: dissector fails, layer2 fallback 0x33 ^ 0x88b5.
		{"unknown ethertype encap3+4", cat(eth(0x88b5), make([]byte, 46)), Encap34, 0x8886},
		// ESP: the "ports" are the SPI (00 00 10 00 -> 0x00100000):
		// 0x1e100000 -> ^0x1e10 -> 0x1e101e10 -> ^0x001e101e -> 0x1e0e0e0e -> >>1 0x0f070707
		{"esp spi layer3+4", cat(eth(0x0800), ipv4(50, ipA, ipB, 0, 8), u32(0x00001000), u32(1)), Layer34, 0x0f070707},
		// AH: the SPI at offset 4 (de ad be ef -> 0xefbeadde).
		{"ah spi layer3+4", cat(eth(0x0800), ipv4(51, ipA, ipB, 0, 12), u32(0x04000000), u32(0xdeadbeef), u32(1)), Layer34, 0x78a7f11e},
		// IHL 4: the dissector rejects it (layer2 fallback 0x0833);
		// bond_flow_ip does not check and reads the "ports" 16 bytes in,
		// i.e. the destination address: h = daddr ^ saddr ^ daddr = 0x0a01a8c0
		// -> ^0x0a01 -> 0x0a01a2c1 -> ^0x000a01a2 -> 0x0a0ba363 -> >>1 0x0505d1b1
		{"ihl 4 encap3+4", cat(eth(0x0800), ipv4IHL(4, 6, ipA, ipB, 0, 20), tcp(40000, 443)), Encap34, 0x0833},
		{"ihl 4 layer3+4", cat(eth(0x0800), ipv4IHL(4, 6, ipA, ipB, 0, 20), tcp(40000, 443)), Layer34, 0x0505d1b1},
		// Truncations: 33 bytes has no full IPv4 header -> layer2 0x0833;
		// 34 bytes has the header but not the ports -> ports 0.
		{"truncated ip header layer3+4", frameIPv4TCP()[:33], Layer34, 0x0833},
		{"truncated ports layer3+4", frameIPv4TCP()[:34], Layer34, 0x0f0f0f0f},
		{"truncated ports encap3+4", frameIPv4TCP()[:37], Encap34, 0x0f0f0f0f},
		// A tag without room for its encapsulated type stays "in band".
		{"truncated tag layer2", cat(macs(), u16(0x8100), u16(5)), Layer2, 0x8133},
		{"truncated tag vlan+srcmac", cat(macs(), u16(0x8100), u16(5)), VlanSrcMac, 0xaaa047},
		{"short frame", macs(), Layer2, 0},
		// An invalid policy value hashes like layer2.
		{"invalid policy", frameIPv4TCP(), HashPolicy(9), 0x0833},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Hash(c.frame, c.p); got != c.want {
				t.Fatalf("Hash(%s) = %#08x, want %#08x", c.p, got, c.want)
			}
		})
	}
}

// TestEncapMatchesPlainWhenNothingIsEncapsulated: on plain TCP/UDP over
// IPv4/IPv6 and on VXLAN (UDP) the generic dissector and bond_flow_ip agree.
func TestEncapMatchesPlainWhenNothingIsEncapsulated(t *testing.T) {
	frames := map[string][]byte{
		"ipv4 tcp": frameIPv4TCP(),
		"ipv6 udp": cat(eth(0x86dd), ipv6(17, "fe80::1", "ff02::fb", 8), udp(5353, 5353, 0)),
		"vxlan": cat(eth(0x0800), ipv4(17, ipA, ipB, 0, 70), udp(51000, 4789, 62),
			u32(0x08000000), u32(0x00006400), eth(0x0800), flowTCP()),
		"vlan ipv4 udp": cat(macs(), tag(0x8100, 7), u16(0x0800), ipv4(17, "10.1.1.1", "10.2.2.2", 0, 8), udp(1, 2, 0)),
	}
	for name, f := range frames {
		if a, b := Hash(f, Layer34), Hash(f, Encap34); a != b {
			t.Errorf("%s: layer3+4 %#x != encap3+4 %#x", name, a, b)
		}
		if a, b := Hash(f, Layer23), Hash(f, Encap23); a != b {
			t.Errorf("%s: layer2+3 %#x != encap2+3 %#x", name, a, b)
		}
	}
}

// TestHashTruncatedNoPanic feeds every prefix (0..60 bytes, and to the full
// length) of a set of frames, and garbage, to every policy.
func TestHashTruncatedNoPanic(t *testing.T) {
	frames := [][]byte{
		frameIPv4TCP(),
		cat(eth(0x86dd), ipv6(0, "2001:db8::1", "2001:db8::2", 28), []byte{6, 0, 0, 0, 0, 0, 0, 0}, tcp(1, 2)),
		cat(macs(), tag(0x88a8, 1), tag(0x8100, 2), tag(0x8100, 3), u16(0x0800), flowTCP()),
		cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 64), u16(0xb000), u16(0x6558), u32(0), u32(1), u32(2), eth(0x0800), flowTCP()),
		cat(eth(0x0800), ipv4(1, "192.168.1.1", ipA, 0, 36), icmp(3, 3, 0, 0), ipv4(17, ipA, "8.8.8.8", 0, 8), udp(5353, 53, 0)),
		cat(eth(0x8864), []byte{0x11, 0, 0, 1}, u16(42), u16(0x0021), flowTCP()),
		cat(eth(0x4305), []byte{0x40, 15, 1, 1}, testDstMAC, eth(0x0800), flowTCP()),
		cat(eth(0x892f), u16(0), u16(1), u16(0x0800), flowTCP()),
		cat(eth(0x88ca), make([]byte, 16)),
		func() []byte { // garbage
			b := make([]byte, 80)
			for i := range b {
				b[i] = byte(i*151 + 7)
			}
			return b
		}(),
	}
	for _, f := range frames {
		for n := 0; n <= len(f); n++ {
			for _, p := range []HashPolicy{Layer2, Layer34, Layer23, Encap23, Encap34, VlanSrcMac, 200} {
				h1 := Hash(f[:n], p)
				if h2 := Hash(f[:n], p); h1 != h2 {
					t.Fatalf("not deterministic on %x", f[:n])
				}
			}
		}
	}
	for n := 0; n <= 60; n++ {
		b := make([]byte, n)
		for _, fill := range []byte{0x00, 0xff, 0x45, 0x81, 0x86} {
			for i := range b {
				b[i] = fill
			}
			for _, p := range allPolicies {
				_ = Hash(b, p)
			}
		}
	}
}

func TestSlaveIndex(t *testing.T) {
	cases := []struct {
		h    uint32
		n    int
		want int
	}{
		{0, 1, 0},
		{7, 2, 1},
		{7, 3, 1},
		{0xffffffff, 2, 1},
		{0xffffffff, 3, 0},  // 4294967295 = 3 * 1431655765
		{0xffffffff, 10, 5}, // unsigned, not signed modulo
		{0x80000000, 3, 2},  // 2147483648 = 3*715827882 + 2
		{123, 0, 0},         // no slave: documented 0
		{123, -4, 0},
	}
	for _, c := range cases {
		if got := SlaveIndex(c.h, c.n); got != c.want {
			t.Errorf("SlaveIndex(%#x, %d) = %d, want %d", c.h, c.n, got, c.want)
		}
	}
}

// TestLayer34Spread: many flows between two hosts (varying source port and
// client address) must spread over 2 and 3 slaves with > 20% each, and one
// flow must always map to the same slave.
func TestLayer34Spread(t *testing.T) {
	for _, p := range []HashPolicy{Layer34, Encap34} {
		for _, n := range []int{2, 3} {
			counts := make([]int, n)
			const flows = 6000
			for i := 0; i < flows; i++ {
				client := fmt.Sprintf("10.0.%d.%d", i/250%250, 1+i%250)
				f := cat(eth(0x0800), ipv4(6, client, "10.255.0.1", 0x4000, 20), tcp(uint16(32768+i*7), 443))
				s := SlaveIndex(Hash(f, p), n)
				counts[s]++
				for k := 0; k < 3; k++ {
					if again := SlaveIndex(Hash(f, p), n); again != s {
						t.Fatalf("flow %d moved from slave %d to %d", i, s, again)
					}
				}
			}
			for s, c := range counts {
				if c*5 <= flows {
					t.Errorf("%s n=%d: slave %d got %d of %d flows (<= 20%%): %v", p, n, s, c, flows, counts)
				}
			}
			t.Logf("%s n=%d: %v", p, n, counts)
		}
	}
}

func TestHashAllocs(t *testing.T) {
	frames := [][]byte{
		frameIPv4TCP(),
		cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 64), u16(0), u16(0x0800), flowTCP()),
		cat(eth(0x0800), ipv4(1, "192.168.1.1", ipA, 0, 36), icmp(3, 3, 0, 0), ipv4(17, ipA, "8.8.8.8", 0, 8), udp(5353, 53, 0)),
	}
	for _, p := range allPolicies {
		allocs := testing.AllocsPerRun(200, func() {
			for _, f := range frames {
				_ = SlaveIndex(Hash(f, p), 3)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per run", p, allocs)
		}
	}
}
