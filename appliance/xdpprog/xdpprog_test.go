package xdpprog

import (
	"os"
	"testing"
)

// TestProgramsLoad: the redirect program loads single-buffer and
// multi-buffer (xdp.frags), with and without the slow-protocol check,
// and the frags probe succeeds (Linux ≥ 5.18); loading changes no device.
func TestProgramsLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	if err := ProbeFrags(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {Frags: true}, {PassSlowProtocols: true}, {PassSlowProtocols: true, Frags: true}} {
		p, err := NewWithOptions(2, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewWithOptions(0, Options{Frags: true}); err == nil {
		t.Fatal("0 queues accepted")
	}
}
