package netdev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// devState is what the journal reads of a device.
type devState struct {
	Index    int
	Type     string // netlink link type: veth, tuntap, ...
	MAC      net.HardwareAddr
	MTU      int
	Up       bool
	Allmulti bool // the administrator's flag (what netlink reports)
	Promisc  bool
	XDPProg  uint32
	XDPFlags int // the attach mode of XDPProg as XDP_FLAGS_* (SKB, DRV or HW mode)
}

// devOps are the device operations the journal makes (an interface so the
// journal's bookkeeping is tested without devices).
type devOps interface {
	get(name string) (devState, error)
	setMAC(name string, mac net.HardwareAddr) error
	setMTU(name string, mtu int) error
	setUp(name string, up bool) error
	setAllmulti(name string, on bool) error
	setPromisc(name string, on bool) error
	getChannels(name string) (Channels, error)
	setChannels(name string, ch Channels) error
	addVeth(host, peer string, queues int, mac net.HardwareAddr, mtu int) error
	del(name string) error
	// attachXDP attaches program id (or hold, when not nil) with flags.
	attachXDP(name string, id uint32, hold *ebpf.Program, flags int) error
	// ipv6Disabled reads net.ipv6.conf.<name>.disable_ipv6; ok is false
	// when the kernel has no such setting (no IPv6).
	ipv6Disabled(name string) (off, ok bool, err error)
	setIPv6Disabled(name string, off bool) error
	// gro reads generic receive offload (ETHTOOL_GGRO).
	gro(name string) (bool, error)
	setGRO(name string, on bool) error
}

// netlinkOps are the real device operations.
type netlinkOps struct{}

func link(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%s: %w", name, ErrNoDevice)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

func (netlinkOps) get(name string) (devState, error) {
	l, err := link(name)
	if err != nil {
		return devState{}, err
	}
	a := l.Attrs()
	d := devState{
		Index: a.Index, Type: l.Type(), MAC: append(net.HardwareAddr(nil), a.HardwareAddr...), MTU: a.MTU,
		Up: a.Flags&net.FlagUp != 0, Allmulti: a.RawFlags&unix.IFF_ALLMULTI != 0, Promisc: a.Promisc != 0,
	}
	if a.Xdp != nil && a.Xdp.Attached {
		d.XDPProg = a.Xdp.ProgId
		switch a.Xdp.AttachMode {
		case 1: // XDP_ATTACHED_DRV
			d.XDPFlags = 1 << 2 // XDP_FLAGS_DRV_MODE
		case 2: // XDP_ATTACHED_SKB
			d.XDPFlags = 1 << 1 // XDP_FLAGS_SKB_MODE
		case 3: // XDP_ATTACHED_HW
			d.XDPFlags = 1 << 3 // XDP_FLAGS_HW_MODE
		}
	}
	return d, nil
}

func (netlinkOps) setMAC(name string, mac net.HardwareAddr) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	err = netlink.LinkSetHardwareAddr(l, mac)
	if err == nil || l.Attrs().Flags&net.FlagUp == 0 {
		return err
	}
	if derr := netlink.LinkSetDown(l); derr != nil {
		return err
	}
	err = netlink.LinkSetHardwareAddr(l, mac)
	if uerr := netlink.LinkSetUp(l); err == nil {
		err = uerr
	}
	return err
}

func (netlinkOps) setMTU(name string, mtu int) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetMTU(l, mtu)
}

func (netlinkOps) setUp(name string, up bool) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

func (netlinkOps) setAllmulti(name string, on bool) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	if on {
		return netlink.LinkSetAllmulticastOn(l)
	}
	return netlink.LinkSetAllmulticastOff(l)
}

func (netlinkOps) setPromisc(name string, on bool) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	if on {
		return netlink.SetPromiscOn(l)
	}
	return netlink.SetPromiscOff(l)
}

func (netlinkOps) getChannels(name string) (Channels, error) { return GetChannels(name) }

func (netlinkOps) setChannels(name string, ch Channels) error { return SetChannels(name, ch) }

func (netlinkOps) addVeth(host, peer string, queues int, mac net.HardwareAddr, mtu int) error {
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name: host, HardwareAddr: mac, MTU: mtu,
			NumTxQueues: queues, NumRxQueues: queues, TxQLen: 1000,
		},
		PeerName:        peer,
		PeerNumTxQueues: uint32(queues),
		PeerNumRxQueues: uint32(queues),
		PeerMTU:         uint32(mtu),
	}
	return netlink.LinkAdd(v)
}

func (netlinkOps) del(name string) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	return netlink.LinkDel(l)
}

func (netlinkOps) attachXDP(name string, id uint32, hold *ebpf.Program, flags int) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	p := hold
	if p == nil {
		if p, err = ebpf.NewProgramFromID(ebpf.ProgramID(id)); err != nil {
			return fmt.Errorf("%w: %v", errProgGone, err)
		}
		defer p.Close()
	}
	return netlink.LinkSetXdpFdWithFlags(l, p.FD(), flags)
}

// errProgGone: a replaced XDP program no longer exists.
var errProgGone = errors.New("the program no longer exists")

func ipv6Path(name string) string { return "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6" }

func (netlinkOps) ipv6Disabled(name string) (bool, bool, error) {
	b, err := os.ReadFile(ipv6Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("%s: read disable_ipv6: %w", name, err)
	}
	return strings.TrimSpace(string(b)) == "1", true, nil
}

func (netlinkOps) setIPv6Disabled(name string, off bool) error {
	v := "0"
	if off {
		v = "1"
	}
	return os.WriteFile(ipv6Path(name), []byte(v), 0o644)
}

func (netlinkOps) gro(name string) (bool, error) {
	g := ethtoolValue{Cmd: ethtoolGGRO}
	if err := ethtoolIoctl(name, unsafe.Pointer(&g)); err != nil {
		return false, fmt.Errorf("%s: ethtool get gro: %w", name, err)
	}
	return g.Data != 0, nil
}

func (netlinkOps) setGRO(name string, on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	if err := setValue(name, ethtoolSGRO, v); err != nil {
		return fmt.Errorf("%s: ethtool set gro: %w", name, err)
	}
	return nil
}
