package lane

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/alb"

	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/rings"
	"github.com/bond-appliance/bond-appliance/rings/ringtest"
	"github.com/bond-appliance/bond-appliance/umem"
)

// simPort is a lane port over a simulated kernel socket.
type simPort struct {
	*ringtest.Socket
	port *Port
}

func newSimPort(u *umem.UMEM, name string, size uint32) *simPort {
	s := ringtest.NewSocket(u, size)
	return &simPort{Socket: s, port: &Port{
		Name: name, FD: -1,
		Fill: rings.NewFill(s.Fill.Mem, ringtest.Off, size),
		Comp: rings.NewCompletion(s.Comp.Mem, ringtest.Off, size),
		RX:   rings.NewRX(s.RX.Mem, ringtest.Off, size),
		TX:   rings.NewTX(s.TX.Mem, ringtest.Off, size),
		Kick: s,
	}}
}

// udpFrame builds a 64-byte IPv4/UDP frame for flow (sport, dport) with a
// sequence number in the payload.
func udpFrame(sport, dport uint16, seq uint32) []byte {
	f := make([]byte, 64)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x01})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x02})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 50)
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], 30)
	binary.BigEndian.PutUint32(ip[28:], seq)
	return f
}

func seqOf(f []byte) uint32 { return binary.BigEndian.Uint32(f[14+28:]) }

func lacpFrame() []byte {
	f := make([]byte, 124)
	copy(f, []byte{0x01, 0x80, 0xc2, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x09, 0x88, 0x09, 0x01, 0x01})
	return f
}

type rig struct {
	u       *umem.UMEM
	host    *simPort
	members []*simPort
	bond    *Bond
	lane    *Lane
}

func newRig(t testing.TB, nMembers int, snap *Snapshot) *rig {
	return newRigLedger(t, nMembers, snap, true)
}

