package xdpprog

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const tcRedirect = 7 // TC_ACT_REDIRECT

func runTC(t *testing.T, p *ebpf.Program, frame []byte) int32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("run on % x: %v", frame, err)
	}
	return int32(ret)
}

// tcRunnable: BPF_PROG_RUN refuses (EINVAL) an IPv4 or IPv6 skb shorter
// than its network header.
func tcRunnable(f []byte) bool {
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		return len(f) >= 34
	case 0x86dd:
		return len(f) >= 54
	}
	return true
}

// icmpFrame makes an IPv4 or IPv6 ICMP/ICMPv6 message of type typ.
func icmpFrame(r *rand.Rand, v6 bool, proto, typ byte) []byte {
	f := make([]byte, 14, 128)
	for i := range 12 {
		f[i] = byte(r.IntN(256))
	}
	if v6 {
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		ip[6] = proto
		for i := 8; i < 40; i++ {
			ip[i] = byte(r.IntN(256))
		}
		f = append(f, ip...)
	} else {
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		ip[9] = proto
		for i := 12; i < 20; i++ {
			ip[i] = byte(r.IntN(256))
		}
		f = append(f, ip...)
	}
	icmp := []byte{typ, byte(r.IntN(3)), 0, 0, byte(r.IntN(256)), byte(r.IntN(256)), 0, 1}
	if r.IntN(8) == 0 {
		icmp[4], icmp[5] = 0, 0 // identifier 0 hashes as 1
	}
	f = append(f, icmp...)
	if r.IntN(6) == 0 {
		f = f[:len(f)-r.IntN(8)-1] // header cut short
	}
	return f
}

