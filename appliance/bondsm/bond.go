package bondsm

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
	"github.com/bond-appliance/bond-appliance/policy"
)

// origin says which part of the bond built a frame.
type origin uint8

const (
	originNone origin = iota
	originAD
	originMon
	originALB
)

// linkState is a member's MII state, as bonding's BOND_LINK_*.
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

// member is one slave of the bond.
type member struct {
	idx      int
	cfg      config.Slave
	name     string
	ifindex  int
	permMAC  net.HardwareAddr
	curMAC   net.HardwareAddr // the MAC the member carries (after our actions)
	carrier  bool             // last carrier seen
	state    linkState
	since    time.Time // when state last changed (delays)
	failures int
	speed    int
	duplex   string
	removed  bool // hot-removed: a tombstone keeping indices stable
	// promiscuity: hostPromisc is what following the host device wants,
	// albPromisc what balance-alb asked for, devPromisc what the actions
	// returned so far gave the device (the OR of both).
	hostPromisc bool
	albPromisc  bool
	devPromisc  bool
}

// usable reports whether a member's MII state lets it carry traffic: up,
// or going down. As in bonding, a slave in downdelay keeps transmitting
// and keeps its role (curr_active_slave, usable_slaves, its 802.3ad port)
// until bond_miimon_commit marks it down when the downdelay expires: a
// short flap moves no traffic. A slave in updelay ("going back") does not
// transmit yet.
func (m *member) usable() bool { return (m.state == linkUp || m.state == linkFail) && !m.removed }

// up reports whether a member is fully up: only such a member is newly
// chosen as the active slave (bond_find_best_slave); one going down keeps
// the role it has but gets no new one.
func (m *member) up() bool { return m.state == linkUp && !m.removed }

// Bond is one bond's control state. It is not safe for concurrent use:
// one goroutine (the appliance's control loop) owns it.
type Bond struct {
	cfg        config.Bond
	mode       policy.Mode
	hash       policy.HashPolicy
	mac        net.HardwareAddr
	mtu        int
	hostDevice string

	members []*member
	active  int // active member index, -1 none
	// published is the active member of the last rebuild (-1 none): what
	// a change of the active slave is measured from, whichever path
	// changed b.active (a runtime active_slave sets it before rebuilding).
	published int
	// manual is set by a runtime active_slave request: as in bonding, the
	// chosen slave stays active (primary reselection waits) until the next
	// link state change.
	manual      bool
	carrier     bool
	snap        *lane.Snapshot
	hostPromisc bool
	addrs       []monitor.Addr
	groups      []monitor.Group

	ad  *adState  // 802.3ad only
	mon *monState // ARP/NS monitor and peer notification, when configured
	alb *albState // balance-tlb and balance-alb only

	// the clock: start is New's time, now the latest time seen (inputs
	// never move it back), t = now - start for the pure engines.
	start time.Time
	now   time.Time
	t     time.Duration

	out   Output // being built by the current call
	arena []byte // frame data of the current call's Output
}

// UsesOwnMACs reports whether members keep their own MACs at start:
// balance-alb (each slave keeps its own, the bond MAC lives on the active
// one) and active-backup with fail_over_mac active or follow. Otherwise the
// caller gives every member the bond MAC before New. balance-tlb keeps the
// bond MAC on every NIC (frames sent on a non-active slave only carry its
// own address as source).
func UsesOwnMACs(c config.Bond) bool {
	m := policy.Mode(c.Mode)
	if m == policy.BalanceALB {
		return true
	}
	return m == policy.ActiveBackup && c.FailOverMAC != config.FailOverMACNone
}

