// Package xdpprog builds and attaches the appliance's XDP program with
// cilium/ebpf: every frame received on queue q of a device is redirected to the
// AF_XDP socket stored at index q of that device's XSKMAP. Frames on a queue
// without a socket go to the kernel stack (XDP_PASS), so a device is never
// blackholed while the lanes start or stop.
//
// The program is assembled in Go (cilium/ebpf/asm), so building the appliance
// needs no clang. It is attached through a BPF link where the kernel has them
// (Linux ≥ 5.9): a link is detached by the kernel when its last file
// descriptor closes, so even a crashed appliance leaves no program behind.
package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AttachMode selects how the program is attached (config key dataplane.xdp_attach).
type AttachMode string

// Attach modes.
const (
	AttachAuto    AttachMode = "auto"    // native, falling back to generic
	AttachNative  AttachMode = "native"  // driver mode only
	AttachGeneric AttachMode = "generic" // skb mode only
)

// offset of rx_queue_index in struct xdp_md (data, data_end, data_meta,
// ingress_ifindex, rx_queue_index, ...).
const xdpMDRxQueueIndex = 16

// xdpPass is the fallback action for bpf_redirect_map (lower bits of flags,
// Linux ≥ 5.6) when the map has no socket at the queue index.
const xdpPass = 2

// Program is one device's XSKMAP plus the redirect program using it.
type Program struct {
	Map  *ebpf.Map
	Prog *ebpf.Program
}

// Options select what the program does besides redirecting to the sockets.
type Options struct {
	// PassSlowProtocols hands slow-protocol frames (ethertype 0x8809:
	// LACPDUs, markers) to the kernel stack, where the appliance reads
	// them on a packet socket of their own, instead of the AF_XDP socket:
	// a flood of data frames that fills the socket's RX ring cannot then
	// take LACPDUs with it. For members.
	PassSlowProtocols bool
	// Frags loads the program as multi-buffer aware (xdp.frags,
	// BPF_F_XDP_HAS_FRAGS, Linux ≥ 5.18), for sockets bound with
	// XDP_USE_SG: the kernel then hands it frames spanning several
	// buffers (and lets veth run it natively above 3506 bytes). It reads
	// only the first buffer (the ethertype at offset 12, well inside
	// it), so it is correct either way.
	Frags bool
	// Fast adds the kernel fast path (see FastMaps) with the maps
	// every program of the process shares: a member's program (FastHost
	// false) delivers to the host veth, the host veth appliance end's
	// (FastHost true) picks the member.
	Fast     *FastMaps
	FastHost bool
}

// New creates an XSKMAP with queues entries and the redirect program.
func New(queues int) (*Program, error) { return NewWithOptions(queues, Options{}) }

// offsets in struct xdp_md
const (
	xdpMDData    = 0
	xdpMDDataEnd = 4
)

// slowProtocolsLE is ethertype 0x8809 as a little-endian 16-bit load of
// its two bytes in network order.
const slowProtocolsLE = 0x0988

// NewWithOptions creates an XSKMAP with queues entries and the program.
func NewWithOptions(queues int, opt Options) (*Program, error) {
	if queues < 1 {
		return nil, fmt.Errorf("xdpprog: queues must be >= 1, got %d", queues)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "bond_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(queues),
	})
	if err != nil {
		return nil, fmt.Errorf("xdpprog: create XSKMAP: %w", err)
	}
	if opt.Fast != nil {
		insns := opt.Fast.memberInsns(m, opt.PassSlowProtocols)
		name := "bond_fast_rx"
		if opt.FastHost {
			insns, name = opt.Fast.hostInsns(m), "bond_fast_tx"
		}
		p, err := loadFast(name, insns, opt.Frags)
		if err != nil {
			m.Close()
			return nil, err
		}
		return &Program{Map: m, Prog: p}, nil
	}
	var insns asm.Instructions
	if opt.PassSlowProtocols {
		insns = append(insns,
			// if data + 14 <= data_end && ethertype == 0x8809: XDP_PASS
			asm.LoadMem(asm.R2, asm.R1, xdpMDData, asm.Word),
			asm.LoadMem(asm.R3, asm.R1, xdpMDDataEnd, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 14),
			asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
			asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
			asm.JNE.Imm(asm.R5, slowProtocolsLE, "redirect"),
			asm.Mov.Imm(asm.R0, xdpPass),
			asm.Return(),
		)
	}
	insns = append(insns,
		// r2 = ctx->rx_queue_index
		asm.LoadMem(asm.R2, asm.R1, xdpMDRxQueueIndex, asm.Word).WithSymbol("redirect"),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	spec := &ebpf.ProgramSpec{
		Name:         "bond_redirect",
		Type:         ebpf.XDP,
		Instructions: insns,
		License:      "GPL",
	}
	if opt.Frags {
		spec.Flags = unix.BPF_F_XDP_HAS_FRAGS
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("xdpprog: load program: %w", err)
	}
	return &Program{Map: m, Prog: p}, nil
}

