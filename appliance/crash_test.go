package appliance

import (
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/umem"
)

// A panic in a lane, the control loop or the device worker is recovered
// and reported (Crashed, CrashErr naming the goroutine), and Close still
// stops everything and restores in bounded time.
func TestCrashRecovered(t *testing.T) {
	tests := []struct {
		where  string
		inject func(t *testing.T, a *Appliance)
	}{
		{"device worker", func(t *testing.T, a *Appliance) {
			a.jobs <- func(*worker) { panic("injected worker panic") }
		}},
		{"control loop", func(t *testing.T, a *Appliance) {
			go func() { _ = a.do(func(*ctl) { panic("injected loop panic") }) }()
		}},
		{"lane 7", func(t *testing.T, a *Appliance) {
			u, err := umem.New(umem.Config{NumFrames: 256, FrameSize: 2048})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = u.Close() })
			l := lane.New(lane.Config{ID: 7, CPU: -1, Batch: 8, RingSize: 64, OnPanic: a.panicked("lane 7")}, u, nil)
			l.Start()
			t.Cleanup(l.Stop)
			l.Publish(&lane.Layout{Bonds: []*lane.Bond{{}}}) // the lane indexes past its member lists
		}},
	}
	for _, tc := range tests {
		t.Run(tc.where, func(t *testing.T) {
			a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
			select {
			case <-a.Crashed():
				t.Fatal("crashed before any panic")
			default:
			}
			tc.inject(t, a)
			select {
			case <-a.Crashed():
			case <-time.After(5 * time.Second):
				t.Fatal("panic not reported")
			}
			if err := a.CrashErr(); err == nil || !strings.HasPrefix(err.Error(), tc.where+" panicked: injected") &&
				!strings.HasPrefix(err.Error(), tc.where+" panicked: runtime error") {
				t.Errorf("CrashErr = %v, want it to name %s", err, tc.where)
			}
			done := make(chan struct{})
			go func() { _ = a.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Close hangs after the panic")
			}
		})
	}
}

// EmergencyRestore does not wait for a worker stuck in a job longer than
// it is told, and the worker runs no job after it; Close afterwards does
// not restore again.
func TestEmergencyRestoreStuckWorker(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
	release := make(chan struct{})
	started := make(chan struct{})
	a.jobs <- func(*worker) { close(started); <-release }
	<-started
	t0 := time.Now()
	if err := a.EmergencyRestore(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 100*time.Millisecond || d > 2*time.Second {
		t.Errorf("EmergencyRestore took %s with a stuck worker, want about 100ms", d)
	}
	ran := make(chan struct{}, 1)
	close(release)
	a.jobs <- func(*worker) { ran <- struct{}{} }
	time.Sleep(100 * time.Millisecond)
	select {
	case <-ran:
		t.Error("the worker ran a job after EmergencyRestore")
	default:
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close after EmergencyRestore: %v", err)
	}
}
