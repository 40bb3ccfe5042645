package lane

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/bond-appliance/bond-appliance/policy"
)

// albSnap is a two-member balance-alb (or tlb) bond: member i has address
// 02:00:00:00:00:0(i+1), the bond 02:..:01, member 0 active; hash index
// i goes to member i%2.
func albSnap(mode policy.Mode) *Snapshot {
	t := &policy.ALBTable{Mode: mode, Dynamic: true, RLB: mode == policy.BalanceALB, Active: 0,
		Usable: []int{0, 1}, Bond: policy.MAC{2, 0, 0, 0, 0, 1}}
	for i := range t.Slot {
		t.Slot[i] = int8(i % 2)
	}
	t.MAC[0], t.MAC[1] = policy.MAC{2, 0, 0, 0, 0, 1}, policy.MAC{2, 0, 0, 0, 0, 2}
	return &Snapshot{Mode: mode, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 1, ALB: t,
		XmitHash: func(f []byte) uint32 { return policy.Hash(f, policy.Layer34) }}
}

// arpFrame is a broadcast ARP request from src.
func arpFrame(src byte) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, src, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1})
	return f
}

// TestLaneRuntFrames: frames shorter than an Ethernet header, received
// on members and on the host, in every mode. Before the fix a runt on the
// active member of a balance-alb bond panicked the lane (Deliver accepts
// it, then the lane read frame[0] and frame[:6]).
func TestLaneRuntFrames(t *testing.T) {
	modes := []struct {
		name string
		snap *Snapshot
	}{
		{"balance-alb", albSnap(policy.BalanceALB)},
		{"balance-tlb", albSnap(policy.BalanceTLB)},
		{"balance-rr", &Snapshot{Mode: policy.BalanceRR, TX: []int{0, 1}, Active: 0, RX: 3, CopyARP: true}},
		{"active-backup", &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1, CopyARP: true}},
		{"balance-xor", &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 3}},
		{"broadcast", &Snapshot{Mode: policy.Broadcast, TX: []int{0, 1}, Active: 0, RX: 3}},
		{"802.3ad", &Snapshot{Mode: policy.IEEE8023AD, Hash: policy.Encap34, TX: []int{1}, Active: -1, RX: 2}},
	}
	for _, mc := range modes {
		t.Run(mc.name, func(t *testing.T) {
			r := newRig(t, 2, mc.snap)
			var runts [][]byte
			for n := range 14 {
				runts = append(runts, bytes.Repeat([]byte{0x02}, n)) // unicast first byte
			}
			for _, m := range r.members {
				if got := m.Deliver(runts...); got != len(runts) {
					t.Fatalf("delivered %d", got)
				}
			}
			r.host.Deliver(runts...)
			r.lane.Step()
			r.host.DrainTX()
			for _, m := range r.members {
				m.DrainTX()
			}
			r.lane.Step()
			// member 0 delivers what its mode lets it deliver; runts are
			// never rewritten
			for _, f := range r.host.Sent() {
				if len(f) >= 14 || (len(f) > 0 && f[0] != 0x02) {
					t.Fatalf("host got a changed frame % x", f)
				}
			}
			if got := r.members[0].port.Stats.RxPackets.Load(); got != 14 {
				t.Fatalf("member 0 received %d", got)
			}
			if err := r.u.CheckLedger(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLaneALB: balance-alb transmit (table slot, source MAC of the
// non-active member, ARP to control, per-index byte counters) and receive
// (frame to a failed member's address gets the bond's).
func TestLaneALB(t *testing.T) {
	snap := albSnap(policy.BalanceALB)
	r := newRig(t, 2, snap)
	var frames [][]byte
	for i := range 16 {
		f := udpFrame(1000, 80, uint32(i))
		f[14+19] = byte(i) // destination 10.0.0.i: simple hash spreads over both members
		f[11] = 0x55       // the host's source (not a member's address)
		frames = append(frames, f)
	}
	frames = append(frames, arpFrame(1))
	r.hostToMembers(frames)
	got0, got1 := r.members[0].Sent(), r.members[1].Sent()
	if len(got0) == 0 || len(got1) == 0 || len(got0)+len(got1) != 16 {
		t.Fatalf("split %d/%d, want both members, 16 in all", len(got0), len(got1))
	}
	for _, f := range got1 {
		if policy.MAC(f[6:12]) != snap.ALB.MAC[1] {
			t.Fatalf("frame on member 1 with source % x", f[6:12])
		}
	}
	for _, f := range got0 {
		if f[11] != 0x55 {
			t.Fatalf("frame on the active member with source % x", f[6:12])
		}
	}
	var cf CtrlFrame
	if !r.lane.ToCtrlNeigh.Pop(&cf) || cf.Member != HostMember || binary.BigEndian.Uint16(cf.Data[12:]) != 0x0806 {
		t.Fatal("host ARP not handed to control")
	}
	if n := r.host.port.Stats.NeighRx.Load(); n != 1 {
		t.Fatalf("host NeighRx %d", n)
	}
	var loads policy.ALBLoads
	r.bond.ALBLoad.AddTo(&loads)
	var total uint64
	for _, v := range loads.Index {
		total += v
	}
	if total != 16*64 {
		t.Fatalf("counted %d bytes, want %d", total, 16*64)
	}
	// a frame received on the active member for member 1's address (as
	// after member 1 failed) reaches the host with the bond's address
	f := udpFrame(1, 2, 99)
	copy(f[:6], snap.ALB.MAC[1][:])
	snap2 := *snap
	tab := *snap.ALB
	tab.MAC[1] = policy.MAC{2, 0, 0, 0, 0, 9}
	snap2.ALB = &tab
	f[5] = 9
	r.bond.Publish(&snap2)
	r.members[0].Deliver(f)
	r.lane.Step()
	r.host.DrainTX()
	sent := r.host.Sent()
	if len(sent) != 1 || policy.MAC(sent[0][:6]) != tab.Bond {
		t.Fatalf("host got %d frames", len(sent))
	}
}

// TestLaneControlClasses: a flood of neighbour frames never costs a
// LACPDU, in either direction.
func TestLaneControlClasses(t *testing.T) {
	r := newRig(t, 2, &Snapshot{Mode: policy.IEEE8023AD, Hash: policy.Layer2, TX: []int{0, 1}, Active: -1, RX: 3, CopyARP: true})
	// to control: 2000 ARP frames received ahead of a LACPDU
	arps := make([][]byte, 2000)
	for i := range arps {
		arps[i] = arpFrame(byte(i))
	}
	for len(arps) > 0 {
		n := r.members[0].Deliver(arps...)
		arps = arps[n:]
		r.lane.Step()
	}
	if r.members[0].Deliver(lacpFrame()) != 1 {
		t.Fatal("LACPDU not received")
	}
	for range 256/64 + 1 { // the ARP frames still on the RX ring, then the LACPDU
		r.lane.Step()
	}
	st := &r.members[0].port.Stats
	if st.SlowRx.Load() != 1 || st.SlowDrop.Load() != 0 {
		t.Fatalf("slow rx %d drop %d, want 1, 0", st.SlowRx.Load(), st.SlowDrop.Load())
	}
	if st.NeighRx.Load() != NeighRingSize || st.NeighDrop.Load() != 2000-NeighRingSize {
		t.Fatalf("neigh rx %d drop %d", st.NeighRx.Load(), st.NeighDrop.Load())
	}
	var cf CtrlFrame
	if !r.lane.ToCtrlSlow.Pop(&cf) || cf.Len != 124 || cf.Data[12] != 0x88 || cf.Member != 0 {
		t.Fatal("LACPDU not on the slow ring")
	}
	// from control: the neighbour ring full of ARP, then a LACPDU: the
	// LACPDU leaves in the next iteration
	cf = CtrlFrame{Member: 1, Len: 60}
	copy(cf.Data[:], arpFrame(7))
	queued := 0
	for r.lane.FromCtrlNeigh.Push(&cf) {
		queued++
	}
	cf = CtrlFrame{Member: 1, Len: 124}
	copy(cf.Data[:], lacpFrame())
	if !r.lane.FromCtrlSlow.Push(&cf) {
		t.Fatal("slow ring full")
	}
	r.lane.Step()
	r.members[1].DrainTX()
	sent := r.members[1].Sent()
	if len(sent) != 1+64 || binary.BigEndian.Uint16(sent[0][12:]) != 0x8809 {
		t.Fatalf("first iteration sent %d frames, want the LACPDU first and a batch of ARP", len(sent))
	}
	for range queued {
		r.lane.Step()
		r.members[1].DrainTX()
	}
	if got := r.members[1].port.Stats.CtrlTx.Load(); got != uint64(queued)+1 {
		t.Fatalf("CtrlTx %d, want %d", got, queued+1)
	}
	// a frame from control with an impossible length is dropped, counted
	cf = CtrlFrame{Member: 1, Len: CtrlFrameMax + 1}
	r.lane.FromCtrlSlow.Push(&cf)
	r.lane.Step()
	if r.members[1].port.Stats.CtrlBad.Load() != 1 {
		t.Fatal("bad control frame not counted")
	}
	r.lane.Step()
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

// TestLaneKickBudget: with need_wakeup set on the TX ring the lane's
// flush kicks ceil(outstanding/budget) times.
func TestLaneKickBudget(t *testing.T) {
	for _, tc := range []struct {
		budget       uint32
		frames       int
		step1, step2 int // kicks: after the first batch (64 frames at most), after all
	}{
		{0, 100, 2, 4}, // default 32
		{32, 100, 2, 4},
		{64, 100, 1, 2},
		{64, 64, 1, 1},
		{256, 100, 1, 1},
		{1, 5, 5, 5},
	} {
		r := newRig(t, 1, &Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
		m := r.members[0]
		m.port.TxBudget = tc.budget
		m.TX.SetWakeup(true)
		var frames [][]byte
		for i := range tc.frames {
			frames = append(frames, udpFrame(1, 2, uint32(i)))
		}
		if r.host.Deliver(frames...) != tc.frames {
			t.Fatal("host ring full")
		}
		r.lane.Step() // one batch, nothing consumed by the "kernel"
		k1 := m.Kicks()
		r.lane.Step() // the rest; everything outstanding
		k2 := m.Kicks() - k1
		if k1 != tc.step1 || k2 != tc.step2 {
			t.Errorf("budget %d, %d frames: kicks %d then %d, want %d then %d", tc.budget, tc.frames, k1, k2, tc.step1, tc.step2)
		}
		m.TX.SetWakeup(false)
		m.DrainTX()
		r.lane.Step()
		if m.Kicks() != k1+k2 {
			t.Errorf("kicked without need_wakeup")
		}
	}
}

// FuzzLaneRX feeds random frames to the host and to both members of a
// bond in every mode: the lane must not panic and must account for every
// frame (the UMEM ledger).
func FuzzLaneRX(f *testing.F) {
	f.Add([]byte{}, uint8(6), uint8(0))
	f.Add(udpFrame(1, 2, 3), uint8(0), uint8(1))
	f.Add(lacpFrame(), uint8(4), uint8(2))
	f.Add(arpFrame(3), uint8(6), uint8(0))
	f.Add(arpFrame(3)[:13], uint8(6), uint8(0))
	f.Fuzz(func(t *testing.T, frame []byte, mode, where uint8) {
		if len(frame) > 1500 {
			frame = frame[:1500]
		}
		var snap *Snapshot
		switch m := policy.Mode(mode % 8); m {
		case policy.BalanceTLB, policy.BalanceALB:
			snap = albSnap(m)
		default: // 7: an invalid mode
			snap = &Snapshot{Mode: m, Hash: policy.HashPolicy(where % 6), TX: []int{0, 1}, Active: 0, RX: 3, CopyARP: true}
		}
		r := newRig(t, 2, snap)
		ports := []*simPort{r.host, r.members[0], r.members[1]}
		ports[where%3].Deliver(frame, frame)
		for range 3 {
			r.lane.Step()
			for _, p := range ports {
				p.DrainTX()
			}
		}
		if err := r.u.CheckLedger(); err != nil {
			t.Fatal(err)
		}
	})
}
