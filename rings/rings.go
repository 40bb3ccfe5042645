// Package rings implements the user-space side of the four AF_XDP rings
// (Fill, Completion, RX and TX) over memory shared with the kernel, plus a
// generic lock-free single-producer/single-consumer ring (SPSC) used for
// control <-> lane messages.
//
// The AF_XDP rings follow the libxdp (xsk.h) protocol: the producer and
// consumer indices are free-running uint32 counters in shared memory; the
// owning side publishes its index with a store-release and reads the other
// side's index with a load-acquire, and only when its cached copy of that
// index says there is not enough room (producer) or not enough entries
// (consumer). Ring slots are addressed by the running index masked with
// size-1, so ring sizes must be powers of two.
//
// None of the per-frame operations (Reserve, Set, Submit, Peek, Get,
// Release, NeedWakeup) allocates, locks or makes a system call. Every ring
// has a single owner goroutine; the rings are not safe for concurrent use by
// several user-space goroutines.
package rings

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Desc mirrors struct xdp_desc: one RX or TX descriptor (16 bytes).
type Desc struct {
	Addr    uint64 // UMEM address of the packet data
	Len     uint32 // packet length in bytes
	Options uint32 // XDP_PKT_CONTD etc.
}

// Contd is XDP_PKT_CONTD in [Desc.Options]: the frame continues in the
// next descriptor (AF_XDP multi-buffer, a socket bound with XDP_USE_SG).
// A frame is a chain of descriptors, every one but the last with Contd.
const Contd = unix.XDP_PKT_CONTD

// Compile-time check that Desc has the kernel's layout size.
var _ = [1]struct{}{}[unsafe.Sizeof(Desc{})-16]

const (
	addrSize = 8  // size of a Fill/Completion element
	descSize = 16 // size of an RX/TX element
)

// ring holds the state shared by every AF_XDP ring type.
type ring struct {
	producer *uint32        // shared producer index
	consumer *uint32        // shared consumer index
	flags    *uint32        // shared flags word
	slots    unsafe.Pointer // first ring element
	mask     uint32
	size     uint32
	mem      []byte // the whole area (kept for Unmap and to keep Go memory alive)
	mapped   bool   // mem came from mmap and must be unmapped
}

// prodRing is the user-space producer side (Fill, TX).
type prodRing struct {
	cachedProd uint32 // next slot to reserve
	cachedCons uint32 // last seen consumer + size: reservable up to here
	prod       uint32 // value last published in *producer
	ring
}

// consRing is the user-space consumer side (Completion, RX).
type consRing struct {
	cachedCons uint32 // next entry to hand out by Peek
	cachedProd uint32 // last seen producer
	cons       uint32 // value last published in *consumer
	ring
}

// errNotPow2 is returned (wrapped) for bad ring sizes.
var errNotPow2 = errors.New("rings: ring size must be a non-zero power of two")

// initRing validates the layout described by off and size inside mem and
// fills in r. elem is the element size in bytes.
func initRing(r *ring, mem []byte, off unix.XDPRingOffset, size uint32, elem uint64) error {
	if size == 0 || size&(size-1) != 0 {
		return fmt.Errorf("%w (got %d)", errNotPow2, size)
	}
	n := uint64(len(mem))
	check := func(name string, o, length, align uint64) error {
		if o > n || length > n-o {
			return fmt.Errorf("rings: %s offset %d (+%d bytes) outside %d-byte area", name, o, length, n)
		}
		if (uintptr(unsafe.Pointer(unsafe.SliceData(mem)))+uintptr(o))%uintptr(align) != 0 {
			return fmt.Errorf("rings: %s offset %d is not %d-byte aligned", name, o, align)
		}
		return nil
	}
	hi, lo := bits.Mul64(uint64(size), elem)
	if hi != 0 {
		return fmt.Errorf("rings: ring of %d elements too large", size)
	}
	if err := check("producer", off.Producer, 4, 4); err != nil {
		return err
	}
	if err := check("consumer", off.Consumer, 4, 4); err != nil {
		return err
	}
	if err := check("flags", off.Flags, 4, 4); err != nil {
		return err
	}
	if err := check("descriptors", off.Desc, lo, 8); err != nil {
		return err
	}
	base := unsafe.Pointer(unsafe.SliceData(mem))
	r.producer = (*uint32)(unsafe.Add(base, off.Producer))
	r.consumer = (*uint32)(unsafe.Add(base, off.Consumer))
	r.flags = (*uint32)(unsafe.Add(base, off.Flags))
	r.slots = unsafe.Add(base, off.Desc)
	r.mask = size - 1
	r.size = size
	r.mem = mem
	return nil
}

