package rings

import (
	"errors"
	"github.com/bond-appliance/bond-appliance/rings/ringtest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestDescLayout(t *testing.T) {
	if got, want := unsafe.Sizeof(Desc{}), unsafe.Sizeof(unix.XDPDesc{}); got != want || got != 16 {
		t.Fatalf("sizeof Desc = %d, xdp_desc = %d, want 16", got, want)
	}
}

func TestNewPanics(t *testing.T) {
	ctors := map[string]struct {
		elem uintptr
		mk   func(mem []byte, off unix.XDPRingOffset, size uint32)
	}{
		"Fill":       {8, func(m []byte, o unix.XDPRingOffset, s uint32) { NewFill(m, o, s) }},
		"TX":         {16, func(m []byte, o unix.XDPRingOffset, s uint32) { NewTX(m, o, s) }},
		"Completion": {8, func(m []byte, o unix.XDPRingOffset, s uint32) { NewCompletion(m, o, s) }},
		"RX":         {16, func(m []byte, o unix.XDPRingOffset, s uint32) { NewRX(m, o, s) }},
	}
	tests := []struct {
		name      string
		memSize   uint32 // ring entries the memory is sized for
		off       unix.XDPRingOffset
		size      uint32
		wantPanic bool
	}{
		{"ok 1", 1, ringtest.Off, 1, false},
		{"ok 8", 8, ringtest.Off, 8, false},
		{"ok smaller ring than area", 16, ringtest.Off, 8, false},
		{"size 0", 8, ringtest.Off, 0, true},
		{"size 3", 8, ringtest.Off, 3, true},
		{"size 6", 8, ringtest.Off, 6, true},
		{"ring larger than area", 8, ringtest.Off, 16, true},
		{"producer outside", 8, unix.XDPRingOffset{Producer: 1 << 20, Consumer: 64, Flags: 128, Desc: 192}, 8, true},
		{"consumer misaligned", 8, unix.XDPRingOffset{Producer: 0, Consumer: 65, Flags: 128, Desc: 192}, 8, true},
		{"flags outside", 8, unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 1 << 20, Desc: 192}, 8, true},
		{"flags misaligned", 8, unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 130, Desc: 192}, 8, true},
		{"desc misaligned", 8, unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 196}, 8, true},
		{"desc offset overflow", 8, unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: ^uint64(0) - 7}, 8, true},
	}
	for cname, c := range ctors {
		for _, tc := range tests {
			t.Run(cname+"/"+tc.name, func(t *testing.T) {
				mem := ringtest.Mem(tc.memSize, c.elem)
				defer func() {
					r := recover()
					if (r != nil) != tc.wantPanic {
						t.Fatalf("panic = %v, want panic %v", r, tc.wantPanic)
					}
				}()
				c.mk(mem, tc.off, tc.size)
			})
		}
	}
}

func TestMapErrors(t *testing.T) {
	maps := map[string]func(fd int, off unix.XDPRingOffset, size uint32) error{
		"Fill":       func(fd int, o unix.XDPRingOffset, s uint32) error { _, err := MapFill(fd, o, s); return err },
		"TX":         func(fd int, o unix.XDPRingOffset, s uint32) error { _, err := MapTX(fd, o, s); return err },
		"Completion": func(fd int, o unix.XDPRingOffset, s uint32) error { _, err := MapCompletion(fd, o, s); return err },
		"RX":         func(fd int, o unix.XDPRingOffset, s uint32) error { _, err := MapRX(fd, o, s); return err },
	}
	tests := []struct {
		name string
		size uint32
		want error
	}{
		{"size 0", 0, errNotPow2},
		{"size 5", 5, errNotPow2},
		{"bad fd", 8, unix.EBADF},
	}
	for name, m := range maps {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				err := m(-1, ringtest.Off, tc.size)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
			})
		}
	}
	if _, err := MmapOffsets(-1); !errors.Is(err, unix.EBADF) {
		t.Fatalf("MmapOffsets(-1) err = %v, want EBADF", err)
	}
}

