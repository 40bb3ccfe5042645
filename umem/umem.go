// Package umem manages one AF_XDP UMEM per lane: an anonymous shared
// memory area split into fixed-size frames, its registration on an AF_XDP
// socket (XDP_UMEM_REG), an O(1) free-frame stack, and an optional frame
// ledger that checks "every frame is in exactly one place" (free, fill ring,
// RX ring, in flight in user space, TX ring, completion ring).
//
// A UMEM is owned by a single goroutine (its lane) and takes no locks.
// Alloc, Free, Base, Frame and Move neither allocate nor make system calls.
package umem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Config describes a UMEM.
type Config struct {
	NumFrames uint32 // number of frames, > 0 (need not be a power of two)
	FrameSize uint32 // 2048 or 4096 bytes (XDP chunk size)
	HugePages bool   // try MAP_HUGETLB first, falling back to normal pages
}

// UMEM is a registered-able packet buffer area with a free-frame stack.
type UMEM struct {
	mem       []byte // NumFrames*FrameSize bytes handed to the kernel
	mapping   []byte // whole mmap (rounded up to the hugepage size if used)
	frameSize uint32
	numFrames uint32
	shift     uint   // log2(frameSize)
	baseMask  uint64 // ^(frameSize-1)
	huge      bool

	stack []uint32 // free frame indices; stack[:top] are free
	top   int

	rejected uint64 // Free calls dropped (address outside the UMEM, stack overflow)

	ledger *ledger // nil unless EnableLedger was called
}

// Test hooks.
var (
	mmapFn       = unix.Mmap
	hugePageSize = defaultHugePageSize
)

// Validation errors returned (wrapped) by New.
var (
	ErrFrameSize = errors.New("umem: frame size must be 2048 or 4096")
	ErrNumFrames = errors.New("umem: number of frames must be > 0")
	ErrTooLarge  = errors.New("umem: area too large")
)

// New maps an anonymous shared, pre-faulted area of NumFrames*FrameSize
// bytes and returns a UMEM with every frame free. With HugePages it first
// tries MAP_HUGETLB (length rounded up to the hugepage size) and silently
// falls back to normal pages if that fails; HugePages reports the outcome.
func New(cfg Config) (*UMEM, error) {
	if cfg.FrameSize != 2048 && cfg.FrameSize != 4096 {
		return nil, fmt.Errorf("%w (got %d)", ErrFrameSize, cfg.FrameSize)
	}
	if cfg.NumFrames == 0 {
		return nil, ErrNumFrames
	}
	size := uint64(cfg.NumFrames) * uint64(cfg.FrameSize)
	if size > math.MaxInt/2 {
		return nil, fmt.Errorf("%w: %d frames of %d bytes", ErrTooLarge, cfg.NumFrames, cfg.FrameSize)
	}

	const prot = unix.PROT_READ | unix.PROT_WRITE
	const flags = unix.MAP_SHARED | unix.MAP_ANONYMOUS | unix.MAP_POPULATE
	var mapping []byte
	huge := false
	if cfg.HugePages {
		hp := uint64(hugePageSize())
		length := (size + hp - 1) / hp * hp
		if m, err := mmapFn(-1, 0, int(length), prot, flags|unix.MAP_HUGETLB); err == nil {
			mapping, huge = m, true
		}
	}
	if mapping == nil {
		m, err := mmapFn(-1, 0, int(size), prot, flags)
		if err != nil {
			return nil, fmt.Errorf("umem: mmap %d bytes: %w", size, err)
		}
		mapping = m
	}

	u := &UMEM{
		mem:       mapping[:size:size],
		mapping:   mapping,
		frameSize: cfg.FrameSize,
		numFrames: cfg.NumFrames,
		shift:     uint(bits.TrailingZeros32(cfg.FrameSize)),
		baseMask:  ^uint64(cfg.FrameSize - 1),
		huge:      huge,
		stack:     make([]uint32, cfg.NumFrames),
		top:       int(cfg.NumFrames),
	}
	// Frame 0 on top, so allocation starts at the lowest addresses.
	for i := range u.stack {
		u.stack[i] = cfg.NumFrames - 1 - uint32(i)
	}
	return u, nil
}

// defaultHugePageSize reads Hugepagesize from /proc/meminfo (2 MiB if
// unknown).
func defaultHugePageSize() int {
	const fallback = 2 << 20
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return fallback
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "Hugepagesize:" {
			kb, err := strconv.Atoi(string(f[1]))
			if err == nil && kb > 0 {
				return kb << 10
			}
		}
	}
	return fallback
}

