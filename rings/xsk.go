package rings

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Fill is the UMEM fill ring: user space produces frame addresses that the
// kernel may receive into.
type Fill struct{ r prodRing }

// TX is the transmit ring: user space produces descriptors of frames to send.
type TX struct{ r prodRing }

// Completion is the UMEM completion ring: the kernel produces the addresses
// of frames whose transmission has completed.
type Completion struct{ r consRing }

// RX is the receive ring: the kernel produces descriptors of received frames.
type RX struct{ r consRing }

// NewFill builds a Fill ring over an already-mapped area. It panics if size
// is not a power of two or the layout does not fit in mem.
func NewFill(mem []byte, off unix.XDPRingOffset, size uint32) *Fill {
	f := new(Fill)
	if err := f.r.init(mem, off, size, addrSize); err != nil {
		panic(err)
	}
	return f
}

// NewTX builds a TX ring over an already-mapped area. It panics if size is
// not a power of two or the layout does not fit in mem.
func NewTX(mem []byte, off unix.XDPRingOffset, size uint32) *TX {
	t := new(TX)
	if err := t.r.init(mem, off, size, descSize); err != nil {
		panic(err)
	}
	return t
}

// NewCompletion builds a Completion ring over an already-mapped area. It
// panics if size is not a power of two or the layout does not fit in mem.
func NewCompletion(mem []byte, off unix.XDPRingOffset, size uint32) *Completion {
	c := new(Completion)
	if err := c.r.init(mem, off, size, addrSize); err != nil {
		panic(err)
	}
	return c
}

// NewRX builds an RX ring over an already-mapped area. It panics if size is
// not a power of two or the layout does not fit in mem.
func NewRX(mem []byte, off unix.XDPRingOffset, size uint32) *RX {
	x := new(RX)
	if err := x.r.init(mem, off, size, descSize); err != nil {
		panic(err)
	}
	return x
}

// MapFill mmaps the fill ring of AF_XDP socket fd (page offset
// XDP_UMEM_PGOFF_FILL_RING). off is the Fr member of XDP_MMAP_OFFSETS and
// size the number of entries set with XDP_UMEM_FILL_RING.
func MapFill(fd int, off unix.XDPRingOffset, size uint32) (*Fill, error) {
	mem, err := mapArea(fd, unix.XDP_UMEM_PGOFF_FILL_RING, off, size, addrSize)
	if err != nil {
		return nil, err
	}
	f := new(Fill)
	if err := f.r.init(mem, off, size, addrSize); err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	f.r.mapped = true
	return f, nil
}

// MapTX mmaps the TX ring of AF_XDP socket fd (page offset
// XDP_PGOFF_TX_RING). off is the Tx member of XDP_MMAP_OFFSETS and size the
// number of entries set with XDP_TX_RING.
func MapTX(fd int, off unix.XDPRingOffset, size uint32) (*TX, error) {
	mem, err := mapArea(fd, unix.XDP_PGOFF_TX_RING, off, size, descSize)
	if err != nil {
		return nil, err
	}
	t := new(TX)
	if err := t.r.init(mem, off, size, descSize); err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	t.r.mapped = true
	return t, nil
}

// MapCompletion mmaps the completion ring of AF_XDP socket fd (page offset
// XDP_UMEM_PGOFF_COMPLETION_RING). off is the Cr member of XDP_MMAP_OFFSETS
// and size the number of entries set with XDP_UMEM_COMPLETION_RING.
func MapCompletion(fd int, off unix.XDPRingOffset, size uint32) (*Completion, error) {
	mem, err := mapArea(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off, size, addrSize)
	if err != nil {
		return nil, err
	}
	c := new(Completion)
	if err := c.r.init(mem, off, size, addrSize); err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	c.r.mapped = true
	return c, nil
}

// MapRX mmaps the RX ring of AF_XDP socket fd (page offset
// XDP_PGOFF_RX_RING). off is the Rx member of XDP_MMAP_OFFSETS and size the
// number of entries set with XDP_RX_RING.
func MapRX(fd int, off unix.XDPRingOffset, size uint32) (*RX, error) {
	mem, err := mapArea(fd, unix.XDP_PGOFF_RX_RING, off, size, descSize)
	if err != nil {
		return nil, err
	}
	x := new(RX)
	if err := x.r.init(mem, off, size, descSize); err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	x.r.mapped = true
	return x, nil
}

