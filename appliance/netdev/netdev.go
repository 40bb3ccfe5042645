// Package netdev reads and changes what the appliance touches on network
// devices: MAC address, MTU, promiscuity, admin state, channel (queue) count
// and checksum offloads. It records every change it makes so Restore puts the
// device back as it found it. Link state comes from netlink
// (vishvananda/netlink); speed and duplex from ethtool netlink
// (mdlayher/ethtool); channel counts and offloads through the ethtool ioctl,
// which the ethtool netlink library does not cover.
package netdev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"unsafe"

	"github.com/mdlayher/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Info is a snapshot of a device.
type Info struct {
	Name     string
	Index    int
	MAC      net.HardwareAddr
	MTU      int
	Up       bool // administratively up
	Carrier  bool // lower layer up
	Promisc  bool
	Allmulti bool
	RxQueues int // usable receive queues (ethtool channels, else netlink)
	TxQueues int
	XDPProg  uint32 // id of an attached XDP program, 0 if none
	Kind     string // the link type netlink reports ("veth", "device", ...)
}

// ErrNoDevice is returned for a missing interface.
var ErrNoDevice = errors.New("no such network interface")

// CarrierNow reads the device's carrier as the driver set it
// (/sys/class/net/<name>/carrier). Netlink's IFF_LOWER_UP follows it only
// when the kernel's link watcher runs, up to a second later for a carrier
// that comes up; a device that is down has no carrier. It falls back to
// netlink where sysfs does not show the device (another network
// namespace's sysfs).
func CarrierNow(name string) (bool, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/carrier")
	if err == nil {
		return strings.TrimSpace(string(b)) == "1", nil
	}
	if errors.Is(err, syscall.EINVAL) {
		return false, nil // reading carrier of a device that is down
	}
	in, gerr := Get(name)
	if gerr != nil {
		return false, gerr
	}
	return in.Carrier, nil
}

// Get reads the device's current state.
func Get(name string) (*Info, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%s: %w", name, ErrNoDevice)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return infoOf(l), nil
}

func infoOf(l netlink.Link) *Info {
	a := l.Attrs()
	in := &Info{
		Name:     a.Name,
		Index:    a.Index,
		MAC:      append(net.HardwareAddr(nil), a.HardwareAddr...),
		MTU:      a.MTU,
		Up:       a.Flags&net.FlagUp != 0,
		Carrier:  a.OperState == netlink.OperUp || (a.RawFlags&unix.IFF_LOWER_UP != 0),
		Promisc:  a.Promisc != 0,
		Allmulti: a.RawFlags&unix.IFF_ALLMULTI != 0,
		RxQueues: a.NumRxQueues,
		TxQueues: a.NumTxQueues,
		Kind:     l.Type(),
	}
	if a.Xdp != nil && a.Xdp.Attached {
		in.XDPProg = a.Xdp.ProgId
	}
	if ch, err := GetChannels(a.Name); err == nil {
		n := int(ch.Combined)
		if int(ch.Rx) > n {
			n = int(ch.Rx)
		}
		if n > 0 {
			in.RxQueues = n
		}
		t := int(ch.Combined)
		if int(ch.Tx) > t {
			t = int(ch.Tx)
		}
		if t > 0 {
			in.TxQueues = t
		}
	}
	return in
}

// Channels mirrors struct ethtool_channels (counts and maxima).
type Channels struct {
	MaxRx, MaxTx, MaxOther, MaxCombined uint32
	Rx, Tx, Other, Combined             uint32
}

type ethtoolChannels struct {
	Cmd uint32
	Channels
}

type ifreqData struct {
	Name [unix.IFNAMSIZ]byte
	Data uintptr
	_    [16]byte
}

func ethtoolIoctl(name string, data unsafe.Pointer) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.Name[:unix.IFNAMSIZ-1], name)
	ifr.Data = uintptr(data)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if e != 0 {
		return e
	}
	return nil
}

const (
	ethtoolGChannels = 0x3c
	ethtoolSChannels = 0x3d
	ethtoolSTxCsum   = 0x17
	ethtoolSSG       = 0x19
	ethtoolSTSO      = 0x1f
	ethtoolSGSO      = 0x24
	ethtoolGGRO      = 0x2b
	ethtoolSGRO      = 0x2c
)

