package vnet

import (
	"encoding/binary"
	"testing"
)

// refSum is the reference Internet checksum (RFC 1071, 16 bits at a
// time), independent of Sum: the one's complement of the one's complement
// sum of the pseudo header (when given) and b.
func refSum(b []byte, pseudo []byte) uint16 {
	var s uint32
	for _, p := range [][]byte{pseudo, b} {
		for i := 0; i+1 < len(p); i += 2 {
			s += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			s += uint32(p[len(p)-1]) << 8
		}
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// spec describes a frame the tests build.
type spec struct {
	v6, udp bool
	vlan    bool
	payload int
	flags   byte // TCP flags (ACK if 0)
	seq     uint32
	srcPort uint16
	ttl     byte
	ack     uint32
	opts    int // TCP option bytes (NOPs), a multiple of 4
	dst     byte
	src     byte
	dstMAC  byte
	fill    byte // payload byte pattern start
	badCsum bool
	partial bool // checksum field = pseudo-header sum (a TAP's NEEDS_CSUM)
	ipID    uint16
}

var macs = []byte{0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02}

// build makes an Ethernet frame of s with correct lengths and a full
// (reference) transport checksum, or the partial one.
func build(s spec) (f []byte, lo layout) {
	f = append(f, macs...)
	if s.dstMAC != 0 {
		f[5] = s.dstMAC
	}
	if s.vlan {
		f = append(f, 0x81, 0x00, 0x00, 0x64)
	}
	lo.l3 = len(f) + 2
	lo.v6, lo.tcp = s.v6, !s.udp
	proto := byte(protoTCP)
	if s.udp {
		proto = protoUDP
	}
	th := 20 + s.opts
	if s.udp {
		th = 8
	}
	l4len := th + s.payload
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	var ph []byte // pseudo header
	if s.v6 {
		f = append(f, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len))
		ip[6], ip[7] = proto, ttl
		ip[8], ip[23] = 0xfd, 1+s.src
		ip[24], ip[39] = 0xfd, 2+s.dst
		f = append(f, ip...)
		ph = append(ph, ip[8:40]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(l4len))
		ph = append(ph, 0, 0, 0, proto)
	} else {
		f = append(f, 0x08, 0x00)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len))
		binary.BigEndian.PutUint16(ip[4:], s.ipID)
		ip[6] = 0x40
		ip[8], ip[9] = ttl, proto
		copy(ip[12:], []byte{10, 7, 0, 2 + s.src, 10, 7, 0, 1 + s.dst})
		binary.BigEndian.PutUint16(ip[10:], refSum(ip, nil))
		f = append(f, ip...)
		ph = append(ph, ip[12:20]...)
		ph = append(ph, 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(l4len))
	}
	lo.l4 = len(f)
	sp := s.srcPort
	if sp == 0 {
		sp = 40000
	}
	if s.udp {
		u := make([]byte, 8)
		binary.BigEndian.PutUint16(u, sp)
		binary.BigEndian.PutUint16(u[2:], 5001)
		binary.BigEndian.PutUint16(u[4:], uint16(l4len))
		f = append(f, u...)
	} else {
		t := make([]byte, th)
		binary.BigEndian.PutUint16(t, sp)
		binary.BigEndian.PutUint16(t[2:], 5001)
		binary.BigEndian.PutUint32(t[4:], s.seq)
		binary.BigEndian.PutUint32(t[8:], s.ack)
		t[12] = byte(th/4) << 4
		t[13] = s.flags
		if t[13] == 0 {
			t[13] = tcpACK
		}
		binary.BigEndian.PutUint16(t[14:], 512)
		for i := 20; i < th; i++ {
			t[i] = 1 // NOP
		}
		f = append(f, t...)
	}
	lo.hlen = len(f)
	for i := 0; i < s.payload; i++ {
		f = append(f, s.fill+byte(i*7+i/251))
	}
	co := lo.l4 + 16
	if s.udp {
		co = lo.l4 + 6
	}
	if s.partial {
		binary.BigEndian.PutUint16(f[co:], ^refSum(nil, ph))
	} else {
		c := refSum(f[lo.l4:], ph)
		if s.udp && c == 0 {
			c = 0xffff
		}
		if s.badCsum {
			c ^= 0x5a5a
		}
		binary.BigEndian.PutUint16(f[co:], c)
	}
	return f, lo
}

// checkFrame verifies with the reference functions every length and
// checksum of frame f (as build lays it out).
func checkFrame(t *testing.T, f []byte, lo layout) {
	t.Helper()
	l4len := len(f) - lo.l4
	proto := byte(protoTCP)
	if !lo.tcp {
		proto = protoUDP
	}
	var ph []byte
	if lo.v6 {
		if got := int(binary.BigEndian.Uint16(f[lo.l3+4:])); got != l4len {
			t.Fatalf("IPv6 payload length %d, want %d", got, l4len)
		}
		ph = append(ph, f[lo.l3+8:lo.l3+40]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(l4len))
		ph = append(ph, 0, 0, 0, proto)
	} else {
		if got := int(binary.BigEndian.Uint16(f[lo.l3+2:])); got != len(f)-lo.l3 {
			t.Fatalf("IPv4 total length %d, want %d", got, len(f)-lo.l3)
		}
		if refSum(f[lo.l3:lo.l4], nil) != 0 {
			t.Fatalf("IPv4 header checksum bad")
		}
		ph = append(ph, f[lo.l3+12:lo.l3+20]...)
		ph = append(ph, 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(l4len))
	}
	if !lo.tcp {
		if got := int(binary.BigEndian.Uint16(f[lo.l4+4:])); got != l4len {
			t.Fatalf("UDP length %d, want %d", got, l4len)
		}
	}
	if c := refSum(f[lo.l4:], ph); c != 0 {
		t.Fatalf("transport checksum bad (residue %#04x)", c)
	}
}
