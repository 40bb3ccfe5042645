// Package ringtest is a simulated AF_XDP kernel for tests: the kernel side
// of the four rings ([Ring]) laid out as [Off] in ordinary Go memory, and
// the kernel side of a whole socket ([Socket]: receive into fill-ring
// frames, transmit what the TX ring holds and complete it), so that
// package rings and the lanes built on it are tested against one model
// of the kernel.
//
// It imports only the standard library and x/sys (not package rings), so
// that package rings' own tests can use it. Every index is read and
// published with atomic loads and stores, as the kernel does, so a
// simulated kernel may run on another goroutine than the rings' owner
// (the race detector sees the hand-over).
package ringtest

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Off is the made-up shared layout of the simulated rings: producer at
// 0, consumer at 64, flags at 128, ring elements at 192.
var Off = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

// Mem returns a zeroed, 8-byte aligned area for a ring of size elements
// of elem bytes laid out as [Off].
func Mem(size uint32, elem uintptr) []byte {
	n := 192 + uintptr(size)*elem
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

// Desc has the layout of struct xdp_desc (and of rings.Desc).
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// DescLike is any descriptor type with the layout of struct xdp_desc
// (rings.Desc, [Desc]).
type DescLike interface {
	~struct {
		Addr    uint64
		Len     uint32
		Options uint32
	}
}

// Ring is the kernel side of one ring laid out as [Off]; size must be a
// power of two.
type Ring struct {
	Mem  []byte
	Size uint32
}

// NewRing returns a ring of size elements of elem bytes (8 for fill and
// completion rings, 16 for RX and TX rings).
func NewRing(size uint32, elem uintptr) *Ring {
	return &Ring{Mem: Mem(size, elem), Size: size}
}

func (k *Ring) u32(off uintptr) *uint32 { return (*uint32)(unsafe.Pointer(&k.Mem[off])) }

// Producer is the shared producer index.
func (k *Ring) Producer() *uint32 { return k.u32(0) }

// Consumer is the shared consumer index.
func (k *Ring) Consumer() *uint32 { return k.u32(64) }

// Flags is the shared flags word.
func (k *Ring) Flags() *uint32 { return k.u32(128) }

// Addr is the address slot of running index idx (fill, completion).
func (k *Ring) Addr(idx uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&k.Mem[192+uintptr(idx&(k.Size-1))*8]))
}

// Desc is the descriptor slot of running index idx (RX, TX).
func (k *Ring) Desc(idx uint32) *Desc {
	return (*Desc)(unsafe.Pointer(&k.Mem[192+uintptr(idx&(k.Size-1))*16]))
}

// SetWakeup sets or clears XDP_RING_NEED_WAKEUP (with an unrelated flag
// bit that readers must ignore).
func (k *Ring) SetWakeup(on bool) {
	if on {
		atomic.StoreUint32(k.Flags(), unix.XDP_RING_NEED_WAKEUP|0x80)
	} else {
		atomic.StoreUint32(k.Flags(), 0x80)
	}
}

// Space returns the free slots as seen by the kernel as producer.
func (k *Ring) Space() uint32 {
	return k.Size - (atomic.LoadUint32(k.Producer()) - atomic.LoadUint32(k.Consumer()))
}

// ConsumeAddrs consumes up to max published addresses (the kernel as
// consumer of a fill ring).
func (k *Ring) ConsumeAddrs(max uint32) []uint64 {
	prod := atomic.LoadUint32(k.Producer())
	cons := atomic.LoadUint32(k.Consumer())
	n := min(prod-cons, max)
	out := make([]uint64, n)
	for i := range n {
		out[i] = *k.Addr(cons + i)
	}
	atomic.StoreUint32(k.Consumer(), cons+n)
	return out
}

// ProduceAddrs publishes as many of addrs as fit (the kernel as producer
// of a completion ring) and returns how many.
func (k *Ring) ProduceAddrs(addrs []uint64) int {
	prod := atomic.LoadUint32(k.Producer())
	n := min(uint32(len(addrs)), k.Space())
	for i := range n {
		*k.Addr(prod + i) = addrs[i]
	}
	atomic.StoreUint32(k.Producer(), prod+n)
	return int(n)
}

// ConsumeDescs consumes up to max published descriptors (the kernel as
// consumer of a TX ring).
func ConsumeDescs[D DescLike](k *Ring, max uint32) []D {
	prod := atomic.LoadUint32(k.Producer())
	cons := atomic.LoadUint32(k.Consumer())
	n := min(prod-cons, max)
	out := make([]D, n)
	for i := range n {
		out[i] = D(*k.Desc(cons + i))
	}
	atomic.StoreUint32(k.Consumer(), cons+n)
	return out
}

