package lane

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/rings/ringtest"
)

// jumboFrame is an IPv4/UDP frame of size bytes for flow (sport, dport)
// with sequence number seq and a payload that differs per frame and per
// byte, so that a fragment out of place or missing shows.
func jumboFrame(sport, dport uint16, seq uint32, size int) []byte {
	f := udpFrame(sport, dport, seq)
	f = append(f, make([]byte, size-len(f))...)
	binary.BigEndian.PutUint16(f[14+2:], uint16(size-14))
	binary.BigEndian.PutUint16(f[14+24:], uint16(size-14-20))
	for i := 64; i < size; i++ {
		f[i] = byte(uint32(i)*7 + seq)
	}
	return f
}

// sgRig is a rig whose simulated sockets are multi-buffer (XDP_USE_SG)
// over 2048-byte UMEM frames: a 9018-byte frame is a chain of 6.
func sgRig(t testing.TB, nMembers int, snap *Snapshot) *rig {
	r := newRig(t, nMembers, snap)
	for _, sp := range append([]*simPort{r.host}, r.members...) {
		sp.SG, sp.ChunkSize = true, 2048
	}
	return r
}

// sent returns every frame transmitted on the rig's ports: host first.
func (r *rig) checkClosed(t *testing.T) {
	t.Helper()
	for i, sp := range append([]*simPort{r.host}, r.members...) {
		if sp.Open() {
			t.Fatalf("port %d: the TX ring ends in the middle of a chain", i)
		}
		if sp.Invalid() != 0 {
			t.Fatalf("port %d: %d chained descriptors on a non-SG socket", i, sp.Invalid())
		}
	}
}

// pump delivers frames on the host port and steps the lane, draining
// every TX ring, until everything is through.
func (r *rig) pump(frames [][]byte) {
	for idle := 0; idle < 3; {
		n := r.host.Deliver(frames...)
		frames = frames[n:]
		w := r.lane.Step()
		for _, m := range r.members {
			m.DrainTX()
		}
		if n == 0 && w == 0 {
			idle++
		} else {
			idle = 0
		}
	}
}

