package umem

import (
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func newTest(t testing.TB, cfg Config) *UMEM {
	t.Helper()
	u, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"frame size 0", Config{NumFrames: 16}, ErrFrameSize},
		{"frame size 1024", Config{NumFrames: 16, FrameSize: 1024}, ErrFrameSize},
		{"frame size 3000", Config{NumFrames: 16, FrameSize: 3000}, ErrFrameSize},
		{"frame size 8192", Config{NumFrames: 16, FrameSize: 8192}, ErrFrameSize},
		{"zero frames", Config{FrameSize: 2048}, ErrNumFrames},
		{"2048 x 1", Config{NumFrames: 1, FrameSize: 2048}, nil},
		{"2048 x 100 (not pow2)", Config{NumFrames: 100, FrameSize: 2048}, nil},
		{"4096 x 64", Config{NumFrames: 64, FrameSize: 4096}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := New(tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			defer u.Close()
			size := int(tc.cfg.NumFrames * tc.cfg.FrameSize)
			if len(u.Mem()) != size || cap(u.Mem()) != size {
				t.Fatalf("Mem len/cap = %d/%d, want %d", len(u.Mem()), cap(u.Mem()), size)
			}
			if u.FrameSize() != tc.cfg.FrameSize || u.NumFrames() != tc.cfg.NumFrames {
				t.Fatalf("FrameSize/NumFrames = %d/%d", u.FrameSize(), u.NumFrames())
			}
			if u.Available() != int(tc.cfg.NumFrames) || u.HugePages() {
				t.Fatalf("Available = %d, HugePages = %v", u.Available(), u.HugePages())
			}
			u.Mem()[0], u.Mem()[size-1] = 1, 2 // writable
		})
	}
}

