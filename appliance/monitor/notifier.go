package monitor

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// IGMPResendInterval is the spacing of resend_igmp reports
// (bond_resend_igmp_join_requests_delayed requeues itself after HZ/5).
const IGMPResendInterval = 200 * time.Millisecond

// Group is a multicast group the host joined on the bond (VLAN 0) or on a
// VLAN device above it.
type Group struct {
	Addr netip.Addr
	VLAN uint16
}

// NotifierConfig configures a Notifier.
type NotifierConfig struct {
	// NumPeerNotif is num_grat_arp / num_unsol_na (0..255; bonding's
	// default is 1): how many peer notifications follow a failover.
	NumPeerNotif int
	// Interval is the link monitor interval (miimon, or arp_interval).
	Interval time.Duration
	// PeerNotifDelay is peer_notif_delay. Bonding stores it in monitor
	// intervals, rounded down, and spaces notifications by
	// max(1, delay/interval) intervals; 0 means one interval.
	PeerNotifDelay time.Duration
	// ResendIGMP is resend_igmp (0..255; bonding's default is 1).
	ResendIGMP int
	// IGMPVersion is the report version, 2 or 3 (0 means 3, the kernel's
	// choice when no older querier was seen).
	IGMPVersion int
	// SkipLinkLocalGroups leaves 224.0.0.0/24 groups out of the reports
	// (net.ipv4.igmp_link_local_mcast_reports=0). 224.0.0.1 is never
	// reported.
	SkipLinkLocalGroups bool
	// Router sets the router flag of unsolicited NAs (the host forwards).
	Router bool
	// VLANs are VLAN ids on top of the bond for which every notification
	// of an untagged (VLAN 0) address is repeated with that tag.
	VLANs []uint16
	// Addrs are the host device's addresses (and those of its VLAN
	// devices, with their VLAN id): each IPv4 one gets a gratuitous ARP,
	// each IPv6 one an unsolicited NA, per notification.
	Addrs []Addr
	// Groups are the IPv4 groups the host joined.
	Groups []Group
}

// Frame is a frame to send on a slave.
type Frame struct {
	Slave int
	Data  []byte
}

// Notifier plans what bonding sends after the active slave changes: peer
// notifications (NETDEV_NOTIFY_PEERS: gratuitous ARPs by
// inetdev_send_gratuitous_arp, unsolicited NAs by ndisc_send_unsol_na) and
// IGMP reports (NETDEV_RESEND_IGMP: ip_mc_rejoin_groups). It is pure: the
// caller calls Failover, then Tick at or after Next, and sends the frames.
type Notifier struct {
	cfg     NotifierConfig
	spacing time.Duration

	slave int
	src   MAC

	peerLeft int
	peerNext time.Duration
	igmpLeft int
	igmpNext time.Duration

	buf    []byte
	used   int
	frames []Frame
	one    [1]netip.Addr
}

// NewNotifier validates cfg.
func NewNotifier(cfg NotifierConfig) (*Notifier, error) {
	if cfg.NumPeerNotif < 0 || cfg.NumPeerNotif > 255 {
		return nil, fmt.Errorf("monitor: num_grat_arp %d out of range 0..255", cfg.NumPeerNotif)
	}
	if cfg.ResendIGMP < 0 || cfg.ResendIGMP > 255 {
		return nil, fmt.Errorf("monitor: resend_igmp %d out of range 0..255", cfg.ResendIGMP)
	}
	if cfg.Interval <= 0 {
		return nil, errors.New("monitor: notifier needs the monitor interval")
	}
	if cfg.PeerNotifDelay < 0 || cfg.PeerNotifDelay > 300*time.Second {
		return nil, fmt.Errorf("monitor: peer_notif_delay %v out of range 0..300s", cfg.PeerNotifDelay)
	}
	switch cfg.IGMPVersion {
	case 0:
		cfg.IGMPVersion = 3
	case 2, 3:
	default:
		return nil, fmt.Errorf("monitor: IGMP version %d not supported", cfg.IGMPVersion)
	}
	for _, v := range cfg.VLANs {
		if v == 0 || v > MaxVLAN {
			return nil, ErrVLAN
		}
	}
	cfg.VLANs = append([]uint16(nil), cfg.VLANs...)
	n := &Notifier{slave: -1}
	n.cfg = cfg
	ticks := max(1, cfg.PeerNotifDelay/cfg.Interval) // max(1, peer_notif_delay)
	n.spacing = ticks * cfg.Interval
	if err := n.SetAddrs(cfg.Addrs); err != nil {
		return nil, err
	}
	if err := n.SetGroups(cfg.Groups); err != nil {
		return nil, err
	}
	return n, nil
}

