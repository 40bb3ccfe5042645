package lane

import (
	"sync/atomic"
	"unsafe"

	"github.com/bond-appliance/bond-appliance/rings"
	"github.com/bond-appliance/bond-appliance/umem"
	"golang.org/x/sys/unix"
)

// simOff is a made-up ring layout for the simulated kernel side.
var simOff = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

type simRing struct {
	mem  []byte
	size uint32
}

func newSimRing(size uint32, elem uintptr) *simRing {
	n := 192 + uintptr(size)*elem
	words := make([]uint64, (n+7)/8)
	return &simRing{mem: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n), size: size}
}

func (r *simRing) u32(off uintptr) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *simRing) prod() *uint32           { return r.u32(0) }
func (r *simRing) cons() *uint32           { return r.u32(64) }
func (r *simRing) addr(i uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&r.mem[192+uintptr(i&(r.size-1))*8]))
}
func (r *simRing) desc(i uint32) *rings.Desc {
	return (*rings.Desc)(unsafe.Pointer(&r.mem[192+uintptr(i&(r.size-1))*16]))
}

// simPort is the kernel side of one simulated AF_XDP socket.
type simPort struct {
	u                  *umem.UMEM
	fill, comp, rx, tx *simRing
	port               *Port
	kicks              int
	sent               [][]byte // frames "transmitted" (copies), when record is set
	record             bool
	nsent              int
}

func (s *simPort) KickTX() error { s.kicks++; return nil }
func (s *simPort) KickRX()       {}

func newSimPort(u *umem.UMEM, name string, size uint32) *simPort {
	s := &simPort{u: u, fill: newSimRing(size, 8), comp: newSimRing(size, 8), rx: newSimRing(size, 16), tx: newSimRing(size, 16), record: true}
	s.port = &Port{
		Name: name, FD: -1,
		Fill: rings.NewFill(s.fill.mem, simOff, size),
		Comp: rings.NewCompletion(s.comp.mem, simOff, size),
		RX:   rings.NewRX(s.rx.mem, simOff, size),
		TX:   rings.NewTX(s.tx.mem, simOff, size),
		Kick: s,
	}
	return s
}

// deliver receives frames into the socket as the kernel does: take a fill
// address, copy the frame after XDP_PACKET_HEADROOM, post an RX descriptor.
// It returns how many were delivered (fill ring or RX ring may run out).
func (s *simPort) deliver(frames ...[]byte) int {
	n := 0
	for _, f := range frames {
		fp, fc := atomic.LoadUint32(s.fill.prod()), atomic.LoadUint32(s.fill.cons())
		rp, rc := atomic.LoadUint32(s.rx.prod()), atomic.LoadUint32(s.rx.cons())
		if fp == fc || rp-rc == s.rx.size {
			break
		}
		a := *s.fill.addr(fc) + 256
		atomic.StoreUint32(s.fill.cons(), fc+1)
		copy(s.u.Frame(a, uint32(len(f))), f)
		*s.rx.desc(rp) = rings.Desc{Addr: a, Len: uint32(len(f))}
		atomic.StoreUint32(s.rx.prod(), rp+1)
		n++
	}
	return n
}

// drainTX transmits everything on the TX ring: records the frame and posts
// the address on the completion ring.
func (s *simPort) drainTX() int {
	tp, tc := atomic.LoadUint32(s.tx.prod()), atomic.LoadUint32(s.tx.cons())
	n := 0
	for ; tc != tp; tc++ {
		d := *s.tx.desc(tc)
		if s.record {
			s.sent = append(s.sent, append([]byte(nil), s.u.Frame(d.Addr, d.Len)...))
		}
		s.nsent++
		cp := atomic.LoadUint32(s.comp.prod())
		*s.comp.addr(cp) = d.Addr
		atomic.StoreUint32(s.comp.prod(), cp+1)
		n++
	}
	atomic.StoreUint32(s.tx.cons(), tc)
	return n
}
