package appliance

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/vishvananda/netlink"
)

// monState runs a bond's ARP/NS monitor and its peer notifications on the
// control goroutine. Probes leave through the lane serving queue 0; ARP and
// neighbour-discovery frames received on members come back as copies over
// the lanes' control rings (the lanes still deliver them as usual).
type monState struct {
	mon      *monitor.Monitor
	notif    *monitor.Notifier
	start    time.Time
	tx       *lane.Lane
	up       []bool   // the monitor's verdict per member
	lastRx   []uint64 // member RX counters at the last tick (load-balancing traffic)
	addrs    []monitor.Addr
	groups   []monitor.Group
	addrPoll time.Time
	txDrops  uint64
	sent     uint64 // probes sent
	notified uint64 // notification frames sent
}

func (ms *monState) now() time.Duration { return time.Since(ms.start) }

// monitorsEnabled reports whether the bond runs the ARP/NS monitor.
func monitorsEnabled(c config.Bond) bool {
	return c.ArpInterval > 0 && (len(c.ArpIPTargets) > 0 || len(c.NSIP6Targets) > 0)
}

// setupMonitor creates the ARP/NS monitor (when configured) and the peer
// notifier of an active-backup bond.
func (b *bond) setupMonitor(tx *lane.Lane) error {
	c := b.cfg
	ms := &monState{start: time.Now(), tx: tx, up: make([]bool, len(b.members)), lastRx: make([]uint64, len(b.members))}
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
				Speed: m.speed, FullDuplex: m.duplex == "full", NoCarrier: !m.carrier})
		}
		mon, err := monitor.New(mc, 0)
		if err != nil {
			return err
		}
		ms.mon = mon
		for i := range b.members {
			ms.up[i] = mon.Slave(i).Link == monitor.LinkUp
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
			return err
		}
		ms.notif = n
	}
	if ms.mon == nil && ms.notif == nil {
		return nil
	}
	b.mon = ms
	return nil
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
func (b *bond) slaveMAC(m *member) net.HardwareAddr {
	if len(m.curMAC) == 6 {
		return m.curMAC
	}
	return b.mac
}

// monUsable reports the monitor's verdict for member i (true without a monitor).
func (b *bond) monUsable(i int) bool {
	if b.mon == nil || b.mon.mon == nil {
		return true
	}
	return b.mon.up[i]
}

func (b *bond) sendCtrl(tx *lane.Lane, member int, frame []byte) bool {
	var cf lane.CtrlFrame
	cf.Bond, cf.Member = uint16(b.idx), uint16(member)
	cf.Len = uint16(copy(cf.Data[:], frame))
	return tx.FromCtrl.Push(&cf)
}

// monTick runs the monitor and the notifier; callers hold mu.
func (b *bond) monTick(now time.Time, rx func(member int) uint64) {
	ms := b.mon
	t := ms.now()
	if now.Sub(ms.addrPoll) >= time.Second {
		ms.addrPoll = now
		b.refreshAddrs()
		b.refreshGroups()
	}
	changed := false
	if mon := ms.mon; mon != nil {
		// Frames received since the last look count as traffic for slaves
		// that do not validate (bond_rcv_validate); ARP and neighbour
		// discovery frames also reach the monitor themselves via Rx.
		for i := range b.members {
			if v := rx(i); v != ms.lastRx[i] {
				ms.lastRx[i] = v
				mon.Traffic(i, 0x0800, t)
			}
		}
		if t >= mon.Next() {
			for _, act := range mon.Tick(t) {
				switch act.Kind {
				case monitor.ActionSend:
					if b.sendCtrl(ms.tx, act.Slave, act.Frame) {
						ms.sent++
					} else {
						ms.txDrops++
					}
				case monitor.ActionLink:
					up := act.Link == monitor.LinkUp
					if ms.up[act.Slave] != up {
						ms.up[act.Slave] = up
						if !up {
							b.members[act.Slave].failures++
						}
						changed = true
						b.log("ARP/NS monitor verdict", "bond", b.cfg.Name, "slave", b.members[act.Slave].name,
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
				if b.sendCtrl(ms.tx, f.Slave, f.Data) {
					ms.notified++
				} else {
					ms.txDrops++
				}
			}
		}
	}
}

// monRx hands an ARP or neighbour-discovery frame seen on member m to the
// monitor; callers hold mu.
func (b *bond) monRx(m int, frame []byte) {
	if b.mon != nil && b.mon.mon != nil {
		b.mon.mon.Rx(m, frame, b.mon.now())
	}
}

// monFailover starts peer notification on the new active slave.
func (b *bond) monFailover(active int) {
	if b.mon == nil || b.mon.notif == nil || active < 0 {
		return
	}
	var mac monitor.MAC
	copy(mac[:], b.mac)
	b.mon.notif.Failover(active, mac, b.mon.now())
}

// refreshAddrs reads the host device's addresses (netlink) for probes and
// notifications.
func (b *bond) refreshAddrs() {
	l, err := netlink.LinkByName(b.host)
	if err != nil {
		return
	}
	list, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return
	}
	var addrs []monitor.Addr
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
			continue
		}
		ones, _ := a.IPNet.Mask.Size()
		addrs = append(addrs, monitor.Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
	}
	if equalAddrs(addrs, b.mon.addrs) {
		return
	}
	b.mon.addrs = addrs
	if b.mon.mon != nil {
		_ = b.mon.mon.SetAddrs(addrs)
	}
	if b.mon.notif != nil {
		_ = b.mon.notif.SetAddrs(addrs)
	}
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

// monStatus fills the monitor parts of a bond status; callers hold mu.
func (b *bond) monStatus(bs *BondStatus) {
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
			st := ms.mon.Slave(i)
			bs.Slaves[i].ArpMonitor = st.Link.String()
		}
	}
}

// MonitorInfo counts what the ARP/NS monitor and the notifier sent.
type MonitorInfo struct {
	ProbesSent        uint64 `json:"probes_sent"`
	NotificationsSent uint64 `json:"notifications_sent"`
	TxQueueDrops      uint64 `json:"tx_queue_drops"`
}

// igmpGroups parses /proc/net/igmp for the IPv4 groups dev has joined.
func igmpGroups(data []byte, dev string) []monitor.Group {
	var out []monitor.Group
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "Idx") {
			continue
		}
		if line[0] != '\t' && line[0] != ' ' {
			f := strings.Fields(line)
			in = len(f) >= 2 && f[1] == dev
			continue
		}
		if !in {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || len(f[0]) != 8 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 16, 32)
		if err != nil {
			continue
		}
		// stored in network order, printed as a host-order (little-endian) word
		a := netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
		out = append(out, monitor.Group{Addr: a})
	}
	return out
}

// refreshGroups reads the multicast groups the host device joined, for the
// IGMP reports resent after a failover (resend_igmp).
func (b *bond) refreshGroups() {
	if b.mon == nil || b.mon.notif == nil {
		return
	}
	data, err := os.ReadFile("/proc/net/igmp")
	if err != nil {
		return
	}
	g := igmpGroups(data, b.host)
	if fmt.Sprint(g) == fmt.Sprint(b.mon.groups) {
		return
	}
	b.mon.groups = g
	_ = b.mon.notif.SetGroups(g)
}