func TestUnmapNoopForNew(t *testing.T) {
	f := NewFill(ringtest.Mem(8, 8), ringtest.Off, 8)
	x := NewTX(ringtest.Mem(8, 16), ringtest.Off, 8)
	c := NewCompletion(ringtest.Mem(8, 8), ringtest.Off, 8)
	r := NewRX(ringtest.Mem(8, 16), ringtest.Off, 8)
	for i, err := range []error{f.Unmap(), x.Unmap(), c.Unmap(), r.Unmap()} {
		if err != nil {
			t.Errorf("ring %d: Unmap = %v", i, err)
		}
	}
	if f.Size() != 8 || x.Size() != 8 || c.Size() != 8 || r.Size() != 8 {
		t.Fatal("Size changed by Unmap of a New* ring")
	}
}

// wrapCases drive the single-threaded ring tests: sizes, per-step batch
// sizes of each side and a starting index close to the uint32 wrap.
var wrapCases = []struct {
	name      string
	size      uint32
	userBatch uint32
	kernBatch uint32
	start     uint32
	total     int
}{
	{"size1", 1, 1, 1, 0, 50},
	{"size2 batch3", 2, 3, 1, 0, 50},
	{"size8 even", 8, 4, 4, 0, 200},
	{"size8 user>kern", 8, 7, 3, 0, 500},
	{"size8 user<kern", 8, 3, 7, 0, 500},
	{"size64 uint32 wrap", 64, 17, 13, 0xffffff00, 5000},
	{"size16 wrap exact", 16, 16, 16, 0xfffffff0, 1000},
}

func TestFillWraparound(t *testing.T) {
	for _, tc := range wrapCases {
		t.Run(tc.name, func(t *testing.T) {
			k := ringtest.NewRing(tc.size, 8)
			*k.Producer(), *k.Consumer() = tc.start, tc.start
			f := NewFill(k.Mem, ringtest.Off, tc.size)
			if f.Size() != tc.size {
				t.Fatalf("Size = %d", f.Size())
			}
			next, seen := uint64(0), uint64(0)
			for seen < uint64(tc.total) {
				idx, got := f.Reserve(tc.userBatch)
				if got > tc.userBatch {
					t.Fatalf("Reserve(%d) got %d", tc.userBatch, got)
				}
				for i := range got {
					f.Set(idx+i, next*2048)
					next++
				}
				f.Submit(got)
				if free, inKernel := f.Free(), tc.size-k.Space(); free+inKernel != tc.size {
					t.Fatalf("Free %d + queued %d != size %d", free, inKernel, tc.size)
				}
				for _, a := range k.ConsumeAddrs(tc.kernBatch) {
					if a != seen*2048 {
						t.Fatalf("kernel read %#x, want %#x", a, seen*2048)
					}
					seen++
				}
			}
		})
	}
}

func TestTXWraparound(t *testing.T) {
	for _, tc := range wrapCases {
		t.Run(tc.name, func(t *testing.T) {
			k := ringtest.NewRing(tc.size, 16)
			*k.Producer(), *k.Consumer() = tc.start, tc.start
			x := NewTX(k.Mem, ringtest.Off, tc.size)
			next, seen := uint32(0), uint32(0)
			for seen < uint32(tc.total) {
				idx, got := x.Reserve(tc.userBatch)
				for i := range got {
					x.Set(idx+i, Desc{Addr: uint64(next) * 4096, Len: next, Options: next & 1})
					next++
				}
				x.Submit(got)
				if out := x.Outstanding(); out != tc.size-k.Space() {
					t.Fatalf("Outstanding = %d, kernel sees %d", out, tc.size-k.Space())
				}
				for _, d := range ringtest.ConsumeDescs[Desc](k, tc.kernBatch) {
					want := Desc{Addr: uint64(seen) * 4096, Len: seen, Options: seen & 1}
					if d != want {
						t.Fatalf("kernel read %+v, want %+v", d, want)
					}
					seen++
				}
			}
		})
	}
}