// New builds a bond's control state from its validated configuration and
// its members as found. The Output carries the first snapshot, the host
// device's carrier (SetHostCarrier) and, in balance-alb, the members' MAC
// moves. cfg.ActiveSlave is applied as a runtime active_slave would be.
func New(s Setup, now time.Time) (*Bond, Output, error) {
	c := s.Config.Clone()
	if c.Mode < 0 || c.Mode > int(policy.BalanceALB) {
		return nil, Output{}, fmt.Errorf("bond %s: mode %d out of range", c.Name, c.Mode)
	}
	if len(s.Members) == 0 || len(s.Members) > lane.MaxMembers {
		return nil, Output{}, fmt.Errorf("bond %s: %d members, want 1 to %d", c.Name, len(s.Members), lane.MaxMembers)
	}
	b := &Bond{cfg: c, mode: policy.Mode(c.Mode), hash: policy.HashPolicy(c.XmitHashPolicy), active: -1, published: -1,
		mtu: s.MTU, hostDevice: s.HostDevice, start: now, now: now}
	b.mac = slices.Clone(s.MAC)
	if len(b.mac) == 0 {
		b.mac = slices.Clone(s.Members[0].PermMAC)
	}
	if len(b.mac) != 6 {
		return nil, Output{}, fmt.Errorf("bond %s: MAC %q is not an Ethernet address", c.Name, b.mac.String())
	}
	if b.mtu == 0 {
		b.mtu = 1500
	}
	b.cfg.Slaves = nil
	for i, sm := range s.Members {
		for _, o := range b.members {
			if o.name == sm.Name {
				return nil, Output{}, fmt.Errorf("bond %s: member %s given twice", c.Name, sm.Name)
			}
		}
		m := newMember(i, sm, s.Config.Slaves, now)
		b.members = append(b.members, m)
		b.cfg.Slaves = append(b.cfg.Slaves, m.cfg)
	}
	b.begin(now)
	if b.mode == policy.IEEE8023AD {
		if err := b.setupAD(); err != nil {
			return nil, Output{}, fmt.Errorf("bond %s: 802.3ad: %w", c.Name, err)
		}
	}
	if b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB {
		if err := b.setupALB(); err != nil {
			return nil, Output{}, fmt.Errorf("bond %s: %s: %w", c.Name, b.mode, err)
		}
	}
	// As the appliance always did, the monitor is built before the links
	// are read: ARP/NS-monitored members start down and come up on replies.
	ms, err := b.newMonitor(b.cfg, true)
	if err != nil {
		return nil, Output{}, fmt.Errorf("bond %s: ARP/NS monitor: %w", c.Name, err)
	}
	b.mon = ms
	for _, m := range b.members {
		b.adLink(m)
		b.albLink(m)
		if b.mon != nil && b.mon.mon != nil {
			b.mon.mon.SetLink(m.idx, m.carrier)
		}
	}
	if b.cfg.ActiveSlave != "" {
		b.setActive(b.cfg.ActiveSlave)
	}
	b.rebuild()
	if !b.carrier {
		// rebuild reported a carrier only if there is one: say there is none
		b.action(Action{Kind: SetHostCarrier, Device: b.cfg.Name, On: false})
	}
	return b, b.finish(), nil
}

func newMember(i int, sm Member, slaves []config.Slave, now time.Time) *member {
	sc := sm.Slave
	if sc.Name != sm.Name {
		sc = config.Slave{Name: sm.Name, ActorPortPrio: 255}
		for _, x := range slaves {
			if x.Name == sm.Name {
				sc = x
			}
		}
	}
	m := &member{idx: i, cfg: sc, name: sm.Name, ifindex: sm.Ifindex, permMAC: slices.Clone(sm.PermMAC),
		curMAC: slices.Clone(sm.CurMAC), carrier: sm.Carrier, state: linkDown, since: now,
		speed: sm.Speed, duplex: sm.Duplex}
	if len(m.curMAC) == 0 {
		m.curMAC = slices.Clone(m.permMAC)
	}
	if m.duplex == "" {
		m.duplex = "unknown"
	}
	if sm.Carrier {
		m.state = linkUp
	}
	return m
}