// ProbeFrags loads (and unloads) a multi-buffer aware XDP program,
// changing nothing: an error says the kernel cannot run one.
func ProbeFrags() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "bond_probe", Type: ebpf.XDP, License: "GPL", Flags: unix.BPF_F_XDP_HAS_FRAGS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("the kernel does not load multi-buffer XDP programs (xdp.frags, BPF_F_XDP_HAS_FRAGS, Linux ≥ 5.18): %w", err)
	}
	return p.Close()
}

// SetSocket stores the AF_XDP socket fd at queue index q.
func (p *Program) SetSocket(q int, fd int) error {
	if err := p.Map.Update(uint32(q), uint32(fd), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xdpprog: XSKMAP[%d] = fd %d: %w", q, fd, err)
	}
	return nil
}

// ClearSocket removes the socket at queue index q.
func (p *Program) ClearSocket(q int) error {
	err := p.Map.Delete(uint32(q))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xdpprog: XSKMAP delete %d: %w", q, err)
	}
	return nil
}

// Close releases the program and map (detach first).
func (p *Program) Close() error {
	return errors.Join(p.Prog.Close(), p.Map.Close())
}

// Attachment is a program attached to one device.
type Attachment struct {
	Ifindex int
	Mode    AttachMode // the mode actually used: native or generic
	// NativeErr is why native mode was refused when auto fell back to
	// generic (nil otherwise).
	NativeErr error
	link      link.Link
}

// ErrBusy is returned when the device already has an XDP program.
var ErrBusy = errors.New("another XDP program is already attached")

// Existing returns the id of the XDP program attached to the device, 0 if none.
func Existing(ifindex int) (uint32, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return 0, err
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return 0, nil
	}
	return x.ProgId, nil
}

// Attach attaches p to the device. With force false it refuses (ErrBusy) when
// the device already holds an XDP program; with force true the existing
// program is replaced for as long as the appliance runs.
func (p *Program) Attach(ifindex int, mode AttachMode, force bool) (*Attachment, error) {
	id, err := Existing(ifindex)
	if err != nil {
		return nil, err
	}
	if id != 0 && !force {
		return nil, fmt.Errorf("%w (program id %d; set force: true to replace it)", ErrBusy, id)
	}
	try := func(flags link.XDPAttachFlags) (link.Link, error) {
		return link.AttachXDP(link.XDPOptions{Program: p.Prog, Interface: ifindex, Flags: flags})
	}
	if id != 0 && force {
		// A BPF link cannot replace a program attached by netlink; detach it.
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return nil, err
		}
		for _, f := range []int{0, 1 << 1, 1 << 2} { // any, SKB_MODE, DRV_MODE
			_ = netlink.LinkSetXdpFdWithFlags(l, -1, f)
		}
	}
	switch mode {
	case AttachNative:
		lk, err := try(link.XDPDriverMode)
		if err != nil {
			return nil, fmt.Errorf("native XDP attach: %w", err)
		}
		return &Attachment{Ifindex: ifindex, Mode: AttachNative, link: lk}, nil
	case AttachGeneric:
		lk, err := try(link.XDPGenericMode)
		if err != nil {
			return nil, fmt.Errorf("generic XDP attach: %w", err)
		}
		return &Attachment{Ifindex: ifindex, Mode: AttachGeneric, link: lk}, nil
	default:
		lk, nerr := try(link.XDPDriverMode)
		if nerr == nil {
			return &Attachment{Ifindex: ifindex, Mode: AttachNative, link: lk}, nil
		}
		lk, gerr := try(link.XDPGenericMode)
		if gerr != nil {
			return nil, fmt.Errorf("XDP attach: native: %v; generic: %w", nerr, gerr)
		}
		return &Attachment{Ifindex: ifindex, Mode: AttachGeneric, NativeErr: nerr, link: lk}, nil
	}
}

// Detach removes the program from the device.
func (a *Attachment) Detach() error {
	if a == nil || a.link == nil {
		return nil
	}
	err := a.link.Close()
	a.link = nil
	return err
}
