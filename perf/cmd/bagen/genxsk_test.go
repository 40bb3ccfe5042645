package main

import "testing"

// A frame is cut into UMEM-frame-sized fragments, every one full but the
// last, and their lengths add up to the frame.
func TestChainLayout(t *testing.T) {
	for _, tc := range []struct {
		size        int // wire size with FCS
		chunk, nfrg uint32
		last        uint32
	}{
		{64, 2048, 1, 60},
		{1518, 2048, 1, 1514},
		{2052, 2048, 1, 2048},
		{2053, 4096, 1, 2049},
		{4100, 4096, 1, 4096},
		{4101, 4096, 2, 1},
		{9000, 4096, 3, 8996 - 8192},
		{9018, 4096, 3, 9014 - 8192},
	} {
		n := uint32(tc.size - 4)
		c := xskChunk(int(n))
		k := (n + c - 1) / c
		if c != tc.chunk || k != tc.nfrg {
			t.Errorf("size %d: chunk %d, %d fragments; want %d, %d", tc.size, c, k, tc.chunk, tc.nfrg)
			continue
		}
		var sum uint32
		for i := uint32(0); i < k; i++ {
			l := fragLen(n, c, i)
			if i < k-1 && l != c {
				t.Errorf("size %d: fragment %d is %d bytes, want a full %d", tc.size, i, l, c)
			}
			sum += l
		}
		if l := fragLen(n, c, k-1); l != tc.last || sum != n {
			t.Errorf("size %d: last fragment %d (want %d), total %d (want %d)", tc.size, l, tc.last, sum, n)
		}
	}
}
