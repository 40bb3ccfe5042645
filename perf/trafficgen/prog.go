package trafficgen

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// XDP return codes.
const (
	xdpAborted = 0
	xdpDrop    = 1
)

// xdp_md offsets
const (
	mdData    = 0
	mdDataEnd = 4
)

// MaxDevices bounds the number of target devices of one generator.
const MaxDevices = 16

// Gen is a loaded generator program with its per-CPU state.
type Gen struct {
	Prog    *ebpf.Program
	Counter *ebpf.Map // per-CPU array, one GenState: frames the program sent on each CPU
	Spec    Spec
	Opts    GenOptions
}

// GenState is the generator's per-CPU state.
type GenState struct {
	Seq  uint64 // frames sent (redirected) on this CPU: the next sequence number
	Next uint64 // rate limiter: earliest time of the next frame, ns<<8 (0: unset)
}

// GenOptions are the generator program's limits.
type GenOptions struct {
	// RatePerCPU limits each CPU to this many frames per second (0: none).
	// The program paces itself with bpf_ktime_get_ns: an invocation that
	// comes too early returns XDP_DROP (the live frame is recycled, nothing
	// is sent, no sequence number is used), so the rate is exact whatever
	// the BPF_PROG_RUN Repeat count. Bursts after a stall are capped at 32
	// frames.
	RatePerCPU float64
	// LimitPerCPU stops each CPU after this many frames (0: none); later
	// invocations return XDP_DROP.
	LimitPerCPU uint64
}

// rateShift is the fixed-point shift of the rate limiter's clock (ns<<8), so
// that the interval between frames keeps a fraction of a nanosecond.
const rateShift = 8

// NewGen loads the generator for spec, redirecting flow f to
// ifindexes[f % len(ifindexes)] with bpf_redirect.
func NewGen(spec Spec, ifindexes []int, opts GenOptions) (*Gen, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Size > MaxSize {
		return nil, fmt.Errorf("size %d: live frames take at most %d bytes (larger frames: the AF_XDP generator)", spec.Size, MaxSize)
	}
	if len(ifindexes) < 1 || len(ifindexes) > MaxDevices {
		return nil, fmt.Errorf("1..%d target devices, got %d", MaxDevices, len(ifindexes))
	}
	if opts.RatePerCPU < 0 || (opts.RatePerCPU > 0 && opts.RatePerCPU < 1) {
		return nil, fmt.Errorf("rate %.3f: must be 0 (none) or at least 1 frame/s per CPU", opts.RatePerCPU)
	}
	ctr, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bagen_seq", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("counter map: %w", err)
	}
	insns := genInsns(spec, ifindexes, ctr.FD(), opts)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bagen", Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		ctr.Close()
		return nil, fmt.Errorf("load generator: %w", err)
	}
	return &Gen{Prog: p, Counter: ctr, Spec: spec, Opts: opts}, nil
}

