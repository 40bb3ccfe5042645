// Package xsk opens AF_XDP sockets over the appliance's own UMEM and rings
// (packages umem and rings) with raw syscalls: UMEM registration, ring
// sizing and mapping, zero-copy or copy bind with need_wakeup, and
// XDP_SHARED_UMEM so every socket of a lane shares that lane's UMEM with its
// own fill and completion rings (one per device/queue).
//
// asavie/xdp is not used here: it gives every socket a private UMEM and has
// no need_wakeup, and moving descriptors between sockets without copying
// needs one UMEM shared by all of them.
package xsk

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/bond-appliance/bond-appliance/rings"
	"github.com/bond-appliance/bond-appliance/umem"
	"golang.org/x/sys/unix"
)

// BindMode is the config key dataplane.xdp_bind.
type BindMode string

// Bind modes.
const (
	BindAuto     BindMode = "auto"     // zero-copy, falling back to copy
	BindZeroCopy BindMode = "zerocopy" // zero-copy or fail
	BindCopy     BindMode = "copy"     // copy mode
)

// Options configures a socket.
type Options struct {
	RingSize uint32 // entries of each of the four rings (power of two)
	Bind     BindMode
	// TxBudget is how many descriptors the kernel should send per TX
	// kick in copy mode (XDP_MAX_TX_SKB_BUDGET, Linux >= 6.16), normally
	// the lane's batch size. It is clamped to what the kernel accepts
	// ([DefaultTxBudget] .. RingSize); 0 leaves the kernel's default.
	TxBudget uint32
	// BusyPoll, when not zero, asks the kernel to busy-poll the socket's
	// NAPI context from the lane's own syscalls (the TX kick, the RX
	// wake-up) for up to that long, preferring that to softirq processing
	// (SO_PREFER_BUSY_POLL, SO_BUSY_POLL). It matters for NAPI drivers in
	// zero-copy mode; on copy-mode veth the sender's softirq has already
	// delivered the frame when the lane looks (perf/cmd/bahost measures it).
	BusyPoll time.Duration
	// BusyPollBudget is the packets per busy poll (SO_BUSY_POLL_BUDGET); 0
	// leaves the kernel's default (8). Only with BusyPoll.
	BusyPollBudget uint32
	// SG binds the socket for multi-buffer frames (XDP_USE_SG, Linux ≥
	// 6.6): a frame longer than a UMEM frame less its headroom arrives
	// and leaves as a chain of descriptors marked XDP_PKT_CONTD. Only the
	// socket registering the UMEM sets it; sockets sharing the UMEM
	// inherit it. Zero-copy multi-buffer needs driver support: in auto
	// mode a driver without it gets a copy-mode socket.
	SG bool
}

// DefaultTxBudget is the kernel's copy-mode budget per TX kick
// (TX_BATCH_SIZE in net/xdp/xsk.c), in effect when XDP_MAX_TX_SKB_BUDGET
// is not set or not supported.
const DefaultTxBudget = 32

// Socket is one bound AF_XDP socket (one device queue).
type Socket struct {
	FD       int
	Ifindex  int
	Queue    int
	ZeroCopy bool
	// TxBudget is the copy-mode transmit budget per kick in effect: the
	// value XDP_MAX_TX_SKB_BUDGET took, or [DefaultTxBudget] when the
	// kernel refused it (lane.Port.TxBudget).
	TxBudget uint32
	// BusyPoll is whether the kernel took the busy-poll options
	// (Options.BusyPoll); false when it refused one of them.
	BusyPoll bool
	RX       *rings.RX
	TX       *rings.TX
	Fill     *rings.Fill
	Comp     *rings.Completion
}

func setInt(fd, opt int, v uint32) error {
	return unix.SetsockoptInt(fd, unix.SOL_XDP, opt, int(v))
}

