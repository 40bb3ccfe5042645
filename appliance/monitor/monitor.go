package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Mode selects which of bonding's two ARP monitors runs.
type Mode uint8

const (
	// ActiveBackup is bond_activebackup_arp_mon: inspect, commit, probe.
	ActiveBackup Mode = iota
	// LoadBalance is bond_loadbalance_arp_mon, used by balance-rr,
	// balance-xor and broadcast.
	LoadBalance
)

func (m Mode) String() string {
	if m == ActiveBackup {
		return "active-backup"
	}
	return "load-balance"
}

// Validate is arp_validate. Bit 0 validates active slaves, bit 1 backup
// slaves (BOND_ARP_VALIDATE_ACTIVE/BACKUP: 1 << BOND_STATE_*), bit 2 is
// BOND_ARP_FILTER.
type Validate uint8

// arp_validate values.
const (
	ValidateNone         Validate = 0
	ValidateActive       Validate = 1
	ValidateBackup       Validate = 2
	ValidateAll          Validate = 3
	ValidateFilter       Validate = 4
	ValidateFilterActive Validate = 5
	ValidateFilterBackup Validate = 6
)

func (v Validate) String() string {
	switch v {
	case ValidateNone:
		return "none"
	case ValidateActive:
		return "active"
	case ValidateBackup:
		return "backup"
	case ValidateAll:
		return "all"
	case ValidateFilter:
		return "filter"
	case ValidateFilterActive:
		return "filter_active"
	case ValidateFilterBackup:
		return "filter_backup"
	}
	return fmt.Sprintf("Validate(%d)", uint8(v))
}

const validateFilter = 4 // BOND_ARP_FILTER

// AllTargets is arp_all_targets.
type AllTargets uint8

// arp_all_targets values.
const (
	TargetsAny AllTargets = 0 // BOND_ARP_TARGETS_ANY
	TargetsAll AllTargets = 1 // BOND_ARP_TARGETS_ALL
)

// Reselect is primary_reselect.
type Reselect uint8

// primary_reselect values.
const (
	ReselectAlways  Reselect = 0
	ReselectBetter  Reselect = 1
	ReselectFailure Reselect = 2
)

// LinkState is a slave's link state; the values are BOND_LINK_*.
type LinkState uint8

// Link states.
const (
	LinkUp   LinkState = 0 // BOND_LINK_UP
	LinkFail LinkState = 1 // BOND_LINK_FAIL
	LinkDown LinkState = 2 // BOND_LINK_DOWN
	LinkBack LinkState = 3 // BOND_LINK_BACK
)

func (s LinkState) String() string {
	switch s {
	case LinkUp:
		return "up"
	case LinkFail:
		return "going down"
	case LinkDown:
		return "down"
	case LinkBack:
		return "going back"
	}
	return fmt.Sprintf("LinkState(%d)", uint8(s))
}

// Limits from include/net/bonding.h.
const (
	MaxTargets       = 16 // BOND_MAX_ARP_TARGETS, BOND_MAX_NS_TARGETS
	DefaultMissedMax = 2  // BOND_DEFAULT_MISSED_MAX
)

// Slave describes one slave to the monitor.
type Slave struct {
	// MAC is the slave's address: probes are sent from it and unicast
	// frames to another address are PACKET_OTHERHOST (ignored by
	// validation).
	MAC MAC
	// Prio is the slave priority (active-backup only).
	Prio int32
	// Primary marks the primary slave (active-backup only).
	Primary bool
	// Speed (Mb/s) and FullDuplex feed primary_reselect=better.
	Speed      int
	FullDuplex bool
	// NoCarrier: the slave starts without carrier (bond_enslave then
	// starts it BOND_LINK_DOWN).
	NoCarrier bool
}

// Addr is an address of the bond (VLAN 0) or of a VLAN device on top of it.
// Prefix holds the address and its on-link prefix length.
type Addr struct {
	Prefix netip.Prefix
	VLAN   uint16
}

// Config configures a Monitor.
type Config struct {
	Mode     Mode
	Interval time.Duration // arp_interval, > 0
	// Targets are the arp_ip_target IPv4 addresses, NSTargets the
	// ns_ip6_target IPv6 addresses (at most MaxTargets each).
	Targets    []netip.Addr
	NSTargets  []netip.Addr
	Validate   Validate
	AllTargets AllTargets
	// MissedMax is arp_missed_max (1..255); 0 means DefaultMissedMax.
	MissedMax       int
	PrimaryReselect Reselect
	Slaves          []Slave
	// Addrs are the bond's own addresses (see SetAddrs).
	Addrs []Addr
}