func genInsns(spec Spec, ifindexes []int, ctrFD int, opts GenOptions) asm.Instructions {
	const (
		rCtx  = asm.R6
		rData = asm.R7
		rEnd  = asm.R8
		rSeq  = asm.R9
	)
	in := asm.Instructions{
		asm.Mov.Reg(rCtx, asm.R1),
		asm.LoadMem(rData, rCtx, mdData, asm.Word),
		asm.LoadMem(rEnd, rCtx, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, TagEnd),
		asm.JGT.Reg(asm.R2, rEnd, "abort"),
		// seq = counter[0]++ (per CPU: no atomics needed)
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, ctrFD),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "abort"),
		asm.Mov.Reg(rCtx, asm.R0), // r6 = per-CPU state from here on (ctx is not needed any more)
		asm.LoadMem(rSeq, rCtx, 0, asm.DWord),
	}
	if opts.LimitPerCPU > 0 {
		in = append(in,
			asm.LoadImm(asm.R1, int64(opts.LimitPerCPU), asm.DWord),
			asm.JGE.Reg(rSeq, asm.R1, "skip"),
		)
	}
	if opts.RatePerCPU > 0 {
		interval := int64(1e9*(1<<rateShift)/opts.RatePerCPU + 0.5)
		in = append(in,
			asm.FnKtimeGetNs.Call(),
			asm.LSh.Imm(asm.R0, rateShift),
			asm.LoadMem(asm.R1, rCtx, 8, asm.DWord), // next
			asm.JGT.Reg(asm.R1, asm.R0, "skip"),     // too early
			// after a stall, catch up by at most 32 frames
			asm.LoadImm(asm.R2, 32*interval, asm.DWord),
			asm.Mov.Reg(asm.R3, asm.R0),
			asm.Sub.Reg(asm.R3, asm.R2),
			asm.JGE.Reg(asm.R1, asm.R3, "paced"),
			asm.Mov.Reg(asm.R1, asm.R3),
			asm.LoadImm(asm.R2, interval, asm.DWord).WithSymbol("paced"),
			asm.Add.Reg(asm.R1, asm.R2),
			asm.StoreMem(rCtx, 8, asm.R1, asm.DWord),
		)
	}
	in = append(in,
		asm.Mov.Reg(asm.R1, rSeq),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(rCtx, 0, asm.R1, asm.DWord),
		// tag: cpu, seq
		asm.FnGetSmpProcessorId.Call(),
		asm.StoreMem(rData, offCPU, asm.R0, asm.Half),
		asm.StoreMem(rData, offSeq, rSeq, asm.DWord),
		// flow = seq % flows
		asm.Mov.Reg(asm.R1, rSeq),
	)
	if spec.Flows&(spec.Flows-1) == 0 {
		in = append(in, asm.And.Imm(asm.R1, int32(spec.Flows-1)))
	} else {
		in = append(in, asm.Mod.Imm(asm.R1, int32(spec.Flows)))
	}
	in = append(in,
		asm.StoreMem(rData, offFlow, asm.R1, asm.Half),
		// UDP source port = Sport + flow
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, int32(spec.Sport)),
		asm.And.Imm(asm.R2, 0xffff),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.StoreMem(rData, offUDPSport, asm.R2, asm.Half),
		// IPv4 source low 16 bits = flow*ipMul+1; checksum per RFC 1624
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.Mul.Imm(asm.R3, ipMul),
		asm.Add.Imm(asm.R3, 1),
		asm.And.Imm(asm.R3, 0xffff),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Add.Imm(asm.R4, spec.csumK()),
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.RSh.Imm(asm.R5, 16),
		asm.And.Imm(asm.R4, 0xffff),
		asm.Add.Reg(asm.R4, asm.R5),
		asm.Xor.Imm(asm.R4, 0xffff),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.StoreMem(rData, offIPSrcLo, asm.R3, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(rData, offIPCsum, asm.R4, asm.Half),
	)
	// target device: ifindexes[flow % n], a compare chain
	n := len(ifindexes)
	if n == 1 {
		in = append(in, asm.Mov.Imm(asm.R1, int32(ifindexes[0])))
	} else {
		in = append(in,
			asm.Mod.Imm(asm.R1, int32(n)),
			asm.Mov.Reg(asm.R2, asm.R1),
			asm.Mov.Imm(asm.R1, int32(ifindexes[0])),
		)
		for i := 1; i < n; i++ {
			next := "redirect"
			if i < n-1 {
				next = fmt.Sprintf("dev%d", i+1)
			}
			check := asm.JNE.Imm(asm.R2, int32(i), next)
			if i > 1 {
				check = check.WithSymbol(fmt.Sprintf("dev%d", i))
			}
			in = append(in, check, asm.Mov.Imm(asm.R1, int32(ifindexes[i])))
			if i < n-1 {
				in = append(in, asm.Ja.Label("redirect"))
			}
		}
	}
	in = append(in,
		asm.Mov.Imm(asm.R2, 0).WithSymbol("redirect"),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpAborted).WithSymbol("abort"),
		asm.Return(),
	)
	if opts.LimitPerCPU > 0 || opts.RatePerCPU > 0 {
		in = append(in,
			asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("skip"),
			asm.Return(),
		)
	}
	return in
}