// SetAddrs replaces the addresses notified.
func (n *Notifier) SetAddrs(addrs []Addr) error {
	out := make([]Addr, 0, len(addrs))
	for _, a := range addrs {
		if !a.Prefix.IsValid() {
			return fmt.Errorf("monitor: invalid address %v", a.Prefix)
		}
		if a.VLAN > MaxVLAN {
			return ErrVLAN
		}
		a.Prefix = netip.PrefixFrom(a.Prefix.Addr().Unmap().WithZone(""), a.Prefix.Bits())
		out = append(out, a)
	}
	n.cfg.Addrs = out
	return nil
}

// SetGroups replaces the IPv4 groups reported.
func (n *Notifier) SetGroups(groups []Group) error {
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		g.Addr = g.Addr.Unmap()
		if _, ok := group4(g.Addr); !ok {
			return fmt.Errorf("monitor: %v is not an IPv4 multicast group", g.Addr)
		}
		if g.VLAN > MaxVLAN {
			return ErrVLAN
		}
		out = append(out, g)
	}
	n.cfg.Groups = out
	return nil
}

// Spacing is the time between two peer notifications.
func (n *Notifier) Spacing() time.Duration { return n.spacing }

// Failover starts the notifications for a new active slave at now
// (bond_change_active_slave: send_peer_notif = num_peer_notif *
// max(1, peer_notif_delay), igmp_retrans = resend_igmp), replacing any in
// progress. srcMAC is the source address of the notifications (the bond's
// MAC; with fail_over_mac=active the new active slave's). The first
// notification and the first IGMP round are due at now. newActive < 0
// cancels everything.
func (n *Notifier) Failover(newActive int, srcMAC MAC, now time.Duration) {
	if newActive < 0 {
		n.Cancel()
		return
	}
	n.slave, n.src = newActive, srcMAC
	n.peerLeft, n.peerNext = n.cfg.NumPeerNotif, now
	n.igmpLeft, n.igmpNext = n.cfg.ResendIGMP, now
}

// Cancel stops pending notifications (bond_close: send_peer_notif = 0).
func (n *Notifier) Cancel() {
	n.peerLeft, n.igmpLeft = 0, 0
}

// Pending reports the peer notifications and IGMP rounds still to come.
func (n *Notifier) Pending() (peer, igmp int) { return n.peerLeft, n.igmpLeft }

// Next returns when the next Tick has something to send; ok is false
// when nothing is pending.
func (n *Notifier) Next() (next time.Duration, ok bool) {
	if n.peerLeft > 0 {
		next, ok = n.peerNext, true
	}
	if n.igmpLeft > 0 && (!ok || n.igmpNext < next) {
		next, ok = n.igmpNext, true
	}
	return next, ok
}

// Tick returns the frames due at now, all for the active slave given to
// Failover. The slice and the frames are reused by the next Tick.
func (n *Notifier) Tick(now time.Duration) []Frame {
	n.frames, n.used = n.frames[:0], 0
	if n.peerLeft > 0 && now >= n.peerNext {
		n.peerLeft--
		n.peerNext = next(n.peerNext, n.spacing, now)
		n.notifyPeers()
	}
	if n.igmpLeft > 0 && now >= n.igmpNext {
		n.igmpLeft--
		n.igmpNext = next(n.igmpNext, IGMPResendInterval, now)
		n.rejoin()
	}
	return n.frames
}

