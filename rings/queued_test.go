package rings

import (
	"testing"

	"github.com/bond-appliance/bond-appliance/rings/ringtest"
)

// TestQueued: every ring reports the entries between its shared consumer
// and producer indices, across the 32-bit wrap of the running indices.
func TestQueued(t *testing.T) {
	const size = 8
	for _, start := range []uint32{0, ^uint32(0) - 2} {
		fk, tk := ringtest.NewRing(size, 8), ringtest.NewRing(size, 16)
		ck, rk := ringtest.NewRing(size, 8), ringtest.NewRing(size, 16)
		for _, k := range []*ringtest.Ring{fk, tk, ck, rk} {
			*k.Producer(), *k.Consumer() = start, start
		}
		f, tx := NewFill(fk.Mem, ringtest.Off, size), NewTX(tk.Mem, ringtest.Off, size)
		c, rx := NewCompletion(ck.Mem, ringtest.Off, size), NewRX(rk.Mem, ringtest.Off, size)

		idx, got := f.Reserve(5)
		for i := range got {
			f.Set(idx+i, uint64(i)*2048)
		}
		if f.Queued() != 0 {
			t.Fatalf("start %#x: fill queued %d before Submit", start, f.Queued())
		}
		f.Submit(got)
		fk.ConsumeAddrs(2)
		idx, got = tx.Reserve(4)
		for i := range got {
			tx.Set(idx+i, Desc{Addr: uint64(i) * 2048, Len: 60})
		}
		tx.Submit(got)
		ck.ProduceAddrs([]uint64{0, 2048, 4096})
		ringtest.ProduceDescs(rk, []ringtest.Desc{{Len: 60}, {Len: 60}, {Len: 60}, {Len: 60}, {Len: 60}, {Len: 60}})
		if _, n := rx.Peek(2); n != 2 {
			t.Fatalf("peek %d", n)
		}
		// claimed by Peek but not released: still on the ring
		if f.Queued() != 3 || tx.Queued() != 4 || c.Queued() != 3 || rx.Queued() != 6 {
			t.Fatalf("start %#x: queued fill %d tx %d completion %d rx %d, want 3 4 3 6", start, f.Queued(), tx.Queued(), c.Queued(), rx.Queued())
		}
		rx.Release(2)
		if rx.Queued() != 4 {
			t.Fatalf("start %#x: rx queued %d after release, want 4", start, rx.Queued())
		}
	}
}