// Mem returns the frame area (NumFrames*FrameSize bytes).
func (u *UMEM) Mem() []byte { return u.mem }

// HugePages reports whether the area is backed by hugepages.
func (u *UMEM) HugePages() bool { return u.huge }

// FrameSize returns the frame (chunk) size in bytes.
func (u *UMEM) FrameSize() uint32 { return u.frameSize }

// NumFrames returns the number of frames.
func (u *UMEM) NumFrames() uint32 { return u.numFrames }

// Register registers the area as the UMEM of AF_XDP socket fd
// (setsockopt SOL_XDP XDP_UMEM_REG) with chunk size FrameSize. headroom is
// the per-frame headroom reserved before packet data and flags the
// XDP_UMEM_* flags.
func (u *UMEM) Register(fd int, headroom uint32, flags uint32) error {
	if u.mem == nil {
		return errors.New("umem: Register after Close")
	}
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(u.mem)))),
		Len:      uint64(len(u.mem)),
		Size:     u.frameSize,
		Headroom: headroom,
		Flags:    flags,
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	if e != 0 {
		return fmt.Errorf("umem: setsockopt XDP_UMEM_REG: %w", e)
	}
	return nil
}

// Close unmaps the area. The UMEM and every slice obtained from it must not
// be used afterwards. Calling Close again returns nil.
func (u *UMEM) Close() error {
	if u.mapping == nil {
		return nil
	}
	m := u.mapping
	u.mapping, u.mem = nil, nil
	u.top = 0
	if err := unix.Munmap(m); err != nil {
		return fmt.Errorf("umem: munmap: %w", err)
	}
	return nil
}

// Alloc pops a free frame and returns its base address. ok is false when no
// frame is free. With the ledger on, the frame moves Free -> InFlight.
func (u *UMEM) Alloc() (addr uint64, ok bool) {
	if u.top == 0 {
		return 0, false
	}
	u.top--
	f := u.stack[u.top]
	if u.ledger != nil {
		u.ledger.alloc(f)
	}
	return uint64(f) << u.shift, true
}

// AllocBatch fills dst with base addresses of free frames and returns how
// many it allocated (less than len(dst) when frames run out).
func (u *UMEM) AllocBatch(dst []uint64) int {
	n := min(len(dst), u.top)
	for i := range dst[:n] {
		u.top--
		f := u.stack[u.top]
		if u.ledger != nil {
			u.ledger.alloc(f)
		}
		dst[i] = uint64(f) << u.shift
	}
	return n
}

// Free returns the frame containing addr (any address inside the frame) to
// the free stack.
//
// Addresses outside the UMEM, and frees that would overflow the stack, are
// dropped and counted (reported by CheckLedger). With the ledger on, the
// frame must be InFlight or Completion; freeing a frame that is already
// Free is recorded as a double free and dropped (so the stack never holds a
// frame twice), freeing a frame that is on a ring (Fill, RX, TX) is recorded
// as a violation but performed. Without the ledger a double free is not
// detected.
func (u *UMEM) Free(addr uint64) {
	f := addr >> u.shift
	if f >= uint64(u.numFrames) {
		u.reject(opRejectRange, addr, f)
		return
	}
	if u.ledger != nil && !u.ledger.free(uint32(f), addr) {
		return
	}
	if u.top == len(u.stack) {
		u.reject(opRejectOverflow, addr, f)
		return
	}
	u.stack[u.top] = uint32(f)
	u.top++
}

// FreeBatch frees every address in addrs as Free does.
func (u *UMEM) FreeBatch(addrs []uint64) {
	for _, a := range addrs {
		u.Free(a)
	}
}

func (u *UMEM) reject(o op, addr, frame uint64) {
	u.rejected++
	if u.ledger != nil {
		u.ledger.record(violation{op: o, addr: addr, frame: frame, from: placeNone, to: Free, was: placeNone})
	}
}

// Available returns the number of free frames.
func (u *UMEM) Available() int { return u.top }

// Base returns the base address of the frame containing addr.
func (u *UMEM) Base(addr uint64) uint64 { return addr & u.baseMask }

// Frame returns the n bytes at UMEM address addr, with capacity n (appends
// never run into the next frame). It panics like a slice expression if the
// range is outside the area.
func (u *UMEM) Frame(addr uint64, n uint32) []byte {
	end := addr + uint64(n)
	return u.mem[addr:end:end]
}