// Sent returns the number of frames the program sent (redirected), summed
// over CPUs.
func (g *Gen) Sent() (uint64, error) {
	var per []GenState
	if err := g.Counter.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var s uint64
	for _, v := range per {
		s += v.Seq
	}
	return s, nil
}

// Close releases the program and its map.
func (g *Gen) Close() error {
	return errors.Join(g.Prog.Close(), g.Counter.Close())
}

// SinkStats is one sink map slot on one CPU (8 u64, the layout the sink
// program writes).
type SinkStats struct {
	Packets     uint64 // every frame
	Bytes       uint64
	Gen         uint64 // frames carrying the generator tag
	MaxSeq1     uint64 // highest sequence number + 1 (0: none)
	MinSeq1     uint64 // lowest sequence number + 1 (0: none)
	Reorder     uint64 // tagged frames with a sequence number below the previous one of any flow
	Last1       uint64 // previous sequence number + 1
	Dup         uint64 // tagged frames repeating the previous sequence number
	FlowReorder uint64 // tagged frames with a sequence number below the previous one of their flow
}

// sinkValueSize is the size of SinkStats.
const sinkValueSize = 72

// FlowSlots is the size of the sink's per-flow map (last sequence number + 1
// per flow, per CPU).
const FlowSlots = 65536

// SinkSlots is the number of map slots: one per generator CPU (tag CPU & 63)
// plus one for frames without the tag.
const SinkSlots = 65

// OtherSlot is the slot of untagged frames.
const OtherSlot = 64

// Sink is a loaded sink program (XDP_DROP, counting).
type Sink struct {
	Prog  *ebpf.Program
	Stats *ebpf.Map // per-CPU array of SinkSlots SinkStats
	Flows *ebpf.Map // per-CPU array of FlowSlots u64: last sequence number + 1 of each flow
}

// NewSink loads a sink with its own statistics map. pass makes it return
// XDP_PASS instead of XDP_DROP (count and let the stack have the frame).
func NewSink(pass bool) (*Sink, error) { return NewSinkOpts(pass, false) }

// NewSinkOpts is NewSink; passSlow also hands IEEE 802.3 slow-protocol
// frames (ethertype 0x8809: LACPDUs, markers) to the stack uncounted, so a
// sink on an LACP partner's ports (Open vSwitch reading them with
// AF_PACKET) keeps the aggregate up while it drops the data traffic.
func NewSinkOpts(pass, passSlow bool) (*Sink, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bagen_sink", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: sinkValueSize, MaxEntries: SinkSlots})
	if err != nil {
		return nil, fmt.Errorf("sink map: %w", err)
	}
	fm, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bagen_flows", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: FlowSlots})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("sink flow map: %w", err)
	}
	verdict := int32(xdpDrop)
	if pass {
		verdict = 2
	}
	// xdp.frags: a sink on a device with a jumbo MTU (veth refuses a
	// program that is not multi-buffer aware there) sees the headers and
	// the tag in the first fragment and counts the whole frame's bytes
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bagen_sink", Type: ebpf.XDP, Instructions: sinkInsns(m.FD(), fm.FD(), verdict, passSlow),
		License: "GPL", Flags: unix.BPF_F_XDP_HAS_FRAGS})
	if err != nil {
		m.Close()
		fm.Close()
		return nil, fmt.Errorf("load sink: %w", err)
	}
	return &Sink{Prog: p, Stats: m, Flows: fm}, nil
}