func newRigLedger(t testing.TB, nMembers int, snap *Snapshot, ledger bool) *rig {
	const ring = 256
	u, err := umem.New(umem.Config{NumFrames: uint32((nMembers + 1) * ring * 2), FrameSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	if _, ok := t.(*testing.T); ok && ledger {
		u.EnableLedger()
	}
	r := &rig{u: u, host: newSimPort(u, "host", ring)}
	b := &Bond{Host: r.host.port}
	for i := 0; i < nMembers; i++ {
		m := newSimPort(u, "m", ring)
		r.members = append(r.members, m)
		b.Members = append(b.Members, m.port)
	}
	b.Publish(snap)
	r.bond = b
	r.lane = New(Config{ID: 0, CPU: -1, Batch: 64, RingSize: ring}, u, []*Bond{b})
	r.lane.Prime()
	return r
}

// run delivers frames on the host port in batches and steps the lane until
// everything is through, then drains every TX ring.
func (r *rig) hostToMembers(frames [][]byte) {
	for i := 0; len(frames) > 0 || i < 3; i++ {
		n := r.host.Deliver(frames...)
		frames = frames[n:]
		r.lane.Step()
		for _, m := range r.members {
			m.DrainTX()
		}
		if len(frames) > 0 {
			i = 0
		}
	}
	r.lane.Step() // reap completions
}

func TestLaneModes(t *testing.T) {
	all := func(n int) uint64 { return 1<<uint(n) - 1 }
	tests := []struct {
		name  string
		snap  *Snapshot
		flows int
		check func(t *testing.T, per [][]uint32)
	}{
		{"balance-rr pps=1 alternates", &Snapshot{Mode: policy.BalanceRR, TX: []int{0, 1}, Active: 0, RX: all(2), PacketsPerSlave: 1}, 1,
			func(t *testing.T, per [][]uint32) {
				if len(per[0]) != 50 || len(per[1]) != 50 {
					t.Fatalf("split %d/%d, want 50/50", len(per[0]), len(per[1]))
				}
				for i := 1; i < len(per[0]); i++ {
					if per[0][i]-per[0][i-1] != 2 {
						t.Fatalf("member 0 got seq %v: not alternating", per[0][:i+1])
					}
				}
			}},
		{"balance-rr pps=3 runs of three", &Snapshot{Mode: policy.BalanceRR, TX: []int{0, 1}, Active: 0, RX: all(2), PacketsPerSlave: 3}, 1,
			func(t *testing.T, per [][]uint32) {
				owner := map[uint32]int{}
				for m, s := range per {
					for _, q := range s {
						owner[q] = m
					}
				}
				changes := 0
				for q := uint32(1); q < 100; q++ {
					if owner[q] != owner[q-1] {
						changes++
					}
				}
				if changes < 30 || changes > 34 {
					t.Fatalf("%d member changes in 100 packets, want ~33", changes)
				}
			}},
		{"active-backup uses the active member only", &Snapshot{Mode: policy.ActiveBackup, TX: []int{1}, Active: 1, RX: 1 << 1}, 10,
			func(t *testing.T, per [][]uint32) {
				if len(per[0]) != 0 || len(per[1]) != 100 {
					t.Fatalf("split %d/%d, want 0/100", len(per[0]), len(per[1]))
				}
			}},
		{"balance-xor spreads flows", &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: all(2)}, 100,
			func(t *testing.T, per [][]uint32) {
				if len(per[0]) < 20 || len(per[1]) < 20 {
					t.Fatalf("split %d/%d: flows not spread", len(per[0]), len(per[1]))
				}
			}},
		{"balance-xor keeps one flow on one member", &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: all(2)}, 1,
			func(t *testing.T, per [][]uint32) {
				if len(per[0]) != 0 && len(per[1]) != 0 {
					t.Fatalf("one flow split %d/%d", len(per[0]), len(per[1]))
				}
			}},
		{"broadcast duplicates to all", &Snapshot{Mode: policy.Broadcast, TX: []int{0, 1, 2}, Active: 0, RX: all(3)}, 5,
			func(t *testing.T, per [][]uint32) {
				for m := range per {
					if len(per[m]) != 100 {
						t.Fatalf("member %d got %d frames, want 100", m, len(per[m]))
					}
				}
			}},
		{"no usable member drops", &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer2, Active: -1}, 1,
			func(t *testing.T, per [][]uint32) {
				if len(per[0])+len(per[1]) != 0 {
					t.Fatal("frames sent with no usable member")
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 2
			if len(tc.snap.TX) > n {
				n = len(tc.snap.TX)
			}
			r := newRig(t, n, tc.snap)
			var frames [][]byte
			for i := 0; i < 100; i++ {
				frames = append(frames, udpFrame(uint16(1000+i%tc.flows), 80, uint32(i)))
			}
			r.hostToMembers(frames)
			per := make([][]uint32, n)
			for m, sp := range r.members {
				for _, f := range sp.Sent() {
					per[m] = append(per[m], seqOf(f))
				}
			}
			tc.check(t, per)
			if err := r.u.CheckLedger(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLaneMemberRX(t *testing.T) {
	// active-backup with member 1 active: frames on 1 reach the host, frames on
	// the backup are dropped, LACPDUs go to control from either.
	r := newRig(t, 2, &Snapshot{Mode: policy.ActiveBackup, TX: []int{1}, Active: 1, RX: 1 << 1})
	r.members[0].Deliver(udpFrame(1, 2, 1), lacpFrame())
	r.members[1].Deliver(udpFrame(1, 2, 2), udpFrame(1, 2, 3), lacpFrame())
	r.lane.Step()
	r.host.DrainTX()
	r.lane.Step()
	if sent := r.host.Sent(); len(sent) != 2 || seqOf(sent[0]) != 2 || seqOf(sent[1]) != 3 {
		t.Fatalf("host got %d frames", len(sent))
	}
	if got := r.members[0].port.Stats.DropInactive.Load(); got != 1 {
		t.Fatalf("backup drops = %d, want 1", got)
	}
	var cf CtrlFrame
	n := 0
	for r.lane.ToCtrlSlow.Pop(&cf) {
		n++
		if cf.Len != 124 || cf.Data[12] != 0x88 {
			t.Fatalf("control frame len %d", cf.Len)
		}
	}
	if n != 2 {
		t.Fatalf("%d slow-protocol frames to control, want 2", n)
	}
	// control transmits on member 0
	cf = CtrlFrame{Bond: 0, Member: 0, Len: 124}
	copy(cf.Data[:], lacpFrame())
	r.lane.FromCtrlSlow.Push(&cf)
	r.lane.Step()
	if r.members[0].DrainTX() != 1 {
		t.Fatal("control frame not transmitted")
	}
	r.lane.Step()
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLaneXOR forwards 64-byte frames host -> 2 members in balance-xor
// layer3+4 over simulated rings: the user-space cost per frame of one lane.
func BenchmarkLaneXOR(b *testing.B) {
	benchForward(b, &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 3})
}

// benchForward forwards batches of 64-byte frames (64 flows) from the host
// port to two members through one lane over simulated rings.
func benchForward(b *testing.B, snap *Snapshot) {
	r := newRig(b, 2, snap)
	for _, m := range r.members {
		m.Record = false
	}
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = udpFrame(uint16(i), 80, uint32(i))
	}
	runForward(b, r, frames)
}

// runForward delivers frames on the rig's host port, steps the lane and
// drains the members until b.N frames went through, and reports Mpps.
func runForward(b *testing.B, r *rig, frames [][]byte) {
	b.ReportAllocs()
	b.ResetTimer()
	total := 0
	for total < b.N {
		total += r.host.Deliver(frames...)
		r.lane.Step()
		for _, m := range r.members {
			m.DrainTX()
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// TestLaneLayoutRetire: a published layout without a member is adopted at
// the next step; the retired socket's fill-ring frames handed back with
// Reclaim return to the free stack.
func TestLaneLayoutRetire(t *testing.T) {
	r := newRigLedger(t, 2, &Snapshot{Mode: policy.BalanceXOR, Hash: policy.Layer34, TX: []int{0}, Active: 0, RX: 1}, false)
	free := r.u.Available()
	lay := NewLayout([]*Bond{r.bond}, [][]*Port{{r.members[0].port, nil}})
	r.lane.Publish(lay)
	r.lane.Step()
	if r.lane.adopted.Load() != lay || len(r.lane.Ports()) != 2 {
		t.Fatalf("layout not adopted: %d ports", len(r.lane.Ports()))
	}
	retired := r.members[1].port
	addrs := retired.Fill.Unconsumed(nil)
	if len(addrs) == 0 {
		t.Fatal("retired socket had no frames on its fill ring")
	}
	for _, a := range addrs {
		if !r.lane.Reclaim(a, umem.Fill) {
			t.Fatal("reclaim queue full")
		}
	}
	r.lane.Step()
	if got := r.u.Available(); got < free+len(addrs)-256 {
		t.Fatalf("free frames %d after reclaiming %d (was %d)", got, len(addrs), free)
	}
	// traffic keeps flowing on member 0 only
	r.host.Deliver(udpFrame(1, 2, 1), udpFrame(3, 4, 2))
	r.lane.Step()
	if n := r.members[0].DrainTX(); n != 2 {
		t.Fatalf("member 0 sent %d frames", n)
	}
	if n := r.members[1].DrainTX(); n != 0 {
		t.Fatalf("retired member sent %d frames", n)
	}
}

// BenchmarkLaneTLB forwards 64-byte frames host -> 2 members in balance-tlb
// (dynamic load balancing: table lookup, byte counting, source MAC
// rewrite on the non-active slave).
func BenchmarkLaneTLB(b *testing.B) {
	ab, err := alb.New(alb.Config{Mode: alb.ModeTLB, BondMAC: alb.MAC{2, 0, 0, 0, 0, 1}, DynamicLB: true,
		Slaves: []alb.Slave{{Speed: 10000, MAC: alb.MAC{2, 0, 0, 0, 0, 1}, Up: true}, {Speed: 10000, MAC: alb.MAC{2, 0, 0, 0, 0, 2}, Up: true}}})
	if err != nil {
		b.Fatal(err)
	}
	ab.SlaveUp(0, 0)
	ab.SlaveUp(1, 0)
	ab.ActiveChange(-1, 0)
	ab.Tick(time.Second, nil)
	snap := &Snapshot{Mode: policy.BalanceTLB, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 1, ALB: ab.Table(),
		XmitHash: func(f []byte) uint32 { return policy.Hash(f, policy.Layer34) }}
	benchForward(b, snap)
}

// vlanARPFrame builds an ARP request, behind a VLAN tag when vlan != 0.
func vlanARPFrame(vlan uint16) []byte {
	f := make([]byte, 0, 64)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x02)
	if vlan != 0 {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, vlan)
	}
	f = binary.BigEndian.AppendUint16(f, 0x0806)
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x02, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1)
	return f[:cap(f)]
}

// icmp6Frame builds an IPv6 ICMPv6 frame of the given type (135 neighbour
// solicitation, 136 advertisement, 128 echo request, 133 router
// solicitation).
func icmp6Frame(typ byte) []byte {
	f := make([]byte, 86)
	copy(f[0:6], []byte{0x33, 0x33, 0xff, 0, 0, 1})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x02})
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = 58, 255
	ip[8], ip[9] = 0xfe, 0x80
	ip[24], ip[25] = 0xff, 0x02
	ip[40] = typ
	return f
}

// 802.3ad with broadcast_neighbor: ARP and IPv6 NS/NA frames the host
// sends leave on every transmitting member, everything else on the one
// the hash picks; without it every frame leaves on one member.
func TestLaneBroadcastNeighbor(t *testing.T) {
	frames := []struct {
		name      string
		frame     []byte
		neighbour bool
	}{
		{"ARP", vlanARPFrame(0), true},
		{"ARP in VLAN 7", vlanARPFrame(7), true},
		{"neighbour solicitation", icmp6Frame(135), true},
		{"neighbour advertisement", icmp6Frame(136), true},
		{"ICMPv6 echo", icmp6Frame(128), false},
		{"router solicitation", icmp6Frame(133), false},
		{"UDP", udpFrame(1, 2, 3), false},
	}
	for _, on := range []bool{false, true} {
		for _, fc := range frames {
			name := fc.name + map[bool]string{false: " off", true: " on"}[on]
			t.Run(name, func(t *testing.T) {
				// member 1 is not distributing: it never gets a copy
				r := newRig(t, 4, &Snapshot{Mode: policy.IEEE8023AD, Hash: policy.Layer2, TX: []int{0, 2, 3}, Active: 0, RX: 0b1101,
					BroadcastNeighbor: on})
				r.hostToMembers([][]byte{fc.frame})
				var got []int
				for m, sp := range r.members {
					for _, f := range sp.Sent() {
						if string(f) != string(fc.frame) {
							t.Fatalf("member %d sent % x, want % x", m, f, fc.frame)
						}
						got = append(got, m)
					}
				}
				want := 1
				if on && fc.neighbour {
					want = 3
					if len(got) != 3 || got[0] != 0 || got[1] != 2 || got[2] != 3 {
						t.Fatalf("copies on members %v, want [0 2 3]", got)
					}
				}
				if len(got) != want {
					t.Fatalf("sent on members %v, want %d copies", got, want)
				}
				if d := r.host.port.Stats.DropNoFrame.Load() + r.host.port.Stats.DropNoSlave.Load(); d != 0 {
					t.Fatalf("%d drops", d)
				}
				if err := r.u.CheckLedger(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkLane8023ADBroadcastNeighbor forwards 64-byte UDP frames host ->
// 2 members in 802.3ad with broadcast_neighbor on: the neighbour check on
// every frame costs no allocation.
func BenchmarkLane8023ADBroadcastNeighbor(b *testing.B) {
	benchForward(b, &Snapshot{Mode: policy.IEEE8023AD, Hash: policy.Layer34, TX: []int{0, 1}, Active: 0, RX: 3, BroadcastNeighbor: true})
}