// next schedules the following round one period after the previous due
// time, or after now when the caller was late.
func next(due, period, now time.Duration) time.Duration {
	if due += period; due <= now {
		due = now + period
	}
	return due
}

// frame returns a frame buffer; buffers are reused from one Tick to the
// next and only grow.
func (n *Notifier) frame() []byte {
	if n.used+frameSlot > len(n.buf) {
		nb := make([]byte, max(2*len(n.buf), 16*frameSlot))
		// Earlier frames of this Tick keep their old backing array.
		n.buf, n.used = nb, 0
	}
	b := n.buf[n.used : n.used+frameSlot]
	n.used += frameSlot
	return b
}

func (n *Notifier) emit(b []byte, l int, err error) {
	if err == nil {
		n.frames = append(n.frames, Frame{Slave: n.slave, Data: b[:l]})
	}
}

// notifyPeers is one NETDEV_NOTIFY_PEERS on the bond, which
// vlan_device_event propagates to the VLAN devices above it. For each
// device: a gratuitous ARP per IPv4 address, then an unsolicited NA per
// IPv6 address. The bond's own (VLAN 0) addresses come first, untagged,
// then again tagged with each id of VLANs, then the addresses of VLAN
// devices (Addr.VLAN != 0) with their own tag.
func (n *Notifier) notifyPeers() {
	n.notifyDev(0, 0)
	for _, v := range n.cfg.VLANs {
		n.notifyDev(0, v)
	}
	for i, a := range n.cfg.Addrs {
		if a.VLAN != 0 && n.firstOfVLAN(a.VLAN) == i {
			n.notifyDev(a.VLAN, a.VLAN)
		}
	}
}

func (n *Notifier) firstOfVLAN(vlan uint16) int {
	for i, a := range n.cfg.Addrs {
		if a.VLAN == vlan {
			return i
		}
	}
	return -1
}

// notifyDev notifies the addresses of device vlan (0: the bond) with the
// given tag: inetdev_send_gratuitous_arp, then ndisc_send_unsol_na.
func (n *Notifier) notifyDev(vlan, tag uint16) {
	for _, a := range n.cfg.Addrs {
		if a.VLAN == vlan && a.Prefix.Addr().Is4() {
			b := n.frame()
			l, err := BuildGratuitousARP(b, tag, n.src, a.Prefix.Addr())
			n.emit(b, l, err)
		}
	}
	for _, a := range n.cfg.Addrs {
		if a.VLAN == vlan && a.Prefix.Addr().Is6() {
			b := n.frame()
			l, err := BuildUnsolicitedNA(b, tag, n.src, a.Prefix.Addr(), n.cfg.Router)
			n.emit(b, l, err)
		}
	}
}

// rejoin is one NETDEV_RESEND_IGMP (ip_mc_rejoin_groups on the bond and
// its VLAN devices): one report per group, 224.0.0.1 excluded.
func (n *Notifier) rejoin() {
	allHosts := netip.AddrFrom4([4]byte{224, 0, 0, 1})
	for _, g := range n.cfg.Groups {
		if g.Addr == allHosts {
			continue
		}
		if b := g.Addr.As4(); n.cfg.SkipLinkLocalGroups && b[0] == 224 && b[1] == 0 && b[2] == 0 {
			continue
		}
		src := n.igmpSource(g.VLAN)
		b := n.frame()
		var l int
		var err error
		if n.cfg.IGMPVersion == 2 {
			l, err = BuildIGMPv2Report(b, g.VLAN, n.src, src, g.Addr)
		} else {
			n.one[0] = g.Addr
			l, err = BuildIGMPv3Report(b, g.VLAN, n.src, src, n.one[:])
		}
		n.emit(b, l, err)
	}
}

// igmpSource is the device's first IPv4 address (the route lookup in
// igmp_send_report selects it), or 0.0.0.0.
func (n *Notifier) igmpSource(vlan uint16) netip.Addr {
	for _, a := range n.cfg.Addrs {
		if a.VLAN == vlan && a.Prefix.Addr().Is4() {
			return a.Prefix.Addr()
		}
	}
	return netip.IPv4Unspecified()
}
