package bondsm

import (
	"bytes"
	"net"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/policy"
)

// MAC handling and promiscuity, as bonding does them.
//
// fail_over_mac (active-backup only):
//   - none: every member carries the bond MAC (set by the caller at start);
//   - active: members keep their own MACs and the bond (host device) takes
//     the MAC of the active slave, changing at every failover (SetHostMAC);
//   - follow: the active slave carries the bond MAC; at a failover the new
//     active slave gets it and the old one takes the new one's former MAC
//     (SetMemberMAC).
//
// Promiscuity: when the host device goes promiscuous (tcpdump on the bond)
// the members follow — only the active one in active-backup, tlb and alb —
// and return to their previous state after (SetMemberPromisc).

// failOverMAC applies fail_over_mac after the active slave changed from old
// to cur (indices, -1 for none).
func (b *Bond) failOverMAC(old, cur int) {
	n := b.member(cur)
	if b.mode != policy.ActiveBackup || n == nil || old == cur {
		return
	}
	switch b.cfg.FailOverMAC {
	case config.FailOverMACActive:
		if len(n.curMAC) == 6 && !bytes.Equal(b.mac, n.curMAC) {
			b.mac = append(net.HardwareAddr(nil), n.curMAC...)
			b.action(Action{Kind: SetHostMAC, Device: b.cfg.Name, MAC: append(net.HardwareAddr(nil), b.mac...)})
			b.log("fail_over_mac active: bond MAC follows the active slave", "bond", b.cfg.Name, "slave", n.name, "mac", n.curMAC.String())
		}
	case config.FailOverMACFollow:
		if bytes.Equal(n.curMAC, b.mac) {
			return
		}
		former := n.curMAC
		b.action(Action{Kind: SetMemberMAC, Member: n.idx, Device: n.name, MAC: append(net.HardwareAddr(nil), b.mac...)})
		n.curMAC = append(net.HardwareAddr(nil), b.mac...)
		if o := b.member(old); o != nil && bytes.Equal(o.curMAC, b.mac) && len(former) == 6 {
			b.action(Action{Kind: SetMemberMAC, Member: o.idx, Device: o.name, MAC: append(net.HardwareAddr(nil), former...)})
			o.curMAC = former
		}
		b.log("fail_over_mac follow: bond MAC moved to the new active slave", "bond", b.cfg.Name, "slave", n.name)
	}
}

// HostPromisc reports the host device's promiscuity: members follow it
// (only the active one in active-backup, balance-tlb and balance-alb).
func (b *Bond) HostPromisc(now time.Time, on bool) Output {
	b.begin(now)
	if on != b.hostPromisc {
		b.hostPromisc = on
		b.log("host device promiscuity changed; members follow", "bond", b.cfg.Name, "promisc", on)
		b.syncPromisc()
	}
	return b.finish()
}

// syncPromisc makes the members' promiscuity match the host device's.
func (b *Bond) syncPromisc() {
	onlyActive := b.mode == policy.ActiveBackup || b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB
	for _, m := range b.members {
		m.hostPromisc = b.hostPromisc && !m.removed && (!onlyActive || m.idx == b.active)
		b.syncDevPromisc(m)
	}
}

// syncDevPromisc returns an action when what the member should have (host
// following or balance-alb's request) differs from what it has.
func (b *Bond) syncDevPromisc(m *member) {
	want := (m.hostPromisc || m.albPromisc) && !m.removed
	if want == m.devPromisc {
		return
	}
	m.devPromisc = want
	b.action(Action{Kind: SetMemberPromisc, Member: m.idx, Device: m.name, On: want})
}

// Release returns the actions that take back what the bond added to its
// members (their promiscuity), for shutdown or bond removal. The bond
// forgets it added them.
func (b *Bond) Release() Output {
	b.begin(b.now)
	for _, m := range b.members {
		m.hostPromisc, m.albPromisc = false, false
		if m.devPromisc {
			m.devPromisc = false
			b.action(Action{Kind: SetMemberPromisc, Member: m.idx, Device: m.name, On: false})
		}
	}
	return b.finish()
}

// Dropped tells the bond the caller could not queue f (its ring was full):
// it is counted in status as a transmit queue drop of the part that built it.
func (b *Bond) Dropped(f Frame) {
	o := f.origin
	if o == originNone {
		switch {
		case f.Class == ClassSlow:
			o = originAD
		case b.alb != nil:
			o = originALB
		default:
			o = originMon
		}
	}
	switch {
	case o == originAD && b.ad != nil:
		b.ad.txDrops++
	case o == originALB && b.alb != nil:
		b.alb.drops++
	case o == originMon && b.mon != nil:
		b.mon.txDrops++
	}
}
