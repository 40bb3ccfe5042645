package bondsm

import (
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
	"github.com/bond-appliance/bond-appliance/policy"
)

// monState runs the bond's ARP/NS monitor and its peer notifications.
// Probes and notifications go into the Output (ClassNeigh); ARP and
// neighbour-discovery frames received on members come back through Receive.
type monState struct {
	mon      *monitor.Monitor
	notif    *monitor.Notifier
	up       []bool   // the monitor's verdict per member index
	lastRx   []uint64 // member RX counters at the last tick (load-balancing traffic)
	txDrops  uint64
	sent     uint64 // probes sent
	notified uint64 // notification frames sent
}

// monitorsEnabled reports whether the bond runs the ARP/NS monitor: an
// interval and targets, and, with miimon set, combine_monitors (bonding
// runs one monitor: configuration validation turns arp_interval off when
// miimon is set without combine_monitors; this keeps the same rule).
func monitorsEnabled(c config.Bond) bool {
	return c.ArpInterval > 0 && (len(c.ArpIPTargets) > 0 || len(c.NSIP6Targets) > 0) &&
		(c.Miimon == 0 || c.CombineMonitors)
}

// newMonitor builds the ARP/NS monitor (when configured) and the peer
// notifier of an active-backup bond from options c, with the host
// addresses and groups known; nil when neither runs. noCarrier starts every
// member without carrier (as at bond start); otherwise their carrier counts.
func (b *Bond) newMonitor(c config.Bond, noCarrier bool) (*monState, error) {
	ms := &monState{up: make([]bool, len(b.members)), lastRx: make([]uint64, len(b.members))}
	if monitorsEnabled(c) {
		mode := monitor.LoadBalance
		if b.mode == policy.ActiveBackup {
			mode = monitor.ActiveBackup
		}
		mc := monitor.Config{
			Mode: mode, Interval: time.Duration(c.ArpInterval) * time.Millisecond,
			Targets: c.ArpIPTargets, NSTargets: c.NSIP6Targets,
			Validate: monitor.Validate(c.ArpValidate), AllTargets: monitor.AllTargets(c.ArpAllTargets),
			MissedMax: c.ArpMissedMax, PrimaryReselect: monitor.Reselect(c.PrimaryReselect),
		}
		for _, m := range b.members {
			var mac monitor.MAC
			copy(mac[:], b.slaveMAC(m))
			mc.Slaves = append(mc.Slaves, monitor.Slave{MAC: mac, Prio: int32(m.cfg.Prio), Primary: m.name == c.Primary,
				Speed: m.speed, FullDuplex: m.duplex == "full", NoCarrier: noCarrier || !m.carrier || m.removed})
		}
		mon, err := monitor.New(mc, b.t)
		if err != nil {
			return nil, err
		}
		ms.mon = mon
		for i := range b.members {
			ms.up[i] = mon.Slave(i).Link == monitor.LinkUp
		}
		if len(b.addrs) > 0 {
			_ = mon.SetAddrs(b.addrs)
		}
	}
	if b.mode == policy.ActiveBackup {
		interval := time.Duration(c.Miimon) * time.Millisecond
		if c.ArpInterval > 0 {
			interval = time.Duration(c.ArpInterval) * time.Millisecond
		}
		n, err := monitor.NewNotifier(monitor.NotifierConfig{
			NumPeerNotif: c.NumGratARP, Interval: interval,
			PeerNotifDelay: time.Duration(c.PeerNotifDelay) * time.Millisecond,
			ResendIGMP:     c.ResendIGMP, VLANs: vlanIDs(c.VLANs),
		})
		if err != nil {
			return nil, err
		}
		if len(b.addrs) > 0 {
			_ = n.SetAddrs(b.addrs)
		}
		if len(b.groups) > 0 {
			_ = n.SetGroups(b.groups)
		}
		ms.notif = n
	}
	if ms.mon == nil && ms.notif == nil {
		return nil, nil
	}
	return ms, nil
}

// rebuildMonitor recreates the ARP/NS monitor for a changed member list or
// changed options, keeping its counters.
func (b *Bond) rebuildMonitor(c config.Bond) error {
	ms, err := b.newMonitor(c, false)
	if err != nil {
		return err
	}
	b.swapMonitor(ms)
	return nil
}

func (b *Bond) swapMonitor(ms *monState) {
	// peer notifications still due after a failover (gratuitous ARPs, NAs,
	// IGMP reports) are not lost with the old notifier: a runtime change
	// right after a failover would leave the switch sending to the old
	// active slave
	pending := false
	if b.mon != nil && b.mon.notif != nil {
		_, pending = b.mon.notif.Next()
	}
	if ms != nil && b.mon != nil {
		ms.sent, ms.notified, ms.txDrops = b.mon.sent, b.mon.notified, b.mon.txDrops
	}
	b.mon = ms
	if pending && b.active >= 0 {
		b.monFailover(b.active)
	}
	if ms != nil && ms.mon != nil {
		for _, m := range b.members {
			ms.mon.SetLink(m.idx, m.carrier && !m.removed)
		}
	}
}

func vlanIDs(v []int) []uint16 {
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = uint16(x)
	}
	return out
}

