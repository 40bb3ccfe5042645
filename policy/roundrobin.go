package policy

import "math/bits"

// RoundRobin generates balance-rr slave ids like bond_rr_gen_slave_id():
//
//   - packets_per_slave 1: a counter incremented before use, so the ids
//     are 1, 2, 3, ... (the first packet goes to slave 1 % n, as in the
//     kernel, whose per-CPU rr_tx_counter starts at 0);
//   - packets_per_slave N > 1: that counter divided by N with the kernel's
//     reciprocal_divide(), i.e. ids 0 (N-1 times: counter 1..N-1), then 1
//     (N times), 2 (N times), ...;
//   - packets_per_slave 0: a random 32-bit id per packet (get_random_u32 in
//     the kernel; here a SplitMix64 generator, seeded by the caller).
//
// The counter is 32 bits and wraps like the kernel's u32. The caller takes
// the id modulo the slave count (and sends IGMP through the active slave,
// see [IsIGMP]). The kernel accepts packets_per_slave 0..65535; any uint32
// is accepted here.
//
// A RoundRobin is plain state with no locking: keep one per lane/goroutine,
// as the kernel keeps one counter per CPU. The zero value behaves as
// packets_per_slave 1.
type RoundRobin struct {
	counter uint32
	pps     uint32 // 0 only in the zero value, which means 1
	recipM  uint32 // struct reciprocal_value for pps > 1
	recipS1 uint8
	recipS2 uint8
	random  bool   // packets_per_slave 0
	rng     uint64 // SplitMix64 state when random
}

// NewRoundRobin returns a generator for packets_per_slave = packetsPerSlave.
// seed only matters for packetsPerSlave 0.
func NewRoundRobin(packetsPerSlave uint32, seed uint64) RoundRobin {
	r := RoundRobin{pps: packetsPerSlave, random: packetsPerSlave == 0, rng: seed}
	if packetsPerSlave > 1 {
		r.recipM, r.recipS1, r.recipS2 = reciprocalValue(packetsPerSlave)
	}
	return r
}

// PacketsPerSlave returns the packets_per_slave value r implements.
func (r *RoundRobin) PacketsPerSlave() uint32 {
	switch {
	case r.random:
		return 0
	case r.pps == 0:
		return 1
	}
	return r.pps
}

// Next returns the next slave id, before the modulo by the slave count.
func (r *RoundRobin) Next() uint32 {
	if r.random {
		return r.nextRandom()
	}
	r.counter++
	if r.pps > 1 {
		return reciprocalDivide(r.counter, r.recipM, r.recipS1, r.recipS2)
	}
	return r.counter
}

// nextRandom is SplitMix64 (Steele, Lea, Flood 2014); it returns the upper 32
// bits of the output.
func (r *RoundRobin) nextRandom() uint32 {
	r.rng += 0x9e3779b97f4a7c15
	z := r.rng
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return uint32(z >> 32)
}

// reciprocalValue is reciprocal_value() (lib/math/reciprocal_div.c).
func reciprocalValue(d uint32) (m uint32, sh1, sh2 uint8) {
	l := bits.Len32(d - 1) // fls(d - 1)
	mm := (uint64(1) << 32) * ((uint64(1) << uint(l)) - uint64(d))
	mm /= uint64(d)
	mm++
	return uint32(mm), uint8(min(l, 1)), uint8(max(l-1, 0))
}

// reciprocalDivide is reciprocal_divide() (include/linux/reciprocal_div.h);
// with reciprocalValue(d) it equals a / d for every a.
func reciprocalDivide(a, m uint32, sh1, sh2 uint8) uint32 {
	t := uint32((uint64(a) * uint64(m)) >> 32)
	return (t + ((a - t) >> sh1)) >> sh2
}
