package xdpprog

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/cilium/ebpf"
)

const (
	xdpRedirect = 4
	loIfindex   = 1 // the test's own namespace's loopback: devmap entries need a device, nothing is sent
)

func fastSetup(t *testing.T) *FastMaps {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	f, err := NewFastMaps()
	if err != nil {
		t.Fatal(err)
	}
	f.dbg, err = ebpf.NewMap(&ebpf.MapSpec{Name: "fp_dbg", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func runProg(t *testing.T, p *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

// frameGen makes random frames of the kinds the host sends and some it
// rarely does: IPv4/IPv6 with TCP, UDP, SCTP, AH, GRE, ICMP, fragments,
// odd header lengths, truncated transport headers, ARP, VLAN tags.
func frameGen(r *rand.Rand) []byte {
	f := make([]byte, 14, 128)
	for i := range 12 {
		f[i] = byte(r.IntN(256))
	}
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	protos := []byte{6, 17, 132, 51, 47, 1, 58, 33, 50, 136, 0, 43, 6, 17, 6, 17}
	switch k := r.IntN(10); {
	case k < 4: // IPv4
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := rnd(20)
		ihl := 5
		if r.IntN(8) == 0 {
			ihl = r.IntN(16)
		}
		ip[0] = 0x40 | byte(ihl)
		ip[6], ip[7] = 0, 0
		if r.IntN(6) == 0 {
			ip[6] = byte(r.IntN(256))
		}
		ip[9] = protos[r.IntN(len(protos))]
		f = append(f, ip...)
		if ihl > 5 {
			f = append(f, rnd((ihl-5)*4)...)
		}
		f = append(f, rnd(r.IntN(24))...)
	case k < 7: // IPv6
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
		ip := rnd(40)
		ip[0] = 0x60
		ip[6] = protos[r.IntN(len(protos))]
		f = append(f, ip...)
		f = append(f, rnd(r.IntN(24))...)
	case k == 7: // ARP
		binary.BigEndian.PutUint16(f[12:], 0x0806)
		f = append(f, rnd(28)...)
	case k == 8: // VLAN
		binary.BigEndian.PutUint16(f[12:], 0x8100)
		f = append(f, 0, 5, 0x08, 0x00)
		f = append(f, rnd(40)...)
	default: // anything
		f = append(f, rnd(r.IntN(60))...)
		if r.IntN(2) == 0 {
			binary.BigEndian.PutUint16(f[12:], 0x0800)
		}
	}
	return f
}

// TestFastTXHash: the host veth program picks the member bond_xmit_hash
// picks (policy.Hash and SlaveIndex), bit for bit, for layer2, layer2+3 and
// layer3+4 over 1..5 transmitting members, or hands the frame to the lane;
// it decides every untagged TCP/UDP frame, and active-backup sends on the
// first slot.
func TestFastTXHash(t *testing.T) {
	f := fastSetup(t)
	const bond, dp = 3, 7
	if err := f.Ifs.Put(uint32(dp), FastIf{Bond: bond, Member: FastHostMember}); err != nil {
		t.Fatal(err)
	}
	for s := range 5 {
		if err := f.TX.Put(FastTXKey(bond, s), uint32(loIfindex)); err != nil {
			t.Fatalf("devmap: %v", err)
		}
	}
	p, err := NewWithOptions(1, Options{Fast: f, FastHost: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// BPF_PROG_RUN has the frame arrive on loopback: the program looks
	// its device up by ingress ifindex
	if err := f.Ifs.Put(uint32(loIfindex), FastIf{Bond: bond, Member: FastHostMember}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(12, 34))
	frames := make([][]byte, 4000)
	for i := range frames {
		frames[i] = frameGen(r)
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
			decided, tcpudp := 0, 0
			for _, fr := range frames {
				if err := f.dbg.Put(uint32(0), uint32(0)); err != nil {
					t.Fatal(err)
				}
				ret := runProg(t, p.Prog, fr)
				var got uint32
				if err := f.dbg.Lookup(uint32(0), &got); err != nil {
					t.Fatal(err)
				}
				simple := isSimpleL4(fr)
				if simple {
					tcpudp++
				}
				if got == 0 {
					if simple || pol == policy.Layer2 && fr[12] != 0x81 {
						t.Fatalf("%s ntx %d: frame % x went to the lane", pol, ntx, fr)
					}
					continue
				}
				decided++
				if ret != xdpRedirect {
					t.Fatalf("%s ntx %d: decided but returned %d", pol, ntx, ret)
				}
				want := policy.SlaveIndex(policy.Hash(fr, pol), ntx)
				if int(got-1) != want {
					t.Fatalf("%s ntx %d: slot %d, policy.Hash says %d (hash %#x) for % x", pol, ntx, got-1, want, policy.Hash(fr, pol), fr)
				}
			}
			t.Logf("%s over %d members: %d of %d frames decided in the kernel (%d TCP/UDP)", pol, ntx, decided, len(frames), tcpudp)
		}
	}
	// active-backup: slot 0 whatever the frame, and counted for its member
	if err := f.Cnt.Put(FastKey(bond, 4), make([]FastCounters, ebpfCPUs(t))); err != nil {
		t.Fatal(err)
	}
	if err := f.Cfg.Put(uint32(bond), FastCfg{Flags: FastTX, NTX: 1, Kind: FastActive, TXMember: [FastMaxMembers]uint8{4}}); err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames[:50] {
		_ = f.dbg.Put(uint32(0), uint32(0))
		if ret := runProg(t, p.Prog, fr); ret != xdpRedirect {
			t.Fatalf("active-backup: returned %d", ret)
		}
		var got uint32
		_ = f.dbg.Lookup(uint32(0), &got)
		if got != 1 {
			t.Fatalf("active-backup: slot %d", int(got)-1)
		}
	}
	if c := f.Counters(FastKey(bond, 4)); c.TxPackets != 50 || c.TxBytes == 0 {
		t.Fatalf("member 4 counters %+v, want 50 tx packets", c)
	}
	// fast TX off: everything to the lane (an empty XSKMAP passes)
	if err := f.Cfg.Put(uint32(bond), FastCfg{Flags: FastRX, NTX: 1, Kind: FastActive}); err != nil {
		t.Fatal(err)
	}
	_ = f.dbg.Put(uint32(0), uint32(0))
	if ret := runProg(t, p.Prog, frames[0]); ret != xdpPass {
		t.Fatalf("fast TX off: returned %d, want the lane's fallback %d", ret, xdpPass)
	}
}

// isSimpleL4 reports untagged IPv4 (not a fragment) and IPv6 frames with
// a complete TCP or UDP port pair: what the fast path must decide.
func isSimpleL4(f []byte) bool {
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(f) < 34 || binary.BigEndian.Uint16(f[20:])&0x3fff != 0 || f[23] != 6 && f[23] != 17 {
			return false
		}
		return len(f) >= 14+int(f[14]&0xf)*4+4
	case 0x86dd:
		return len(f) >= 58 && (f[20] == 6 || f[20] == 17)
	}
	return false
}

func ebpfCPUs(t *testing.T) int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFastRX: a member's program passes slow protocols, delivers to the
// host devmap what the bond lets the member deliver, drops (and counts)
// the rest, and leaves everything to the lane when the bond has no fast RX.
func TestFastRX(t *testing.T) {
	f := fastSetup(t)
	const bond = 2
	if err := f.Host.Put(uint32(bond), uint32(loIfindex)); err != nil {
		t.Fatal(err)
	}
	p, err := NewWithOptions(1, Options{Fast: f, PassSlowProtocols: true})
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
		want    uint32
		counted FastCounters
	}{
		{"slow protocols to the stack", 1, &FastCfg{Flags: FastRX, RXMask: 2}, slow, xdpPass, FastCounters{}},
		{"active member delivers", 1, &FastCfg{Flags: FastRX, RXMask: 2}, data, xdpRedirect, FastCounters{RxPackets: 1, RxBytes: 60}},
		{"backup drops", 0, &FastCfg{Flags: FastRX, RXMask: 2}, data, xdpDrop, FastCounters{DropInactive: 1}},
		{"member 63", 63, &FastCfg{Flags: FastRX, RXMask: 1 << 63}, data, xdpRedirect, FastCounters{RxPackets: 1, RxBytes: 60}},
		{"no fast RX: the lane", 1, &FastCfg{Flags: FastTX, RXMask: 2}, data, xdpPass, FastCounters{}},
		{"no configuration: the lane", 1, nil, data, xdpPass, FastCounters{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			memberCase(t, f, bond, tt.member, tt.cfg, tt.counted, func() {
				if got := runProg(t, p.Prog, tt.frame); got != tt.want {
					t.Fatalf("returned %d, want %d", got, tt.want)
				}
			})
		})
	}
}

// memberCase puts member (index and flags) of bond on the test's
// loopback with zeroed counters and cfg (nil: none), runs the program
// (run checks its verdict) and checks the member's counters.
func memberCase(t *testing.T, f *FastMaps, bond int, member uint32, cfg *FastCfg, counted FastCounters, run func()) {
	t.Helper()
	if err := f.Ifs.Put(uint32(loIfindex), FastIf{Bond: uint32(bond), Member: member}); err != nil {
		t.Fatal(err)
	}
	k := FastKey(bond, int(member&0xffff))
	if err := f.Cnt.Put(k, make([]FastCounters, ebpfCPUs(t))); err != nil {
		t.Fatal(err)
	}
	_ = f.Cfg.Delete(uint32(bond))
	if cfg != nil {
		if err := f.Cfg.Put(uint32(bond), *cfg); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if c := f.Counters(k); c != counted {
		t.Fatalf("counters %+v, want %+v", c, counted)
	}
}

// ipv4AndSlowFrames returns two 60-byte frames for the member programs'
// tests: an IPv4 one (data) and a Slow Protocols one (LACP, 0x8809).
func ipv4AndSlowFrames() (data, slow []byte) {
	data = make([]byte, 60)
	data[12], data[13] = 0x08, 0x00
	slow = make([]byte, 60)
	slow[12], slow[13] = 0x88, 0x09
	return data, slow
}
