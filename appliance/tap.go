package appliance

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/vnet"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tapDevice is a multi-queue TAP host device: one non-blocking fd per lane,
// opened with a vnet header (IFF_VNET_HDR, 10 bytes) and offloads: the
// host stack hands it TSO/USO super-frames with partial checksums, which
// the lane segments (appliance/vnet), and takes coalesced ones from it.
type tapDevice struct {
	name string
	fds  []int
	uso  bool // the kernel took TUN_F_USO4|TUN_F_USO6
}

type ifreqFlags struct {
	Name  [unix.IFNAMSIZ]byte
	Flags uint16
	_     [22]byte
}

const (
	tunSetCarrier    = 0x400454e2 // _IOW('T', 226, int)
	tunSetOffload    = 0x400454d0 // _IOW('T', 208, unsigned int)
	tunSetVnetHdrSz  = 0x400454d8 // _IOW('T', 216, int)
	tunFCsum         = 0x01       // TUN_F_CSUM
	tunFTSO4         = 0x02       // TUN_F_TSO4
	tunFTSO6         = 0x04       // TUN_F_TSO6
	tunFTSOECN       = 0x08       // TUN_F_TSO_ECN
	tunFUSO4         = 0x20       // TUN_F_USO4 (Linux 6.2)
	tunFUSO6         = 0x40       // TUN_F_USO6
	tunOffloadsNoUSO = tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOECN
)

func openTap(name string, queues int, mac net.HardwareAddr, mtu int, j *netdev.Journal) (*tapDevice, error) {
	t := &tapDevice{name: name}
	for q := 0; q < queues; q++ {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("open /dev/net/tun: %w", err)
		}
		var ifr ifreqFlags
		copy(ifr.Name[:unix.IFNAMSIZ-1], name)
		ifr.Flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr))); e != 0 {
			unix.Close(fd)
			t.close()
			return nil, fmt.Errorf("TUNSETIFF %s queue %d: %w", name, q, e)
		}
		t.fds = append(t.fds, fd)
		sz := int32(vnet.HdrLen)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tunSetVnetHdrSz, uintptr(unsafe.Pointer(&sz))); e != 0 {
			t.close()
			return nil, fmt.Errorf("TUNSETVNETHDRSZ %s queue %d: %w", name, q, e)
		}
	}
	// offloads: checksum and TSO, and USO where the kernel has it
	t.uso = true
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fds[0]), tunSetOffload, tunOffloadsNoUSO|tunFUSO4|tunFUSO6); e != 0 {
		t.uso = false
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fds[0]), tunSetOffload, tunOffloadsNoUSO); e != 0 {
			t.close()
			return nil, fmt.Errorf("TUNSETOFFLOAD %s: %w", name, e)
		}
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.close()
		return nil, err
	}
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		t.close()
		return nil, fmt.Errorf("%s: set MAC: %w", name, err)
	}
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		t.close()
		return nil, fmt.Errorf("%s: set MTU: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// port makes the lane port for queue q.
func (t *tapDevice) port(q int, _ *umem.UMEM) *lane.Port {
	return &lane.Port{Name: t.name, FD: t.fds[q], Tap: true, VnetHdr: true, TapUSO: t.uso}
}

// setCarrier turns the TAP's carrier on or off (TUNSETCARRIER).
func (t *tapDevice) setCarrier(up bool) {
	if len(t.fds) == 0 {
		return
	}
	v := int32(0)
	if up {
		v = 1
	}
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(t.fds[0]), tunSetCarrier, uintptr(unsafe.Pointer(&v)))
}

// close closes the queues; the non-persistent TAP disappears with the last one.
func (t *tapDevice) close() error {
	var errs []error
	for _, fd := range t.fds {
		errs = append(errs, unix.Close(fd))
	}
	t.fds = nil
	return errors.Join(errs...)
}