func TestRXWraparound(t *testing.T) {
	for _, tc := range wrapCases {
		t.Run(tc.name, func(t *testing.T) {
			k := ringtest.NewRing(tc.size, 16)
			*k.Producer(), *k.Consumer() = tc.start, tc.start
			r := NewRX(k.Mem, ringtest.Off, tc.size)
			next, seen := uint32(0), uint32(0)
			for seen < uint32(tc.total) {
				batch := make([]Desc, tc.kernBatch)
				for i := range batch {
					batch[i] = Desc{Addr: uint64(next+uint32(i)) * 2048, Len: 60 + next + uint32(i)}
				}
				next += uint32(ringtest.ProduceDescs(k, batch))
				idx, got := r.Peek(tc.userBatch)
				if got > tc.userBatch {
					t.Fatalf("Peek(%d) got %d", tc.userBatch, got)
				}
				for i := range got {
					want := Desc{Addr: uint64(seen) * 2048, Len: 60 + seen}
					if d := r.Get(idx + i); d != want {
						t.Fatalf("Get = %+v, want %+v", d, want)
					}
					seen++
				}
				r.Release(got)
				if c := atomic.LoadUint32(k.Consumer()); c != tc.start+seen {
					t.Fatalf("consumer = %d, want %d", c, tc.start+seen)
				}
			}
		})
	}
}

func TestCompletionWraparound(t *testing.T) {
	for _, tc := range wrapCases {
		t.Run(tc.name, func(t *testing.T) {
			k := ringtest.NewRing(tc.size, 8)
			*k.Producer(), *k.Consumer() = tc.start, tc.start
			c := NewCompletion(k.Mem, ringtest.Off, tc.size)
			next, seen := uint64(0), uint64(0)
			for seen < uint64(tc.total) {
				batch := make([]uint64, tc.kernBatch)
				for i := range batch {
					batch[i] = (next + uint64(i)) * 4096
				}
				next += uint64(k.ProduceAddrs(batch))
				idx, got := c.Peek(tc.userBatch)
				for i := range got {
					if a := c.Get(idx + i); a != seen*4096 {
						t.Fatalf("Get = %#x, want %#x", a, seen*4096)
					}
					seen++
				}
				c.Release(got)
			}
		})
	}
}

func TestPartialReserve(t *testing.T) {
	k := ringtest.NewRing(8, 8)
	f := NewFill(k.Mem, ringtest.Off, 8)
	steps := []struct {
		name       string
		kernelEats uint32 // consumed by the kernel before the reserve
		submit     bool   // submit the previous reservation first
		n          uint32
		wantIdx    uint32
		wantGot    uint32
	}{
		{"more than size", 0, false, 10, 0, 8},
		{"full", 0, false, 1, 8, 0},
		{"still full after submit", 0, true, 1, 8, 0},
		{"kernel freed 3, ask 5", 3, false, 5, 8, 3},
		{"full again", 0, false, 1, 11, 0},
		{"kernel freed all", 8, true, 64, 11, 8},
		{"zero request", 0, false, 0, 19, 0},
	}
	var pending uint32
	for _, s := range steps {
		if s.submit {
			f.Submit(pending)
			pending = 0
		}
		if s.kernelEats > 0 {
			k.ConsumeAddrs(s.kernelEats)
		}
		idx, got := f.Reserve(s.n)
		if idx != s.wantIdx || got != s.wantGot {
			t.Fatalf("%s: Reserve(%d) = (%d,%d), want (%d,%d)", s.name, s.n, idx, got, s.wantIdx, s.wantGot)
		}
		pending += got
	}
}