// ProduceDescs publishes as many of ds as fit (the kernel as producer of
// an RX ring) and returns how many.
func ProduceDescs[D DescLike](k *Ring, ds []D) int {
	prod := atomic.LoadUint32(k.Producer())
	n := min(uint32(len(ds)), k.Space())
	for i := range n {
		*k.Desc(prod + i) = Desc(ds[i])
	}
	atomic.StoreUint32(k.Producer(), prod+n)
	return int(n)
}

// Frames gives the simulated kernel the bytes of a UMEM frame
// (umem.UMEM implements it).
type Frames interface {
	Frame(addr uint64, n uint32) []byte
}

// Headroom is XDP_PACKET_HEADROOM: where the kernel puts a received
// frame's first byte in a fill-ring frame.
const Headroom = 256

// Contd is XDP_PKT_CONTD: the frame goes on in the next descriptor.
const Contd = unix.XDP_PKT_CONTD

// Socket is the kernel side of one simulated AF_XDP socket over a UMEM.
// Its methods may run on another goroutine than the socket's user-space
// owner; Deliver and DrainTX must not run concurrently with each other.
//
// With SG set (a socket bound with XDP_USE_SG) it follows the kernel's
// multi-buffer rules (net/xdp/xsk.c __xsk_rcv and xsk_build_skb): a
// received frame longer than ChunkSize - [Headroom] bytes is copied into
// as many fill-ring frames as it needs, each but the last full and marked
// [Contd]; a frame for which the fill ring or the RX ring has too little
// room is not posted in part (the kernel drops it whole; Deliver stops
// there, as without SG, so that the test offers it again). On transmit,
// a chain of descriptors is one frame.
type Socket struct {
	Fill, Comp, RX, TX *Ring
	U                  Frames
	// Record keeps a copy of every transmitted frame in Sent.
	Record bool
	// SG makes the socket multi-buffer (XDP_USE_SG); ChunkSize is the
	// UMEM frame size (2048 when 0).
	SG        bool
	ChunkSize uint32

	mu       sync.Mutex // guards sent (read by the test while a lane runs)
	sent     [][]byte
	nsent    atomic.Int64
	kicks    atomic.Int64
	wakeRX   atomic.Int64
	lone     atomic.Int64
	txFrames int // descriptors of the chain being gathered by DrainTX
	txChain  []byte
}

// NewSocket returns a socket whose four rings have size entries.
func NewSocket(u Frames, size uint32) *Socket {
	return &Socket{Fill: NewRing(size, 8), Comp: NewRing(size, 8), RX: NewRing(size, 16), TX: NewRing(size, 16), U: u, Record: true}
}

// KickTX counts a transmit wakeup (sendto); it implements the lane's
// Kicker.
func (s *Socket) KickTX() error { s.kicks.Add(1); return nil }

// KickRX counts a fill-ring wakeup.
func (s *Socket) KickRX() { s.wakeRX.Add(1) }

// Kicks returns the number of KickTX calls.
func (s *Socket) Kicks() int { return int(s.kicks.Load()) }

// fragSize is the payload room of one fill-ring frame.
func (s *Socket) fragSize() uint32 {
	c := s.ChunkSize
	if c == 0 {
		c = 2048
	}
	return c - Headroom
}

// Deliver receives frames as the kernel does: take a fill address, copy
// the frame after [Headroom], post an RX descriptor. It returns how many
// were delivered (the fill ring or the RX ring may run out; delivery
// stops there). Without SG a frame longer than the UMEM frame is
// truncated by the UMEM's Frame.
func (s *Socket) Deliver(frames ...[]byte) int {
	n := 0
	for _, f := range frames {
		if s.SG {
			if !s.deliverChain(f, -1) {
				break
			}
			n++
			continue
		}
		fp, fc := atomic.LoadUint32(s.Fill.Producer()), atomic.LoadUint32(s.Fill.Consumer())
		rp, rc := atomic.LoadUint32(s.RX.Producer()), atomic.LoadUint32(s.RX.Consumer())
		if fp == fc || rp-rc == s.RX.Size {
			break
		}
		a := *s.Fill.Addr(fc) + Headroom
		atomic.StoreUint32(s.Fill.Consumer(), fc+1)
		ln := copy(s.U.Frame(a, uint32(len(f))), f)
		*s.RX.Desc(rp) = Desc{Addr: a, Len: uint32(ln)}
		atomic.StoreUint32(s.RX.Producer(), rp+1)
		n++
	}
	return n
}

// Frags returns how many descriptors frame length n takes on an SG
// socket.
func (s *Socket) Frags(n int) int {
	if n == 0 {
		return 1
	}
	fs := int(s.fragSize())
	return (n + fs - 1) / fs
}