// GetChannels reads the channel counts (ETHTOOL_GCHANNELS).
func GetChannels(name string) (Channels, error) {
	c := ethtoolChannels{Cmd: ethtoolGChannels}
	if err := ethtoolIoctl(name, unsafe.Pointer(&c)); err != nil {
		return Channels{}, fmt.Errorf("%s: ethtool get channels: %w", name, err)
	}
	return c.Channels, nil
}

// SetChannels changes the channel counts (ETHTOOL_SCHANNELS).
func SetChannels(name string, ch Channels) error {
	c := ethtoolChannels{Cmd: ethtoolSChannels, Channels: ch}
	if err := ethtoolIoctl(name, unsafe.Pointer(&c)); err != nil {
		return fmt.Errorf("%s: ethtool set channels: %w", name, err)
	}
	return nil
}

type ethtoolValue struct{ Cmd, Data uint32 }

func setValue(name string, cmd, val uint32) error {
	v := ethtoolValue{Cmd: cmd, Data: val}
	return ethtoolIoctl(name, unsafe.Pointer(&v))
}

// DisableTxOffloads turns off transmit checksum offload, scatter-gather, TSO
// and GSO on a device the appliance created (the host end of the veth pair),
// so every frame the host stack hands over is complete on the wire: AF_XDP
// copies bytes and cannot finish a partial checksum.
func DisableTxOffloads(name string) error { return setTxOffloads(name, 0) }

// EnableTxOffloads turns them back on (csum first: SG, TSO and GSO
// depend on it).
func EnableTxOffloads(name string) error { return setTxOffloads(name, 1) }

func setTxOffloads(name string, v uint32) error {
	cmds := []uint32{ethtoolSTSO, ethtoolSGSO, ethtoolSSG, ethtoolSTxCsum}
	if v == 1 {
		cmds = []uint32{ethtoolSTxCsum, ethtoolSSG, ethtoolSTSO, ethtoolSGSO}
	}
	var errs []error
	for _, cmd := range cmds {
		if err := setValue(name, cmd, v); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			errs = append(errs, fmt.Errorf("%s: ethtool cmd %#x: %w", name, cmd, err))
		}
	}
	return errors.Join(errs...)
}

// SetGRO turns generic receive offload on or off (ETHTOOL_SGRO) and
// reports whether it changed. On a veth end GRO also turns on the
// device's NAPI receive rings, which frames redirected to its peer by XDP
// (ndo_xdp_xmit) need.
func SetGRO(name string, on bool) (changed bool, err error) {
	g := ethtoolValue{Cmd: ethtoolGGRO}
	if err := ethtoolIoctl(name, unsafe.Pointer(&g)); err != nil {
		return false, fmt.Errorf("%s: ethtool get gro: %w", name, err)
	}
	want := uint32(0)
	if on {
		want = 1
	}
	if g.Data == want {
		return false, nil
	}
	if err := setValue(name, ethtoolSGRO, want); err != nil {
		return false, fmt.Errorf("%s: ethtool set gro: %w", name, err)
	}
	return true, nil
}

// LinkMode returns speed in Mb/s and duplex ("full", "half", "unknown") via
// ethtool netlink. Speed 0 means unknown.
func LinkMode(name string) (speed int, duplex string, err error) {
	c, err := ethtool.New()
	if err != nil {
		return 0, "unknown", err
	}
	defer c.Close()
	m, err := c.LinkMode(ethtool.Interface{Name: name})
	if err != nil {
		return 0, "unknown", err
	}
	sp := int(m.SpeedMegabits)
	if sp < 0 || sp == 0xffffffff || m.SpeedMegabits == -1 {
		sp = 0
	}
	switch m.Duplex {
	case ethtool.Full:
		duplex = "full"
	case ethtool.Half:
		duplex = "half"
	default:
		duplex = "unknown"
	}
	return sp, duplex, nil
}

// LinkDetected reads the ethtool link state (ETHTOOL_MSG_LINKSTATE), used
// when use_carrier is 0.
func LinkDetected(name string) (bool, error) {
	c, err := ethtool.New()
	if err != nil {
		return false, err
	}
	defer c.Close()
	s, err := c.LinkState(ethtool.Interface{Name: name})
	if err != nil {
		return false, err
	}
	return s.Link, nil
}