func TestCachedConsumerRefresh(t *testing.T) {
	k := ringtest.NewRing(8, 8)
	f := NewFill(k.Mem, ringtest.Off, 8)

	if _, got := f.Reserve(4); got != 4 {
		t.Fatalf("got %d", got)
	}
	f.Submit(4)
	k.ConsumeAddrs(4) // consumer = 4; the ring's cache still says 8+0
	if f.r.cachedCons != 8 {
		t.Fatalf("cachedCons = %d, want 8 (initial consumer+size)", f.r.cachedCons)
	}
	// Cache says 4 free, enough for 4: no refresh must happen.
	if idx, got := f.Reserve(4); idx != 4 || got != 4 {
		t.Fatalf("Reserve(4) = (%d,%d), want (4,4)", idx, got)
	}
	if f.r.cachedCons != 8 {
		t.Fatalf("Reserve refreshed although the cache had room: cachedCons = %d", f.r.cachedCons)
	}
	// Cache says 0 free: this one must refresh and see the kernel's progress.
	if idx, got := f.Reserve(2); idx != 8 || got != 2 {
		t.Fatalf("Reserve(2) = (%d,%d), want (8,2)", idx, got)
	}
	if f.r.cachedCons != 12 {
		t.Fatalf("cachedCons = %d, want 12 after refresh", f.r.cachedCons)
	}

	// Consumer side: RX.
	kr := ringtest.NewRing(8, 16)
	r := NewRX(kr.Mem, ringtest.Off, 8)
	ringtest.ProduceDescs(kr, []Desc{{Addr: 1}, {Addr: 2}, {Addr: 3}, {Addr: 4}})
	if idx, got := r.Peek(2); idx != 0 || got != 2 {
		t.Fatalf("Peek(2) = (%d,%d)", idx, got)
	}
	if r.r.cachedProd != 4 {
		t.Fatalf("cachedProd = %d, want 4", r.r.cachedProd)
	}
	ringtest.ProduceDescs(kr, []Desc{{Addr: 5}, {Addr: 6}})
	if idx, got := r.Peek(2); idx != 2 || got != 2 {
		t.Fatalf("Peek(2) = (%d,%d)", idx, got)
	}
	if r.r.cachedProd != 4 {
		t.Fatalf("Peek refreshed although the cache had entries: cachedProd = %d", r.r.cachedProd)
	}
	idx, got := r.Peek(8)
	if idx != 4 || got != 2 || r.r.cachedProd != 6 {
		t.Fatalf("Peek(8) = (%d,%d) cachedProd %d, want (4,2) 6", idx, got, r.r.cachedProd)
	}
	if d := r.Get(idx + 1); d.Addr != 6 {
		t.Fatalf("Get = %+v", d)
	}
	if _, got := r.Peek(1); got != 0 {
		t.Fatalf("Peek on empty ring got %d", got)
	}
	r.Release(6)
	if c := atomic.LoadUint32(kr.Consumer()); c != 6 {
		t.Fatalf("consumer = %d, want 6", c)
	}
}

func TestNeedWakeup(t *testing.T) {
	kf := ringtest.NewRing(8, 8)
	kt := ringtest.NewRing(8, 16)
	f := NewFill(kf.Mem, ringtest.Off, 8)
	x := NewTX(kt.Mem, ringtest.Off, 8)
	for _, tc := range []struct {
		name string
		on   bool
	}{{"initially off", false}, {"set", true}, {"cleared", false}, {"set again", true}} {
		if tc.name != "initially off" {
			kf.SetWakeup(tc.on)
			kt.SetWakeup(tc.on)
		}
		if got := f.NeedWakeup(); got != tc.on {
			t.Errorf("%s: Fill.NeedWakeup = %v", tc.name, got)
		}
		if got := x.NeedWakeup(); got != tc.on {
			t.Errorf("%s: TX.NeedWakeup = %v", tc.name, got)
		}
	}
}

func TestInitialIndicesFromMemory(t *testing.T) {
	// A ring mapped after some traffic (or re-created) must continue from
	// the shared indices, not from zero.
	k := ringtest.NewRing(8, 8)
	*k.Producer(), *k.Consumer() = 100, 97
	f := NewFill(k.Mem, ringtest.Off, 8)
	if free := f.Free(); free != 5 {
		t.Fatalf("Free = %d, want 5", free)
	}
	idx, got := f.Reserve(8)
	if idx != 100 || got != 5 {
		t.Fatalf("Reserve = (%d,%d), want (100,5)", idx, got)
	}

	kc := ringtest.NewRing(8, 8)
	*kc.Producer(), *kc.Consumer() = 100, 97
	c := NewCompletion(kc.Mem, ringtest.Off, 8)
	if idx, got := c.Peek(8); idx != 97 || got != 3 {
		t.Fatalf("Peek = (%d,%d), want (97,3)", idx, got)
	}
}

