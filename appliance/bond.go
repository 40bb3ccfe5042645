package appliance

import (
	"bytes"
	"net"
	"sync"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/policy"
)

// linkState is a slave's MII state, as bonding's BOND_LINK_*.
type linkState uint8

const (
	linkUp   linkState = iota // up
	linkFail                  // carrier lost, downdelay running ("going down")
	linkDown                  // down
	linkBack                  // carrier back, updelay running ("going back")
)

func (s linkState) String() string {
	switch s {
	case linkUp:
		return "up"
	case linkFail:
		return "going down"
	case linkBack:
		return "going back"
	default:
		return "down"
	}
}

// member is one slave of a bond.
type member struct {
	idx      int
	cfg      config.Slave
	name     string
	ifindex  int
	permMAC  net.HardwareAddr
	carrier  bool // last carrier seen
	state    linkState
	since    time.Time // when state last changed (delays)
	failures int
	speed    int
	duplex   string
	curMAC   net.HardwareAddr // the MAC the member carries now
	dev      *device          // its XDP program and attachment
	socks    []*xsk.Socket    // its socket in each lane
	removed  bool             // hot-removed: a tombstone keeping indices stable
	promisc  bool             // promiscuity the appliance added (following the host device)
}

// bond is one bond's runtime state. mu guards everything below it; the data
// path never takes it: it reads the published lane.Snapshot.
type bond struct {
	idx   int
	cfg   config.Bond
	mode  policy.Mode
	hash  policy.HashPolicy
	mac   net.HardwareAddr
	mtu   int
	host  string // host-side device (carries the bond's name)
	dp    string // appliance side of the host veth, "" for tap
	lanes []*lane.Bond

	mu      sync.Mutex
	members []*member
	active  int // active member index, -1 none
	// manual is set by a runtime active_slave request: as in bonding, the
	// chosen slave stays active (primary reselection waits) until the next
	// link state change.
	manual  bool
	carrier bool
	snap    *lane.Snapshot
	ad      *adState  // 802.3ad only
	mon     *monState // ARP/NS monitor and peer notification, when configured
	alb     *albState // balance-tlb and balance-alb only

	removed     bool            // deleted at runtime (a tombstone keeping bond indices stable)
	hostDev     *device         // the host veth's appliance end (XDP program)
	hostSocks   []*xsk.Socket   // its socket in each lane
	journal     *netdev.Journal // records MAC changes for restore
	hostIndex   int
	hostPromisc bool
	onCarrier   func(up bool)
	log         func(msg string, args ...any)
}

// usable reports whether a member's MII state is up.
func (m *member) usable() bool { return m.state == linkUp && !m.removed }

// ok reports whether a member may carry traffic: every enabled monitor
// (MII, and ARP/NS when configured) must say it is up. Running both
// together is our extension: bonding allows only one.
func (b *bond) ok(m *member) bool { return m.usable() && b.monUsable(m.idx) }

// updateLink feeds a carrier observation into the MII state machine, as
// bond_miimon_inspect/commit do: downdelay and updelay hold a change until it
// has lasted that long. It returns true when the MII state changed.
func (b *bond) updateLink(m *member, carrier bool, now time.Time) bool {
	m.carrier = carrier
	up, down := time.Duration(b.cfg.Updelay)*time.Millisecond, time.Duration(b.cfg.Downdelay)*time.Millisecond
	old := m.state
	switch m.state {
	case linkUp:
		if !carrier {
			if down > 0 {
				m.state, m.since = linkFail, now
			} else {
				m.state, m.since = linkDown, now
				m.failures++
			}
		}
	case linkFail:
		if carrier {
			m.state = linkUp // recovered within downdelay
		} else if now.Sub(m.since) >= down {
			m.state, m.since = linkDown, now
			m.failures++
		}
	case linkDown:
		if carrier {
			if up > 0 {
				m.state, m.since = linkBack, now
			} else {
				m.state, m.since = linkUp, now
			}
		}
	case linkBack:
		if !carrier {
			m.state = linkDown
		} else if now.Sub(m.since) >= up {
			m.state, m.since = linkUp, now
		}
	}
	if m.state != old {
		b.manual = false
		b.adLink(m)
		b.albLink(m)
	}
	if b.mon != nil && b.mon.mon != nil {
		b.mon.mon.SetLink(m.idx, carrier)
	}
	if m.state != old && b.log != nil {
		b.log("slave link state", "bond", b.cfg.Name, "slave", m.name, "from", old.String(), "to", m.state.String())
	}
	return m.state != old
}

