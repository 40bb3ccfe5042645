package rings

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Made-up shared layout used by the simulated kernel: producer at 0,
// consumer at 64, flags at 128, ring elements at 192.
var simOff = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

// simMem returns a zeroed, 8-byte aligned area for a ring of size elements
// of elem bytes laid out as simOff.
func simMem(size uint32, elem uintptr) []byte {
	n := 192 + uintptr(size)*elem
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

// simKernel owns the kernel side of one ring laid out as simOff.
type simKernel struct {
	mem  []byte
	size uint32
}

func newSim(size uint32, elem uintptr) *simKernel {
	return &simKernel{mem: simMem(size, elem), size: size}
}

func (k *simKernel) u32(off uintptr) *uint32 {
	return (*uint32)(unsafe.Pointer(&k.mem[off]))
}

func (k *simKernel) producer() *uint32 { return k.u32(0) }
func (k *simKernel) consumer() *uint32 { return k.u32(64) }
func (k *simKernel) flags() *uint32    { return k.u32(128) }

func (k *simKernel) addr(idx uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&k.mem[192+uintptr(idx&(k.size-1))*8]))
}

func (k *simKernel) desc(idx uint32) *Desc {
	return (*Desc)(unsafe.Pointer(&k.mem[192+uintptr(idx&(k.size-1))*16]))
}

func (k *simKernel) setWakeup(on bool) {
	if on {
		atomic.StoreUint32(k.flags(), unix.XDP_RING_NEED_WAKEUP|0x80)
	} else {
		atomic.StoreUint32(k.flags(), 0x80) // unrelated bit must be ignored
	}
}

// consumeAddrs consumes up to max published addresses (kernel as consumer of
// a Fill ring).
func (k *simKernel) consumeAddrs(max uint32) []uint64 {
	prod := atomic.LoadUint32(k.producer())
	cons := atomic.LoadUint32(k.consumer())
	n := min(prod-cons, max)
	out := make([]uint64, n)
	for i := range n {
		out[i] = *k.addr(cons + i)
	}
	atomic.StoreUint32(k.consumer(), cons+n)
	return out
}

// consumeDescs consumes up to max published descriptors (kernel as consumer
// of a TX ring).
func (k *simKernel) consumeDescs(max uint32) []Desc {
	prod := atomic.LoadUint32(k.producer())
	cons := atomic.LoadUint32(k.consumer())
	n := min(prod-cons, max)
	out := make([]Desc, n)
	for i := range n {
		out[i] = *k.desc(cons + i)
	}
	atomic.StoreUint32(k.consumer(), cons+n)
	return out
}

// space returns the free slots as seen by the kernel as producer.
func (k *simKernel) space() uint32 {
	return k.size - (atomic.LoadUint32(k.producer()) - atomic.LoadUint32(k.consumer()))
}

// produceAddrs publishes as many of addrs as fit (kernel as producer of a
// Completion ring) and returns how many.
func (k *simKernel) produceAddrs(addrs []uint64) int {
	prod := atomic.LoadUint32(k.producer())
	n := min(uint32(len(addrs)), k.space())
	for i := range n {
		*k.addr(prod + i) = addrs[i]
	}
	atomic.StoreUint32(k.producer(), prod+n)
	return int(n)
}

// produceDescs publishes as many of ds as fit (kernel as producer of an RX
// ring) and returns how many.
func (k *simKernel) produceDescs(ds []Desc) int {
	prod := atomic.LoadUint32(k.producer())
	n := min(uint32(len(ds)), k.space())
	for i := range n {
		*k.desc(prod + i) = ds[i]
	}
	atomic.StoreUint32(k.producer(), prod+n)
	return int(n)
}
