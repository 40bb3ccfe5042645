package lane

import (
	"testing"
	"time"
)

func TestIdlePolicySleepFor(t *testing.T) {
	us := time.Microsecond
	p := idlePolicy{Spin: 2000 * us, MinSleep: 50 * us, MaxSleep: 1000 * us}
	for _, tc := range []struct {
		name string
		idle time.Duration
		want time.Duration
	}{
		{"just moved a frame: spin", 0, 0},
		{"inside the spin window", 1999 * us, 0},
		{"spin over: shortest sleep", 2000 * us, 50 * us},
		{"shortly after: still the shortest", 2030 * us, 50 * us},
		{"timeout grows with idle time", 2300 * us, 300 * us},
		{"capped", 3500 * us, 1000 * us},
		{"long idle stays capped", time.Hour, 1000 * us},
	} {
		if got := p.sleepFor(tc.idle); got != tc.want {
			t.Errorf("%s: sleepFor(%v) = %v, want %v", tc.name, tc.idle, got, tc.want)
		}
	}
}

// The default policy keeps a lane awake through traffic every 2 ms (a
// ping every 1-2 ms must not pay a wake-up), and an idle lane sleeps at
// most 1 ms at a time (the bound on frames from control).
func TestDefaultIdlePolicy(t *testing.T) {
	if d := defaultIdle.sleepFor(2 * time.Millisecond); d != 0 {
		t.Errorf("2 ms after a frame the lane sleeps %v; want it still spinning", d)
	}
	if d := defaultIdle.sleepFor(10 * time.Second); d != time.Millisecond {
		t.Errorf("an idle lane sleeps %v at a time; want 1 ms", d)
	}
	// the back-off never sleeps past the idle time it has already spent
	// sleeping (beyond the minimum), so a frame after a short gap waits
	// little even when the socket's wake-up were missed
	for i := defaultIdle.Spin; i < defaultIdle.Spin+2*time.Millisecond; i += 10 * time.Microsecond {
		if d := defaultIdle.sleepFor(i); d > max(i-defaultIdle.Spin, defaultIdle.MinSleep) {
			t.Fatalf("idle %v: sleep %v is longer than the idle time past the spin", i, d)
		}
	}
}