// begin starts an input: the clock moves to now (never back) and the
// Output under construction is reset. The frame memory of the previous
// Output is reused from here on.
func (b *Bond) begin(now time.Time) {
	if now.After(b.now) {
		b.now = now
	}
	b.t = b.now.Sub(b.start)
	b.out = Output{}
	b.arena = b.arena[:0]
}

// finish returns the Output built since begin.
func (b *Bond) finish() Output {
	o := b.out
	b.out = Output{}
	return o
}

// emit queues a frame to send on member; data is copied.
func (b *Bond) emit(member int, class Class, o origin, data []byte) {
	start := len(b.arena)
	b.arena = append(b.arena, data...)
	end := len(b.arena)
	b.out.Frames = append(b.out.Frames, Frame{Member: member, Class: class, Data: b.arena[start:end:end], origin: o})
}

func (b *Bond) action(a Action) { b.out.Actions = append(b.out.Actions, a) }

func (b *Bond) log(msg string, args ...any) {
	b.out.Events = append(b.out.Events, Event{Msg: msg, Args: args})
}

func (b *Bond) member(i int) *member {
	if i < 0 || i >= len(b.members) {
		return nil
	}
	return b.members[i]
}

// Name is the bond's name.
func (b *Bond) Name() string { return b.cfg.Name }

// Config returns the live options (a clone): Slaves lists the members as
// added and removed at run time.
func (b *Bond) Config() config.Bond { return b.cfg.Clone() }

// Miimon is the miimon option in force (ms; 0: no polling), without
// copying the configuration (the control loop asks at every tick).
func (b *Bond) Miimon() int { return b.cfg.Miimon }

// UseCarrier is the use_carrier option in force.
func (b *Bond) UseCarrier() bool { return b.cfg.UseCarrier }

// Snapshot returns the last snapshot; it is never modified.
func (b *Bond) Snapshot() *lane.Snapshot { return b.snap }

// MAC returns the bond's MAC (the host device's; fail_over_mac active
// changes it).
func (b *Bond) MAC() net.HardwareAddr { return slices.Clone(b.mac) }

// Carrier reports whether some member can transmit.
func (b *Bond) Carrier() bool { return b.carrier }

// Members lists every member index, removed tombstones included.
func (b *Bond) Members() []MemberState {
	out := make([]MemberState, 0, len(b.members))
	for _, m := range b.members {
		out = append(out, MemberState{Index: m.idx, Name: m.name, Ifindex: m.ifindex, Removed: m.removed,
			Carrier: m.carrier, State: m.state.String(), CurMAC: slices.Clone(m.curMAC), Promisc: m.devPromisc})
	}
	return out
}

// ok reports whether a member may carry traffic: every enabled monitor
// (MII, and ARP/NS when configured) must say it is up.
func (b *Bond) ok(m *member) bool { return m.usable() && b.monUsable(m.idx) }

// updateLink feeds a carrier observation into the MII state machine, as
// bond_miimon_inspect/commit do: downdelay and updelay hold a change until it
// has lasted that long. It returns true when the MII state changed.
func (b *Bond) updateLink(m *member, carrier bool, now time.Time) bool {
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
	if m.state != old {
		b.log("slave link state", "bond", b.cfg.Name, "slave", m.name, "from", old.String(), "to", m.state.String())
	}
	return m.state != old
}

// Link feeds a carrier observation of a member (a netlink event or a
// miimon poll) into its MII state machine.
func (b *Bond) Link(now time.Time, member int, carrier bool) Output {
	b.begin(now)
	if m := b.member(member); m != nil && !m.removed {
		if b.updateLink(m, carrier, b.now) {
			b.rebuild()
		}
	}
	return b.finish()
}

// LinkMode records a member's speed (Mb/s, 0 unknown) and duplex ("full",
// "half", "unknown"): status, LACP keys, primary_reselect better and the
// tlb/alb loads use them.
func (b *Bond) LinkMode(now time.Time, member int, speed int, duplex string) Output {
	b.begin(now)
	m := b.member(member)
	if m == nil || m.removed {
		return b.finish()
	}
	if duplex == "" {
		duplex = "unknown"
	}
	if m.speed == speed && m.duplex == duplex {
		return b.finish()
	}
	m.speed, m.duplex = speed, duplex
	b.adLink(m)
	if b.alb != nil {
		b.alb.b.SetSpeed(m.idx, m.speed)
	}
	b.adMaybeRebuild()
	b.rebuild()
	return b.finish()
}