// Open creates a socket on (ifindex, queue). When shared is nil the socket
// registers u; otherwise it binds with XDP_SHARED_UMEM to shared's UMEM.
func Open(u *umem.UMEM, ifindex, queue int, opt Options, shared *Socket) (*Socket, error) {
	if shared != nil {
		// A socket sharing a UMEM may not pass mode flags: it inherits
		// zero-copy or copy and need_wakeup from the socket owning the UMEM.
		return open(u, ifindex, queue, opt, shared, 0)
	}
	switch opt.Bind {
	case BindZeroCopy:
		return open(u, ifindex, queue, opt, shared, unix.XDP_ZEROCOPY)
	case BindCopy:
		return open(u, ifindex, queue, opt, shared, unix.XDP_COPY)
	default:
		s, err := open(u, ifindex, queue, opt, shared, unix.XDP_ZEROCOPY)
		if err == nil {
			return s, nil
		}
		s, cerr := open(u, ifindex, queue, opt, shared, unix.XDP_COPY)
		if cerr != nil {
			return nil, fmt.Errorf("zero-copy: %v; copy: %w", err, cerr)
		}
		return s, nil
	}
}

func open(u *umem.UMEM, ifindex, queue int, opt Options, shared *Socket, mode uint16) (_ *Socket, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_XDP socket: %w", err)
	}
	s := &Socket{FD: fd, Ifindex: ifindex, Queue: queue}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if shared == nil {
		if err := u.Register(fd, 0, 0); err != nil {
			return nil, fmt.Errorf("XDP_UMEM_REG: %w", err)
		}
	}
	n := opt.RingSize
	for _, o := range []struct {
		opt  int
		name string
	}{{unix.XDP_UMEM_FILL_RING, "fill"}, {unix.XDP_UMEM_COMPLETION_RING, "completion"}, {unix.XDP_RX_RING, "rx"}, {unix.XDP_TX_RING, "tx"}} {
		if err := setInt(fd, o.opt, n); err != nil {
			return nil, fmt.Errorf("set %s ring size %d: %w", o.name, n, err)
		}
	}
	s.TxBudget = setTxBudget(opt.TxBudget, n, func(v uint32) error { return setInt(fd, unix.XDP_MAX_TX_SKB_BUDGET, v) })
	s.BusyPoll = setBusyPoll(opt.BusyPoll, opt.BusyPollBudget, func(o, v int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, v) })
	off, err := rings.MmapOffsets(fd)
	if err != nil {
		return nil, fmt.Errorf("XDP_MMAP_OFFSETS: %w", err)
	}
	if s.Fill, err = rings.MapFill(fd, off.Fr, n); err != nil {
		return nil, err
	}
	if s.Comp, err = rings.MapCompletion(fd, off.Cr, n); err != nil {
		return nil, err
	}
	if s.RX, err = rings.MapRX(fd, off.Rx, n); err != nil {
		return nil, err
	}
	if s.TX, err = rings.MapTX(fd, off.Tx, n); err != nil {
		return nil, err
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_USE_NEED_WAKEUP | mode, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if opt.SG {
		sa.Flags |= unix.XDP_USE_SG
	}
	if shared != nil {
		sa.Flags = unix.XDP_SHARED_UMEM
		sa.SharedUmemFD = uint32(shared.FD)
	}
	if err := unix.Bind(fd, sa); err != nil {
		m := "copy"
		switch {
		case shared != nil:
			m = "shared UMEM"
		case mode == unix.XDP_ZEROCOPY:
			m = "zero-copy"
		}
		if opt.SG && shared == nil {
			m += ", multi-buffer"
		}
		return nil, fmt.Errorf("bind ifindex %d queue %d (%s): %w", ifindex, queue, m, err)
	}
	s.ZeroCopy = mode == unix.XDP_ZEROCOPY || (shared != nil && shared.ZeroCopy)
	return s, nil
}

// ErrNoSG is returned (wrapped) by ProbeSG when the kernel has no
// multi-buffer AF_XDP sockets.
var ErrNoSG = errors.New("the kernel does not support multi-buffer AF_XDP sockets (XDP_USE_SG, Linux ≥ 6.6), which frames longer than one UMEM frame need")

