package rings

import (
	"math/bits"
	"sync/atomic"
)

// cacheLinePad separates fields written by different goroutines. 128 bytes
// also defeats the adjacent-line prefetcher of x86 CPUs.
const cacheLinePad = 128

// SPSC is a bounded lock-free queue for exactly one producer goroutine
// (Push) and one consumer goroutine (Pop). Values are copied in and out, so
// neither operation allocates. Each side keeps a cached copy of the other
// side's index and reloads it (load-acquire) only when the cache says the
// queue is full (Push) or empty (Pop).
type SPSC[T any] struct {
	_ [cacheLinePad]byte

	// Consumer-owned line.
	head       atomic.Uint64 // next slot to pop
	cachedTail uint64        // consumer's copy of tail
	_          [cacheLinePad - 16]byte

	// Producer-owned line.
	tail       atomic.Uint64 // next slot to push
	cachedHead uint64        // producer's copy of head
	_          [cacheLinePad - 16]byte

	// Read-only after construction.
	mask uint64
	buf  []T
	_    [cacheLinePad]byte
}

// NewSPSC returns a queue holding up to size elements, size rounded up to a
// power of two. It panics if size < 1.
func NewSPSC[T any](size int) *SPSC[T] {
	if size < 1 {
		panic("rings: NewSPSC size must be >= 1")
	}
	n := uint64(1)
	if size > 1 {
		n = 1 << bits.Len64(uint64(size-1))
	}
	return &SPSC[T]{mask: n - 1, buf: make([]T, n)}
}

// Push copies *v into the queue. It returns false if the queue is full.
// Only the producer goroutine may call Push.
func (q *SPSC[T]) Push(v *T) bool {
	t := q.tail.Load()
	if t-q.cachedHead > q.mask {
		q.cachedHead = q.head.Load()
		if t-q.cachedHead > q.mask {
			return false
		}
	}
	q.buf[t&q.mask] = *v
	q.tail.Store(t + 1)
	return true
}

// Pop copies the oldest element into *v and removes it. It returns false if
// the queue is empty. Only the consumer goroutine may call Pop.
func (q *SPSC[T]) Pop(v *T) bool {
	h := q.head.Load()
	if h == q.cachedTail {
		q.cachedTail = q.tail.Load()
		if h == q.cachedTail {
			return false
		}
	}
	slot := &q.buf[h&q.mask]
	*v = *slot
	var zero T
	*slot = zero // do not keep pointers alive from the queue
	q.head.Store(h + 1)
	return true
}

// Len returns the number of queued elements. It is exact when called by the
// producer or the consumer while the other side is idle, and a snapshot
// otherwise.
func (q *SPSC[T]) Len() int {
	h := q.head.Load()
	t := q.tail.Load()
	return int(min(t-h, q.mask+1))
}

// Cap returns the capacity (size passed to NewSPSC rounded up to a power of
// two).
func (q *SPSC[T]) Cap() int { return int(q.mask + 1) }
