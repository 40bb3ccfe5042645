package main

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/perf/trafficgen"
	"github.com/bond-appliance/bond-appliance/rings"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Generator kinds (bagen gen --mode).
const (
	modeAuto = "auto" // live frames when the kernel allows them, else xsk
	modeLive = "live" // BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES
	modeXSK  = "xsk"  // AF_XDP TX-only sockets, copy mode
)

// liveFramesUsable runs a one-instruction XDP_DROP program once in
// live-frames mode: nil when the kernel allows it. It sends nothing and
// takes no sequence number of the real generator. The error says why not
// (EINVAL before Linux 5.18; EPERM where the kernel refuses live frames to
// this process, as on the Firecracker VMs whose kernel gates them behind a
// capability the sandbox does not grant).
func liveFramesUsable(tmpl []byte) error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bagen_probe", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpDropVerdict), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load probe program: %w", err)
	}
	defer p.Close()
	_, err = p.Run(&ebpf.RunOptions{Data: tmpl, Repeat: 1, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: 1})
	return err
}

const xdpDropVerdict = 1

// xskPort is one TX-only AF_XDP socket with its own UMEM, every frame
// pre-filled with the frame template.
type xskPort struct {
	dev   string
	u     *umem.UMEM
	s     *xsk.Socket
	addrs []uint64 // scratch: frames of one round / completed frames
	idx   uint32   // TX ring index reserved for the current round
}

// xskGen is one generator thread's sockets (one per target device, all on
// the same queue) and counters.
type xskGen struct {
	ports    []*xskPort
	frameLen uint32 // whole frame
	frags    uint32 // descriptors per frame: 1, or a multi-buffer chain
	chunk    uint32 // UMEM frame size: every fragment but the last is this long
	batch    uint32 // frames (not descriptors) per device per round
	cpu      uint32 // the CPU number written into the tag
	stamp    trafficgen.Stamper
	flows    uint64
	sent     atomic.Uint64 // frames handed to the kernel (TX ring), also the next sequence number
	kicks    uint64
	txBudget uint32
}

// xskChunk is the UMEM frame size for frames of n bytes: 2048, 4096 up to
// 4096 bytes and above (multi-buffer chains of 4096-byte fragments).
func xskChunk(n int) uint32 {
	if n <= 2048 {
		return 2048
	}
	return 4096
}

// fragLen is the length of fragment i of a frame of n bytes cut into
// chunk-sized fragments (every one full but the last).
func fragLen(n, chunk, i uint32) uint32 {
	return min(chunk, n-i*chunk)
}

// openXSKGen opens one copy-mode AF_XDP socket per device on queue, with
// a UMEM of 2×ring frames each holding the template (its first UMEM frame's
// worth), and asks the kernel to send batch frames per sendto
// (XDP_MAX_TX_SKB_BUDGET, in descriptors). A frame longer than a UMEM frame
// (jumbo) goes out as a multi-buffer chain: the socket is bound with
// XDP_USE_SG, the first fragment carries the headers and the tag, the
// others only payload (UDP without checksum: their bytes do not matter).
func openXSKGen(names []string, ifindexes []int, queue int, spec trafficgen.Spec, ring, batch uint32, cpu uint32) (*xskGen, error) {
	tmpl := spec.Template()
	fsz := xskChunk(len(tmpl))
	frags := (uint32(len(tmpl)) + fsz - 1) / fsz
	if frags*batch > ring {
		return nil, fmt.Errorf("--batch %d: %d-byte frames take %d descriptors each, a batch must fit the ring (%d descriptors): at most %d", batch, len(tmpl)+4, frags, ring, ring/frags)
	}
	g := &xskGen{frameLen: uint32(len(tmpl)), frags: frags, chunk: fsz, batch: batch, cpu: cpu, stamp: spec.Stamper(), flows: uint64(spec.Flows)}
	for i, ifx := range ifindexes {
		u, err := umem.New(umem.Config{NumFrames: 2 * ring, FrameSize: fsz, HugePages: true})
		if err != nil {
			g.close()
			return nil, fmt.Errorf("%s: UMEM: %w", names[i], err)
		}
		mem := u.Mem()
		for off := 0; off+int(fsz) <= len(mem); off += int(fsz) {
			copy(mem[off:off+int(fsz)], tmpl)
		}
		s, err := xsk.Open(u, ifx, queue, xsk.Options{RingSize: ring, Bind: xsk.BindCopy, TxBudget: batch * frags, SG: frags > 1}, nil)
		if err != nil {
			u.Close()
			g.close()
			return nil, fmt.Errorf("%s queue %d: AF_XDP socket: %w", names[i], queue, err)
		}
		g.txBudget = s.TxBudget
		g.ports = append(g.ports, &xskPort{dev: names[i], u: u, s: s, addrs: make([]uint64, 2*ring)})
	}
	return g, nil
}

func (g *xskGen) close() {
	for _, p := range g.ports {
		p.s.Close()
		p.u.Close()
	}
}