// ---- Fill ----

// Size returns the number of ring entries.
func (f *Fill) Size() uint32 { return f.r.size }

// Queued returns the number of frame addresses submitted to the kernel and
// not consumed yet, from the shared indices; unlike the other methods any
// goroutine may call it (a moment's sample while the ring is in use).
func (f *Fill) Queued() uint32 { return f.r.queued() }

// Unmap unmaps a ring created by MapFill; it is a no-op for rings built by
// NewFill and after the first call. The ring must not be used afterwards.
func (f *Fill) Unmap() error { return f.r.unmap() }

// Reserve claims up to n slots and returns the running index of the first
// one and how many were claimed (got <= n, possibly 0). The cached consumer
// index is refreshed (load-acquire) only when it says fewer than n slots are
// free. Fill the slots with Set and publish them with Submit.
func (f *Fill) Reserve(n uint32) (idx uint32, got uint32) { return f.r.reserve(n) }

// Set writes frame address addr into the slot with running index idx.
func (f *Fill) Set(idx uint32, addr uint64) { *f.r.addrAt(idx) = addr }

// Submit publishes the next n reserved slots to the kernel (store-release).
func (f *Fill) Submit(n uint32) { f.r.submit(n) }

// NeedWakeup reports whether the kernel set XDP_RING_NEED_WAKEUP on this
// ring (the application must then poke it with a poll/recvfrom).
func (f *Fill) NeedWakeup() bool { return f.r.needWakeup() }

// Free returns the number of slots that can still be reserved, after
// refreshing the consumer index.
func (f *Fill) Free() uint32 { return f.r.refresh() }

// ---- TX ----

// Size returns the number of ring entries.
func (t *TX) Size() uint32 { return t.r.size }

// Queued returns the number of descriptors submitted to the kernel and not
// sent yet, from the shared indices; unlike the other methods any goroutine
// may call it (a moment's sample while the ring is in use).
func (t *TX) Queued() uint32 { return t.r.queued() }

// Unmap unmaps a ring created by MapTX; it is a no-op for rings built by
// NewTX and after the first call. The ring must not be used afterwards.
func (t *TX) Unmap() error { return t.r.unmap() }

// Reserve claims up to n slots and returns the running index of the first
// one and how many were claimed (got <= n, possibly 0). The cached consumer
// index is refreshed (load-acquire) only when it says fewer than n slots are
// free. Fill the slots with Set and publish them with Submit.
func (t *TX) Reserve(n uint32) (idx uint32, got uint32) { return t.r.reserve(n) }

// Set writes descriptor d into the slot with running index idx.
func (t *TX) Set(idx uint32, d Desc) { *t.r.descAt(idx) = d }

// Cancel gives back the last n slots reserved and not submitted (n at
// most what the last Reserve claimed): a multi-buffer chain that would be
// cut by the end of the reservation is not put on the ring at all.
func (t *TX) Cancel(n uint32) { t.r.cachedProd -= n }

// Submit publishes the next n reserved slots to the kernel (store-release).
func (t *TX) Submit(n uint32) { t.r.submit(n) }

// NeedWakeup reports whether the kernel set XDP_RING_NEED_WAKEUP on this
// ring (the application must then kick it with sendto).
func (t *TX) NeedWakeup() bool { return t.r.needWakeup() }

// Free returns the number of slots that can still be reserved, after
// refreshing the consumer index.
func (t *TX) Free() uint32 { return t.r.refresh() }

// Outstanding returns how many submitted descriptors the kernel has not yet
// consumed (load-acquire of the consumer index).
func (t *TX) Outstanding() uint32 {
	t.r.refresh()
	return t.r.prod - (t.r.cachedCons - t.r.size)
}

// ---- Completion ----

// Size returns the number of ring entries.
func (c *Completion) Size() uint32 { return c.r.size }

