package rings

import (
	"runtime"
	"sync"
	"testing"
)

func TestSPSCRounding(t *testing.T) {
	tests := []struct {
		size, wantCap int
	}{
		{1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {9, 16}, {1000, 1024}, {1024, 1024},
	}
	for _, tc := range tests {
		q := NewSPSC[int](tc.size)
		if q.Cap() != tc.wantCap {
			t.Errorf("NewSPSC(%d).Cap() = %d, want %d", tc.size, q.Cap(), tc.wantCap)
		}
		// Fill to capacity, one more must fail, then drain in order.
		for i := range tc.wantCap {
			v := i
			if !q.Push(&v) {
				t.Fatalf("size %d: Push %d failed", tc.size, i)
			}
			if q.Len() != i+1 {
				t.Fatalf("size %d: Len = %d, want %d", tc.size, q.Len(), i+1)
			}
		}
		v := -1
		if q.Push(&v) {
			t.Fatalf("size %d: Push on full queue succeeded", tc.size)
		}
		for i := range tc.wantCap {
			var got int
			if !q.Pop(&got) || got != i {
				t.Fatalf("size %d: Pop = %d, want %d", tc.size, got, i)
			}
		}
		if q.Pop(&v) {
			t.Fatalf("size %d: Pop on empty queue succeeded", tc.size)
		}
		if q.Len() != 0 {
			t.Fatalf("size %d: Len = %d after drain", tc.size, q.Len())
		}
	}
}

func TestSPSCBadSize(t *testing.T) {
	for _, size := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewSPSC(%d) did not panic", size)
				}
			}()
			NewSPSC[int](size)
		}()
	}
}

func TestSPSCInterleaved(t *testing.T) {
	type msg struct {
		seq  uint64
		name string
	}
	q := NewSPSC[msg](4)
	var next, want uint64
	// Alternate pushes and pops of varying batch sizes to wrap many times.
	for round := range 1000 {
		for range round % 6 {
			m := msg{seq: next, name: "x"}
			if q.Push(&m) {
				next++
			}
		}
		for range (round + 3) % 5 {
			var m msg
			if !q.Pop(&m) {
				break
			}
			if m.seq != want || m.name != "x" {
				t.Fatalf("Pop = %+v, want seq %d", m, want)
			}
			want++
		}
		if q.Len() != int(next-want) {
			t.Fatalf("Len = %d, want %d", q.Len(), next-want)
		}
	}
}

func TestSPSCPopClearsSlot(t *testing.T) {
	q := NewSPSC[*int](2)
	x := 7
	p := &x
	q.Push(&p)
	var out *int
	q.Pop(&out)
	if out != p || q.buf[0] != nil {
		t.Fatalf("slot not cleared after Pop")
	}
}

func TestSPSCConcurrent(t *testing.T) {
	const n = 1_000_000
	type msg struct {
		seq, check uint64
	}
	q := NewSPSC[msg](256)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := uint64(0); i < n; {
			m := msg{seq: i, check: ^i}
			if q.Push(&m) {
				i++
			} else {
				runtime.Gosched() // full: let the consumer run (GOMAXPROCS=1)
			}
		}
	})
	var m msg
	for want := uint64(0); want < n; {
		if !q.Pop(&m) {
			runtime.Gosched()
			continue
		}
		if m.seq != want || m.check != ^want {
			t.Fatalf("Pop = %+v, want seq %d", m, want)
		}
		want++
	}
	wg.Wait()
	if q.Pop(&m) {
		t.Fatal("queue not empty at the end")
	}
}