// Tick runs what is timed: updelay and downdelay, the ARP/NS monitor and
// the peer notifier (each at its own interval) and the tlb/alb monitor.
// Call it every 10 ms.
func (b *Bond) Tick(now time.Time, in TickInput) Output {
	b.begin(now)
	changed := false
	for _, m := range b.members {
		if !m.removed && (m.state == linkFail || m.state == linkBack) {
			changed = b.updateLink(m, m.carrier, b.now) || changed
		}
	}
	if changed {
		b.rebuild()
	}
	if b.mon != nil {
		b.monTick(in.RxPackets)
	}
	if b.alb != nil {
		b.albTick(in.ALBLoads)
	}
	return b.finish()
}

// Receive hands the bond a control frame a lane passed up: with member ==
// HostMember an ARP frame the host sent (balance-alb's rlb rewrites it);
// a Slow Protocols frame (0x8809) goes to LACP; anything else is an ARP or
// neighbour-discovery copy for the ARP/NS monitor and balance-alb.
// Any bytes and any member index are accepted.
func (b *Bond) Receive(now time.Time, member int, frame []byte) Output {
	b.begin(now)
	switch {
	case member == HostMember:
		if b.alb != nil {
			b.albHostARP(frame)
		}
	case b.member(member) == nil:
	case isSlowProtocol(frame):
		if b.ad != nil {
			b.adReceive(member, frame)
		}
	default:
		if b.mon != nil && b.mon.mon != nil {
			b.mon.mon.Rx(member, frame, b.t)
		}
		if b.alb != nil {
			b.alb.b.PeerRx(member, frame)
		}
	}
	return b.finish()
}

func isSlowProtocol(f []byte) bool { return len(f) >= 14 && f[12] == 0x88 && f[13] == 0x09 }

// selectActive picks the active slave (bond_select_active_slave with
// primary and primary_reselect: always 0, better 1, failure 2).
func (b *Bond) selectActive() {
	var cur, prim *member
	if b.active >= 0 && b.active < len(b.members) {
		cur = b.members[b.active]
	}
	for _, m := range b.members {
		if m.name == b.cfg.Primary && b.ok(m) && m.up() {
			prim = m
		}
	}
	pick := cur
	switch {
	case cur == nil || !b.ok(cur):
		pick = prim
		if pick == nil {
			for _, m := range b.members {
				if b.ok(m) && m.up() && (pick == nil || m.cfg.Prio > pick.cfg.Prio) {
					pick = m
				}
			}
		}
	case prim != nil && prim != cur && !b.manual:
		switch b.cfg.PrimaryReselect {
		case config.PrimaryReselectAlways:
			pick = prim
		case config.PrimaryReselectBetter:
			if prim.speed > cur.speed || (prim.speed == cur.speed && prim.duplex == "full" && cur.duplex != "full") {
				pick = prim
			}
		}
	}
	n := -1
	if pick != nil {
		n = pick.idx
	}
	b.active = n
}

// activeChanged logs a change of the active slave from prev.
func (b *Bond) activeChanged(prev int) {
	name := func(i int) string {
		if m := b.member(i); m != nil {
			return m.name
		}
		return "none"
	}
	b.log("active slave changed", "bond", b.cfg.Name, "from", name(prev), "to", name(b.active))
}

// setActive implements a runtime active_slave request.
func (b *Bond) setActive(name string) bool {
	for _, m := range b.members {
		if m.name == name && b.ok(m) && m.up() {
			b.active = m.idx
			b.manual = true
			if b.mon != nil && b.mon.mon != nil {
				b.mon.mon.SetActive(m.idx, b.t)
			}
			return true
		}
	}
	return false
}