// TestConcurrentFillRX runs a simulated kernel goroutine that moves frame
// addresses from the Fill ring to the RX ring while the user goroutine
// keeps the Fill ring topped up and drains RX, checking order.
func TestConcurrentFillRX(t *testing.T) {
	const size = 64
	total := uint64(200_000)
	if testing.Short() {
		total = 20_000
	}
	kf, kr := ringtest.NewRing(size, 8), ringtest.NewRing(size, 16)
	f := NewFill(kf.Mem, ringtest.Off, size)
	r := NewRX(kr.Mem, ringtest.Off, size)

	var wg sync.WaitGroup
	wg.Go(func() {
		var moved uint64
		var pending []uint64
		for moved < total {
			if len(pending) == 0 {
				pending = kf.ConsumeAddrs(32)
			}
			ds := make([]Desc, len(pending))
			for i, a := range pending {
				ds[i] = Desc{Addr: a + 256, Len: uint32(a / 2048)}
			}
			n := ringtest.ProduceDescs(kr, ds)
			pending = pending[n:]
			moved += uint64(n)
			if n == 0 {
				kf.SetWakeup(true)
				runtime.Gosched()
			}
		}
	})

	var filled, seen uint64
	for seen < total {
		if filled < total {
			idx, got := f.Reserve(min(32, uint32(total-filled)))
			for i := range got {
				f.Set(idx+i, filled*2048)
				filled++
			}
			f.Submit(got)
		}
		idx, got := r.Peek(32)
		for i := range got {
			d := r.Get(idx + i)
			if d.Addr != seen*2048+256 || d.Len != uint32(seen) {
				t.Fatalf("RX %d: got %+v", seen, d)
			}
			seen++
		}
		r.Release(got)
		if got == 0 {
			_ = f.NeedWakeup()
			runtime.Gosched()
		}
	}
	wg.Wait()
}

// TestConcurrentTXCompletion runs a simulated kernel goroutine that moves
// TX descriptors to the Completion ring.
func TestConcurrentTXCompletion(t *testing.T) {
	const size = 32
	total := uint64(200_000)
	if testing.Short() {
		total = 20_000
	}
	kt, kc := ringtest.NewRing(size, 16), ringtest.NewRing(size, 8)
	x := NewTX(kt.Mem, ringtest.Off, size)
	c := NewCompletion(kc.Mem, ringtest.Off, size)

	var wg sync.WaitGroup
	wg.Go(func() {
		var done uint64
		var pending []uint64
		for done < total {
			if len(pending) == 0 {
				for _, d := range ringtest.ConsumeDescs[Desc](kt, 16) {
					if uint64(d.Len) != d.Addr/4096 {
						panic("corrupt TX descriptor")
					}
					pending = append(pending, d.Addr)
				}
			}
			n := kc.ProduceAddrs(pending)
			pending = pending[n:]
			done += uint64(n)
			if n == 0 {
				runtime.Gosched()
			}
		}
	})

	var sent, completed uint64
	for completed < total {
		if sent < total {
			idx, got := x.Reserve(min(16, uint32(total-sent)))
			for i := range got {
				x.Set(idx+i, Desc{Addr: sent * 4096, Len: uint32(sent)})
				sent++
			}
			x.Submit(got)
		}
		idx, got := c.Peek(16)
		for i := range got {
			if a := c.Get(idx + i); a != completed*4096 {
				t.Fatalf("completion %d: %#x", completed, a)
			}
			completed++
		}
		c.Release(got)
		if got == 0 {
			runtime.Gosched()
		}
	}
	wg.Wait()
	if out := x.Outstanding(); out != 0 {
		t.Fatalf("Outstanding = %d after drain", out)
	}
}

func TestHotPathZeroAllocs(t *testing.T) {
	kf, kr := ringtest.NewRing(64, 8), ringtest.NewRing(64, 16)
	f := NewFill(kf.Mem, ringtest.Off, 64)
	r := NewRX(kr.Mem, ringtest.Off, 64)
	q := NewSPSC[Desc](64)
	cases := []struct {
		name string
		fn   func()
	}{
		{"fill", func() {
			idx, got := f.Reserve(64)
			for i := range got {
				f.Set(idx+i, uint64(i)*2048)
			}
			f.Submit(got)
			_ = f.NeedWakeup()
			atomic.StoreUint32(kf.Consumer(), atomic.LoadUint32(kf.Producer()))
		}},
		{"rx", func() {
			atomic.AddUint32(kr.Producer(), 64)
			idx, got := r.Peek(64)
			var sum uint64
			for i := range got {
				sum += r.Get(idx + i).Addr
			}
			r.Release(got)
			_ = sum
		}},
		{"spsc", func() {
			d := Desc{Addr: 1}
			q.Push(&d)
			q.Pop(&d)
		}},
	}
	for _, tc := range cases {
		if a := testing.AllocsPerRun(100, tc.fn); a != 0 {
			t.Errorf("%s: %v allocs/op, want 0", tc.name, a)
		}
	}
}

