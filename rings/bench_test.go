package rings

import (
	"github.com/bond-appliance/bond-appliance/rings/ringtest"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkFillReserveSetSubmit measures one 64-frame batch on the Fill
// ring; the simulated kernel consumes everything after each batch.
func BenchmarkFillReserveSetSubmit(b *testing.B) {
	k := ringtest.NewRing(2048, 8)
	f := NewFill(k.Mem, ringtest.Off, 2048)
	b.ReportAllocs()
	var a uint64
	for b.Loop() {
		idx, got := f.Reserve(64)
		for i := range got {
			f.Set(idx+i, a)
			a += 2048
		}
		f.Submit(got)
		if got < 64 {
			atomic.StoreUint32(k.Consumer(), atomic.LoadUint32(k.Producer()))
		}
	}
}

// BenchmarkRXPeekGetRelease measures one 64-descriptor batch on the RX ring;
// the simulated kernel publishes 64 entries before each batch.
func BenchmarkRXPeekGetRelease(b *testing.B) {
	k := ringtest.NewRing(2048, 16)
	r := NewRX(k.Mem, ringtest.Off, 2048)
	b.ReportAllocs()
	var sum uint64
	for b.Loop() {
		atomic.StoreUint32(k.Producer(), atomic.LoadUint32(k.Consumer())+64)
		idx, got := r.Peek(64)
		for i := range got {
			sum += uint64(r.Get(idx + i).Len)
		}
		r.Release(got)
	}
	_ = sum
}

// BenchmarkTXReserveSetSubmit measures one 64-descriptor batch on the TX
// ring.
func BenchmarkTXReserveSetSubmit(b *testing.B) {
	k := ringtest.NewRing(2048, 16)
	x := NewTX(k.Mem, ringtest.Off, 2048)
	b.ReportAllocs()
	for b.Loop() {
		idx, got := x.Reserve(64)
		for i := range got {
			x.Set(idx+i, Desc{Addr: uint64(i) << 11, Len: 60})
		}
		x.Submit(got)
		if got < 64 {
			atomic.StoreUint32(k.Consumer(), atomic.LoadUint32(k.Producer()))
		}
	}
}

// BenchmarkSPSCPushPop measures a push followed by a pop on one goroutine.
func BenchmarkSPSCPushPop(b *testing.B) {
	q := NewSPSC[Desc](1024)
	b.ReportAllocs()
	d := Desc{Addr: 1, Len: 2}
	for b.Loop() {
		q.Push(&d)
		q.Pop(&d)
	}
}

// BenchmarkSPSCPingPong measures throughput with a producer goroutine and
// the benchmark goroutine as consumer.
func BenchmarkSPSCPingPong(b *testing.B) {
	q := NewSPSC[uint64](1024)
	b.ReportAllocs()
	n := uint64(b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(0); i < n; {
			if q.Push(&i) {
				i++
			} else {
				runtime.Gosched()
			}
		}
	}()
	b.ResetTimer()
	var v uint64
	for got := uint64(0); got < n; {
		if q.Pop(&v) {
			got++
		} else {
			runtime.Gosched()
		}
	}
	<-done
}
