package netdev

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// Journal applies changes to devices and remembers, per device, the state it
// found before the first change of each kind, so Restore can undo them in
// reverse order. Devices the journal created are deleted by Restore.
type Journal struct {
	undo []undoStep
	macs map[string]bool // devices whose original MAC is recorded
}

type undoStep struct {
	what string
	fn   func() error
}

func (j *Journal) push(what string, fn func() error) {
	j.undo = append(j.undo, undoStep{what: what, fn: fn})
}

func link(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// SetMAC sets the device's MAC; when the driver refuses a live change the
// device is taken down for it and brought back.
func (j *Journal) SetMAC(name string, mac net.HardwareAddr) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	old := append(net.HardwareAddr(nil), l.Attrs().HardwareAddr...)
	if bytes.Equal(old, mac) {
		return nil
	}
	if err := setMAC(l, mac); err != nil {
		return fmt.Errorf("%s: set MAC %s: %w", name, mac, err)
	}
	if j.macs[name] {
		return nil // the original is recorded already
	}
	if j.macs == nil {
		j.macs = map[string]bool{}
	}
	j.macs[name] = true
	j.push("mac "+name, func() error {
		l, err := link(name)
		if err != nil {
			return err
		}
		return setMAC(l, old)
	})
	return nil
}

func setMAC(l netlink.Link, mac net.HardwareAddr) error {
	err := netlink.LinkSetHardwareAddr(l, mac)
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

// SetUp sets the administrative state.
func (j *Journal) SetUp(name string, up bool) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	was := l.Attrs().Flags&net.FlagUp != 0
	if was == up {
		return nil
	}
	if err := setUp(l, up); err != nil {
		return fmt.Errorf("%s: set up=%v: %w", name, up, err)
	}
	j.push("updown "+name, func() error {
		l, err := link(name)
		if err != nil {
			return err
		}
		return setUp(l, was)
	})
	return nil
}

func setUp(l netlink.Link, up bool) error {
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

// SetMTU sets the MTU.
func (j *Journal) SetMTU(name string, mtu int) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	old := l.Attrs().MTU
	if old == mtu {
		return nil
	}
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("%s: set MTU %d: %w", name, mtu, err)
	}
	j.push("mtu "+name, func() error {
		l, err := link(name)
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(l, old)
	})
	return nil
}

// SetPromisc turns promiscuous mode on or off (counted by the kernel, so the
// undo is the opposite call).
func (j *Journal) SetPromisc(name string, on bool) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	if on {
		err = netlink.SetPromiscOn(l)
	} else {
		err = netlink.SetPromiscOff(l)
	}
	if err != nil {
		return fmt.Errorf("%s: promisc %v: %w", name, on, err)
	}
	j.push("promisc "+name, func() error {
		l, err := link(name)
		if err != nil {
			return err
		}
		if on {
			return netlink.SetPromiscOff(l)
		}
		return netlink.SetPromiscOn(l)
	})
	return nil
}

// SetQueues makes the device use exactly n combined (or rx/tx) channels when it
// has more, so RSS spreads only over the queues the lanes serve.
func (j *Journal) SetQueues(name string, n int) error {
	ch, err := GetChannels(name)
	if err != nil {
		return nil // driver without channel control: nothing to change
	}
	want := ch
	switch {
	case ch.Combined > 0:
		if int(ch.Combined) == n {
			return nil
		}
		want.Combined = uint32(n)
	default:
		if int(ch.Rx) == n && int(ch.Tx) == n {
			return nil
		}
		want.Rx, want.Tx = uint32(n), uint32(n)
	}
	if err := SetChannels(name, want); err != nil {
		return err
	}
	j.push("channels "+name, func() error { return SetChannels(name, ch) })
	return nil
}

// CreateVeth creates a veth pair (hostName in the current namespace carrying
// mac and mtu, peer dpName with queues queues on each end) and records its
// deletion.
func (j *Journal) CreateVeth(hostName, dpName string, queues int, mac net.HardwareAddr, mtu int) error {
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name: hostName, HardwareAddr: mac, MTU: mtu,
			NumTxQueues: queues, NumRxQueues: queues, TxQLen: 1000,
		},
		PeerName:        dpName,
		PeerNumTxQueues: uint32(queues),
		PeerNumRxQueues: uint32(queues),
		PeerMTU:         uint32(mtu),
	}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %s/%s: %w", hostName, dpName, err)
	}
	j.push("veth "+hostName, func() error {
		l, err := netlink.LinkByName(hostName)
		if err != nil {
			return nil // already gone
		}
		return netlink.LinkDel(l)
	})
	return nil
}

// OnRestore registers an extra undo step (for changes made elsewhere).
func (j *Journal) OnRestore(what string, fn func() error) { j.push(what, fn) }

// RestoreDevice undoes the changes recorded for one device (a member that
// leaves), newest first, and forgets them.
func (j *Journal) RestoreDevice(name string) error {
	var errs []error
	keep := j.undo[:0]
	var mine []undoStep
	for _, u := range j.undo {
		if strings.HasSuffix(u.what, " "+name) {
			mine = append(mine, u)
		} else {
			keep = append(keep, u)
		}
	}
	j.undo = keep
	for i := len(mine) - 1; i >= 0; i-- {
		if err := mine[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", mine[i].what, err))
		}
	}
	delete(j.macs, name)
	return errors.Join(errs...)
}

// Restore undoes every recorded change, newest first, and returns all errors.
func (j *Journal) Restore() error {
	var errs []error
	for i := len(j.undo) - 1; i >= 0; i-- {
		if err := j.undo[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", j.undo[i].what, err))
		}
	}
	j.undo = nil
	return errors.Join(errs...)
}

// SetAllmulti turns all-multicast reception on or off (counted by the kernel,
// so the undo is the opposite call). Members receive every multicast group
// so the host device's groups (IPv6 neighbour discovery, IGMP) reach it.
func (j *Journal) SetAllmulti(name string, on bool) error {
	l, err := link(name)
	if err != nil {
		return err
	}
	if on {
		err = netlink.LinkSetAllmulticastOn(l)
	} else {
		err = netlink.LinkSetAllmulticastOff(l)
	}
	if err != nil {
		return fmt.Errorf("%s: allmulti %v: %w", name, on, err)
	}
	j.push("allmulti "+name, func() error {
		l, err := link(name)
		if err != nil {
			return err
		}
		if on {
			return netlink.LinkSetAllmulticastOff(l)
		}
		return netlink.LinkSetAllmulticastOn(l)
	})
	return nil
}

// DisableIPv6 turns IPv6 off on a member (net.ipv6.conf.<name>.disable_ipv6)
// until the member is restored. A kernel bond's slave sends nothing of its
// own (addrconf skips IFF_SLAVE devices); a member of the appliance is a
// plain device whose own stack would otherwise send router solicitations,
// MLD reports and duplicate address detection with the MAC the appliance
// gave it, from a member that is not the active one, and teach the switch
// the bond's MAC on the wrong port. Without IPv6 in the kernel (no such
// setting) it does nothing.
func (j *Journal) DisableIPv6(name string) error {
	p := "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"
	old, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: read disable_ipv6: %w", name, err)
	}
	if strings.TrimSpace(string(old)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("%s: disable IPv6: %w", name, err)
	}
	j.push("ipv6 "+name, func() error {
		err := os.WriteFile(p, old, 0o644)
		if errors.Is(err, os.ErrNotExist) {
			return nil // the device is gone
		}
		return err
	})
	return nil
}