// DeliverTruncated is a fault no correct kernel commits, for robustness
// tests: it posts only the first keep fragments of frame f, every one
// marked [Contd], as if the kernel had dropped the chain's last
// fragment(s) after posting the first ones. false when there is no room
// for the whole frame.
func (s *Socket) DeliverTruncated(f []byte, keep int) bool {
	return s.deliverChain(f, keep)
}

// deliverChain posts frame f as a chain (keep < 0: all of it; else only
// the first keep fragments, all marked Contd), publishing the producer
// index once, as the kernel does at its flush.
func (s *Socket) deliverChain(f []byte, keep int) bool {
	fs := s.fragSize()
	nd := s.Frags(len(f))
	post := nd
	if keep >= 0 && keep < nd {
		post = keep
	}
	fp, fc := atomic.LoadUint32(s.Fill.Producer()), atomic.LoadUint32(s.Fill.Consumer())
	rp, rc := atomic.LoadUint32(s.RX.Producer()), atomic.LoadUint32(s.RX.Consumer())
	if fp-fc < uint32(nd) || s.RX.Size-(rp-rc) < uint32(nd) {
		return false
	}
	for i := 0; i < post; i++ {
		chunk := f[min(len(f), i*int(fs)):min(len(f), (i+1)*int(fs))]
		a := *s.Fill.Addr(fc) + Headroom
		fc++
		copy(s.U.Frame(a, uint32(len(chunk))), chunk)
		var opt uint32
		if i < nd-1 || post < nd {
			opt = Contd
		}
		*s.RX.Desc(rp) = Desc{Addr: a, Len: uint32(len(chunk)), Options: opt}
		rp++
	}
	atomic.StoreUint32(s.Fill.Consumer(), fc)
	atomic.StoreUint32(s.RX.Producer(), rp)
	return true
}

// DrainTX transmits everything on the TX ring (as far as the completion
// ring has room): records the frame when Record is set and posts its
// address on the completion ring. A chain of descriptors ([Contd]) is one
// frame, recorded whole when its last descriptor is read; a chain whose
// end is not on the ring yet waits (its fragments are consumed and
// completed with the chain, as the kernel's skb holds them). It returns
// how many frames were sent.
func (s *Socket) DrainTX() int {
	tp, tc := atomic.LoadUint32(s.TX.Producer()), atomic.LoadUint32(s.TX.Consumer())
	frames := 0
	for ; tc != tp && s.Comp.Space() > uint32(s.txFrames); tc++ {
		d := *s.TX.Desc(tc)
		if d.Options&Contd != 0 && !s.SG {
			s.lone.Add(1) // a non-SG kernel rejects it (tx_invalid_descs)
		}
		if s.Record {
			s.txChain = append(s.txChain, s.U.Frame(d.Addr, d.Len)...)
		}
		s.txFrames++
		if d.Options&Contd != 0 {
			continue
		}
		// the frame is complete: complete every descriptor of it
		cp := atomic.LoadUint32(s.Comp.Producer())
		for i := tc + 1 - uint32(s.txFrames); i != tc+1; i++ {
			*s.Comp.Addr(cp) = s.TX.Desc(i).Addr
			cp++
		}
		atomic.StoreUint32(s.Comp.Producer(), cp)
		if s.Record {
			f := append([]byte(nil), s.txChain...)
			s.mu.Lock()
			s.sent = append(s.sent, f)
			s.mu.Unlock()
		}
		s.txChain = s.txChain[:0]
		s.txFrames = 0
		frames++
	}
	// a chain still open keeps its descriptors on the ring (consumer
	// not moved past them) until its end arrives
	atomic.StoreUint32(s.TX.Consumer(), tc-uint32(s.txFrames))
	if s.txFrames > 0 {
		s.txChain = s.txChain[:0]
		s.txFrames = 0
	}
	s.nsent.Add(int64(frames))
	return frames
}

// Open reports whether the TX ring ends in the middle of a chain (a
// descriptor marked Contd with nothing after it): user space put part
// of a frame on the ring.
func (s *Socket) Open() bool {
	tp, tc := atomic.LoadUint32(s.TX.Producer()), atomic.LoadUint32(s.TX.Consumer())
	return tp != tc && s.TX.Desc(tp-1).Options&Contd != 0
}

// Invalid returns how many chained descriptors a non-SG socket was given.
func (s *Socket) Invalid() int { return int(s.lone.Load()) }

// Sent returns copies of the frames transmitted so far (with Record).
func (s *Socket) Sent() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.sent...)
}

// NSent returns how many frames were transmitted.
func (s *Socket) NSent() int { return int(s.nsent.Load()) }
