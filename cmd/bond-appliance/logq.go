package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// The daemon's log goes through a bounded queue to one writer goroutine:
// the control loop, the worker and the lanes' panic handlers log, and a
// slow reader of stderr (a full pipe to journald or to a test harness)
// must not hold any of them up. When the queue is full a record is
// dropped and counted; the count is logged as soon as there is room.

// logQueueLen is how many records may wait for the writer.
const logQueueLen = 4096

type logItem struct {
	h slog.Handler
	r slog.Record
}

type logQueue struct {
	ch      chan logItem
	dropped atomic.Uint64
	done    chan struct{}
}

// asyncHandler hands records to a logQueue; h formats and writes them on
// the writer goroutine.
type asyncHandler struct {
	h slog.Handler
	q *logQueue
}

// newAsyncHandler starts the writer of h's records. flush stops taking
// records and waits up to wait for the queued ones to be written.
func newAsyncHandler(h slog.Handler) (handler slog.Handler, flush func(wait time.Duration)) {
	q := &logQueue{ch: make(chan logItem, logQueueLen), done: make(chan struct{})}
	go q.write()
	var closed atomic.Bool
	return asyncHandler{h: h, q: q}, func(wait time.Duration) {
		if closed.Swap(true) {
			return
		}
		deadline := time.After(wait)
		select {
		case q.ch <- logItem{}: // the end marker, after every record queued so far
		case <-deadline:
			return
		}
		select {
		case <-q.done:
		case <-deadline:
		}
	}
}

func (q *logQueue) write() {
	defer close(q.done)
	for it := range q.ch {
		if it.h == nil {
			return
		}
		if n := q.dropped.Swap(0); n > 0 {
			r := slog.NewRecord(time.Now(), slog.LevelWarn, "log records dropped: the log reader is too slow", 0)
			r.AddAttrs(slog.Uint64("dropped", n))
			_ = it.h.Handle(context.Background(), r)
		}
		_ = it.h.Handle(context.Background(), it.r)
	}
}

func (a asyncHandler) Enabled(ctx context.Context, l slog.Level) bool { return a.h.Enabled(ctx, l) }

func (a asyncHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case a.q.ch <- logItem{h: a.h, r: r.Clone()}:
	default:
		a.q.dropped.Add(1)
	}
	return nil
}

func (a asyncHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return asyncHandler{h: a.h.WithAttrs(as), q: a.q}
}

func (a asyncHandler) WithGroup(name string) slog.Handler {
	return asyncHandler{h: a.h.WithGroup(name), q: a.q}
}