// ActionKind says what an Action asks for.
type ActionKind uint8

// Action kinds.
const (
	// ActionSend: send Frame on Slave.
	ActionSend ActionKind = iota + 1
	// ActionLink: Slave's link state is now Link.
	ActionLink
	// ActionActive: the active slave is now Slave (-1: none). After a
	// failover the caller starts the peer notifications (Notifier).
	ActionActive
)

func (k ActionKind) String() string {
	switch k {
	case ActionSend:
		return "send"
	case ActionLink:
		return "link"
	case ActionActive:
		return "active"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Reason says why a link or active-slave change happened.
type Reason uint8

// Reasons.
const (
	ReasonNone Reason = iota
	// ReasonReceived: a slave not up received (validated) traffic within
	// one interval (bond_ab_arp_inspect).
	ReasonReceived
	// ReasonActiveMissed: the active slave sent no probe or received
	// nothing within missed_max intervals (bond_ab_arp_inspect).
	ReasonActiveMissed
	// ReasonBackupMissed: a backup received nothing within missed_max+1
	// intervals (bond_ab_arp_inspect).
	ReasonBackupMissed
	// ReasonProbeFailed: the current ARP slave got no answer in its
	// interval (BOND_LINK_BACK -> BOND_LINK_FAIL, bond_ab_arp_inspect).
	ReasonProbeFailed
	// ReasonProbing: with no active slave, this slave is the next
	// candidate probed (current_arp_slave, bond_ab_arp_probe).
	ReasonProbing
	// ReasonNoCarrier: the slave lost carrier while no slave was active
	// (bond_ab_arp_probe).
	ReasonNoCarrier
	// ReasonTraffic: the slave sent a probe and received traffic within
	// one interval (bond_loadbalance_arp_mon).
	ReasonTraffic
	// ReasonMissed: the slave sent or received nothing within missed_max
	// intervals (bond_loadbalance_arp_mon).
	ReasonMissed
	// ReasonMadeActive: a BOND_LINK_BACK slave was made active
	// (bond_change_active_slave).
	ReasonMadeActive
	// ReasonReselect: bond_select_active_slave chose another slave.
	ReasonReselect
)

var reasonText = [...]string{
	ReasonNone:         "none",
	ReasonReceived:     "traffic received within arp_interval",
	ReasonActiveMissed: "active slave: no probe sent or nothing received within missed_max intervals",
	ReasonBackupMissed: "backup slave: nothing received within missed_max+1 intervals",
	ReasonProbeFailed:  "probed slave got no answer",
	ReasonProbing:      "probing as candidate (no active slave)",
	ReasonNoCarrier:    "no carrier while searching for an active slave",
	ReasonTraffic:      "probe sent and traffic received within arp_interval",
	ReasonMissed:       "no probe sent or nothing received within missed_max intervals",
	ReasonMadeActive:   "made active",
	ReasonReselect:     "active slave reselected",
}

func (r Reason) String() string {
	if int(r) < len(reasonText) {
		return reasonText[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Action is one thing the caller must do or learn after Tick.
type Action struct {
	Kind  ActionKind
	Slave int
	// Frame is the probe to send (ActionSend). It points into the
	// monitor's buffers and is valid until the next Tick.
	Frame  []byte
	Link   LinkState // ActionLink
	Reason Reason    // ActionLink, ActionActive
}

// SlaveStatus is a snapshot of one slave's monitor state.
type SlaveStatus struct {
	Link LinkState
	// Active is bond_is_active_slave: not flagged backup.
	Active     bool
	Carrier    bool
	LastRx     time.Duration // slave->last_rx
	LastTx     time.Duration // slave->last_tx: last probe sent
	LastLinkUp time.Duration
	Failures   uint32 // link_failure_count
}

const noChange = 0xff // BOND_LINK_NOCHANGE

type slaveState struct {
	cfg        Slave
	carrier    bool // bond_slave_is_up
	link       LinkState
	newLink    uint8 // proposed LinkState or noChange
	reason     Reason
	backup     bool // slave->backup (bond_slave_state)
	lastLinkUp time.Duration
	lastRx     time.Duration
	lastTx     time.Duration
	targetRx   [MaxTargets]time.Duration // target_last_arp_rx, IPv4 targets
	target6Rx  [MaxTargets]time.Duration // the same for IPv6 targets
	failures   uint32
}

// frameSlot is the buffer space per probe: a tagged NS is 90 bytes.
const frameSlot = 128

// Monitor is bonding's ARP (and NS) link monitor for one bond. It is not
// safe for concurrent use: the control goroutine owns it.
type Monitor struct {
	mode      Mode
	interval  time.Duration
	targets   []netip.Addr
	nsTargets []netip.Addr
	validate  Validate
	all       AllTargets
	missed    int
	reselect  Reselect
	addrs     []Addr

	slaves   []slaveState
	active   int // curr_active_slave, -1 none
	arpSlave int // current_arp_slave, -1 none
	primary  int // primary_slave, -1 none

	next time.Duration
	now  time.Duration

	arena []byte
	used  int
	acts  []Action
	sends []Action
}

// New validates cfg and returns a monitor whose slaves are freshly
// enslaved at now (bond_enslave with arp_interval: link up when there is
// carrier, last_rx one interval in the past) and whose first Tick is due
// at now (bond_open queues the ARP work at once). In active-backup mode the
// initial active slave is selected as bond_select_active_slave would; read
// it with Active.
func New(cfg Config, now time.Duration) (*Monitor, error) {
	if cfg.Mode != ActiveBackup && cfg.Mode != LoadBalance {
		return nil, fmt.Errorf("monitor: unknown mode %d", cfg.Mode)
	}
	if cfg.Interval <= 0 {
		return nil, errors.New("monitor: arp_interval must be positive")
	}
	if cfg.Validate > ValidateFilterBackup {
		return nil, fmt.Errorf("monitor: arp_validate %d out of range 0..6", cfg.Validate)
	}
	if cfg.AllTargets > TargetsAll {
		return nil, fmt.Errorf("monitor: arp_all_targets %d out of range 0..1", cfg.AllTargets)
	}
	missed := cfg.MissedMax
	if missed == 0 {
		missed = DefaultMissedMax
	}
	if missed < 1 || missed > 255 {
		return nil, fmt.Errorf("monitor: arp_missed_max %d out of range 1..255", cfg.MissedMax)
	}
	if cfg.PrimaryReselect > ReselectFailure {
		return nil, fmt.Errorf("monitor: primary_reselect %d out of range 0..2", cfg.PrimaryReselect)
	}
	if len(cfg.Slaves) == 0 {
		return nil, errors.New("monitor: no slaves")
	}
	t4, err := checkTargets4(cfg.Targets)
	if err != nil {
		return nil, err
	}
	t6, err := checkTargets6(cfg.NSTargets)
	if err != nil {
		return nil, err
	}
	if len(t4)+len(t6) == 0 {
		return nil, errors.New("monitor: no arp_ip_target or ns_ip6_target")
	}
	m := &Monitor{
		mode: cfg.Mode, interval: cfg.Interval, targets: t4, nsTargets: t6,
		validate: cfg.Validate, all: cfg.AllTargets, missed: missed, reselect: cfg.PrimaryReselect,
		slaves: make([]slaveState, len(cfg.Slaves)), active: -1, arpSlave: -1, primary: -1,
		next: now, now: now,
	}
	if err := m.SetAddrs(cfg.Addrs); err != nil {
		return nil, err
	}
	// bond_enslave: last_rx = jiffies - (arp_interval + 1), every
	// target_last_arp_rx and last_tx the same.
	init := now - cfg.Interval - time.Millisecond
	for i, sc := range cfg.Slaves {
		s := &m.slaves[i]
		s.cfg = sc
		s.carrier = !sc.NoCarrier
		s.link = LinkUp
		if !s.carrier {
			s.link = LinkDown
		} else {
			s.lastLinkUp = now
		}
		s.lastRx, s.lastTx = init, init
		for j := range s.targetRx {
			s.targetRx[j], s.target6Rx[j] = init, init
		}
		s.newLink = noChange
		if m.mode == ActiveBackup {
			s.backup = true // bond_set_slave_inactive_flags
			if sc.Primary && m.primary < 0 {
				m.primary = i
			}
		}
	}
	nt := len(t4) + len(t6)
	m.arena = make([]byte, len(m.slaves)*nt*frameSlot)
	m.acts = make([]Action, 0, 4*len(m.slaves)+4+len(m.slaves)*nt)
	m.sends = make([]Action, 0, len(m.slaves)*nt)
	if m.mode == ActiveBackup {
		m.selectActive(ReasonReselect)
	} else {
		// Trunking modes: the first up slave becomes curr_active_slave.
		for i := range m.slaves {
			if m.slaves[i].link == LinkUp {
				m.active = i
				break
			}
		}
	}
	m.acts = m.acts[:0]
	return m, nil
}

// checkTargets4 applies bond_is_ip_target_ok and rejects duplicates.
func checkTargets4(in []netip.Addr) ([]netip.Addr, error) {
	if len(in) > MaxTargets {
		return nil, fmt.Errorf("monitor: more than %d arp_ip_target", MaxTargets)
	}
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		a = a.Unmap()
		if !a.Is4() {
			return nil, fmt.Errorf("monitor: arp_ip_target %v is not IPv4", a)
		}
		b := a.As4()
		if b[0] == 0 || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return nil, fmt.Errorf("monitor: invalid arp_ip_target %v", a)
		}
		for _, o := range out {
			if o == a {
				return nil, fmt.Errorf("monitor: duplicate arp_ip_target %v", a)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// checkTargets6 applies bond_is_ip6_target_ok and rejects duplicates.
func checkTargets6(in []netip.Addr) ([]netip.Addr, error) {
	if len(in) > MaxTargets {
		return nil, fmt.Errorf("monitor: more than %d ns_ip6_target", MaxTargets)
	}
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
			return nil, fmt.Errorf("monitor: invalid ns_ip6_target %v", a)
		}
		a = a.WithZone("")
		for _, o := range out {
			if o == a {
				return nil, fmt.Errorf("monitor: duplicate ns_ip6_target %v", a)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// SetAddrs replaces the bond's addresses (those of the bond device, VLAN 0,
// and of VLAN devices on top of it). They decide the probes' source
// address and VLAN tag and which replies are addressed to the bond
// (bond_has_this_ip, bond_has_this_ip6).
func (m *Monitor) SetAddrs(addrs []Addr) error {
	out := make([]Addr, 0, len(addrs))
	for _, a := range addrs {
		if !a.Prefix.IsValid() {
			return fmt.Errorf("monitor: invalid address %v", a.Prefix)
		}
		if a.VLAN > MaxVLAN {
			return ErrVLAN
		}
		if a.Prefix.Addr().Is4In6() {
			a.Prefix = netip.PrefixFrom(a.Prefix.Addr().Unmap(), a.Prefix.Bits()-96)
		}
		a.Prefix = netip.PrefixFrom(a.Prefix.Addr().WithZone(""), a.Prefix.Bits())
		out = append(out, a)
	}
	m.addrs = out
	return nil
}

// Next is when the next Tick is due.
func (m *Monitor) Next() time.Duration { return m.next }

// Active is curr_active_slave (-1: none).
func (m *Monitor) Active() int { return m.active }

// ARPSlave is current_arp_slave: the slave probed while no slave is active
// in active-backup mode (-1: none).
func (m *Monitor) ARPSlave() int { return m.arpSlave }

// Slave returns slave i's state.
func (m *Monitor) Slave(i int) SlaveStatus {
	s := &m.slaves[i]
	return SlaveStatus{Link: s.link, Active: !s.backup, Carrier: s.carrier,
		LastRx: s.lastRx, LastTx: s.lastTx, LastLinkUp: s.lastLinkUp, Failures: s.failures}
}

// SetLink records slave i's carrier (bond_slave_is_up). With ARP
// monitoring, carrier alone never brings a slave up or down: the ARP
// monitor decides, and uses carrier only to pick whom to probe.
func (m *Monitor) SetLink(i int, carrier bool) {
	if i >= 0 && i < len(m.slaves) {
		m.slaves[i].carrier = carrier
	}
}

// SetActive is a runtime active_slave request
// (bond_option_active_slave_set, active-backup only). slave -1 clears the
// active slave and reselects. Otherwise slave must be up with carrier and
// some slave must already be active. It reports whether it was applied.
func (m *Monitor) SetActive(slave int, now time.Duration) bool {
	if m.mode != ActiveBackup || slave >= len(m.slaves) {
		return false
	}
	m.now = now
	// Actions appended here land past the slice Tick returned and are
	// dropped: the caller asked for the change.
	n := len(m.acts)
	defer func() { m.acts = m.acts[:n] }()
	if slave < 0 {
		m.active = -1
		m.selectActive(ReasonReselect)
		return true
	}
	if slave == m.active {
		return true
	}
	s := &m.slaves[slave]
	if m.active < 0 || s.link != LinkUp || !s.carrier {
		return false
	}
	m.changeActive(slave, ReasonReselect)
	return true
}

// Tick runs one pass of the ARP monitor when it is due (now >= Next()) and
// returns what to do: link changes, an active-slave change, then the
// probes to send. Tick returns nil when not due. The slice and the frames
// are reused by the next Tick.
func (m *Monitor) Tick(now time.Duration) []Action {
	if now < m.next {
		return nil
	}
	m.now = now
	m.next = now + m.interval // queue_delayed_work(..., arp_interval)
	m.acts, m.sends, m.used = m.acts[:0], m.sends[:0], 0
	if m.mode == ActiveBackup {
		// bond_activebackup_arp_mon (peer notification lives in Notifier).
		if m.abInspect() > 0 {
			m.abCommit()
		}
		m.abProbe()
	} else {
		m.lbMon()
	}
	m.acts = append(m.acts, m.sends...)
	return m.acts
}

// inInterval is bond_time_in_interval: last-interval <= now <=
// last + mod*interval + interval/2.
func (m *Monitor) inInterval(last time.Duration, mod int) bool {
	d := m.interval
	return m.now >= last-d && m.now <= last+time.Duration(mod)*d+d/2
}

// slaveLastRx is slave_last_rx: with arp_all_targets=all the oldest reply
// time over the targets (slave_oldest_target_arp_rx), else last_rx.
func (m *Monitor) slaveLastRx(s *slaveState) time.Duration {
	if m.all != TargetsAll {
		return s.lastRx
	}
	ret := s.targetRx[0]
	for i := 1; i < len(m.targets); i++ {
		if s.targetRx[i] < ret {
			ret = s.targetRx[i]
		}
	}
	for i := range m.nsTargets {
		if len(m.targets) == 0 && i == 0 || s.target6Rx[i] < ret {
			ret = s.target6Rx[i]
		}
	}
	return ret
}

func (m *Monitor) emitLink(i int, r Reason) {
	m.acts = append(m.acts, Action{Kind: ActionLink, Slave: i, Link: m.slaves[i].link, Reason: r})
}

// setInactive is bond_set_slave_inactive_flags (the backup flag).
func (m *Monitor) setInactive(i int) { m.slaves[i].backup = true }

// setActiveFlags is bond_set_slave_active_flags.
func (m *Monitor) setActiveFlags(i int) { m.slaves[i].backup = false }

// abInspect is bond_ab_arp_inspect: propose link changes, count them.
func (m *Monitor) abInspect() int {
	commit := 0
	for i := range m.slaves {
		s := &m.slaves[i]
		s.newLink = noChange
		lastRx := m.slaveLastRx(s)
		if s.link != LinkUp {
			if m.inInterval(lastRx, 1) {
				s.newLink, s.reason = uint8(LinkUp), ReasonReceived
				commit++
			} else if s.link == LinkBack {
				s.newLink, s.reason = uint8(LinkFail), ReasonProbeFailed
				commit++
			}
			continue
		}
		// Give slaves 2*delta after being enslaved or made active.
		if m.inInterval(s.lastLinkUp, 2) {
			continue
		}
		// Backup: no current_arp_slave and nothing received within
		// missed_max+1 intervals ("backups get one extra check").
		if s.backup && m.arpSlave < 0 && !m.inInterval(lastRx, m.missed+1) {
			s.newLink, s.reason = uint8(LinkDown), ReasonBackupMissed
			commit++
		}
		// Active: no probe sent or nothing received within missed_max.
		if !s.backup && (!m.inInterval(s.lastTx, m.missed) || !m.inInterval(lastRx, m.missed)) {
			s.newLink, s.reason = uint8(LinkDown), ReasonActiveMissed
			commit++
		}
	}
	return commit
}

// abCommit is bond_ab_arp_commit.
func (m *Monitor) abCommit() {
	failover := false
	for i := range m.slaves {
		s := &m.slaves[i]
		switch s.newLink {
		case noChange:
			continue
		case uint8(LinkUp):
			if m.active != i {
				s.link = LinkUp
				if m.arpSlave >= 0 {
					m.setInactive(m.arpSlave)
					m.arpSlave = -1
				}
				m.emitLink(i, s.reason)
				if m.active < 0 || i == m.primary || s.cfg.Prio > m.slaves[m.active].cfg.Prio {
					failover = true
				}
			}
		case uint8(LinkDown):
			s.failures++
			s.link = LinkDown
			m.setInactive(i)
			m.emitLink(i, s.reason)
			if i == m.active {
				m.arpSlave = -1
				failover = true
			}
		case uint8(LinkFail):
			s.link = LinkFail
			m.setInactive(i)
			m.emitLink(i, s.reason)
			if m.active >= 0 {
				m.arpSlave = -1
			}
		}
		s.newLink = noChange
	}
	if failover {
		m.selectActive(ReasonReselect)
	}
}

// abProbe is bond_ab_arp_probe: probe the active slave, or, with none,
// rotate current_arp_slave over the slaves with carrier.
func (m *Monitor) abProbe() {
	if m.active >= 0 {
		m.sendValidate(m.active)
		return
	}
	cur := m.arpSlave
	if cur < 0 {
		cur = 0 // bond_first_slave_rcu; not stored unless a candidate is found
	}
	before, next, found := -1, -1, false
	for i := range m.slaves {
		s := &m.slaves[i]
		if !found && before < 0 && s.carrier {
			before = i
		}
		if found && next < 0 && s.carrier {
			next = i
		}
		// Mark down slaves still up without carrier (simultaneous
		// failures the reselection missed).
		if !s.carrier && s.link == LinkUp {
			s.link = LinkDown
			s.failures++
			m.setInactive(i)
			m.emitLink(i, ReasonNoCarrier)
		}
		if i == cur {
			found = true
		}
	}
	if next < 0 && before >= 0 {
		next = before
	}
	if next < 0 {
		return
	}
	s := &m.slaves[next]
	if s.link != LinkBack {
		s.link = LinkBack
		m.emitLink(next, ReasonProbing)
	}
	m.setActiveFlags(next)
	m.sendValidate(next)
	s.lastLinkUp = m.now
	m.arpSlave = next
}

// lbMon is bond_loadbalance_arp_mon: a slave is up while it both sent a
// probe and received something within the window; every slave with
// carrier is probed.
func (m *Monitor) lbMon() {
	old := m.active
	failover, changed := false, false
	for i := range m.slaves {
		s := &m.slaves[i]
		s.newLink = noChange
		if s.link != LinkUp {
			if m.inInterval(s.lastTx, 1) && m.inInterval(s.lastRx, 1) {
				s.newLink, s.reason = uint8(LinkUp), ReasonTraffic
				changed = true
				if old < 0 {
					failover = true
				}
			}
		} else if !m.inInterval(s.lastTx, m.missed) || !m.inInterval(s.lastRx, m.missed) {
			s.newLink, s.reason = uint8(LinkDown), ReasonMissed
			changed = true
			s.failures++
			if i == old {
				failover = true
			}
		}
		if s.carrier {
			m.sendValidate(i)
		}
	}
	if !changed {
		return
	}
	for i := range m.slaves {
		s := &m.slaves[i]
		if s.newLink != noChange {
			s.link = LinkState(s.newLink)
			s.newLink = noChange
			m.emitLink(i, s.reason)
		}
	}
	// bond_slave_state_change.
	for i := range m.slaves {
		switch m.slaves[i].link {
		case LinkUp:
			m.setActiveFlags(i)
		case LinkDown:
			m.setInactive(i)
		}
	}
	if failover {
		m.selectActive(ReasonReselect)
	}
}

// selectActive is bond_select_active_slave.
func (m *Monitor) selectActive(r Reason) {
	if best := m.findBest(); best != m.active {
		m.changeActive(best, r)
	}
}

// findBest is bond_find_best_slave / bond_choose_primary_or_current. With
// the ARP monitor updelay is 0, so a BOND_LINK_BACK slave is never chosen
// by the fallback loop.
func (m *Monitor) findBest() int {
	prim, curr := m.primary, m.active
	up := func(i int) bool { return i >= 0 && m.slaves[i].link == LinkUp }
	prio := func(i int) int32 {
		if m.mode != ActiveBackup {
			return 0 // prio is an active-backup/tlb/alb option
		}
		return m.slaves[i].cfg.Prio
	}
	if !up(prim) {
		hprio := -1
		for i := range m.slaves {
			if up(i) && (hprio < 0 || prio(i) > prio(hprio)) {
				hprio = i
			}
		}
		if hprio < 0 || hprio == curr {
			if !up(curr) {
				return -1
			}
			return curr
		}
		prim = hprio
	}
	if !up(curr) {
		return prim
	}
	switch m.reselect {
	case ReselectBetter:
		p, c := &m.slaves[prim].cfg, &m.slaves[curr].cfg
		if p.Speed < c.Speed || p.Speed == c.Speed && (!p.FullDuplex || c.FullDuplex) {
			return curr
		}
		return prim
	case ReselectFailure:
		return curr
	}
	return prim
}

// changeActive is bond_change_active_slave (the monitor's part of it).
func (m *Monitor) changeActive(n int, r Reason) {
	old := m.active
	if old == n {
		return
	}
	if n >= 0 {
		s := &m.slaves[n]
		s.lastLinkUp = m.now
		if s.link == LinkBack {
			s.link = LinkUp
			m.emitLink(n, ReasonMadeActive)
		}
	}
	if m.mode == ActiveBackup {
		if old >= 0 {
			m.setInactive(old)
		}
		if n >= 0 {
			m.setActiveFlags(n)
		}
	}
	m.active = n
	m.acts = append(m.acts, Action{Kind: ActionActive, Slave: n, Reason: r})
}

// frame returns a probe buffer from the arena.
func (m *Monitor) frame() []byte {
	if m.used+frameSlot > len(m.arena) {
		return make([]byte, frameSlot)
	}
	b := m.arena[m.used : m.used+frameSlot]
	m.used += frameSlot
	return b
}

// sendValidate is bond_send_validate: bond_arp_send_all then
// bond_ns_send_all on slave i. Each probe sent refreshes last_tx
// (slave_update_last_tx).
func (m *Monitor) sendValidate(i int) {
	s := &m.slaves[i]
	for _, t := range m.targets {
		src, vlan := m.arpSource(t)
		b := m.frame()
		n, err := BuildARPProbe(b, vlan, s.cfg.MAC, src, t)
		if err != nil {
			continue
		}
		s.lastTx = m.now
		m.sends = append(m.sends, Action{Kind: ActionSend, Slave: i, Frame: b[:n]})
	}
	for _, t := range m.nsTargets {
		src, vlan := m.nsSource(t)
		b := m.frame()
		n, err := BuildNS(b, vlan, s.cfg.MAC, src, t)
		if err != nil {
			continue
		}
		s.lastTx = m.now
		m.sends = append(m.sends, Action{Kind: ActionSend, Slave: i, Frame: b[:n]})
	}
}

// arpSource mirrors bond_arp_send_all's route and address choice. The
// kernel looks the target up with RT_SCOPE_LINK, so only an on-link
// target has a route; it then takes the address of the device holding that
// route (the bond or a VLAN device above it, whose tag the probe carries)
// in the target's subnet (bond_confirm_addr). Without such a route it
// sends untagged from 0.0.0.0.
func (m *Monitor) arpSource(t netip.Addr) (netip.Addr, uint16) {
	for _, a := range m.addrs {
		if a.Prefix.Addr().Is4() && a.Prefix.Contains(t) {
			return a.Prefix.Addr(), a.VLAN
		}
	}
	return netip.IPv4Unspecified(), 0
}

// nsSource approximates bond_ns_send_all (ip6_route_output then
// ipv6_dev_get_saddr): an address whose prefix holds the target, else one
// of the target's scope (link-local for a link-local target, global
// otherwise, as through a default route), else :: untagged.
func (m *Monitor) nsSource(t netip.Addr) (netip.Addr, uint16) {
	for _, a := range m.addrs {
		if a.Prefix.Addr().Is6() && a.Prefix.Contains(t) {
			return a.Prefix.Addr(), a.VLAN
		}
	}
	ll := t.IsLinkLocalUnicast()
	for _, a := range m.addrs {
		if ip := a.Prefix.Addr(); ip.Is6() && ip.IsLinkLocalUnicast() == ll {
			return ip, a.VLAN
		}
	}
	return netip.IPv6Unspecified(), 0
}

func (m *Monitor) hasIP4(ip [4]byte) bool {
	a := netip.AddrFrom4(ip)
	for _, x := range m.addrs {
		if x.Prefix.Addr() == a {
			return true
		}
	}
	return false
}

func (m *Monitor) hasIP6(ip *[16]byte) bool {
	a := netip.AddrFrom16(*ip)
	for _, x := range m.addrs {
		if x.Prefix.Addr() == a {
			return true
		}
	}
	return false
}

// doValidate is slave_do_arp_validate.
func (m *Monitor) doValidate(s *slaveState) bool {
	bit := Validate(1) // 1 << BOND_STATE_ACTIVE
	if s.backup {
		bit = 2 // 1 << BOND_STATE_BACKUP
	}
	return m.validate&bit != 0
}

// Traffic reports a frame of the given ethertype (after one VLAN tag)
// received on slave at now whose contents were not handed to Rx: the
// unvalidated branch of bond_rcv_validate. It counts as receive activity
// (last_rx) unless the slave validates, or filtering (arp_validate
// filter*) is on and the frame is neither ARP nor IPv6. It reports whether
// it counted. In load-balancing mode lanes call it for ordinary traffic.
func (m *Monitor) Traffic(slave int, etherType uint16, now time.Duration) bool {
	if slave < 0 || slave >= len(m.slaves) {
		return false
	}
	s := &m.slaves[slave]
	if m.doValidate(s) {
		return false
	}
	if m.validate&validateFilter != 0 && etherType != EtherTypeARP && etherType != EtherTypeIPv6 {
		return false
	}
	s.lastRx = now
	return true
}

// Rx handles a frame received on slave at now, as bond_rcv_validate: a
// slave that does not validate counts any frame (only ARP and IPv6 with
// filtering); a validating slave counts only ARP (bond_arp_rcv) or NS/NA
// (bond_na_rcv) exchanges with its targets. It reports whether the frame
// refreshed the slave's receive time. The frame is not retained.
func (m *Monitor) Rx(slave int, frame []byte, now time.Duration) bool {
	if slave < 0 || slave >= len(m.slaves) {
		return false
	}
	h, ok := parseEth(frame)
	if !ok {
		return false
	}
	s := &m.slaves[slave]
	if !m.doValidate(s) {
		return m.Traffic(slave, h.etherType, now)
	}
	m.now = now
	// PACKET_OTHERHOST: unicast to another station.
	other := !h.dst.IsMulticast() && h.dst != s.cfg.MAC
	switch h.etherType {
	case EtherTypeARP:
		return m.arpRcv(s, frame[h.off:], other)
	case EtherTypeIPv6:
		return m.naRcv(s, frame[h.off:], other)
	}
	return false
}

// trusted decides whether a validating slave's ARP/NS/NA is checked, and
// with which orientation, as bond_arp_rcv and bond_na_rcv:
//
//	(a) the slave is active (this includes the current ARP slave): check
//	    sender = target, destination = us;
//	(b) another slave is active and has received valid traffic since it
//	    became active: this is our own broadcast probe seen through the
//	    switch, so check it swapped;
//	(c) the current ARP slave sent a probe within the last interval: a
//	    reply (for ARP: op reply) on any slave is checked as in (a).
func (m *Monitor) trusted(s *slaveState, reply bool) (ok, swap bool) {
	if !s.backup {
		return true, false
	}
	if m.active >= 0 {
		a := &m.slaves[m.active]
		if m.slaveLastRx(a) > a.lastLinkUp {
			return true, true
		}
	}
	if m.arpSlave >= 0 && reply && m.inInterval(m.slaves[m.arpSlave].lastTx, 1) {
		return true, false
	}
	return false, false
}

// arpRcv is bond_arp_rcv; p is the ARP body.
func (m *Monitor) arpRcv(s *slaveState, p []byte, other bool) bool {
	if len(p) < arpLen || p[4] != 6 || other || binary.BigEndian.Uint16(p[0:2]) != 1 ||
		binary.BigEndian.Uint16(p[2:4]) != EtherTypeIPv4 || p[5] != 4 {
		return false
	}
	sip, tip := [4]byte(p[14:18]), [4]byte(p[24:28])
	ok, swap := m.trusted(s, binary.BigEndian.Uint16(p[6:8]) == ARPReply)
	if !ok {
		return false
	}
	if swap {
		sip, tip = tip, sip
	}
	return m.validateARP(s, sip, tip)
}

// validateARP is bond_validate_arp: sip must be a target and tip ours.
func (m *Monitor) validateARP(s *slaveState, sip, tip [4]byte) bool {
	if sip == ([4]byte{}) || !m.hasIP4(tip) {
		return false
	}
	a := netip.AddrFrom4(sip)
	for i, t := range m.targets {
		if t == a {
			s.lastRx = m.now
			s.targetRx[i] = m.now
			return true
		}
	}
	return false
}

// naRcv is bond_na_rcv; p is the IPv6 packet. Like the kernel it reads
// only the fixed IPv6 header and the ICMPv6 type, and accepts NS as well
// as NA.
func (m *Monitor) naRcv(s *slaveState, p []byte, other bool) bool {
	if other || len(p) < ipv6HdrLen+8 || p[6] != protoICMPv6 ||
		(p[40] != ICMPv6NeighborSolicitation && p[40] != ICMPv6NeighborAdvertisement) {
		return false
	}
	saddr, daddr := [16]byte(p[8:24]), [16]byte(p[24:40])
	ok, swap := m.trusted(s, true)
	if !ok {
		return false
	}
	if swap {
		saddr, daddr = daddr, saddr
	}
	return m.validateNA(s, &saddr, &daddr)
}

// validateNA is bond_validate_na: the source must not be :: and the
// destination must be ff02::1 or ours; the source must be a target or a
// target's solicited-node group (bond_get_targets_ip6).
func (m *Monitor) validateNA(s *slaveState, saddr, daddr *[16]byte) bool {
	if *saddr == ([16]byte{}) || (*daddr != AllNodes.As16() && !m.hasIP6(daddr)) {
		return false
	}
	a := netip.AddrFrom16(*saddr)
	for i, t := range m.nsTargets {
		if t == a || SolicitedNode(t) == a {
			s.lastRx = m.now
			s.target6Rx[i] = m.now
			return true
		}
	}
	return false
}