// SetActiveSlave implements the runtime active_slave option ("" clears it:
// the bond selects again). The slave stays active until the next link
// state change; Config records the request.
func (b *Bond) SetActiveSlave(now time.Time, name string) (Output, error) {
	b.begin(now)
	if err := b.canSetActive(name); err != nil {
		return Output{}, err
	}
	b.applyActive(name)
	b.rebuild()
	return b.finish(), nil
}

// canSetActive reports why active_slave name cannot be applied now: only
// active-backup has a runtime active slave, and it must be an up member.
func (b *Bond) canSetActive(name string) error {
	if b.mode != policy.ActiveBackup {
		return fmt.Errorf("bond %s: active_slave: only in active-backup mode (mode is %s)", b.cfg.Name, b.mode)
	}
	if name == "" {
		return nil
	}
	for _, m := range b.members {
		if m.name == name && b.ok(m) && m.up() {
			return nil
		}
	}
	return fmt.Errorf("bond %s: active_slave: %q is not an up slave of this bond", b.cfg.Name, name)
}

// applyActive applies an active_slave request canSetActive accepted; the
// caller rebuilds.
func (b *Bond) applyActive(name string) {
	b.cfg.ActiveSlave = name
	if name == "" {
		b.active = -1
		return
	}
	if !b.setActive(name) {
		b.log("active_slave not applied: the slave is no longer up", "bond", b.cfg.Name, "slave", name)
	}
}

// rebuild recomputes the forwarding snapshot; a changed one goes into the
// Output, and so does a change of the bond's carrier.
func (b *Bond) rebuild() {
	s := &lane.Snapshot{Mode: b.mode, Hash: b.hash, Active: -1, PacketsPerSlave: uint32(b.cfg.PacketsPerSlave)}
	s.CopyARP = b.mon != nil && b.mon.mon != nil
	s.BroadcastNeighbor = b.mode == policy.IEEE8023AD && b.cfg.BroadcastNeighbor
	prevActive := b.published
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
		if b.ad != nil && (b.snap == nil || !slices.Equal(b.snap.TX, s.TX)) {
			b.adLogDistributing(s.TX)
		}
	case policy.ActiveBackup:
		if b.mon != nil && b.mon.mon != nil && b.cfg.Miimon == 0 {
			// the ARP/NS monitor selects the active slave (bond_ab_arp_commit)
			b.active = b.mon.mon.Active()
			if m := b.member(b.active); m == nil || !b.ok(m) {
				b.active = -1
			}
		} else {
			b.selectActive()
		}
		if b.active != prevActive {
			b.activeChanged(prevActive)
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
			if m := b.member(b.active); m == nil || !b.ok(m) {
				b.active = s.TX[0]
			}
			s.Active = b.active
		} else {
			b.active = -1
		}
	}
	b.published = b.active
	if !sameSnapshot(b.snap, s) {
		b.snap = s
		b.out.Snapshot = s
	}
	carrier := len(s.TX) > 0
	if carrier != b.carrier {
		b.carrier = carrier
		b.action(Action{Kind: SetHostCarrier, Device: b.cfg.Name, On: carrier})
	}
}

// sameSnapshot reports whether publishing b instead of a changes nothing
// (XmitHash follows Hash).
func sameSnapshot(a, b *lane.Snapshot) bool {
	return a != nil && b != nil && a.Mode == b.Mode && a.Hash == b.Hash && a.Active == b.Active && a.RX == b.RX &&
		a.PacketsPerSlave == b.PacketsPerSlave && a.CopyARP == b.CopyARP && a.ALB == b.ALB &&
		a.BroadcastNeighbor == b.BroadcastNeighbor &&
		(a.XmitHash == nil) == (b.XmitHash == nil) && slices.Equal(a.TX, b.TX)
}

func macEqual(a, b net.HardwareAddr) bool { return bytes.Equal(a, b) }