func sinkInsns(mapFD, flowFD int, verdict int32, passSlow bool) asm.Instructions {
	const (
		rGen  = asm.R6 // 1 for a tagged frame
		rData = asm.R7
		rEnd  = asm.R8
		rLen  = asm.R9
	)
	var slow asm.Instructions
	if passSlow {
		slow = asm.Instructions{
			asm.Mov.Reg(asm.R2, rData),
			asm.Add.Imm(asm.R2, 14),
			asm.JGT.Reg(asm.R2, rEnd, "count"),
			asm.LoadMem(asm.R1, rData, 12, asm.Half),
			asm.JNE.Imm(asm.R1, 0x0988, "count"), // htons(ETH_P_SLOW)
			asm.Mov.Imm(asm.R0, 2),               // XDP_PASS
			asm.Return(),
		}
	}
	head := asm.Instructions{
		// the frame's length with every fragment (multi-buffer)
		asm.Mov.Reg(rData, asm.R1),
		asm.FnXdpGetBuffLen.Call(),
		asm.Mov.Reg(rLen, asm.R0),
		asm.Mov.Reg(asm.R1, rData),
		asm.LoadMem(rData, asm.R1, mdData, asm.Word),
		asm.LoadMem(rEnd, asm.R1, mdDataEnd, asm.Word),
	}
	head = append(head, slow...)
	return append(head, asm.Instructions{
		asm.Mov.Imm(rGen, 0).WithSymbol("count"),
		asm.StoreImm(asm.R10, -4, OtherSlot, asm.Word),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, TagEnd),
		asm.JGT.Reg(asm.R2, rEnd, "lookup"),
		asm.LoadMem(asm.R1, rData, 12, asm.Half),
		asm.JNE.Imm(asm.R1, 0x0008, "lookup"), // htons(ETH_P_IP)
		asm.LoadMem(asm.R1, rData, offMagic, asm.Word),
		asm.JNE.Imm(asm.R1, Magic, "lookup"),
		asm.LoadMem(asm.R1, rData, offCPU, asm.Word),
		asm.And.Imm(asm.R1, 63),
		asm.StoreMem(asm.R10, -4, asm.R1, asm.Word),
		asm.Mov.Imm(rGen, 1),

		asm.Mov.Reg(asm.R2, asm.R10).WithSymbol("lookup"),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, rLen),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.JEq.Imm(rGen, 0, "out"),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, TagEnd),
		asm.JGT.Reg(asm.R2, rEnd, "out"),
		asm.LoadMem(asm.R1, asm.R0, 16, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 16, asm.R1, asm.DWord),
		// r2 = seq + 1
		asm.LoadMem(asm.R2, rData, offSeq, asm.DWord),
		asm.Add.Imm(asm.R2, 1),
		// max
		asm.LoadMem(asm.R3, asm.R0, 24, asm.DWord),
		asm.JGE.Reg(asm.R3, asm.R2, "min"),
		asm.StoreMem(asm.R0, 24, asm.R2, asm.DWord),
		// min
		asm.LoadMem(asm.R3, asm.R0, 32, asm.DWord).WithSymbol("min"),
		asm.JEq.Imm(asm.R3, 0, "setmin"),
		asm.JLE.Reg(asm.R3, asm.R2, "order"),
		asm.StoreMem(asm.R0, 32, asm.R2, asm.DWord).WithSymbol("setmin"),
		// order against the previous frame of this slot on this CPU
		asm.LoadMem(asm.R3, asm.R0, 48, asm.DWord).WithSymbol("order"),
		asm.StoreMem(asm.R0, 48, asm.R2, asm.DWord),
		asm.JGT.Reg(asm.R2, asm.R3, "flow"),
		asm.JEq.Reg(asm.R2, asm.R3, "dup"),
		asm.LoadMem(asm.R1, asm.R0, 40, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 40, asm.R1, asm.DWord),
		asm.Ja.Label("flow"),
		asm.LoadMem(asm.R1, asm.R0, 56, asm.DWord).WithSymbol("dup"),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 56, asm.R1, asm.DWord),

		// per-flow order: flows[flow] holds the flow's last sequence number + 1
		asm.Mov.Reg(rGen, asm.R0).WithSymbol("flow"), // r6 = stats slot from here on
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, TagEnd),
		asm.JGT.Reg(asm.R2, rEnd, "out"),
		asm.LoadMem(asm.R1, rData, offFlow, asm.Half),
		asm.StoreMem(asm.R10, -8, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -8),
		asm.LoadMapPtr(asm.R1, flowFD),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Imm(asm.R2, TagEnd),
		asm.JGT.Reg(asm.R2, rEnd, "out"),
		asm.LoadMem(asm.R2, rData, offSeq, asm.DWord),
		asm.Add.Imm(asm.R2, 1),
		asm.LoadMem(asm.R3, asm.R0, 0, asm.DWord),
		asm.StoreMem(asm.R0, 0, asm.R2, asm.DWord),
		asm.JGE.Reg(asm.R2, asm.R3, "out"),
		asm.LoadMem(asm.R1, rGen, 64, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(rGen, 64, asm.R1, asm.DWord),

		asm.Mov.Imm(asm.R0, verdict).WithSymbol("out"),
		asm.Return(),
	}...)
}