// ProbeSG reports whether the kernel accepts XDP_USE_SG, changing
// nothing: it binds a fresh socket to interface index 0 with the flag.
// The kernel checks the flags before it looks up the device, so it
// answers EINVAL for an unknown flag and ENODEV when it knows them all.
func ProbeSG() error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("AF_XDP socket: %w", err)
	}
	defer unix.Close(fd)
	err = unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_USE_SG | unix.XDP_COPY, Ifindex: 0})
	switch {
	case errors.Is(err, unix.ENODEV):
		return nil
	case errors.Is(err, unix.EINVAL):
		return ErrNoSG
	case err == nil:
		return nil
	}
	return fmt.Errorf("probe XDP_USE_SG: %w", err)
}

// setTxBudget asks for want descriptors per TX kick (clamped to the
// kernel's range: at least DefaultTxBudget, at most the TX ring's size)
// through set, which does setsockopt(XDP_MAX_TX_SKB_BUDGET) once the TX
// ring exists. It returns the budget in effect: DefaultTxBudget when want
// is 0 or the kernel refuses (ENOPROTOOPT before Linux 6.16, EINVAL,
// EACCES for a value out of range), silently, since only the number of
// kicks per batch depends on it.
func setTxBudget(want, ring uint32, set func(uint32) error) uint32 {
	if want == 0 {
		return DefaultTxBudget
	}
	b := min(max(want, DefaultTxBudget), ring)
	if b < DefaultTxBudget || set(b) != nil {
		return DefaultTxBudget
	}
	return b
}

// setBusyPoll sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL (in µs, at least 1)
// and, when budget is not 0, SO_BUSY_POLL_BUDGET through set (setsockopt
// at SOL_SOCKET). It reports whether all of them took. When the kernel
// refuses one (ENOPROTOOPT before Linux 5.11, EPERM without
// CAP_NET_ADMIN above net.core.busy_read, EINVAL) it turns the others
// back off and returns false: busy polling is an optimisation, never a
// reason to fail a socket.
func setBusyPoll(d time.Duration, budget uint32, set func(opt, v int) error) bool {
	if d <= 0 {
		return false
	}
	us := int(max(d/time.Microsecond, 1))
	steps := []struct{ opt, on int }{{unix.SO_PREFER_BUSY_POLL, 1}, {unix.SO_BUSY_POLL, us}}
	if budget > 0 {
		steps = append(steps, struct{ opt, on int }{unix.SO_BUSY_POLL_BUDGET, int(budget)})
	}
	for i, st := range steps {
		if set(st.opt, st.on) != nil {
			for _, u := range steps[:i] {
				_ = set(u.opt, 0)
			}
			return false
		}
	}
	return true
}

// KickTX asks the kernel to transmit what is on the TX ring. In copy mode
// the kernel sends at most TxBudget descriptors per call.
func (s *Socket) KickTX() error {
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.FD), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN:
		return nil
	}
	return e
}

// KickRX wakes the kernel to refill from the fill ring (need_wakeup).
func (s *Socket) KickRX() {
	_, _, _ = unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(s.FD), 0, 0, unix.MSG_DONTWAIT, 0, 0)
}

// Stats reads XDP_STATISTICS.
func (s *Socket) Stats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	l := uint32(unsafe.Sizeof(st))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.FD), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return st, e
	}
	return st, nil
}

// Close unmaps the rings and closes the socket.
func (s *Socket) Close() error {
	var errs []error
	if s.RX != nil {
		errs = append(errs, s.RX.Unmap())
	}
	if s.TX != nil {
		errs = append(errs, s.TX.Unmap())
	}
	if s.Fill != nil {
		errs = append(errs, s.Fill.Unmap())
	}
	if s.Comp != nil {
		errs = append(errs, s.Comp.Unmap())
	}
	if s.FD >= 0 {
		errs = append(errs, unix.Close(s.FD))
		s.FD = -1
	}
	return errors.Join(errs...)
}

// XDPStats returns XDP_STATISTICS as plain numbers (for status).
func (s *Socket) XDPStats() (rxDropped, rxInvalid, txInvalid, rxRingFull, fillEmpty, txEmpty uint64, err error) {
	st, err := s.Stats()
	return st.Rx_dropped, st.Rx_invalid_descs, st.Tx_invalid_descs, st.Rx_ring_full, st.Rx_fill_ring_empty_descs, st.Tx_ring_empty_descs, err
}