// slaveMAC is the address a member sends from: the MAC it carries (the
// bond MAC unless fail_over_mac gives members their own).
func (b *Bond) slaveMAC(m *member) []byte {
	if len(m.curMAC) == 6 {
		return m.curMAC
	}
	return b.mac
}

// monUsable reports the monitor's verdict for member i (true without a monitor).
func (b *Bond) monUsable(i int) bool {
	if b.mon == nil || b.mon.mon == nil {
		return true
	}
	return i >= 0 && i < len(b.mon.up) && b.mon.up[i]
}

// monTick runs the monitor and the notifier.
func (b *Bond) monTick(rx []uint64) {
	ms := b.mon
	t := b.t
	changed := false
	if mon := ms.mon; mon != nil {
		// Frames received since the last look count as traffic for slaves
		// that do not validate (bond_rcv_validate); ARP and neighbour
		// discovery frames also reach the monitor themselves via Rx.
		for i := range b.members {
			if i >= len(rx) || i >= len(ms.lastRx) || b.members[i].removed {
				continue
			}
			if v := rx[i]; v != ms.lastRx[i] {
				ms.lastRx[i] = v
				mon.Traffic(i, 0x0800, t)
			}
		}
		if t >= mon.Next() {
			for _, act := range mon.Tick(t) {
				m := b.member(act.Slave)
				switch act.Kind {
				case monitor.ActionSend:
					if m != nil {
						b.emit(act.Slave, ClassNeigh, originMon, act.Frame)
						ms.sent++
					}
				case monitor.ActionLink:
					up := act.Link == monitor.LinkUp
					if m != nil && act.Slave < len(ms.up) && ms.up[act.Slave] != up {
						ms.up[act.Slave] = up
						if !up {
							m.failures++
						}
						changed = true
						b.log("ARP/NS monitor verdict", "bond", b.cfg.Name, "slave", m.name,
							"state", act.Link.String(), "reason", act.Reason.String())
					}
				case monitor.ActionActive:
					changed = true
				}
			}
		}
	}
	if changed {
		b.rebuild()
	}
	if n := ms.notif; n != nil {
		if next, ok := n.Next(); ok && t >= next {
			for _, f := range n.Tick(t) {
				if b.member(f.Slave) != nil {
					b.emit(f.Slave, ClassNeigh, originMon, f.Data)
					ms.notified++
				}
			}
		}
	}
}

// monFailover starts peer notification on the new active slave.
func (b *Bond) monFailover(active int) {
	if b.mon == nil || b.mon.notif == nil || active < 0 {
		return
	}
	var mac monitor.MAC
	copy(mac[:], b.mac)
	b.mon.notif.Failover(active, mac, b.t)
}

// HostAddrs gives the bond the host device's addresses (and those of VLAN
// devices on it): the source of ARP/NS probes and what peer notifications
// announce.
func (b *Bond) HostAddrs(now time.Time, addrs []monitor.Addr) Output {
	b.begin(now)
	if equalAddrs(addrs, b.addrs) {
		return b.finish()
	}
	b.addrs = append([]monitor.Addr(nil), addrs...)
	if b.mon != nil && b.mon.mon != nil {
		_ = b.mon.mon.SetAddrs(b.addrs)
	}
	if b.mon != nil && b.mon.notif != nil {
		_ = b.mon.notif.SetAddrs(b.addrs)
	}
	return b.finish()
}

// HostGroups gives the bond the multicast groups the host device joined,
// for the IGMP reports resent after a failover (resend_igmp).
func (b *Bond) HostGroups(now time.Time, groups []monitor.Group) Output {
	b.begin(now)
	if len(groups) == len(b.groups) {
		same := true
		for i := range groups {
			same = same && groups[i] == b.groups[i]
		}
		if same {
			return b.finish()
		}
	}
	b.groups = append([]monitor.Group(nil), groups...)
	if b.mon != nil && b.mon.notif != nil {
		_ = b.mon.notif.SetGroups(b.groups)
	}
	return b.finish()
}

func equalAddrs(a, b []monitor.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// monStatus fills the monitor parts of a bond status.
func (b *Bond) monStatus(bs *BondStatus) {
	c := b.cfg
	bs.ArpInterval = c.ArpInterval
	bs.ArpMissedMax = c.ArpMissedMax
	for _, t := range c.ArpIPTargets {
		bs.ArpTargets = append(bs.ArpTargets, t.String())
	}
	for _, t := range c.NSIP6Targets {
		bs.NSTargets = append(bs.NSTargets, t.String())
	}
	if o, ok := config.LookupOption("arp_validate"); ok {
		bs.ArpValidate = o.Format(c.ArpValidate)
	}
	ms := b.mon
	if ms == nil {
		return
	}
	bs.Monitor = &MonitorInfo{ProbesSent: ms.sent, NotificationsSent: ms.notified, TxQueueDrops: ms.txDrops}
	if ms.mon != nil {
		for i := range bs.Slaves {
			if idx := bs.Slaves[i].Index; idx >= 0 && idx < len(ms.up) {
				bs.Slaves[i].ArpMonitor = ms.mon.Slave(idx).Link.String()
			}
		}
	}
}
