package rings

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xskSocket opens an AF_XDP socket with a registered UMEM and all four ring
// sizes set; it skips the test when not root or AF_XDP is unavailable.
func xskSocket(t *testing.T, frames, ringSize uint32) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for AF_XDP")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("AF_XDP socket unavailable: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })

	const frameSize = 2048
	area, err := unix.Mmap(-1, 0, int(frames*frameSize), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		t.Fatalf("mmap umem: %v", err)
	}
	// Unmapped after the socket is closed (cleanups run last-in first-out).
	t.Cleanup(func() { unix.Munmap(area) })

	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&area[0]))),
		Len:  uint64(len(area)),
		Size: frameSize,
	}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); e != 0 {
		t.Fatalf("XDP_UMEM_REG: %v", e)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, int(ringSize)); err != nil {
			t.Fatalf("setsockopt ring %d: %v", opt, err)
		}
	}
	return fd
}

// mapped reports whether /proc/self/maps has a mapping starting at p.
func mapped(t *testing.T, p unsafe.Pointer) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Appendf(nil, "%x-", uintptr(p))
	for line := range bytes.Lines(maps) {
		if bytes.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func TestMapRealSocket(t *testing.T) {
	const ringSize = 64
	fd := xskSocket(t, 256, ringSize)
	off, err := MmapOffsets(fd)
	if err != nil {
		t.Fatal(err)
	}

	f, err := MapFill(fd, off.Fr, ringSize)
	if err != nil {
		t.Fatal(err)
	}
	c, err := MapCompletion(fd, off.Cr, ringSize)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := MapRX(fd, off.Rx, ringSize)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := MapTX(fd, off.Tx, ringSize)
	if err != nil {
		t.Fatal(err)
	}

	type ringInfo struct {
		name  string
		size  uint32
		base  unsafe.Pointer
		unmap func() error
	}
	rs := []ringInfo{
		{"fill", f.Size(), unsafe.Pointer(unsafe.SliceData(f.r.mem)), f.Unmap},
		{"completion", c.Size(), unsafe.Pointer(unsafe.SliceData(c.r.mem)), c.Unmap},
		{"rx", rx.Size(), unsafe.Pointer(unsafe.SliceData(rx.r.mem)), rx.Unmap},
		{"tx", tx.Size(), unsafe.Pointer(unsafe.SliceData(tx.r.mem)), tx.Unmap},
	}
	for _, r := range rs {
		if r.size != ringSize {
			t.Errorf("%s: Size = %d", r.name, r.size)
		}
		if !mapped(t, r.base) {
			t.Errorf("%s: ring not in /proc/self/maps", r.name)
		}
	}

	// Fresh rings: everything free on the producer side, nothing to consume.
	if free := f.Free(); free != ringSize {
		t.Errorf("fill Free = %d", free)
	}
	if free := tx.Free(); free != ringSize {
		t.Errorf("tx Free = %d", free)
	}
	if _, got := rx.Peek(1); got != 0 {
		t.Errorf("rx Peek got %d on unbound socket", got)
	}
	if _, got := c.Peek(1); got != 0 {
		t.Errorf("completion Peek got %d on unbound socket", got)
	}
	// Writing to the fill ring of an unbound socket is harmless; the kernel
	// only reads it after bind.
	idx, got := f.Reserve(ringSize)
	if got != ringSize {
		t.Fatalf("fill Reserve got %d", got)
	}
	for i := range got {
		f.Set(idx+i, uint64(i)*2048)
	}
	f.Submit(got)
	if free := f.Free(); free != 0 {
		t.Errorf("fill Free after submit = %d", free)
	}
	if tx.Outstanding() != 0 {
		t.Errorf("tx Outstanding = %d", tx.Outstanding())
	}

	for _, r := range rs {
		if err := r.unmap(); err != nil {
			t.Errorf("%s: Unmap: %v", r.name, err)
		}
		if mapped(t, r.base) {
			t.Errorf("%s: still mapped after Unmap", r.name)
		}
		if err := r.unmap(); err != nil {
			t.Errorf("%s: second Unmap: %v", r.name, err)
		}
	}
}

func TestMapRealSocketErrors(t *testing.T) {
	fd := xskSocket(t, 64, 32)
	off, err := MmapOffsets(fd)
	if err != nil {
		t.Fatal(err)
	}
	// Asking for a larger ring than configured: the kernel refuses the mmap.
	if r, err := MapRX(fd, off.Rx, 4096); err == nil {
		r.Unmap()
		t.Fatal("MapRX with oversized ring succeeded")
	}
	if _, err := MapFill(fd, off.Fr, 48); err == nil {
		t.Fatal("MapFill with non power of two succeeded")
	}
}
