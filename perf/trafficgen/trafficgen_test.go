package trafficgen

import (
	"bytes"
	"encoding/binary"
	"os"
	"runtime"
	"testing"

	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestTemplateChecksum(t *testing.T) {
	s := DefaultSpec()
	for _, size := range []int{64, 128, 1500, 1518} {
		s.Size = size
		f := s.Template()
		if len(f) != size-4 {
			t.Fatalf("size %d: template %d bytes", size, len(f))
		}
		for _, seq := range []uint64{0, 1, 1023, 1024, 65535, 123456789} {
			s.Apply(f, seq, 3)
			if c := ipChecksum(f[14:34]); c != binary.BigEndian.Uint16(f[offIPCsum:]) {
				t.Fatalf("seq %d: checksum %#x, recomputed %#x", seq, binary.BigEndian.Uint16(f[offIPCsum:]), c)
			}
			cpu, flow, sq, ok := Tag(f)
			if !ok || cpu != 3 || sq != seq || uint64(flow) != seq%uint64(s.Flows) {
				t.Fatalf("tag: %d %d %d %v", cpu, flow, sq, ok)
			}
		}
	}
}

// The flows must spread over the members under the hash policies the
// benchmarks use.
func TestFlowsSpread(t *testing.T) {
	s := DefaultSpec()
	f := s.Template()
	for _, p := range []policy.HashPolicy{policy.Layer34, policy.Layer23} {
		for _, n := range []int{2, 3, 4} {
			count := make([]int, n)
			for seq := uint64(0); seq < uint64(s.Flows); seq++ {
				s.Apply(f, seq, 0)
				count[policy.SlaveIndex(policy.Hash(f, p), n)]++
			}
			for i, c := range count {
				if c < s.Flows/n/2 {
					t.Errorf("%s over %d members: member %d gets %d of %d flows (%v)", p, n, i, c, s.Flows, count)
				}
			}
		}
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF)")
	}
}

