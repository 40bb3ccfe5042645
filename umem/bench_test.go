package umem

import "testing"

func BenchmarkAllocFree(b *testing.B) {
	for _, ledger := range []bool{false, true} {
		name := "ledger=off"
		if ledger {
			name = "ledger=on"
		}
		b.Run(name, func(b *testing.B) {
			u, err := New(Config{NumFrames: 4096, FrameSize: 2048})
			if err != nil {
				b.Fatal(err)
			}
			defer u.Close()
			if ledger {
				u.EnableLedger()
			}
			b.ReportAllocs()
			for b.Loop() {
				a, _ := u.Alloc()
				u.Free(a)
			}
		})
	}
}

func BenchmarkAllocFreeBatch64(b *testing.B) {
	u, err := New(Config{NumFrames: 4096, FrameSize: 2048})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	batch := make([]uint64, 64)
	b.ReportAllocs()
	for b.Loop() {
		n := u.AllocBatch(batch)
		u.FreeBatch(batch[:n])
	}
}

func BenchmarkMoveLedgerOff(b *testing.B) {
	u, err := New(Config{NumFrames: 64, FrameSize: 2048})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	b.ReportAllocs()
	for b.Loop() {
		u.Move(0, InFlight, TX)
	}
}
