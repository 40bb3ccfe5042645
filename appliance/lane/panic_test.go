package lane

import (
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/umem"
)

// A panic on the lane's goroutine reaches Config.OnPanic with its stack,
// and the lane ends as after Stop (Stop returns).
func TestLaneOnPanic(t *testing.T) {
	u, err := umem.New(umem.Config{NumFrames: 256, FrameSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	type report struct {
		v     any
		stack string
	}
	got := make(chan report, 1)
	l := New(Config{ID: 0, CPU: -1, Batch: 8, RingSize: 64,
		OnPanic: func(v any, stack []byte) { got <- report{v, string(stack)} }}, u, nil)
	l.Start()
	// a layout whose bond has no member list: the lane indexes past it
	l.Publish(&Layout{Bonds: []*Bond{{}}})
	select {
	case r := <-got:
		if !strings.Contains(fmtAny(r.v), "index out of range") {
			t.Errorf("panic value %v", r.v)
		}
		if !strings.Contains(r.stack, "lane.(*Lane).Step") {
			t.Errorf("stack does not show the panicking frame:\n%s", r.stack)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnPanic not called")
	}
	done := make(chan struct{})
	go func() { l.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hangs after a panic")
	}
}

func fmtAny(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	s, _ := v.(string)
	return s
}