func TestUnconsumedAndPending(t *testing.T) {
	fm, tm, rm, cm := ringtest.Mem(8, 8), ringtest.Mem(8, 16), ringtest.Mem(8, 16), ringtest.Mem(8, 8)
	f, tx, rx, c := NewFill(fm, ringtest.Off, 8), NewTX(tm, ringtest.Off, 8), NewRX(rm, ringtest.Off, 8), NewCompletion(cm, ringtest.Off, 8)
	idx, n := f.Reserve(3)
	for i := uint32(0); i < n; i++ {
		f.Set(idx+i, uint64(i+1)*2048)
	}
	f.Submit(n)
	// the kernel consumed the first one
	*(*uint32)(unsafe.Pointer(&fm[64])) = 1
	if got := f.Unconsumed(nil); len(got) != 2 || got[0] != 4096 || got[1] != 6144 {
		t.Fatalf("fill unconsumed %v", got)
	}
	idx, n = tx.Reserve(2)
	tx.Set(idx, Desc{Addr: 100})
	tx.Set(idx+1, Desc{Addr: 200})
	tx.Submit(n)
	if got := tx.Unconsumed(nil); len(got) != 2 || got[1] != 200 {
		t.Fatalf("tx unconsumed %v", got)
	}
	// kernel produced one RX descriptor and one completion
	*(*Desc)(unsafe.Pointer(&rm[192])) = Desc{Addr: 300}
	*(*uint32)(unsafe.Pointer(&rm[0])) = 1
	*(*uint64)(unsafe.Pointer(&cm[192])) = 400
	*(*uint32)(unsafe.Pointer(&cm[0])) = 1
	if got := rx.Pending(nil); len(got) != 1 || got[0] != 300 {
		t.Fatalf("rx pending %v", got)
	}
	if got := c.Pending(nil); len(got) != 1 || got[0] != 400 {
		t.Fatalf("completion pending %v", got)
	}
}

// TestRXUnpeekTXCancel: entries given back with Unpeek come again at the
// next Peek, and only released ones reach the kernel; slots given back
// with Cancel are reserved again by the next Reserve, and only submitted
// ones are published (the lane's handling of chains cut by a batch or a
// full ring).
func TestRXUnpeekTXCancel(t *testing.T) {
	kr := ringtest.NewRing(8, 16)
	ringtest.ProduceDescs(kr, []ringtest.Desc{{Addr: 1, Options: Contd}, {Addr: 2}, {Addr: 3, Options: Contd}, {Addr: 4, Options: Contd}})
	rx := NewRX(kr.Mem, ringtest.Off, 8)
	idx, n := rx.Peek(4)
	if n != 4 {
		t.Fatalf("peeked %d", n)
	}
	rx.Unpeek(2)
	rx.Release(2)
	if got := *kr.Consumer(); got != 2 {
		t.Fatalf("kernel consumer %d, want 2", got)
	}
	idx2, n2 := rx.Peek(8)
	if n2 != 2 || idx2 != idx+2 || rx.Get(idx2).Addr != 3 {
		t.Fatalf("after Unpeek: idx %d n %d addr %d", idx2, n2, rx.Get(idx2).Addr)
	}

	kt := ringtest.NewRing(8, 16)
	tx := NewTX(kt.Mem, ringtest.Off, 8)
	idx, n = tx.Reserve(5)
	if n != 5 {
		t.Fatalf("reserved %d", n)
	}
	for i := range uint32(3) {
		tx.Set(idx+i, Desc{Addr: uint64(10 + i)})
	}
	tx.Cancel(2)
	tx.Submit(3)
	if got := *kt.Producer(); got != 3 {
		t.Fatalf("kernel producer %d, want 3", got)
	}
	idx2, n2 = tx.Reserve(5)
	if idx2 != idx+3 || n2 != 5 {
		t.Fatalf("after Cancel: idx %d (want %d) n %d", idx2, idx+3, n2)
	}
}