// onOneCPU pins the calling goroutine's thread to the first CPU it may run
// on, for the program's per-CPU state: BPF_PROG_RUN runs on whichever CPU the
// thread is on, and a second CPU would get its own limit and allowance.
// Cleanup restores the thread's affinity before unlocking it.
func onOneCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	for c := 0; c < 1024; c++ {
		if old.IsSet(c) {
			one.Set(c)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

// The program must produce exactly what Apply produces.
func TestGenProgram(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct{ flows, devs int }{{1024, 1}, {1000, 2}, {7, 3}, {65536, 5}} {
		s := DefaultSpec()
		s.Flows = tc.flows
		ifs := make([]int, tc.devs)
		for i := range ifs {
			ifs[i] = 100 + i
		}
		g, err := NewGen(s, ifs, GenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tmpl := s.Template()
		for seq := uint64(0); seq < 20; seq++ {
			out := make([]byte, len(tmpl)+512)
			ret, err := g.Prog.Run(&ebpf.RunOptions{Data: tmpl, DataOut: out})
			if err != nil {
				t.Fatal(err)
			}
			if ret != 4 { // XDP_REDIRECT
				t.Fatalf("flows %d devs %d: verdict %d", tc.flows, tc.devs, ret)
			}
			want := append([]byte(nil), tmpl...)
			cpu, _, _, _ := Tag(out[:len(tmpl)])
			s.Apply(want, seq, cpu)
			if !bytes.Equal(out[:len(tmpl)], want) {
				t.Fatalf("flows %d seq %d:\n got %x\nwant %x", tc.flows, seq, out[:len(tmpl)], want)
			}
		}
		if n, err := g.Sent(); err != nil || n != 20 {
			t.Fatalf("sent %d %v", n, err)
		}
		g.Close()
	}
}

func TestSinkProgram(t *testing.T) {
	needRoot(t)
	s := DefaultSpec()
	sk, err := NewSink(false)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	s.Flows = 2
	f := s.Template()
	// flow 1: 5 7 9 9; flow 0: 6 8 10 — plus 4 (flow 0) after 10: one flow reorder
	for _, seq := range []uint64{5, 6, 8, 7, 9, 9, 10, 4} {
		s.Apply(f, seq, 2)
		ret, err := sk.Prog.Run(&ebpf.RunOptions{Data: f})
		if err != nil {
			t.Fatal(err)
		}
		if ret != 1 {
			t.Fatalf("verdict %d", ret)
		}
	}
	other := make([]byte, 60)
	if _, err := sk.Prog.Run(&ebpf.RunOptions{Data: other}); err != nil {
		t.Fatal(err)
	}
	tot, err := sk.Read()
	if err != nil {
		t.Fatal(err)
	}
	if tot.Packets != 9 || tot.Gen != 8 || tot.Reorder != 2 || tot.Dup != 1 || tot.FlowReorder != 1 || tot.Span() != 7 {
		t.Fatalf("totals %+v span %d", tot, tot.Span())
	}
	if tot.Bytes != uint64(8*len(f)+60) {
		t.Fatalf("bytes %d", tot.Bytes)
	}
}

// A jumbo frame arrives as a multi-buffer xdp_buff (the sink is xdp.frags):
// the tag is found in the first fragment and the bytes are the whole
// frame's. BPF_PROG_RUN builds fragments from input longer than a page.
func TestSinkProgramMultiBuffer(t *testing.T) {
	needRoot(t)
	sk, err := NewSink(false)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	var want uint64
	for i, size := range []int{1500, 4200, 9000, MaxJumboSize} {
		s := DefaultSpec()
		s.Size = size
		f := s.Template()
		s.Apply(f, uint64(i), 3)
		ret, err := sk.Prog.Run(&ebpf.RunOptions{Data: f})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if ret != 1 {
			t.Fatalf("size %d: verdict %d", size, ret)
		}
		want += uint64(len(f))
	}
	tot, err := sk.Read()
	if err != nil {
		t.Fatal(err)
	}
	if tot.Packets != 4 || tot.Gen != 4 || tot.Bytes != want || tot.Span() != 4 || tot.Reorder != 0 {
		t.Fatalf("totals %+v span %d, want 4 tagged frames, %d bytes", tot, tot.Span(), want)
	}
}

func TestSpecValidateSize(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{63, false}, {64, true}, {1518, true}, {MaxSize, true}, {9000, true}, {MaxJumboSize, true}, {MaxJumboSize + 1, false}} {
		s := DefaultSpec()
		s.Size = tc.size
		if err := s.Validate(); (err == nil) != tc.ok {
			t.Errorf("size %d: err %v, want ok=%v", tc.size, err, tc.ok)
		}
	}
	// the live-frames generator stops at MaxSize
	s := DefaultSpec()
	s.Size = MaxSize + 1
	if _, err := NewGen(s, []int{1}, GenOptions{}); err == nil {
		t.Errorf("NewGen accepted size %d", s.Size)
	}
}

// The limit stops the sequence; the rate limiter skips invocations that come
// too early (XDP_DROP) without using a sequence number.
func TestGenLimits(t *testing.T) {
	needRoot(t)
	onOneCPU(t)
	s := DefaultSpec()
	g, err := NewGen(s, []int{1}, GenOptions{LimitPerCPU: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tmpl := s.Template()
	for i := 0; i < 8; i++ {
		ret, err := g.Prog.Run(&ebpf.RunOptions{Data: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]uint32{true: 4, false: 1}[i < 5]; ret != want {
			t.Fatalf("frame %d: verdict %d, want %d", i, ret, want)
		}
	}
	if n, _ := g.Sent(); n != 5 {
		t.Fatalf("sent %d", n)
	}

	r, err := NewGen(s, []int{1}, GenOptions{RatePerCPU: 10}) // one frame per 100 ms
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sent := 0
	for i := 0; i < 1000; i++ {
		ret, err := r.Prog.Run(&ebpf.RunOptions{Data: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		if ret == 4 {
			sent++
		}
	}
	// 1000 back-to-back runs take far less than 100 ms: the first frame
	// goes, the catch-up allowance (32) may go, nothing more.
	if n, _ := r.Sent(); n != uint64(sent) || sent < 1 || sent > 33 {
		t.Fatalf("rate-limited: %d sent (counter %d)", sent, n)
	}
}

// Stamp must write what a frame built from scratch for that sequence number
// holds: tag, source port, source address and a valid header checksum,
// whatever was in the frame before (frames are reused).
func TestStamper(t *testing.T) {
	for _, tc := range []struct {
		size, flows int
		sport       uint16
	}{
		{64, 1024, 1024},
		{64, 1, 9},
		{1500, 1000, 65000}, // source ports wrap
		{3504, 65536, 1},
	} {
		s := DefaultSpec()
		s.Size, s.Flows, s.Sport = tc.size, tc.flows, tc.sport
		st := s.Stamper()
		f := s.Template()
		for _, seq := range []uint64{0, 1, 999, 1000, 1024, 65535, 65536, 1<<40 + 7} {
			flow := st.Stamp(f, seq, 5)
			if want := seq % uint64(tc.flows); flow != want {
				t.Fatalf("%+v seq %d: flow %d, want %d", tc, seq, flow, want)
			}
			want := s.Template()
			lo := uint16(flow*ipMul + 1)
			binary.BigEndian.PutUint16(want[offIPSrcLo:], lo)
			binary.BigEndian.PutUint16(want[offIPCsum:], ipChecksum(want[14:34]))
			binary.BigEndian.PutUint16(want[offUDPSport:], uint16(uint64(tc.sport)+flow))
			binary.LittleEndian.PutUint16(want[offCPU:], 5)
			binary.LittleEndian.PutUint16(want[offFlow:], uint16(flow))
			binary.LittleEndian.PutUint64(want[offSeq:], seq)
			if !bytes.Equal(f, want) {
				t.Fatalf("%+v seq %d:\n got %x\nwant %x", tc, seq, f[:TagEnd], want[:TagEnd])
			}
		}
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name        string
		seq, flows  uint64
		max         uint64
		avail, want []uint32
		total       uint64
	}{
		{"one device, room", 0, 1024, 64, []uint32{100}, []uint32{64}, 64},
		{"one device, ring nearly full", 5, 1024, 64, []uint32{10}, []uint32{10}, 10},
		{"one device, nothing asked", 5, 1024, 0, []uint32{10}, []uint32{0}, 0},
		{"two devices alternate", 0, 1024, 8, []uint32{8, 8}, []uint32{4, 4}, 8},
		{"two devices, odd start", 3, 1024, 5, []uint32{8, 8}, []uint32{2, 3}, 5},
		// device 1 is full: frames stop at the first one it should take
		// (flow order is kept: nothing is skipped)
		{"stops at a full device", 0, 1024, 8, []uint32{8, 0}, []uint32{1, 0}, 1},
		{"stops when one device runs out", 0, 1024, 100, []uint32{3, 50}, []uint32{3, 3}, 6},
		// flows not a multiple of the devices: flow 2 of 3 goes to device 0
		// and the next seq (flow 0) to device 0 again
		{"flows 3 over 2 devices", 0, 3, 6, []uint32{8, 8}, []uint32{4, 2}, 6},
		{"three devices", 1, 1024, 7, []uint32{8, 8, 8}, []uint32{2, 3, 2}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counts := make([]uint32, len(tc.avail))
			counts[0] = 99 // Plan clears stale counts
			got := Plan(tc.seq, tc.flows, tc.max, tc.avail, counts)
			if got != tc.total {
				t.Errorf("total %d, want %d", got, tc.total)
			}
			for d := range counts {
				if counts[d] != tc.want[d] {
					t.Errorf("counts %v, want %v", counts, tc.want)
					break
				}
			}
			// counts must be what the per-frame rule gives
			check := make([]uint32, len(counts))
			for j := uint64(0); j < got; j++ {
				check[((tc.seq+j)%tc.flows)%uint64(len(counts))]++
			}
			for d := range check {
				if check[d] != counts[d] {
					t.Errorf("counts %v disagree with the device rule %v", counts, check)
					break
				}
			}
		})
	}
}
