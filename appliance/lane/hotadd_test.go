package lane

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/policy"
)

// TestLaneHotAddWhileRunning publishes a layout with an extra member to a
// running lane (its own goroutine, as lane.Start runs it) while frames
// flow both ways, as a hot-add from control does. The lane must size the
// ports' pending arrays itself when it adopts the layout: under -race, a
// NewLayout that resizes Port.pend on control's goroutine (what it did
// before) is reported as a data race with the lane's flush.
func TestLaneHotAddWhileRunning(t *testing.T) {
	// the lane starts with member 0 only; member 1's socket is opened
	// later on the lane's UMEM
	r := newRigLedger(t, 1, &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0}, Active: 0, RX: 1}, false)
	r.members = append(r.members, newSimPort(r.u, "m1", 256))
	for _, m := range r.members {
		m.Record = false
	}
	r.host.Record = false
	first := r.lane.Published()
	r.lane.Start()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			r.lane.Stop()
		}
	}
	defer stop()

	var frames [][]byte
	for i := range 32 {
		frames = append(frames, udpFrame(uint16(i), 80, uint32(i)))
	}
	var kernelDone atomic.Bool
	kernel := make(chan struct{})
	go func() {
		defer close(kernel)
		for !kernelDone.Load() {
			r.host.Deliver(frames...)
			for _, m := range r.members {
				m.Deliver(frames[:8]...)
				m.DrainTX()
			}
			r.host.DrainTX()
		}
	}()
	waitFor(t, func() bool { return r.lane.Adopted(first) && r.members[0].NSent() > 100 })

	// hot-add member 1: a new layout and a snapshot transmitting on both
	both := NewLayout([]*Bond{r.bond}, [][]*Port{{r.members[0].port, r.members[1].port}})
	r.lane.Publish(both)
	r.bond.Publish(&Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 3})
	waitFor(t, func() bool { return r.lane.Adopted(both) })
	sent1 := r.members[1].NSent()
	waitFor(t, func() bool { return r.members[1].NSent() > sent1+100 && r.host.NSent() > 100 })
	kernelDone.Store(true)
	<-kernel
	stop()
	if got := len(r.members[1].port.pend); got < 64*4 {
		t.Fatalf("member 1 pending array %d, want >= %d", got, 64*4)
	}
	if got := len(r.host.port.pend); got < 64*4 {
		t.Fatalf("host pending array %d after hot-add, want >= %d", got, 64*4)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
