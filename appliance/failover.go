package appliance

import (
	"bytes"
	"errors"
	"net"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MAC handling and promiscuity, as bonding does them.
//
// fail_over_mac (active-backup only):
//   - none: every member carries the bond MAC (set at start);
//   - active: members keep their own MACs and the bond (host device) takes
//     the MAC of the active slave, changing at every failover;
//   - follow: the active slave carries the bond MAC; at a failover the new
//     active slave gets it and the old one takes the new one's former MAC.
//
// Promiscuity: when the host device goes promiscuous (tcpdump on the bond)
// the members follow — only the active one in active-backup, tlb and alb —
// and return to their previous state after.

// usesOwnMACs reports whether members keep their own MACs at start.
func (b *bond) usesOwnMACs() bool {
	if b.mode == policy.BalanceALB {
		return true // each slave keeps its own MAC; the bond MAC lives on the active one
	}
	// balance-tlb: every NIC keeps the bond MAC in hardware (frames sent on
	// a non-active slave carry its own address as source only)
	return b.mode == policy.ActiveBackup && b.cfg.FailOverMAC != config.FailOverMACNone
}

// setHostMAC changes the host device's MAC (the bond's address).
func (b *bond) setHostMAC(mac net.HardwareAddr) {
	if l, err := netlink.LinkByName(b.host); err == nil {
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			b.log("fail_over_mac: could not set the bond MAC", "bond", b.cfg.Name, "mac", mac.String(), "err", err.Error())
			return
		}
	}
	b.mac = append(net.HardwareAddr(nil), mac...)
}

// failOverMAC applies fail_over_mac after the active slave changed from old
// to cur (indices, -1 for none); callers hold mu.
func (b *bond) failOverMAC(old, cur int) {
	if b.mode != policy.ActiveBackup || cur < 0 || old == cur {
		return
	}
	n := b.members[cur]
	switch b.cfg.FailOverMAC {
	case config.FailOverMACActive:
		if !bytes.Equal(b.mac, n.curMAC) {
			b.setHostMAC(n.curMAC)
			b.log("fail_over_mac active: bond MAC follows the active slave", "bond", b.cfg.Name, "slave", n.name, "mac", n.curMAC.String())
		}
	case config.FailOverMACFollow:
		if bytes.Equal(n.curMAC, b.mac) {
			return
		}
		former := n.curMAC
		if err := b.journal.SetMAC(n.name, b.mac); err != nil {
			b.log("fail_over_mac follow: could not set the bond MAC on the new active slave", "bond", b.cfg.Name, "slave", n.name, "err", err.Error())
			return
		}
		n.curMAC = append(net.HardwareAddr(nil), b.mac...)
		if old >= 0 {
			o := b.members[old]
			if bytes.Equal(o.curMAC, b.mac) {
				if err := b.journal.SetMAC(o.name, former); err == nil {
					o.curMAC = former
				}
			}
		}
		b.log("fail_over_mac follow: bond MAC moved to the new active slave", "bond", b.cfg.Name, "slave", n.name)
	}
}

// setHostPromisc records the host device's promiscuity; callers hold mu.
func (b *bond) setHostPromisc(on bool) {
	if on == b.hostPromisc {
		return
	}
	b.hostPromisc = on
	b.log("host device promiscuity changed; members follow", "bond", b.cfg.Name, "promisc", on)
	b.syncPromisc()
}

// syncPromisc makes the members' promiscuity match the host device's;
// callers hold mu.
func (b *bond) syncPromisc() {
	onlyActive := b.mode == policy.ActiveBackup || b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB
	for _, m := range b.members {
		want := b.hostPromisc && (!onlyActive || m.idx == b.active)
		if want == m.promisc {
			continue
		}
		l, err := netlink.LinkByName(m.name)
		if err != nil {
			continue
		}
		if want {
			err = netlink.SetPromiscOn(l)
		} else {
			err = netlink.SetPromiscOff(l)
		}
		if err == nil {
			m.promisc = want
		}
	}
}

// undoPromisc drops the promiscuity the appliance added to members.
func (b *bond) undoPromisc() error {
	var errs []error
	for _, m := range b.members {
		if !m.promisc {
			continue
		}
		if l, err := netlink.LinkByName(m.name); err == nil {
			errs = append(errs, netlink.SetPromiscOff(l))
		}
		m.promisc = false
	}
	return errors.Join(errs...)
}

const iffPromisc = unix.IFF_PROMISC
