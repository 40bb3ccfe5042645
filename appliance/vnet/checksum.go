package vnet

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds b to the unfolded Internet checksum sum initial (RFC 1071): b
// is read as big-endian 16-bit words, an odd last byte padded with zero.
// It adds 64-bit words with end-around carry, which folds to the same
// 16-bit one's complement sum (2^64 ≡ 1 modulo 2^16-1).
func Sum(b []byte, initial uint64) uint64 {
	ac := initial
	var c uint64
	for len(b) >= 32 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[8:]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[16:]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		ac, c = bits.Add64(ac, uint64(binary.BigEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		ac, c = bits.Add64(ac, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		ac, c = bits.Add64(ac, uint64(b[0])<<8, c)
	}
	ac, c = bits.Add64(ac, c, 0)
	ac += c // at most 1, onto a sum that just wrapped: no carry
	return ac
}

// Fold folds an unfolded sum to 16 bits (not complemented).
func Fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// add adds b to unfolded sum a with end-around carry.
func add(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	return s + c
}