// xskLimits bound one generator thread.
type xskLimits struct {
	count    uint64    // stop after this many frames (0: none)
	rate     float64   // frames per second (0: as fast as possible)
	deadline time.Time // stop then (zero: none)
}

// run sends until stop, the deadline or the count: each round it recycles
// completed frames, plans the next frames over the devices (flow f to
// device f mod n), stamps them (tag, flow fields, checksum) and puts them
// on the TX rings, then kicks every socket with sendto. Nothing is
// allocated per frame or per round.
func (g *xskGen) run(stop *atomic.Bool, lim xskLimits) error {
	n := len(g.ports)
	avail := make([]uint32, n)
	counts := make([]uint32, n)
	used := make([]uint32, n)
	const burst = 32 // catch-up after a stall when paced, like the XDP program
	start := time.Now()
	paceFrom := start
	var paceBase uint64
	var seq uint64
	for i := 0; ; i++ {
		if stop.Load() || (lim.count > 0 && seq >= lim.count) {
			return nil
		}
		if i&63 == 0 && !lim.deadline.IsZero() && time.Now().After(lim.deadline) {
			return nil
		}
		k := g.frags
		for d, p := range g.ports {
			p.reclaim()
			avail[d] = min(p.s.TX.Free()/k, uint32(p.u.Available())/k, g.batch)
		}
		want := uint64(g.batch) * uint64(n)
		if lim.count > 0 {
			want = min(want, lim.count-seq)
		}
		if lim.rate > 0 {
			now := time.Now()
			due := paceBase + uint64(now.Sub(paceFrom).Seconds()*lim.rate)
			if due > seq+burst {
				paceFrom, paceBase, due = now, seq+burst, seq+burst
			}
			want = min(want, due-seq)
		}
		t := trafficgen.Plan(seq, g.flows, want, avail, counts)
		if t > 0 {
			for d, p := range g.ports {
				if counts[d] == 0 {
					continue
				}
				// whole chains only: Free and Available said there is room
				p.idx, _ = p.s.TX.Reserve(counts[d] * k)
				p.u.AllocBatch(p.addrs[:counts[d]*k])
				used[d] = 0
			}
			for j := uint64(0); j < t; j++ {
				sq := seq + j
				d := ((sq % g.flows) % uint64(n))
				p := g.ports[d]
				u := used[d]
				if k == 1 {
					a := p.addrs[u]
					g.stamp.Stamp(p.u.Frame(a, g.frameLen), sq, g.cpu)
					p.s.TX.Set(p.idx+u, rings.Desc{Addr: a, Len: g.frameLen})
				} else {
					// a chain: every descriptor but the last marked Contd
					g.stamp.Stamp(p.u.Frame(p.addrs[u], g.chunk), sq, g.cpu)
					for f := uint32(0); f < k; f++ {
						opt := uint32(rings.Contd)
						if f == k-1 {
							opt = 0
						}
						p.s.TX.Set(p.idx+u+f, rings.Desc{Addr: p.addrs[u+f], Len: fragLen(g.frameLen, g.chunk, f), Options: opt})
					}
				}
				used[d] = u + k
			}
			for d, p := range g.ports {
				if counts[d] > 0 {
					p.s.TX.Submit(counts[d] * k)
				}
			}
			seq += t
			g.sent.Store(seq)
		}
		for _, p := range g.ports {
			if p.s.TX.Outstanding() > 0 {
				if err := p.s.KickTX(); err != nil {
					return fmt.Errorf("%s: sendto: %w", p.dev, err)
				}
				g.kicks++
			}
		}
	}
}

// reclaim returns completed frames to the UMEM's free stack.
func (p *xskPort) reclaim() {
	idx, got := p.s.Comp.Peek(uint32(len(p.addrs)))
	if got == 0 {
		return
	}
	for i := uint32(0); i < got; i++ {
		p.addrs[i] = p.s.Comp.Get(idx + i)
	}
	p.u.FreeBatch(p.addrs[:got])
	p.s.Comp.Release(got)
}

// drain waits (at most d) until the kernel has taken everything off the TX
// rings, kicking them, and takes what it did not take off the sent count
// (those frames never left; a chain's descriptors count as one frame).
func (g *xskGen) drain(d time.Duration) {
	end := time.Now().Add(d)
	for {
		var left uint32
		for _, p := range g.ports {
			if o := p.s.TX.Outstanding(); o > 0 {
				left += o
				_ = p.s.KickTX()
			}
			p.reclaim()
		}
		if left == 0 || time.Now().After(end) {
			g.sent.Add(-uint64((left + g.frags - 1) / g.frags))
			return
		}
	}
}

// stats sums the sockets' invalid TX descriptors (XDP statistics).
func (g *xskGen) stats() (txInvalid uint64, err error) {
	var errs []error
	for _, p := range g.ports {
		st, e := p.s.Stats()
		if e != nil {
			errs = append(errs, e)
			continue
		}
		txInvalid += st.Tx_invalid_descs
	}
	return txInvalid, errors.Join(errs...)
}
