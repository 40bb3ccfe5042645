package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockingWriter blocks every write until released.
type blockingWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A reader that stops reading does not hold up the logging goroutine;
// what could not wait is dropped and counted, the rest written in order.
func TestAsyncHandlerNeverBlocks(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	h, flush := newAsyncHandler(slog.NewTextHandler(w, nil))
	log := slog.New(h).With("bond", "bond0")
	t0 := time.Now()
	for i := 0; i < logQueueLen+100; i++ {
		log.Info("event", "n", i)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("logging took %v with a reader that does not read", d)
	}
	close(w.release)
	flush(5 * time.Second)
	out := w.String()
	if !strings.Contains(out, "log records dropped") || !strings.Contains(out, "dropped=") {
		t.Fatalf("no drop report in:\n%.300s", out)
	}
	if !strings.Contains(out, "bond=bond0 n=0\n") {
		t.Fatalf("first record missing or without its attributes:\n%.300s", out)
	}
	if strings.Index(out, "n=0\n") > strings.Index(out, "n=1\n") {
		t.Fatal("records out of order")
	}
	log.Info("after flush") // dropped silently, no panic
}

// flush waits for what was queued and then returns.
func TestAsyncHandlerFlush(t *testing.T) {
	var buf bytes.Buffer
	h, flush := newAsyncHandler(slog.NewTextHandler(&buf, nil))
	log := slog.New(h)
	for i := 0; i < 100; i++ {
		log.Warn("x", "i", i)
	}
	flush(5 * time.Second)
	if n := strings.Count(buf.String(), "msg=x"); n != 100 {
		t.Fatalf("%d of 100 records written before flush returned", n)
	}
	flush(time.Second) // twice is harmless
}
