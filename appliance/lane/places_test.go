package lane

import (
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/umem"
	"golang.org/x/sys/unix"
)

// TestLanePlaces follows frames from the host port to a member and back to
// the free stack, and checks at every quiet point that the places the lane
// reads from the rings' shared indices agree with the frame ledger (which
// records a frame as Fill until the lane reads it from the RX ring, and as
// TX until it reads it from the completion ring).
func TestLanePlaces(t *testing.T) {
	r := newRig(t, 2, &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
	check := func(stage string, want Places) {
		t.Helper()
		got := r.lane.Places()
		if got != want {
			t.Errorf("%s: places %+v, want %+v", stage, got, want)
		}
		u := r.u
		if got.Free != uint64(u.Count(umem.Free)) || got.Fill+got.RX != uint64(u.Count(umem.Fill)) ||
			got.TX+got.Completion != uint64(u.Count(umem.TX)) || u.Count(umem.InFlight) != 0 {
			t.Errorf("%s: places %+v, ledger free %d fill %d tx %d in flight %d", stage, got,
				u.Count(umem.Free), u.Count(umem.Fill), u.Count(umem.TX), u.Count(umem.InFlight))
		}
	}
	const n, ring = 1536, 256 // 3 ports of 256-entry rings, 2 frames per slot
	check("primed", Places{Frames: n, Free: n - 3*ring, Fill: 3 * ring})
	frames := make([][]byte, 10)
	for i := range frames {
		frames[i] = udpFrame(1000, 2000, uint32(i))
	}
	if got := r.host.Deliver(frames...); got != 10 {
		t.Fatalf("delivered %d", got)
	}
	check("received, not read", Places{Frames: n, Free: n - 3*ring, Fill: 3*ring - 10, RX: 10})
	r.lane.Step()
	check("forwarded, not sent", Places{Frames: n, Free: n - 3*ring - 10, Fill: 3 * ring, TX: 10})
	if got := r.members[0].DrainTX(); got != 10 {
		t.Fatalf("sent %d", got)
	}
	check("sent, not reaped", Places{Frames: n, Free: n - 3*ring - 10, Fill: 3 * ring, Completion: 10})
	r.lane.Step()
	check("reaped", Places{Frames: n, Free: n - 3*ring, Fill: 3 * ring})
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

// TestLaneReclaimLost: frames the reclaiming goroutine gave up on are
// published for the status.
func TestLaneReclaimLost(t *testing.T) {
	r := newRig(t, 1, nil)
	if got := r.lane.LostToReclaim(); got != 0 {
		t.Fatalf("lost %d at start", got)
	}
	r.lane.ReclaimLost(3)
	r.lane.ReclaimLost(2)
	if got := r.lane.LostToReclaim(); got != 5 {
		t.Fatalf("lost %d, want 5", got)
	}
}

// TestLaneTapRead drives tapRead with scripted readv(2) results: a frame
// that reaches the spill byte past the UMEM frame's room (the TAP driver
// truncates silently) is dropped and counted, never forwarded truncated;
// an exhausted UMEM leaves the frames in the TAP queue and counts nothing.
// (appliance's TestTapReadLongerThanBuffer checks it on a real TAP.)
func TestLaneTapRead(t *testing.T) {
	const room = 2048 - headroom
	tests := []struct {
		name        string
		reads       []int // lengths read(2) returns, then EAGAIN
		exhaust     bool  // no free UMEM frame
		wantLens    []uint32
		wantTooLong uint64
		wantCalls   int
	}{
		{"frames fit", []int{60, room}, false, []uint32{60, room}, 0, 3},
		{"too long dropped", []int{60, room + 1, room + 1, 100}, false, []uint32{60, 100}, 2, 5},
		{"nothing waiting", nil, false, nil, 0, 1},
		{"no free frame: nothing read, nothing counted", []int{60}, true, nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := umem.New(umem.Config{NumFrames: 64, FrameSize: 2048})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			h := &Port{Name: "tap", FD: 1 << 20, Tap: true}
			l := New(Config{ID: 0, CPU: -1, Batch: 8, RingSize: 8}, u, []*Bond{{Host: h}})
			calls := 0
			old := tapReadFn
			defer func() { tapReadFn = old }()
			tapReadFn = func(fd int, p, spill []byte, _ *[2]unix.Iovec) (int, error) {
				if fd != h.FD || len(p) != room || len(spill) == 0 {
					t.Errorf("read(fd %d, %d+%d bytes), want fd %d and %d bytes and a spill", fd, len(p), len(spill), h.FD, room)
				}
				calls++
				if calls > len(tc.reads) {
					return -1, unix.EAGAIN
				}
				return tc.reads[calls-1], nil
			}
			var held []uint64
			if tc.exhaust {
				for {
					a, ok := u.Alloc()
					if !ok {
						break
					}
					held = append(held, a)
				}
			}
			descs := l.tapRead(h)
			var lens []uint32
			for _, d := range descs {
				lens = append(lens, d.Len)
				u.Free(d.Addr)
			}
			u.FreeBatch(held)
			if len(lens) != len(tc.wantLens) {
				t.Fatalf("frames %v, want %v", lens, tc.wantLens)
			}
			for i := range lens {
				if lens[i] != tc.wantLens[i] {
					t.Fatalf("frames %v, want %v", lens, tc.wantLens)
				}
			}
			if got := h.Stats.DropTooLong.Load(); got != tc.wantTooLong {
				t.Errorf("drop_too_long %d, want %d", got, tc.wantTooLong)
			}
			if got := h.Stats.DropNoFrame.Load(); got != 0 {
				t.Errorf("drop_no_frame %d, want 0", got)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d reads, want %d", calls, tc.wantCalls)
			}
			if got := u.Available(); got != 64 {
				t.Errorf("%d frames free after the test, want 64 (a frame leaked)", got)
			}
		})
	}
}

// TestLanePlacesWhileRunning reads the places from another goroutine while
// the lane forwards (run with -race), and finds every frame back in its
// place once the traffic stopped.
func TestLanePlacesWhileRunning(t *testing.T) {
	r := newRigLedger(t, 2, &Snapshot{Mode: policy.BalanceRR, TX: []int{0, 1}, Active: 0, RX: 3, PacketsPerSlave: 1}, false)
	r.lane.Start()
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = udpFrame(1000, 2000, uint32(i))
	}
	total := uint64(r.u.NumFrames())
	for i := 0; i < 200; i++ {
		r.host.Deliver(frames...)
		for _, m := range r.members {
			m.DrainTX()
		}
		p := r.lane.Places()
		if p.Frames != total || p.Free > total || p.Fill+p.RX+p.TX+p.Completion > total {
			t.Fatalf("places %+v out of range", p)
		}
	}
	// let the lane reap the last completions and refill
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, m := range r.members {
			m.DrainTX()
		}
		p := r.lane.Places()
		if p.Free+p.Fill == total && p.RX+p.TX+p.Completion == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("places %+v never settled: %d frames unaccounted for", p, total-p.Free-p.Fill-p.RX-p.TX-p.Completion)
		}
		time.Sleep(time.Millisecond)
	}
	r.lane.Stop()
}