func (r *prodRing) init(mem []byte, off unix.XDPRingOffset, size uint32, elem uint64) error {
	if err := initRing(&r.ring, mem, off, size, elem); err != nil {
		return err
	}
	r.prod = atomic.LoadUint32(r.producer)
	r.cachedProd = r.prod
	r.cachedCons = atomic.LoadUint32(r.consumer) + r.size
	return nil
}

func (r *consRing) init(mem []byte, off unix.XDPRingOffset, size uint32, elem uint64) error {
	if err := initRing(&r.ring, mem, off, size, elem); err != nil {
		return err
	}
	r.cons = atomic.LoadUint32(r.consumer)
	r.cachedCons = r.cons
	r.cachedProd = atomic.LoadUint32(r.producer)
	return nil
}

// reserve claims up to n slots. It refreshes the cached consumer index only
// when the cache says fewer than n slots are free.
func (r *prodRing) reserve(n uint32) (idx, got uint32) {
	free := r.cachedCons - r.cachedProd
	if free < n {
		free = r.refresh()
	}
	got = min(n, free)
	idx = r.cachedProd
	r.cachedProd += got
	return idx, got
}

// refresh reloads the consumer index (load-acquire) and returns the number
// of free slots beyond those already reserved.
func (r *prodRing) refresh() uint32 {
	r.cachedCons = atomic.LoadUint32(r.consumer) + r.size
	return r.cachedCons - r.cachedProd
}

// submit publishes n more entries (store-release).
func (r *prodRing) submit(n uint32) {
	r.prod += n
	atomic.StoreUint32(r.producer, r.prod)
}

// needWakeup reports whether the kernel asked to be woken up.
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// peek claims up to n entries. It refreshes the cached producer index only
// when the cache holds fewer than n entries.
func (r *consRing) peek(n uint32) (idx, got uint32) {
	avail := r.cachedProd - r.cachedCons
	if avail < n {
		r.cachedProd = atomic.LoadUint32(r.producer)
		avail = r.cachedProd - r.cachedCons
	}
	got = min(n, avail)
	idx = r.cachedCons
	r.cachedCons += got
	return idx, got
}

// release hands n entries back to the kernel (store-release).
func (r *consRing) release(n uint32) {
	r.cons += n
	atomic.StoreUint32(r.consumer, r.cons)
}

// queued returns the entries between the consumer and the producer index,
// both read from the shared memory (load-acquire), the consumer first, so
// the result never goes below zero. Any goroutine may call it: while the
// ring is in use it is a moment's sample.
func (r *ring) queued() uint32 {
	c := atomic.LoadUint32(r.consumer)
	p := atomic.LoadUint32(r.producer)
	return min(p-c, r.size)
}

func (r *ring) addrAt(idx uint32) *uint64 {
	return (*uint64)(unsafe.Add(r.slots, uintptr(idx&r.mask)*addrSize))
}

func (r *ring) descAt(idx uint32) *Desc {
	return (*Desc)(unsafe.Add(r.slots, uintptr(idx&r.mask)*descSize))
}

// unmap releases an mmap'ed area; a no-op for rings built by New*.
func (r *ring) unmap() error {
	if !r.mapped {
		return nil
	}
	mem := r.mem
	r.mapped = false
	r.mem = nil
	r.producer, r.consumer, r.flags, r.slots = nil, nil, nil, nil
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("rings: munmap: %w", err)
	}
	return nil
}

// mapArea mmaps one ring from an AF_XDP socket.
func mapArea(fd int, pgoff int64, off unix.XDPRingOffset, size uint32, elem uint64) ([]byte, error) {
	if size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("%w (got %d)", errNotPow2, size)
	}
	length := off.Desc + uint64(size)*elem
	if length > uint64(int(^uint(0)>>1)) {
		return nil, fmt.Errorf("rings: ring of %d elements too large", size)
	}
	mem, err := unix.Mmap(fd, pgoff, int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("rings: mmap ring (pgoff %#x, %d bytes): %w", pgoff, length, err)
	}
	return mem, nil
}

// MmapOffsets reads the ring layout of an AF_XDP socket
// (getsockopt SOL_XDP XDP_MMAP_OFFSETS). The ring sizes must have been set
// (XDP_RX_RING, XDP_TX_RING, XDP_UMEM_FILL_RING,
// XDP_UMEM_COMPLETION_RING) beforehand for the offsets to be usable.
func MmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	l := uint32(unsafe.Sizeof(off))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return off, fmt.Errorf("rings: getsockopt XDP_MMAP_OFFSETS: %w", e)
	}
	if l != uint32(unsafe.Sizeof(off)) {
		// Pre-5.4 kernels return a layout without the flags fields.
		return off, fmt.Errorf("rings: XDP_MMAP_OFFSETS returned %d bytes, want %d (kernel too old)", l, unsafe.Sizeof(off))
	}
	return off, nil
}