// TestLaneJumboModes: 9018-byte frames (MTU 9000) travel host -> members
// and member -> host as descriptor chains in every mode, whole and byte
// for byte (balance-alb/tlb rewrite only the source MAC, in the first
// fragment; broadcast copies whole chains); single-buffer frames mixed
// in are unaffected; the UMEM ledger balances.
func TestLaneJumboModes(t *testing.T) {
	all := func(n int) uint64 { return 1<<uint(n) - 1 }
	tests := []struct {
		name      string
		snap      *Snapshot
		broadcast bool
		rxMember  int // a member whose frames reach the host
	}{
		{"balance-rr", &Snapshot{Mode: policy.BalanceRR, TX: []int{0, 1}, Active: 0, RX: all(2), PacketsPerSlave: 1}, false, 1},
		{"active-backup", &Snapshot{Mode: policy.ActiveBackup, TX: []int{1}, Active: 1, RX: 1 << 1}, false, 1},
		{"balance-xor", &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: all(2)}, false, 0},
		{"broadcast", &Snapshot{Mode: policy.Broadcast, TX: []int{0, 1}, Active: 0, RX: all(2)}, true, 1},
		{"802.3ad", &Snapshot{Mode: policy.IEEE8023AD, Hash: policy.Layer34, TX: []int{0, 1}, Active: -1, RX: all(2), BroadcastNeighbor: true}, false, 0},
		{"balance-tlb", albSnap(policy.BalanceTLB), false, 0},
		{"balance-alb", albSnap(policy.BalanceALB), false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sgRig(t, 2, tc.snap)
			var frames [][]byte
			for i := 0; i < 60; i++ {
				size := 9018
				if i%5 == 4 {
					size = 64 + i // single-buffer frames in between
				}
				frames = append(frames, jumboFrame(uint16(1000+i%7), 80, uint32(i), size))
			}
			r.pump(frames)
			got := map[uint32]int{}
			for m, sp := range r.members {
				for _, f := range sp.Sent() {
					q := seqOf(f)
					want := frames[q]
					if len(f) != len(want) || !bytes.Equal(f[12:], want[12:]) || !bytes.Equal(f[:6], want[:6]) {
						t.Fatalf("member %d: frame %d arrived changed (%d bytes, want %d)", m, q, len(f), len(want))
					}
					got[q]++
				}
			}
			for q := range frames {
				want := 1
				if tc.broadcast {
					want = 2
				}
				if got[uint32(q)] != want {
					t.Fatalf("frame %d sent %d times, want %d", q, got[uint32(q)], want)
				}
			}
			// member -> host
			sp := r.members[tc.rxMember]
			in := [][]byte{jumboFrame(1, 2, 0, 9018), jumboFrame(1, 2, 1, 100), jumboFrame(1, 2, 2, 3000)}
			if tc.snap.ALB != nil {
				for _, f := range in {
					copy(f[:6], tc.snap.ALB.Bond[:]) // to the bond's MAC: delivered
				}
			}
			if n := sp.Deliver(in...); n != len(in) {
				t.Fatalf("delivered %d", n)
			}
			r.lane.Step()
			r.host.DrainTX()
			r.lane.Step()
			hs := r.host.Sent()
			if len(hs) != len(in) {
				t.Fatalf("host got %d frames, want %d", len(hs), len(in))
			}
			for i, f := range hs {
				if !bytes.Equal(f, in[i]) {
					t.Fatalf("host frame %d changed (%d bytes, want %d)", i, len(f), len(in[i]))
				}
			}
			if got := sp.port.Stats.RxPackets.Load(); got != 3 {
				t.Fatalf("member RxPackets %d, want 3 frames", got)
			}
			r.checkClosed(t)
			if err := r.u.CheckLedger(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLaneJumboTXFull: with the members' TX rings left undrained, the
// ring fills in the middle of a chain: the chain is not put on the ring
// at all (no fragment sent alone), it is dropped whole and counted, and
// every frame that is sent arrives whole.
func TestLaneJumboTXFull(t *testing.T) {
	r := sgRig(t, 1, &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
	m := r.members[0]
	var frames [][]byte
	for i := 0; i < 200; i++ {
		frames = append(frames, jumboFrame(1, 2, uint32(i), 9018-i%3*1000))
	}
	left := frames
	for step := 0; len(left) > 0 && step < 100; step++ {
		left = left[r.host.Deliver(left...):]
		r.lane.Step()
		r.checkClosed(t)
	}
	st := &r.host.port.Stats
	mst := &m.port.Stats
	if mst.DropTxFull.Load() == 0 || mst.DropChain.Load() == 0 {
		t.Fatalf("TX ring never full: DropTxFull %d DropChain %d", mst.DropTxFull.Load(), mst.DropChain.Load())
	}
	for m.DrainTX() > 0 {
		r.lane.Step()
	}
	r.lane.Step()
	sent := m.Sent()
	for _, f := range sent {
		if want := frames[seqOf(f)]; !bytes.Equal(f, want) {
			t.Fatalf("frame %d arrived changed", seqOf(f))
		}
	}
	if got := uint64(len(sent)) + mst.DropTxFull.Load() + st.DropTxFull.Load(); got != uint64(len(frames)) {
		t.Fatalf("sent %d + dropped %d/%d != %d delivered", len(sent), mst.DropTxFull.Load(), st.DropTxFull.Load(), len(frames))
	}
	if mst.TxPackets.Load() != uint64(len(sent)) {
		t.Fatalf("TxPackets %d, sent %d frames", mst.TxPackets.Load(), len(sent))
	}
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

// TestLaneJumboBroadcastNoFrame: the UMEM runs out while a broadcast
// copy of a chain is being made: the partial copy is freed and counted,
// the original still goes out on the last member.
func TestLaneJumboBroadcastNoFrame(t *testing.T) {
	r := sgRig(t, 2, &Snapshot{Mode: policy.Broadcast, TX: []int{0, 1}, Active: 0, RX: 3})
	f := jumboFrame(1, 2, 7, 9018)
	if r.host.Deliver(f) != 1 {
		t.Fatal("not delivered")
	}
	// leave 3 free frames: the copy needs 6
	var held []uint64
	for r.u.Available() > 3 {
		a, _ := r.u.Alloc()
		held = append(held, a)
	}
	r.lane.Step()
	r.u.FreeBatch(held)
	for _, m := range r.members {
		m.DrainTX()
	}
	r.lane.Step()
	h := &r.host.port.Stats
	if h.DropNoFrame.Load() != 1 || h.DropChain.Load() != 1 {
		t.Fatalf("DropNoFrame %d DropChain %d, want 1 1", h.DropNoFrame.Load(), h.DropChain.Load())
	}
	if n := len(r.members[0].Sent()); n != 0 {
		t.Fatalf("member 0 sent %d (the copy)", n)
	}
	if s := r.members[1].Sent(); len(s) != 1 || !bytes.Equal(s[0], f) {
		t.Fatalf("member 1 sent %d frames", len(s))
	}
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

// TestLaneJumboRXIncomplete: a chain split across RX batches, a chain
// whose end has not arrived, and chains made over-long by a kernel that
// dropped their last fragments (all marked continued) are handled
// without leaking a frame or sending a fragment alone.
func TestLaneJumboRXIncomplete(t *testing.T) {
	t.Run("chain across the batch boundary", func(t *testing.T) {
		r := sgRig(t, 1, &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
		// 62 single frames then a 6-fragment chain: the batch of 64
		// ends 2 descriptors into the chain
		var in [][]byte
		for i := 0; i < 62; i++ {
			in = append(in, jumboFrame(1, 2, uint32(i), 64))
		}
		in = append(in, jumboFrame(1, 2, 62, 9018))
		if r.members[0].Deliver(in...) != len(in) {
			t.Fatal("not delivered")
		}
		for range 3 {
			r.lane.Step()
			r.host.DrainTX()
		}
		hs := r.host.Sent()
		if len(hs) != len(in) || !bytes.Equal(hs[62], in[62]) {
			t.Fatalf("host got %d frames", len(hs))
		}
		if err := r.u.CheckLedger(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("end not arrived", func(t *testing.T) {
		r := sgRig(t, 1, &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
		f := jumboFrame(1, 2, 5, 9018)
		r.members[0].DeliverTruncated(f, 3)
		for range 3 {
			r.lane.Step()
			r.host.DrainTX()
		}
		if n := len(r.host.Sent()); n != 0 {
			t.Fatalf("host got %d frames from half a chain", n)
		}
		// the fragments stay on the RX ring, owned by the kernel side
		if err := r.u.CheckLedger(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("last fragments dropped by the kernel", func(t *testing.T) {
		r := sgRig(t, 1, &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
		m := r.members[0]
		// four chains of 6 whose last fragment never comes: 20
		// descriptors all marked continued, more than MaxFrags: dropped
		// whole
		for i := range 4 {
			m.DeliverTruncated(jumboFrame(1, 2, uint32(i), 9018), 5)
		}
		r.lane.Step()
		// the rest of the over-long chain (it ends here) and then good frames
		good := []byte(nil)
		m.Deliver(jumboFrame(1, 2, 90, 500)) // ends the broken chain: dropped with it
		for i := range 4 {
			good = jumboFrame(1, 2, uint32(100+i), 9018)
			m.Deliver(good)
		}
		for range 4 {
			r.lane.Step()
			r.host.DrainTX()
		}
		r.lane.Step()
		hs := r.host.Sent()
		if len(hs) != 4 || !bytes.Equal(hs[3], good) {
			t.Fatalf("host got %d frames, want the 4 good ones", len(hs))
		}
		if got := m.port.Stats.DropChain.Load(); got != 1 {
			t.Fatalf("DropChain %d, want 1", got)
		}
		r.checkClosed(t)
		if err := r.u.CheckLedger(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLaneJumboRandom is the seeded counterpart of FuzzLaneChains: random
// frame sizes (1..8 fragments), random truncations, random draining.
func TestLaneJumboRandom(t *testing.T) {
	for seed := range uint64(20) {
		chainFuzz(t, rand.New(rand.NewPCG(seed, 99)))
	}
}

// FuzzLaneChains drives a broadcast bond (chains copied, sent on two
// members) and an active-backup member path with random chains.
func FuzzLaneChains(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		chainFuzz(t, rand.New(rand.NewPCG(a, b)))
	})
}

func chainFuzz(t *testing.T, rnd *rand.Rand) {
	r := sgRig(t, 2, &Snapshot{Mode: policy.Broadcast, TX: []int{0, 1}, Active: 0, RX: 3})
	frag := 2048 - ringtest.Headroom
	var delivered [][]byte
	truncated := false
	for range 300 {
		size := 64 + rnd.IntN(8*frag-64)
		f := jumboFrame(uint16(rnd.IntN(4)), 80, uint32(len(delivered)), size)
		switch op := rnd.IntN(10); {
		case op == 0:
			// the kernel drops the chain's last fragment(s)
			if n := r.members[0].Frags(size); n > 1 && r.members[0].DeliverTruncated(f, 1+rnd.IntN(n-1)) {
				truncated = true
			}
		case op < 5:
			if r.host.Deliver(f) == 1 {
				delivered = append(delivered, f)
			}
		default:
			if r.members[rnd.IntN(2)].Deliver(f) == 1 {
				delivered = append(delivered, f)
			}
		}
		if rnd.IntN(3) == 0 {
			r.lane.Step()
		}
		if rnd.IntN(4) == 0 {
			for _, sp := range append([]*simPort{r.host}, r.members...) {
				sp.DrainTX()
			}
		}
		r.checkClosed(t)
	}
	for range 4 {
		r.lane.Step()
		for _, sp := range append([]*simPort{r.host}, r.members...) {
			sp.DrainTX()
		}
	}
	r.lane.Step()
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
	if truncated {
		return // frames after a truncated chain merge with it (see rxTail)
	}
	for i, sp := range append([]*simPort{r.host}, r.members...) {
		for _, f := range sp.Sent() {
			if q := seqOf(f); int(q) >= len(delivered) || !bytes.Equal(f, delivered[q]) {
				t.Fatalf("port %d sent a frame (%d bytes) that was not delivered whole", i, len(f))
			}
		}
	}
}

// BenchmarkLaneXORJumbo forwards 9018-byte frames (chains of 6
// descriptors over 2048-byte UMEM frames) host -> 2 members in
// balance-xor: no allocation on the chain path. The simulated kernel's
// copies of 9 KB per frame dominate the time.
func BenchmarkLaneXORJumbo(b *testing.B) {
	r := sgRig(b, 2, &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 3})
	for _, m := range r.members {
		m.Record = false
	}
	frames := make([][]byte, 10)
	for i := range frames {
		frames[i] = jumboFrame(uint16(i), 80, uint32(i), 9018)
	}
	runForward(b, r, frames)
}