// selectActive picks the active slave for active-backup (bond_select_active_slave
// with primary and primary_reselect: always 0, better 1, failure 2).
func (b *bond) selectActive() {
	var cur, prim *member
	if b.active >= 0 {
		cur = b.members[b.active]
	}
	for _, m := range b.members {
		if m.name == b.cfg.Primary && b.ok(m) {
			prim = m
		}
	}
	pick := cur
	switch {
	case cur == nil || !b.ok(cur):
		pick = prim
		if pick == nil {
			for _, m := range b.members {
				if b.ok(m) && (pick == nil || m.cfg.Prio > pick.cfg.Prio) {
					pick = m
				}
			}
		}
	case prim != nil && prim != cur && !b.manual:
		switch b.cfg.PrimaryReselect {
		case 0: // always
			pick = prim
		case 1: // better
			if prim.speed > cur.speed || (prim.speed == cur.speed && prim.duplex == "full" && cur.duplex != "full") {
				pick = prim
			}
		}
	}
	n := -1
	if pick != nil {
		n = pick.idx
	}
	if n != b.active && b.log != nil {
		from, to := "none", "none"
		if cur != nil {
			from = cur.name
		}
		if pick != nil {
			to = pick.name
		}
		b.log("active slave changed", "bond", b.cfg.Name, "from", from, "to", to)
	}
	b.active = n
}

// setActive implements a runtime active_slave request ("" clears it).
func (b *bond) setActive(name string) bool {
	for _, m := range b.members {
		if m.name == name && b.ok(m) {
			b.active = m.idx
			b.manual = true
			if b.mon != nil && b.mon.mon != nil {
				b.mon.mon.SetActive(m.idx, b.mon.now())
			}
			return true
		}
	}
	return false
}

// rebuild recomputes and publishes the forwarding snapshot; callers hold mu.
func (b *bond) rebuild() {
	s := &lane.Snapshot{Mode: b.mode, Hash: b.hash, Active: -1, PacketsPerSlave: uint32(b.cfg.PacketsPerSlave)}
	s.CopyARP = b.mon != nil && b.mon.mon != nil
	prevActive := b.active
	switch b.mode {
	case policy.BalanceTLB, policy.BalanceALB:
		if b.alb != nil {
			b.albSnapshot(s, prevActive)
		}
	case policy.IEEE8023AD:
		b.adSnapshot(s)
		if len(s.TX) > 0 {
			s.Active = s.TX[0]
		}
	case policy.ActiveBackup:
		if b.mon != nil && b.mon.mon != nil && b.cfg.Miimon == 0 {
			// the ARP/NS monitor selects the active slave (bond_ab_arp_commit)
			b.active = b.mon.mon.Active()
			if b.active >= 0 && !b.ok(b.members[b.active]) {
				b.active = -1
			}
		} else {
			b.selectActive()
		}
		if b.active >= 0 && b.active != prevActive {
			b.failOverMAC(prevActive, b.active)
			b.monFailover(b.active)
			b.syncPromisc()
		}
		if b.active >= 0 {
			s.TX = []int{b.active}
			s.Active = b.active
			s.RX = 1 << uint(b.active)
		}
		if b.cfg.AllSlavesActive {
			for _, m := range b.members {
				s.RX |= 1 << uint(m.idx)
			}
		}
	default:
		for _, m := range b.members {
			s.RX |= 1 << uint(m.idx)
			if b.ok(m) {
				s.TX = append(s.TX, m.idx)
			}
		}
		if len(s.TX) > 0 {
			// balance-rr sends IGMP through curr_active_slave: the first usable slave.
			if b.active < 0 || !b.ok(b.members[b.active]) {
				b.active = s.TX[0]
			}
			s.Active = b.active
		} else {
			b.active = -1
		}
	}
	b.snap = s
	for _, lb := range b.lanes {
		lb.Publish(s)
	}
	carrier := len(s.TX) > 0
	if carrier != b.carrier {
		b.carrier = carrier
		if b.onCarrier != nil {
			b.onCarrier(carrier)
		}
	}
}

func macEqual(a, b net.HardwareAddr) bool { return bytes.Equal(a, b) }
