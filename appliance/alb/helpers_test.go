package alb

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// mac returns 02:00:00:00:00:n (n < 256) or 02:00:00:00:xx:yy.
func mac(n int) MAC { return MAC{0x02, 0, 0, 0, byte(n >> 8), byte(n)} }

func ip4(s string) [4]byte { return netip.MustParseAddr(s).As4() }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func eth(dst, src MAC, etype uint16) []byte {
	b := append(append([]byte{}, dst[:]...), src[:]...)
	return binary.BigEndian.AppendUint16(b, etype)
}

func tagged(dst, src MAC, tci, etype uint16) []byte {
	b := append(append([]byte{}, dst[:]...), src[:]...)
	b = binary.BigEndian.AppendUint16(b, ethP8021Q)
	b = binary.BigEndian.AppendUint16(b, tci)
	return binary.BigEndian.AppendUint16(b, etype)
}

// ipv4 builds an IPv4 frame (20-byte header) with payload zero bytes.
func ipv4(dst, src MAC, sip, dip string, proto byte, payload int) []byte {
	b := eth(dst, src, ethPIPv4)
	h := make([]byte, 20+payload)
	h[0], h[9] = 0x45, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+payload))
	s, d := ip4(sip), ip4(dip)
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(b, h...)
}

// arp builds an Ethernet/IPv4 ARP frame; tci != 0 tags it.
func arp(op uint16, ethDst, ethSrc, sha MAC, spa string, tha MAC, tpa string, tci uint16) []byte {
	var b []byte
	if tci != 0 {
		b = tagged(ethDst, ethSrc, tci, ethPARP)
	} else {
		b = eth(ethDst, ethSrc, ethPARP)
	}
	b = append(b, 0, 1, 0x08, 0, 6, 4)
	b = binary.BigEndian.AppendUint16(b, op)
	s, t := ip4(spa), ip4(tpa)
	b = append(b, sha[:]...)
	b = append(b, s[:]...)
	b = append(b, tha[:]...)
	return append(b, t[:]...)
}

// fnvHash stands in for bond_xmit_hash.
func fnvHash(f []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range f {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newBond builds a bond whose slaves are up with the given speeds, slave
// i having address mac(i+1) and the bond address mac(1); slave 0 is made
// active.
func newBond(t *testing.T, mode Mode, speeds ...int) *Bond {
	t.Helper()
	cfg := Config{Mode: mode, BondMAC: mac(1), DynamicLB: true}
	for i, s := range speeds {
		cfg.Slaves = append(cfg.Slaves, Slave{Speed: s, MAC: mac(i + 1), Up: true})
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.ActiveChange(-1, 0)
	b.Drain()
	return b
}

// framesBy counts frames per slave.
func framesBy(fs []Frame) map[int]int {
	m := map[int]int{}
	for _, f := range fs {
		m[f.Slave]++
	}
	return m
}