func TestAllocUntilEmpty(t *testing.T) {
	for _, fs := range []uint32{2048, 4096} {
		u := newTest(t, Config{NumFrames: 37, FrameSize: fs})
		seen := map[uint64]bool{}
		for i := range 37 {
			a, ok := u.Alloc()
			if !ok {
				t.Fatalf("Alloc %d failed", i)
			}
			if a%uint64(fs) != 0 || a >= 37*uint64(fs) || seen[a] {
				t.Fatalf("Alloc %d returned bad or duplicate address %#x", i, a)
			}
			if i == 0 && a != 0 {
				t.Fatalf("first Alloc = %#x, want 0", a)
			}
			seen[a] = true
			if u.Available() != 36-i {
				t.Fatalf("Available = %d", u.Available())
			}
		}
		if a, ok := u.Alloc(); ok {
			t.Fatalf("Alloc on empty UMEM returned %#x", a)
		}
		if n := u.AllocBatch(make([]uint64, 4)); n != 0 {
			t.Fatalf("AllocBatch on empty UMEM = %d", n)
		}
		for a := range seen {
			u.Free(a + 100) // interior address frees the frame
		}
		if u.Available() != 37 {
			t.Fatalf("Available = %d after freeing all", u.Available())
		}
		if err := u.CheckLedger(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAllocBatchFreeBatch(t *testing.T) {
	u := newTest(t, Config{NumFrames: 10, FrameSize: 2048})
	u.EnableLedger()
	tests := []struct {
		ask, want, avail int
	}{
		{4, 4, 6}, {0, 0, 6}, {5, 5, 1}, {3, 1, 0}, {2, 0, 0},
	}
	var all []uint64
	for _, tc := range tests {
		dst := make([]uint64, tc.ask)
		n := u.AllocBatch(dst)
		if n != tc.want || u.Available() != tc.avail {
			t.Fatalf("AllocBatch(%d) = %d, Available %d; want %d, %d", tc.ask, n, u.Available(), tc.want, tc.avail)
		}
		all = append(all, dst[:n]...)
	}
	if u.Count(InFlight) != 10 {
		t.Fatalf("Count(InFlight) = %d", u.Count(InFlight))
	}
	u.FreeBatch(all)
	if u.Available() != 10 || u.Count(Free) != 10 {
		t.Fatalf("Available %d Count(Free) %d", u.Available(), u.Count(Free))
	}
	if err := u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

func TestBaseAndFrame(t *testing.T) {
	u := newTest(t, Config{NumFrames: 4, FrameSize: 2048})
	tests := []struct {
		addr, base uint64
	}{
		{0, 0}, {1, 0}, {2047, 0}, {2048, 2048}, {2048 + 256 + 14, 2048}, {3*2048 + 2047, 3 * 2048},
	}
	for _, tc := range tests {
		if b := u.Base(tc.addr); b != tc.base {
			t.Errorf("Base(%#x) = %#x, want %#x", tc.addr, b, tc.base)
		}
	}
	f := u.Frame(2048+256, 60)
	if len(f) != 60 || cap(f) != 60 {
		t.Fatalf("Frame len/cap = %d/%d", len(f), cap(f))
	}
	f[0] = 0xab
	if u.Mem()[2048+256] != 0xab {
		t.Fatal("Frame does not alias Mem")
	}
	if g := u.Frame(3*2048, 2048); len(g) != 2048 {
		t.Fatalf("last full frame len %d", len(g))
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Frame beyond the area did not panic")
			}
		}()
		u.Frame(3*2048+1, 2048)
	}()
}

func TestDoubleFreeDetected(t *testing.T) {
	u := newTest(t, Config{NumFrames: 8, FrameSize: 2048})
	u.EnableLedger()
	a, _ := u.Alloc()
	u.Free(a)
	if err := u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
	u.Free(a + 7) // double free through an interior address
	if u.Available() != 8 {
		t.Fatalf("double free changed Available to %d", u.Available())
	}
	err := u.CheckLedger()
	if err == nil || !strings.Contains(err.Error(), "double free") {
		t.Fatalf("CheckLedger = %v, want double free", err)
	}
	// The stack must not hold the frame twice: 8 allocs give 8 distinct frames.
	seen := map[uint64]bool{}
	for range 8 {
		b, ok := u.Alloc()
		if !ok || seen[b] {
			t.Fatalf("Alloc after double free: %#x ok=%v duplicate=%v", b, ok, seen[b])
		}
		seen[b] = true
	}
}

func TestDoubleFreeWithoutLedger(t *testing.T) {
	// Without the ledger a double free is only caught when it would
	// overflow the stack.
	u := newTest(t, Config{NumFrames: 2, FrameSize: 2048})
	u.Free(0)
	if err := u.CheckLedger(); err == nil || !strings.Contains(err.Error(), "1 rejected") {
		t.Fatalf("CheckLedger = %v", err)
	}
	if u.Available() != 2 {
		t.Fatalf("Available = %d", u.Available())
	}
}

func TestFreeOutOfRange(t *testing.T) {
	for _, ledger := range []bool{false, true} {
		u := newTest(t, Config{NumFrames: 4, FrameSize: 4096})
		if ledger {
			u.EnableLedger()
		}
		u.Alloc()
		u.Free(4 * 4096)
		u.Free(^uint64(0))
		if u.Available() != 3 {
			t.Fatalf("ledger=%v: Available = %d", ledger, u.Available())
		}
		err := u.CheckLedger()
		if err == nil || !strings.Contains(err.Error(), "2 rejected") {
			t.Fatalf("ledger=%v: CheckLedger = %v", ledger, err)
		}
		if ledger && !strings.Contains(err.Error(), "outside the UMEM") {
			t.Fatalf("CheckLedger = %v", err)
		}
	}
}

func TestLedgerViolations(t *testing.T) {
	tests := []struct {
		name    string
		run     func(u *UMEM, a uint64)
		wantErr string // "" = no error
		counts  map[Place]int
	}{
		{"clean cycle", func(u *UMEM, a uint64) {
			u.Move(a, InFlight, Fill)
			u.Move(a, Fill, RX)
			u.Move(a, RX, InFlight)
			u.Move(a, InFlight, TX)
			u.Move(a, TX, Completion)
			u.Free(a)
		}, "", map[Place]int{Free: 4}},
		{"wrong from", func(u *UMEM, a uint64) {
			u.Move(a, Fill, RX)
		}, "Move(0x0, Fill->RX): frame 0 was in InFlight", map[Place]int{RX: 1, Free: 3}},
		{"move to Free", func(u *UMEM, a uint64) {
			u.Move(a, InFlight, Free)
		}, "must use Alloc/Free", map[Place]int{InFlight: 1, Free: 3}},
		{"move a free frame", func(u *UMEM, a uint64) {
			u.Move(a+2048, InFlight, Fill)
		}, "frame 1 (in Free)", map[Place]int{InFlight: 1, Free: 3}},
		{"move outside", func(u *UMEM, a uint64) {
			u.Move(1<<40, InFlight, Fill)
		}, "outside the UMEM", map[Place]int{InFlight: 1, Free: 3}},
		{"invalid place", func(u *UMEM, a uint64) {
			u.Move(a, InFlight, Place(9))
		}, "Place(9)", map[Place]int{InFlight: 1, Free: 3}},
		{"free while on fill ring", func(u *UMEM, a uint64) {
			u.Move(a, InFlight, Fill)
			u.Free(a)
		}, "was in Fill, want InFlight or Completion", map[Place]int{Free: 4}},
		{"free while on tx ring", func(u *UMEM, a uint64) {
			u.Move(a, InFlight, TX)
			u.Free(a)
		}, "was in TX", map[Place]int{Free: 4}},
		{"many violations truncated", func(u *UMEM, a uint64) {
			for range 20 {
				u.Move(a, TX, RX)
			}
		}, "... 12 more", map[Place]int{RX: 1, Free: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newTest(t, Config{NumFrames: 4, FrameSize: 2048})
			u.EnableLedger()
			a, _ := u.Alloc()
			tc.run(u, a)
			err := u.CheckLedger()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckLedger = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("CheckLedger = %v, want %q", err, tc.wantErr)
			}
			total := 0
			for p := range numPlaces {
				if got := u.Count(p); got != tc.counts[p] {
					t.Errorf("Count(%v) = %d, want %d", p, got, tc.counts[p])
				}
				total += u.Count(p)
			}
			if total != 4 {
				t.Errorf("frames in all places = %d, want 4", total)
			}
			if u.Count(Place(200)) != 0 {
				t.Error("Count of invalid place != 0")
			}
		})
	}
}

func TestLedgerErrorListsCounts(t *testing.T) {
	u := newTest(t, Config{NumFrames: 4, FrameSize: 2048})
	u.EnableLedger()
	a, _ := u.Alloc()
	u.Move(a, RX, TX)
	err := u.CheckLedger()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"1 violation(s)", "Free=3", "Fill=0", "TX=1", "InFlight=0", "(total 4)", "first violations"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestEnableLedgerLate(t *testing.T) {
	u := newTest(t, Config{NumFrames: 8, FrameSize: 2048})
	a, _ := u.Alloc()
	b, _ := u.Alloc()
	if u.Count(Free) != 6 || u.Count(InFlight) != 2 || u.Count(TX) != 0 {
		t.Fatalf("ledger-off counts: Free %d InFlight %d", u.Count(Free), u.Count(InFlight))
	}
	u.Move(a, TX, RX) // ledger off: no effect
	u.EnableLedger()
	u.EnableLedger() // idempotent
	if u.Count(Free) != 6 || u.Count(InFlight) != 2 {
		t.Fatalf("counts after EnableLedger: Free %d InFlight %d", u.Count(Free), u.Count(InFlight))
	}
	u.Move(a, InFlight, TX)
	u.Move(a, TX, Completion)
	u.Free(a)
	u.Free(b)
	if err := u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

// TestLedgerLifecycle drives frames through the lane lifecycle at random
// (a simulated lane with fill/rx/tx/completion queues standing in for the
// rings) and checks the invariant after every step.
func TestLedgerLifecycle(t *testing.T) {
	const frames = 64
	u := newTest(t, Config{NumFrames: frames, FrameSize: 2048})
	u.EnableLedger()
	rng := rand.New(rand.NewPCG(1, 2))
	var fill, rx, inflight, tx, comp []uint64
	pop := func(q *[]uint64) uint64 {
		a := (*q)[0]
		*q = (*q)[1:]
		return a
	}
	for step := range 20000 {
		switch rng.IntN(7) {
		case 0: // refill
			if a, ok := u.Alloc(); ok {
				u.Move(a, InFlight, Fill)
				fill = append(fill, a)
			}
		case 1: // kernel receives into a fill frame; RX addr has headroom
			if len(fill) > 0 {
				a := pop(&fill) + 256
				u.Move(a, Fill, RX)
				rx = append(rx, a)
			}
		case 2: // lane takes a received frame
			if len(rx) > 0 {
				a := pop(&rx)
				u.Move(a, RX, InFlight)
				inflight = append(inflight, a)
			}
		case 3: // lane forwards it
			if len(inflight) > 0 {
				a := pop(&inflight)
				u.Move(a, InFlight, TX)
				tx = append(tx, a)
			}
		case 4: // lane drops it
			if len(inflight) > 0 {
				u.Free(pop(&inflight))
			}
		case 5: // kernel completes a transmission
			if len(tx) > 0 {
				a := u.Base(pop(&tx))
				u.Move(a, TX, Completion)
				comp = append(comp, a)
			}
		case 6: // lane recycles completions
			if len(comp) > 0 {
				u.Free(pop(&comp))
			}
		}
		want := map[Place]int{Free: u.Available(), Fill: len(fill), RX: len(rx), InFlight: len(inflight), TX: len(tx), Completion: len(comp)}
		total := 0
		for p, n := range want {
			if u.Count(p) != n {
				t.Fatalf("step %d: Count(%v) = %d, want %d", step, p, u.Count(p), n)
			}
			total += n
		}
		if total != frames {
			t.Fatalf("step %d: %d frames accounted, want %d", step, total, frames)
		}
		if step%97 == 0 {
			if err := u.CheckLedger(); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
	if err := u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

func TestPlaceString(t *testing.T) {
	tests := []struct {
		p    Place
		want string
	}{
		{Free, "Free"}, {Fill, "Fill"}, {RX, "RX"}, {InFlight, "InFlight"}, {TX, "TX"}, {Completion, "Completion"}, {Place(6), "Place(6)"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("Place(%d).String() = %q, want %q", uint8(tc.p), got, tc.want)
		}
	}
}

// withMmap replaces the mmap hook for one test.
func withMmap(t *testing.T, fn func(fd int, offset int64, length int, prot int, flags int) ([]byte, error)) {
	t.Helper()
	old := mmapFn
	mmapFn = fn
	t.Cleanup(func() { mmapFn = old })
}

func TestHugePages(t *testing.T) {
	type call struct {
		length int
		huge   bool
	}
	tests := []struct {
		name      string
		cfg       Config
		hugeFails bool
		allFail   bool
		wantHuge  bool
		wantCalls []call
		wantErr   bool
	}{
		{"not requested", Config{NumFrames: 16, FrameSize: 2048}, false, false, false,
			[]call{{32768, false}}, false},
		{"hugetlb fails, fallback", Config{NumFrames: 16, FrameSize: 2048, HugePages: true}, true, false, false,
			[]call{{2 << 20, true}, {32768, false}}, false},
		{"hugetlb works, length rounded", Config{NumFrames: 1000, FrameSize: 4096, HugePages: true}, false, false, true,
			[]call{{4 << 20, true}}, false},
		{"everything fails", Config{NumFrames: 16, FrameSize: 2048, HugePages: true}, true, true, false,
			[]call{{2 << 20, true}, {32768, false}}, true},
	}
	oldHP := hugePageSize
	hugePageSize = func() int { return 2 << 20 }
	t.Cleanup(func() { hugePageSize = oldHP })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []call
			withMmap(t, func(fd int, off int64, length, prot, flags int) ([]byte, error) {
				huge := flags&unix.MAP_HUGETLB != 0
				calls = append(calls, call{length, huge})
				if tc.allFail || (huge && tc.hugeFails) {
					return nil, unix.ENOMEM
				}
				// Simulate a hugetlb mapping with a normal one of the same length.
				return unix.Mmap(fd, off, length, prot, flags&^unix.MAP_HUGETLB)
			})
			u, err := New(tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New err = %v, want error %v", err, tc.wantErr)
			}
			if len(calls) != len(tc.wantCalls) {
				t.Fatalf("mmap calls %v, want %v", calls, tc.wantCalls)
			}
			for i := range calls {
				if calls[i] != tc.wantCalls[i] {
					t.Fatalf("mmap calls %v, want %v", calls, tc.wantCalls)
				}
			}
			if err != nil {
				if !errors.Is(err, unix.ENOMEM) {
					t.Fatalf("err = %v, want ENOMEM", err)
				}
				return
			}
			if u.HugePages() != tc.wantHuge {
				t.Fatalf("HugePages = %v, want %v", u.HugePages(), tc.wantHuge)
			}
			size := int(tc.cfg.NumFrames * tc.cfg.FrameSize)
			if len(u.Mem()) != size || cap(u.Mem()) != size {
				t.Fatalf("Mem len/cap = %d/%d, want %d", len(u.Mem()), cap(u.Mem()), size)
			}
			u.Mem()[size-1] = 1
			if err := u.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestRealHugePagesFallback(t *testing.T) {
	// Whatever the host has, asking for hugepages must succeed.
	u := newTest(t, Config{NumFrames: 64, FrameSize: 2048, HugePages: true})
	u.Mem()[len(u.Mem())-1] = 1
	t.Logf("hugepages used: %v (hugepage size %d)", u.HugePages(), defaultHugePageSize())
}

func TestCloseIdempotent(t *testing.T) {
	u, err := New(Config{NumFrames: 4, FrameSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if u.Mem() != nil || u.Available() != 0 {
		t.Fatal("UMEM usable after Close")
	}
	if _, ok := u.Alloc(); ok {
		t.Fatal("Alloc after Close succeeded")
	}
	if err := u.Register(0, 0, 0); err == nil {
		t.Fatal("Register after Close succeeded")
	}
}

func TestRegister(t *testing.T) {
	u := newTest(t, Config{NumFrames: 64, FrameSize: 2048})
	if err := u.Register(-1, 0, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Register(-1) = %v, want EBADF", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for AF_XDP")
	}
	open := func(t *testing.T) int {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Skipf("AF_XDP unavailable: %v", err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	tests := []struct {
		name     string
		headroom uint32
		flags    uint32
		wantErr  bool
	}{
		{"plain", 0, 0, false},
		{"headroom 256", 256, 0, false},
		{"headroom too large", 2048, 0, true},
		{"unknown flag", 0, 1 << 30, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd := open(t)
			err := u.Register(fd, tc.headroom, tc.flags)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Register = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				// A socket takes one UMEM registration only.
				if err := u.Register(fd, 0, 0); err == nil {
					t.Fatal("second registration on the same socket succeeded")
				}
			}
		})
	}
}

func TestHotPathZeroAllocs(t *testing.T) {
	u := newTest(t, Config{NumFrames: 256, FrameSize: 2048})
	batch := make([]uint64, 32)
	for _, ledger := range []bool{false, true} {
		if ledger {
			u.EnableLedger()
		}
		a := testing.AllocsPerRun(100, func() {
			x, _ := u.Alloc()
			u.Move(x, InFlight, TX)
			u.Move(x, TX, Completion)
			_ = u.Frame(x, 64)
			u.Free(x)
			n := u.AllocBatch(batch)
			u.FreeBatch(batch[:n])
		})
		if a != 0 {
			t.Errorf("ledger=%v: %v allocs/op", ledger, a)
		}
	}
	if err := u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}