// Queued returns the number of completed frame addresses the kernel produced
// and user space has not released, from the shared indices; unlike the other
// methods any goroutine may call it (a moment's sample while the ring is in
// use).
func (c *Completion) Queued() uint32 { return c.r.queued() }

// Unmap unmaps a ring created by MapCompletion; it is a no-op for rings
// built by NewCompletion and after the first call. The ring must not be used
// afterwards.
func (c *Completion) Unmap() error { return c.r.unmap() }

// Peek claims up to n filled entries and returns the running index of the
// first one and how many were claimed (possibly 0). The cached producer
// index is refreshed (load-acquire) only when it holds fewer than n entries.
// Claimed entries are not returned by later Peeks; read them with Get and
// give them back with Release.
func (c *Completion) Peek(n uint32) (idx uint32, got uint32) { return c.r.peek(n) }

// Get returns the frame address at running index idx.
func (c *Completion) Get(idx uint32) uint64 { return *c.r.addrAt(idx) }

// Release hands the next n claimed entries back to the kernel
// (store-release).
func (c *Completion) Release(n uint32) { c.r.release(n) }

// ---- RX ----

// Size returns the number of ring entries.
func (x *RX) Size() uint32 { return x.r.size }

// Queued returns the number of received descriptors the kernel produced and
// user space has not released, from the shared indices; unlike the other
// methods any goroutine may call it (a moment's sample while the ring is in
// use).
func (x *RX) Queued() uint32 { return x.r.queued() }

// Unmap unmaps a ring created by MapRX; it is a no-op for rings built by
// NewRX and after the first call. The ring must not be used afterwards.
func (x *RX) Unmap() error { return x.r.unmap() }

// Peek claims up to n filled entries and returns the running index of the
// first one and how many were claimed (possibly 0). The cached producer
// index is refreshed (load-acquire) only when it holds fewer than n entries.
// Claimed entries are not returned by later Peeks; read them with Get and
// give them back with Release.
func (x *RX) Peek(n uint32) (idx uint32, got uint32) { return x.r.peek(n) }

// Get returns the descriptor at running index idx.
func (x *RX) Get(idx uint32) Desc { return *x.r.descAt(idx) }

// Unpeek gives back the last n entries claimed by Peek and not released
// (n at most what Peek claimed since the last Release): the next Peek
// returns them again. The lane uses it for a multi-buffer chain whose
// last fragment is not on the ring yet.
func (x *RX) Unpeek(n uint32) { x.r.cachedCons -= n }

// Release hands the next n claimed entries back to the kernel
// (store-release).
func (x *RX) Release(n uint32) { x.r.release(n) }

// ---- reclaiming a retired socket's frames ----

// Unconsumed appends the addresses submitted on the fill ring that the
// kernel has not consumed yet. Only for a socket the kernel no longer
// uses (unbound from the XSKMAP, about to be closed): the frames are the
// caller's again.
func (f *Fill) Unconsumed(dst []uint64) []uint64 {
	for i := atomic.LoadUint32(f.r.consumer); i != f.r.prod; i++ {
		dst = append(dst, *f.r.addrAt(i))
	}
	return dst
}

// Unconsumed appends the addresses of the descriptors submitted on the TX
// ring that the kernel has not consumed (see Fill.Unconsumed).
func (t *TX) Unconsumed(dst []uint64) []uint64 {
	for i := atomic.LoadUint32(t.r.consumer); i != t.r.prod; i++ {
		dst = append(dst, t.r.descAt(i).Addr)
	}
	return dst
}

// Pending appends the addresses of the RX descriptors not yet released.
func (r *RX) Pending(dst []uint64) []uint64 {
	for i := r.r.cons; i != atomic.LoadUint32(r.r.producer); i++ {
		dst = append(dst, r.r.descAt(i).Addr)
	}
	return dst
}

// Pending appends the completed addresses not yet released.
func (c *Completion) Pending(dst []uint64) []uint64 {
	for i := c.r.cons; i != atomic.LoadUint32(c.r.producer); i++ {
		dst = append(dst, *c.r.addrAt(i))
	}
	return dst
}