// Totals are sink statistics summed over CPUs (and slots, where it makes sense).
type Totals struct {
	Packets, Bytes, Gen, Reorder, Dup, FlowReorder uint64
	// per generator CPU slot: lowest and highest sequence number + 1
	MinSeq1, MaxSeq1 [SinkSlots - 1]uint64
}

// Read sums the sink's statistics.
func (s *Sink) Read() (Totals, error) {
	var t Totals
	var per []SinkStats
	for k := uint32(0); k < SinkSlots; k++ {
		if err := s.Stats.Lookup(k, &per); err != nil {
			return t, err
		}
		for _, v := range per {
			t.Packets += v.Packets
			t.Bytes += v.Bytes
			t.Gen += v.Gen
			t.Reorder += v.Reorder
			t.Dup += v.Dup
			t.FlowReorder += v.FlowReorder
			if k < OtherSlot {
				if v.MaxSeq1 > t.MaxSeq1[k] {
					t.MaxSeq1[k] = v.MaxSeq1
				}
				if v.MinSeq1 != 0 && (t.MinSeq1[k] == 0 || v.MinSeq1 < t.MinSeq1[k]) {
					t.MinSeq1[k] = v.MinSeq1
				}
			}
		}
	}
	return t, nil
}

// Merge adds o into t (several sink devices).
func (t *Totals) Merge(o Totals) {
	t.Packets += o.Packets
	t.Bytes += o.Bytes
	t.Gen += o.Gen
	t.Reorder += o.Reorder
	t.Dup += o.Dup
	t.FlowReorder += o.FlowReorder
	for k := range t.MaxSeq1 {
		if o.MaxSeq1[k] > t.MaxSeq1[k] {
			t.MaxSeq1[k] = o.MaxSeq1[k]
		}
		if o.MinSeq1[k] != 0 && (t.MinSeq1[k] == 0 || o.MinSeq1[k] < t.MinSeq1[k]) {
			t.MinSeq1[k] = o.MinSeq1[k]
		}
	}
}

// Span is the number of sequence numbers between the lowest and the highest
// seen, over all generator CPUs: what a lossless run would have delivered.
func (t *Totals) Span() uint64 {
	var s uint64
	for k := range t.MaxSeq1 {
		if t.MaxSeq1[k] != 0 {
			s += t.MaxSeq1[k] - t.MinSeq1[k] + 1
		}
	}
	return s
}

// Close releases the program and map.
func (s *Sink) Close() error {
	return errors.Join(s.Prog.Close(), s.Stats.Close(), s.Flows.Close())
}
