package policy

import (
	"math"
	"testing"
)

func TestRoundRobinSequences(t *testing.T) {
	cases := []struct {
		name  string
		rr    RoundRobin
		n     int
		ids   []uint32 // Next() before the modulo
		slave []int    // ids % n
	}{
		{
			// this_cpu_inc_return: the counter starts at 0 and is incremented
			// before use, so the first id is 1.
			name:  "pps 1 over 3 slaves",
			rr:    NewRoundRobin(1, 0),
			n:     3,
			ids:   []uint32{1, 2, 3, 4, 5, 6, 7},
			slave: []int{1, 2, 0, 1, 2, 0, 1},
		},
		{
			name:  "zero value is pps 1",
			rr:    RoundRobin{},
			n:     2,
			ids:   []uint32{1, 2, 3, 4},
			slave: []int{1, 0, 1, 0},
		},
		{
			// reciprocal_divide(counter, reciprocal_value(3)) = counter / 3:
			// 1/3=0, 2/3=0, 3/3=1, 4/3=1, 5/3=1, 6/3=2, ...
			name:  "pps 3 over 2 slaves",
			rr:    NewRoundRobin(3, 0),
			n:     2,
			ids:   []uint32{0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4},
			slave: []int{0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0},
		},
		{
			name:  "pps 3 over 3 slaves",
			rr:    NewRoundRobin(3, 0),
			n:     3,
			ids:   []uint32{0, 0, 1, 1, 1, 2, 2, 2, 3, 3},
			slave: []int{0, 0, 1, 1, 1, 2, 2, 2, 0, 0},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rr := c.rr
			for i := range c.ids {
				id := rr.Next()
				if id != c.ids[i] {
					t.Fatalf("packet %d: id %d, want %d", i, id, c.ids[i])
				}
				if s := SlaveIndex(id, c.n); s != c.slave[i] {
					t.Fatalf("packet %d: slave %d, want %d", i, s, c.slave[i])
				}
			}
		})
	}
}

func TestRoundRobinPacketsPerSlave(t *testing.T) {
	for _, pps := range []uint32{0, 1, 3, 65535} {
		rr := NewRoundRobin(pps, 1)
		if got := rr.PacketsPerSlave(); got != pps {
			t.Errorf("NewRoundRobin(%d).PacketsPerSlave() = %d", pps, got)
		}
	}
	var zero RoundRobin
	if got := zero.PacketsPerSlave(); got != 1 {
		t.Errorf("zero value PacketsPerSlave() = %d, want 1", got)
	}
}

// TestRoundRobinRuns: with N packets per slave every slave gets runs of
// exactly N consecutive packets (after the kernel's short first run of N-1).
func TestRoundRobinRuns(t *testing.T) {
	for _, pps := range []uint32{2, 3, 7, 100} {
		rr := NewRoundRobin(pps, 0)
		const n = 3
		prev, run, runs := -1, 0, 0
		for i := 0; i < int(pps)*40; i++ {
			s := SlaveIndex(rr.Next(), n)
			if s == prev {
				run++
				continue
			}
			if prev >= 0 {
				want := int(pps)
				if runs == 0 {
					want = int(pps) - 1
				}
				if run != want {
					t.Fatalf("pps %d: run %d has %d packets, want %d", pps, runs, run, want)
				}
				if s != (prev+1)%n {
					t.Fatalf("pps %d: slave %d followed by %d", pps, prev, s)
				}
				runs++
			}
			prev, run = s, 1
		}
	}
}

func TestRoundRobinCounterWraps(t *testing.T) {
	rr := NewRoundRobin(1, 0)
	rr.counter = math.MaxUint32 - 1
	if id := rr.Next(); id != math.MaxUint32 {
		t.Fatalf("id %d", id)
	}
	if id := rr.Next(); id != 0 {
		t.Fatalf("after wrap: id %d, want 0", id)
	}
	rr3 := NewRoundRobin(3, 0)
	rr3.counter = math.MaxUint32
	if id := rr3.Next(); id != 0 { // u32 counter wrapped to 0, 0/3 = 0
		t.Fatalf("pps 3 after wrap: id %d, want 0", id)
	}
}

// TestReciprocalDivide: the kernel's reciprocal division is exact.
func TestReciprocalDivide(t *testing.T) {
	divisors := []uint32{1, 2, 3, 5, 7, 10, 100, 255, 256, 257, 1000, 65535, 65536, 1<<31 - 1, 1 << 31, 1<<31 + 1, math.MaxUint32}
	dividends := []uint32{0, 1, 2, 3, 4, 5, 6, 99, 100, 101, 65535, 65536, 1<<31 - 1, 1 << 31, math.MaxUint32 - 1, math.MaxUint32}
	x := uint32(12345)
	for i := 0; i < 2000; i++ {
		x = x*1664525 + 1013904223
		dividends = append(dividends, x)
	}
	for _, d := range divisors {
		m, s1, s2 := reciprocalValue(d)
		for _, a := range dividends {
			if got, want := reciprocalDivide(a, m, s1, s2), a/d; got != want {
				t.Fatalf("reciprocal_divide(%d, %d) = %d, want %d", a, d, got, want)
			}
		}
	}
	// Every packets_per_slave the kernel accepts, on the first counter values
	// and around the wrap.
	for d := uint32(2); d <= 65535; d++ {
		m, s1, s2 := reciprocalValue(d)
		for _, a := range []uint32{d - 1, d, d + 1, 2*d - 1, 2 * d, math.MaxUint32, math.MaxUint32 - d} {
			if got := reciprocalDivide(a, m, s1, s2); got != a/d {
				t.Fatalf("reciprocal_divide(%d, %d) = %d, want %d", a, d, got, a/d)
			}
		}
	}
}

func TestRoundRobinRandom(t *testing.T) {
	for _, n := range []int{2, 3} {
		rr := NewRoundRobin(0, 42)
		counts := make([]int, n)
		const draws = 90000
		for i := 0; i < draws; i++ {
			counts[SlaveIndex(rr.Next(), n)]++
		}
		exp := float64(draws) / float64(n)
		for s, c := range counts {
			if math.Abs(float64(c)-exp) > 0.03*exp {
				t.Errorf("n=%d: slave %d got %d, expected about %.0f (%v)", n, s, c, exp, counts)
			}
		}
	}
	// Seeds matter, runs repeat.
	a, b, c := NewRoundRobin(0, 1), NewRoundRobin(0, 1), NewRoundRobin(0, 2)
	same, diff := true, false
	for i := 0; i < 16; i++ {
		x, y, z := a.Next(), b.Next(), c.Next()
		same = same && x == y
		diff = diff || x != z
	}
	if !same || !diff {
		t.Errorf("seeding: same seed equal %v, different seed differs %v", same, diff)
	}
}

func TestRoundRobinAllocs(t *testing.T) {
	for _, pps := range []uint32{0, 1, 3} {
		rr := NewRoundRobin(pps, 7)
		if a := testing.AllocsPerRun(100, func() { _ = rr.Next() }); a != 0 {
			t.Errorf("pps %d: %v allocs", pps, a)
		}
	}
}