func icmpErr(proto, typ byte) bool {
	if proto == 58 {
		return typ >= 1 && typ <= 4
	}
	switch typ {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// TestTCHostHash: the host end's TC program picks the member
// bond_xmit_hash picks (policy.Hash, SlaveIndex) bit for bit for layer2,
// layer2+3 and layer3+4 over 1..5 members — ICMP echo and other non-error
// messages included — and leaves to the lane only VLAN-tagged frames,
// truncated headers and ICMP errors; active-backup sends on slot 0 and
// counts; no fast TX passes everything on.
func TestTCHostHash(t *testing.T) {
	const bond = 3
	f, p := tcHost(t, bond, 5)
	r := rand.New(rand.NewPCG(56, 78))
	var frames [][]byte
	for len(frames) < 4000 {
		if fr := frameGen(r); tcRunnable(fr) {
			frames = append(frames, fr)
		}
	}
	types := []byte{0, 8, 13, 14, 3, 11, 5, 128, 129, 1, 2, 4, 133, 135, 200}
	for range 2000 {
		v6 := r.IntN(2) == 0
		proto := byte(1)
		if r.IntN(2) == 0 {
			proto = 58
		}
		frames = append(frames, icmpFrame(r, v6, proto, types[r.IntN(len(types))]))
	}
	for _, pol := range []policy.HashPolicy{policy.Layer2, policy.Layer23, policy.Layer34} {
		for ntx := 1; ntx <= 5; ntx++ {
			cfg := FastCfg{Flags: FastTX, NTX: uint32(ntx), Kind: FastHash, Policy: uint32(pol)}
			for s := range ntx {
				cfg.TXMember[s] = uint8(s)
			}
			if err := f.Cfg.Put(uint32(bond), cfg); err != nil {
				t.Fatal(err)
			}
			decided, icmps := 0, 0
			for _, fr := range frames {
				_ = f.dbg.Put(uint32(0), uint32(0))
				ret := runTC(t, p.Prog, fr)
				var got uint32
				if err := f.dbg.Lookup(uint32(0), &got); err != nil {
					t.Fatal(err)
				}
				if got == 0 {
					if ret != tcxNext {
						t.Fatalf("%s: undecided frame returned %d", pol, ret)
					}
					if mustDecide(fr, pol) {
						t.Fatalf("%s ntx %d: frame % x went to the lane", pol, ntx, fr)
					}
					continue
				}
				decided++
				if l4proto(fr) == 1 || l4proto(fr) == 58 {
					icmps++
				}
				if ret != tcRedirect {
					t.Fatalf("%s ntx %d: decided but returned %d", pol, ntx, ret)
				}
				want := policy.SlaveIndex(policy.Hash(fr, pol), ntx)
				if int(got-1) != want {
					t.Fatalf("%s ntx %d: slot %d, policy.Hash says %d for % x", pol, ntx, got-1, want, fr)
				}
			}
			t.Logf("%s over %d members: %d of %d frames decided (%d ICMP)", pol, ntx, decided, len(frames), icmps)
		}
	}
	// active-backup: slot 0, counted with the skb's length
	if err := f.Cnt.Put(FastKey(bond, 4), make([]FastCounters, ebpfCPUs(t))); err != nil {
		t.Fatal(err)
	}
	if err := f.Cfg.Put(uint32(bond), FastCfg{Flags: FastTX, NTX: 1, Kind: FastActive, TXMember: [FastMaxMembers]uint8{4}}); err != nil {
		t.Fatal(err)
	}
	var bytes uint64
	for _, fr := range frames[:50] {
		_ = f.dbg.Put(uint32(0), uint32(0))
		if ret := runTC(t, p.Prog, fr); ret != tcRedirect {
			t.Fatalf("active-backup: returned %d", ret)
		}
		bytes += uint64(len(fr))
		var got uint32
		_ = f.dbg.Lookup(uint32(0), &got)
		if got != 1 {
			t.Fatalf("active-backup: slot %d", int(got)-1)
		}
	}
	if c := f.Counters(FastKey(bond, 4)); c.TxPackets != 50 || c.TxBytes != bytes {
		t.Fatalf("member 4 counters %+v, want 50 packets, %d bytes", c, bytes)
	}
	// a slot without a device, and fast TX off: on to the lane
	_ = f.TXIf.Delete(FastTXKey(bond, 0))
	if ret := runTC(t, p.Prog, frames[0]); ret != tcxNext {
		t.Fatalf("slot without a device: returned %d", ret)
	}
	if err := f.Cfg.Put(uint32(bond), FastCfg{Flags: FastRX, NTX: 1, Kind: FastActive}); err != nil {
		t.Fatal(err)
	}
	if ret := runTC(t, p.Prog, frames[1]); ret != tcxNext {
		t.Fatalf("fast TX off: returned %d", ret)
	}
}

// l4proto is the IP protocol of an untagged frame (0 when none).
func l4proto(f []byte) byte {
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(f) >= 34 {
			return f[23]
		}
	case 0x86dd:
		if len(f) >= 54 {
			return f[20]
		}
	}
	return 0
}

// mustDecide: what the TC program must not leave to the lane — untagged
// layer2 frames, and TCP/UDP and ICMP non-error messages with whole
// headers for the other policies.
func mustDecide(f []byte, pol policy.HashPolicy) bool {
	if pol == policy.Layer2 {
		return f[12] != 0x81 && !(f[12] == 0x88 && f[13] == 0xa8)
	}
	if isSimpleL4(f) {
		return true
	}
	et := binary.BigEndian.Uint16(f[12:])
	var thoff int
	switch et {
	case 0x0800:
		if len(f) < 34 || binary.BigEndian.Uint16(f[20:])&0x3fff != 0 {
			return false
		}
		thoff = 14 + int(f[14]&0xf)*4
	case 0x86dd:
		if len(f) < 54 {
			return false
		}
		thoff = 54
	default:
		return false
	}
	p := l4proto(f)
	if p != 1 && p != 58 {
		return false
	}
	if len(f) < thoff+8 {
		return true // no ICMP key: hashed without it
	}
	return !icmpErr(p, f[thoff])
}

// TestTCMember: a member's TC program leaves slow protocols to the stack,
// redirects what the bond delivers to the bond's device (counted with the
// skb's length), drops what it may not deliver, and leaves the rest alone.
func TestTCMember(t *testing.T) {
	f := fastSetup(t)
	const bond = 2
	if err := f.HostIf.Put(uint32(bond), uint32(77)); err != nil {
		t.Fatal(err)
	}
	p, err := f.NewTCMember()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data, slow := ipv4AndSlowFrames()
	for _, tt := range []struct {
		name    string
		member  uint32
		cfg     *FastCfg
		frame   []byte
		want    int32
		counted FastCounters
	}{
		{"slow protocols to the stack", 1 | FastIfTC, &FastCfg{Flags: FastRX, RXMask: 2}, slow, tcxNext, FastCounters{}},
		{"active member delivers", 1 | FastIfTC, &FastCfg{Flags: FastRX, RXMask: 2}, data, tcRedirect, FastCounters{RxPackets: 1, RxBytes: 60}},
		{"backup drops", 0 | FastIfTC, &FastCfg{Flags: FastRX, RXMask: 2}, data, tcxDrop, FastCounters{DropInactive: 1}},
		{"member 63", 63 | FastIfTC, &FastCfg{Flags: FastRX, RXMask: 1 << 63}, data, tcRedirect, FastCounters{RxPackets: 1, RxBytes: 60}},
		{"no fast RX", 1 | FastIfTC, &FastCfg{Flags: FastTX, RXMask: 2}, data, tcxNext, FastCounters{}},
		{"no configuration", 1 | FastIfTC, nil, data, tcxNext, FastCounters{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			memberCase(t, f, bond, tt.member, tt.cfg, tt.counted, func() {
				if got := runTC(t, p.Prog, tt.frame); got != tt.want {
					t.Fatalf("returned %d, want %d", got, tt.want)
				}
			})
		})
	}
}

// tcHost loads the host end's TC program for bond, whose host end is the
// test's loopback (where BPF_PROG_RUN frames arrive), with n transmit
// slots at made-up ifindexes 100+slot (redirects are not carried out).
func tcHost(t *testing.T, bond, n int) (*FastMaps, *TCProgram) {
	t.Helper()
	f := fastSetup(t)
	if err := f.Ifs.Put(uint32(loIfindex), FastIf{Bond: uint32(bond), Member: FastHostMember}); err != nil {
		t.Fatal(err)
	}
	for s := range n {
		if err := f.TXIf.Put(FastTXKey(bond, s), uint32(100+s)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.NewTCHost()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return f, p
}

// onCPU0 pins the calling goroutine's thread to CPU 0 for per-CPU state;
// cleanup gives the thread its affinity back before unlocking it.
func onCPU0(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

// TestTCHostRR: balance-rr in the TC program follows bond_rr_gen_slave_id:
// packets_per_slave 1 and 2 step the slots with this CPU's counter,
// 0 spreads at random over every slot, IGMP goes to the lane.
func TestTCHostRR(t *testing.T) {
	onCPU0(t)
	const bond = 5
	f, p := tcHost(t, bond, 3)
	udp := make([]byte, 60)
	binary.BigEndian.PutUint16(udp[12:], 0x0800)
	udp[14], udp[23] = 0x45, 17
	igmp := append([]byte(nil), udp...)
	igmp[23] = 2
	slot := func(fr []byte) int {
		_ = f.dbg.Put(uint32(0), uint32(0))
		ret := runTC(t, p.Prog, fr)
		var got uint32
		_ = f.dbg.Lookup(uint32(0), &got)
		if got == 0 {
			if ret != tcxNext {
				t.Fatalf("undecided, returned %d", ret)
			}
			return -1
		}
		if ret != tcRedirect {
			t.Fatalf("decided, returned %d", ret)
		}
		return int(got - 1)
	}
	for _, tc := range []struct {
		pps  uint32
		want []int
	}{
		{1, []int{1, 2, 0, 1, 2, 0, 1}},
		{2, []int{0, 1, 1, 2, 2, 0, 0, 1}},
	} {
		// the counter starts at 0 for each case
		if err := f.RR.Put(uint32(bond), make([]uint64, ebpfCPUs(t))); err != nil {
			t.Fatal(err)
		}
		if err := f.Cfg.Put(uint32(bond), FastCfg{Flags: FastTX, NTX: 3, Kind: FastRR, PPS: tc.pps}); err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if got := slot(udp); got != w {
				t.Fatalf("packets_per_slave %d, frame %d: slot %d, want %d", tc.pps, i, got, w)
			}
		}
		if got := slot(igmp); got != -1 {
			t.Fatalf("IGMP: slot %d, want the lane", got)
		}
	}
	if err := f.Cfg.Put(uint32(bond), FastCfg{Flags: FastTX, NTX: 3, Kind: FastRR, PPS: 0}); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for range 300 {
		seen[slot(udp)]++
	}
	if len(seen) != 3 || seen[-1] != 0 {
		t.Fatalf("packets_per_slave 0 (random) over 300 frames: %v", seen)
	}
}
