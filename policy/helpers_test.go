package policy

import (
	"encoding/binary"
	"net/netip"
)

// Test frames are built from these parts. All multi-byte fields are written
// in network byte order, as on the wire.

var (
	// dst[5] = 0x55, src[5] = 0x66: every layer2 hash starts from
	// 0x55 ^ 0x66 = 0x33.
	testDstMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x55}
	// vlan+srcmac: vendor 0x001b21 ^ device 0xaabb66 = 0xaaa047.
	testSrcMAC = []byte{0x00, 0x1b, 0x21, 0xaa, 0xbb, 0x66}
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// macs is the first 12 bytes of every test frame.
func macs() []byte { return cat(testDstMAC, testSrcMAC) }

// eth is an untagged Ethernet header.
func eth(etype uint16) []byte { return cat(macs(), u16(etype)) }

// tag is a VLAN tag as it sits after the MACs: TPID then TCI.
func tag(tpid, tci uint16) []byte { return cat(u16(tpid), u16(tci)) }

func addr4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }

func addr16(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }

// ipv4 is a 20-byte IPv4 header; fragOff is the flags+offset word.
func ipv4(proto byte, src, dst string, fragOff uint16, payload int) []byte {
	return ipv4IHL(5, proto, src, dst, fragOff, payload)
}

func ipv4IHL(ihl, proto byte, src, dst string, fragOff uint16, payload int) []byte {
	h := cat([]byte{0x40 | ihl, 0}, u16(uint16(20+payload)), u16(0x1234), u16(fragOff),
		[]byte{64, proto}, u16(0), addr4(src), addr4(dst))
	return h
}

func ipv6(next byte, src, dst string, payload int) []byte {
	return cat([]byte{0x60, 0, 0, 0}, u16(uint16(payload)), []byte{next, 64}, addr16(src), addr16(dst))
}

// tcp is a 20-byte TCP header.
func tcp(sport, dport uint16) []byte {
	return cat(u16(sport), u16(dport), u32(1), u32(0), []byte{0x50, 0x10}, u16(0xffff), u16(0), u16(0))
}

func udp(sport, dport uint16, payload int) []byte {
	return cat(u16(sport), u16(dport), u16(uint16(8+payload)), u16(0))
}

func icmp(typ, code byte, id, seq uint16) []byte {
	return cat([]byte{typ, code}, u16(0), u16(id), u16(seq))
}

// Addresses and ports of the main test flow:
// 192.168.1.10:40000 -> 192.168.1.20:443.
//
// As host u32 (little-endian load of the network bytes):
//
//	192.168.1.10 = c0 a8 01 0a -> 0x0a01a8c0
//	192.168.1.20 = c0 a8 01 14 -> 0x1401a8c0
//	src ^ dst                  =  0x1e000000
//	ports 40000, 443 = 9c 40 01 bb -> 0x bb01409c
const (
	ipA = "192.168.1.10"
	ipB = "192.168.1.20"
)

func flowTCP() []byte { return cat(ipv4(6, ipA, ipB, 0x4000, 20), tcp(40000, 443)) }

// frameIPv4TCP is the 54-byte untagged IPv4/TCP frame of the main flow.
func frameIPv4TCP() []byte { return cat(eth(0x0800), flowTCP()) }
