package alb

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// TickInterval is the period of bond_alb_monitor (HZ /
// ALB_TIMER_TICKS_PER_SEC).
const TickInterval = time.Second / ticksPerSec

// maxCatchUp bounds the ticks one [Bond.Tick] runs after a long pause;
// the rest are skipped.
const maxCatchUp = 10 * rebalanceTicks

// Slave configures one slave. Slave i of [Config.Slaves] is member i of
// the bond (the lane's member index).
type Slave struct {
	Speed int // Mb/s; 0 (unknown) counts as the slowest
	MAC   MAC // permanent address (perm_hwaddr)
	Up    bool
}

// Config configures a [Bond].
type Config struct {
	Mode    Mode
	BondMAC MAC
	Slaves  []Slave
	// DynamicLB is tlb_dynamic_lb (the kernel's default is 1).
	DynamicLB bool
	// LPInterval is lp_interval, rounded down to whole seconds as the
	// kernel counts it; 0 means the default, 1 s.
	LPInterval time.Duration
	// Updelay delays a slave that comes back before it carries traffic
	// (bonding's updelay). Leave it 0 when the caller runs bonding's MII
	// state machine itself and calls [Bond.SlaveUp] when a slave is up.
	Updelay time.Duration
	// AllSlavesActive is all_slaves_active.
	AllSlavesActive bool
	// VLANs are the VLAN ids above the bond: learning packets are also
	// sent tagged with each (alb_upper_dev_walk; the VLAN devices are
	// assumed to carry the bond's address, NET_ADDR_STOLEN).
	VLANs []uint16
}

// Frame is a frame to transmit on a slave.
type Frame struct {
	Slave int
	Data  []byte
}

// Promisc asks to turn a slave's promiscuous mode on or off.
type Promisc struct {
	Slave int
	On    bool
}

// Output is what a [Bond] asks the caller to do.
type Output struct {
	Frames  []Frame
	Promisc []Promisc
}

// MACChange says which address a slave takes. Hardware is set in
// balance-alb, where the slave's NIC must receive on the address
// (dev_set_mac_address). In balance-tlb every slave keeps the bond's
// address in hardware and only sends from MAC (the kernel changes only
// dev_addr); nothing needs programming.
type MACChange struct {
	Slave    int
	MAC      MAC
	Hardware bool
}

type linkState uint8

const (
	linkDown linkState = iota
	linkBack           // carrier back, updelay running
	linkUp
)

func (s linkState) String() string {
	switch s {
	case linkUp:
		return "up"
	case linkBack:
		return "going back"
	}
	return "down"
}

type slave struct {
	speed int
	perm  MAC // perm_hwaddr
	cur   MAC // dev_addr
	link  linkState
	since time.Duration
}

// shared is the bond state TLB and RLB both read.
type shared struct {
	mode      Mode
	bond      MAC
	s         []slave
	active    int
	allActive bool
	vlans     []uint16
	dirty     bool // the published Table is stale
	out       Output

	learningSent uint64
}

func (sh *shared) canTx(i int) bool { return sh.s[i].link == linkUp }

// slaveWithMAC is bond_slave_has_mac: the slave whose current address is
// mac, -1 none.
func (sh *shared) slaveWithMAC(mac MAC) int {
	for i := range sh.s {
		if sh.s[i].cur == mac {
			return i
		}
	}
	return -1
}

func (sh *shared) send(slave int, data []byte) {
	sh.out.Frames = append(sh.out.Frames, Frame{Slave: slave, Data: data})
}

func (sh *shared) setPromisc(slave int, on bool) {
	sh.out.Promisc = append(sh.out.Promisc, Promisc{Slave: slave, On: on})
}

// learning is alb_send_learning_packets: one packet untagged and one per
// VLAN, from slave, with mac as source and destination.
func (sh *shared) learning(slave int, mac MAC) {
	sh.send(slave, learningPacket(mac, 0))
	for _, v := range sh.vlans {
		sh.send(slave, learningPacket(mac, v))
	}
	sh.learningSent += uint64(1 + len(sh.vlans))
}

// Bond is the tlb/alb state of one bond. It is not safe for concurrent
// use: control owns it.
type Bond struct {
	sh      shared
	tlb     *TLB
	rlb     *RLB // balance-alb only
	updelay time.Duration
	lpTicks int // BOND_ALB_LP_TICKS
	lpCount int // lp_counter
	next    time.Duration
	started bool
}

// New builds a bond's state. The slaves take their permanent addresses,
// with bonding's collision rules (alb_handle_addr_collision_on_attach),
// which [Bond.MACs] reports. No slave is active until
// [Bond.ActiveChange].
func New(cfg Config) (*Bond, error) {
	if cfg.Mode != ModeTLB && cfg.Mode != ModeALB {
		return nil, fmt.Errorf("alb: mode %d is neither balance-tlb (5) nor balance-alb (6)", cfg.Mode)
	}
	if len(cfg.Slaves) == 0 || len(cfg.Slaves) > MaxSlaves {
		return nil, fmt.Errorf("alb: %d slaves, want 1 to %d", len(cfg.Slaves), MaxSlaves)
	}
	if !cfg.BondMAC.Valid() {
		return nil, fmt.Errorf("alb: bond address %s is not a unicast address", cfg.BondMAC)
	}
	for _, v := range cfg.VLANs {
		if v == 0 || v > 4094 {
			return nil, fmt.Errorf("alb: VLAN id %d out of range 1-4094", v)
		}
	}
	b := &Bond{updelay: cfg.Updelay}
	sh := &b.sh
	*sh = shared{mode: cfg.Mode, bond: cfg.BondMAC, active: -1, allActive: cfg.AllSlavesActive,
		vlans: slices.Clone(cfg.VLANs), dirty: true}
	for i, s := range cfg.Slaves {
		if !s.MAC.Valid() {
			return nil, fmt.Errorf("alb: slave %d: address %s is not a unicast address", i, s.MAC)
		}
		sl := slave{speed: max(s.Speed, 0), perm: s.MAC, cur: s.MAC}
		if s.Up {
			sl.link = linkUp
		}
		sh.s = append(sh.s, sl)
		if err := attach(sh, i); err != nil {
			return nil, err
		}
	}
	b.lpTicks = max(int(cfg.LPInterval/time.Second), 1) * ticksPerSec
	b.tlb = newTLB(sh, cfg.DynamicLB)
	if cfg.Mode == ModeALB {
		b.rlb = newRLB(sh)
	}
	return b, nil
}

var errNoFreeMAC = errors.New("the slave's address is in use by the bond and no slave has a free address to give it")

// attach is alb_handle_addr_collision_on_attach for slave n, the slaves
// before it being attached. Every slave must end with its own address.
func attach(sh *shared, n int) error {
	if n == 0 {
		return nil // the first slave
	}
	has := func(mac MAC) int {
		for i := range n {
			if sh.s[i].cur == mac {
				return i
			}
		}
		return -1
	}
	s := &sh.s[n]
	if s.perm != sh.bond {
		if has(s.cur) < 0 {
			return nil
		}
		s.cur = sh.bond
	}
	// the slave has the bond's address: give it a permanent address of
	// another slave that nobody uses
	for i := range n {
		if has(sh.s[i].perm) < 0 {
			s.cur = sh.s[i].perm
			return nil
		}
	}
	if has(sh.bond) >= 0 {
		return fmt.Errorf("alb: slave %d: %w", n, errNoFreeMAC)
	}
	return nil
}

// Mode returns the bond's mode.
func (b *Bond) Mode() Mode { return b.sh.mode }

// TLB returns the transmit balancer.
func (b *Bond) TLB() *TLB { return b.tlb }

// RLB returns the receive balancer, nil in balance-tlb.
func (b *Bond) RLB() *RLB { return b.rlb }

// Table returns the data-path table to publish; the pointer changes only
// when the state does. The result must not be modified.
func (b *Bond) Table() *Table { return b.tlb.Table() }

// Active returns the active slave, -1 none.
func (b *Bond) Active() int { return b.sh.active }

// MAC returns slave i's current address (its dev_addr).
func (b *Bond) MAC(i int) MAC {
	if i < 0 || i >= len(b.sh.s) {
		return MAC{}
	}
	return b.sh.s[i].cur
}

// MACs lists every slave's current address: what to program when the
// bond starts (Hardware set in balance-alb; in balance-tlb every NIC
// keeps the bond's address, as bond_enslave sets it).
func (b *Bond) MACs() []MACChange {
	out := make([]MACChange, len(b.sh.s))
	for i := range b.sh.s {
		out[i] = MACChange{Slave: i, MAC: b.sh.s[i].cur, Hardware: b.sh.mode == ModeALB}
	}
	return out
}

// SetSpeed records a slave's new speed in Mb/s.
func (b *Bond) SetSpeed(i, mbps int) {
	if i >= 0 && i < len(b.sh.s) {
		b.sh.s[i].speed = max(mbps, 0)
		b.tlb.retarget()
	}
}

// SlaveUp reports that slave i's link is up at now. With
// [Config.Updelay] the slave carries traffic only once the link has been
// up that long (checked by [Bond.Tick]); then, as
// bond_alb_handle_link_change(BOND_LINK_UP): the transmit table is
// rebalanced at the next tick and, in balance-alb, the clients are
// redistributed (rlb_rebalance) and updated.
func (b *Bond) SlaveUp(i int, now time.Duration) {
	if i < 0 || i >= len(b.sh.s) || b.sh.s[i].link != linkDown {
		return
	}
	s := &b.sh.s[i]
	s.since = now
	if b.updelay > 0 {
		s.link = linkBack
		return
	}
	b.up(i)
}

func (b *Bond) up(i int) {
	b.sh.s[i].link = linkUp
	b.sh.dirty = true
	b.tlb.slaveUp()
	if b.rlb != nil {
		b.rlb.rebalanceReq = true
	}
}

// SlaveDown reports that slave i's link is down, as
// bond_alb_handle_link_change(BOND_LINK_DOWN): its hash indexes and, in
// balance-alb, its clients move to other slaves, the clients are updated
// (RLB_UPDATE_RETRY more times), and unless it is the active slave its
// address is taught to the switch on the active slave
// (rlb_teach_disabled_mac_on_primary). When the active slave fails, call
// SlaveDown before [Bond.ActiveChange], as the kernel does.
func (b *Bond) SlaveDown(i int, now time.Duration) {
	if i < 0 || i >= len(b.sh.s) {
		return
	}
	s := &b.sh.s[i]
	was := s.link
	s.link, s.since = linkDown, now
	if was != linkUp {
		return
	}
	b.sh.dirty = true
	b.tlb.slaveDown(i)
	if b.rlb != nil {
		b.rlb.clearSlave(i)
	}
}

// ActiveChange makes new the active slave instead of old (-1: none), as
// bond_alb_handle_active_change: the bond's address moves to the new
// active slave and the old active slave takes the new one's former
// address (alb_swap_mac_addr); with no old active slave, the slave that
// has the bond's address swaps with the new one, or the new one simply
// takes it. Learning packets for the swapped addresses, the client
// updates and the promiscuous mode of alb_fasten_mac_swap come out of the
// next [Bond.Tick] (or [Bond.Drain]), after the caller has applied the
// returned changes.
func (b *Bond) ActiveChange(old, new int) []MACChange {
	sh := &b.sh
	n := len(sh.s)
	if old < -1 || old >= n || new < -1 || new >= n {
		return nil
	}
	sh.active = old
	if old == new {
		return nil
	}
	if old >= 0 && b.rlb != nil {
		b.rlb.unpromisc()
	}
	swap := old
	sh.active = new
	sh.dirty = true
	if new < 0 {
		return nil
	}
	if swap < 0 {
		swap = sh.slaveWithMAC(sh.bond)
	}
	// the two slaves are re-balanced while their addresses change
	b.tlb.activeChange(swap, new)
	hw := sh.mode == ModeALB
	var changes []MACChange
	if swap >= 0 {
		if swap != new {
			sh.s[swap].cur, sh.s[new].cur = sh.s[new].cur, sh.s[swap].cur
			changes = append(changes,
				MACChange{Slave: swap, MAC: sh.s[swap].cur, Hardware: hw},
				MACChange{Slave: new, MAC: sh.s[new].cur, Hardware: hw})
		}
		b.fastenMACSwap(swap, new)
	} else {
		sh.s[new].cur = sh.bond
		changes = append(changes, MACChange{Slave: new, MAC: sh.bond, Hardware: hw})
		sh.learning(new, sh.bond)
	}
	return changes
}

// fastenMACSwap is alb_fasten_mac_swap.
func (b *Bond) fastenMACSwap(s1, s2 int) {
	sh := &b.sh
	differ := sh.canTx(s1) != sh.canTx(s2)
	disabled := -1
	for k, s := range [2]int{s1, s2} {
		if k == 1 && s == s1 {
			break // swapped with itself: once is enough
		}
		if sh.canTx(s) {
			sh.learning(s, sh.s[s].cur)
			if b.rlb != nil {
				b.rlb.reqUpdateSlaveClients(s)
			}
		} else {
			disabled = s
		}
	}
	if b.rlb != nil && differ {
		b.rlb.teachDisabledMAC(sh.s[disabled].cur)
	}
}

// HostTx handles an ARP frame the host sent on a balance-alb bond (the
// frames [Table.Pick] returns [ToControl] for): rlb_arp_xmit, then
// bond_do_alb_xmit. It returns a rewritten copy of the frame and the
// slave to send it on: a reply goes out on the slave assigned to its
// client with that slave's address as ARP sender (the client learns it);
// a request goes out on the client's slave and schedules updates of the
// clients the broadcast taught the bond's address; anything else goes on
// the active slave. The source address of a frame sent on another slave
// than the active one is that slave's. ok is false when no slave can
// send the frame (drop it). Frames some clients need at once (a client
// whose slot a new client takes) come out of the next [Bond.Tick].
func (b *Bond) HostTx(frame []byte) (out []byte, slave int, ok bool) {
	out = slices.Clone(frame)
	tx := -1
	if b.rlb != nil {
		tx = b.rlb.arpXmit(out)
	}
	if tx < 0 {
		tx = b.sh.active
		if b.tlb.dynamic {
			b.tlb.unbalanced += uint64(len(out))
		}
	}
	if tx < 0 || !b.sh.canTx(tx) {
		return nil, -1, false
	}
	if tx != b.sh.active && len(out) >= 12 {
		copy(out[6:12], b.sh.s[tx].cur[:])
	}
	return out, tx, true
}

// PeerRx handles an ARP frame received on a slave of a balance-alb bond
// (rlb_arp_recv): slots whose host address another machine now claims
// are dropped, and a client's reply records its MAC and schedules an
// update that assigns it its slave. The update goes out of [Bond.Tick]
// once RLB_UPDATE_DELAY has passed since the host's last ARP request, as
// in the kernel (the reply must come after the effect of the request).
// PeerRx reports whether an update was scheduled.
func (b *Bond) PeerRx(slave int, frame []byte) bool {
	if b.rlb == nil || slave < 0 || slave >= len(b.sh.s) {
		return false
	}
	return b.rlb.arpRecv(frame)
}

// Tick advances the bond to now. totals are the transmit byte counters
// summed over every lane ([Counters.AddTo]; cumulative, nil when there
// are none). It promotes slaves whose updelay has passed, then runs
// bond_alb_monitor for every whole [TickInterval] elapsed: learning
// packets every lp_interval from each slave with carrier, the transmit
// rebalance every 10 s (or at the tick after a slave came up), the end
// of the promiscuous mode, rlb_rebalance and the client updates. It
// returns everything queued since the last call.
func (b *Bond) Tick(now time.Duration, totals *Loads) Output {
	if totals != nil && b.tlb.dynamic {
		b.tlb.account(totals)
	}
	for i := range b.sh.s {
		if s := &b.sh.s[i]; s.link == linkBack && now-s.since >= b.updelay {
			b.up(i)
		}
	}
	if !b.started {
		b.started, b.next = true, now+TickInterval
	}
	for n := 0; now >= b.next && n < maxCatchUp; n++ {
		b.monitor()
		b.next += TickInterval
	}
	if now >= b.next {
		b.next = now + TickInterval
	}
	return b.Drain()
}

// monitor is one run of bond_alb_monitor.
func (b *Bond) monitor() {
	sh := &b.sh
	b.lpCount++
	if b.lpCount >= b.lpTicks {
		for i := range sh.s {
			// the kernel queues them on every slave; without carrier
			// they go nowhere
			if sh.s[i].link != linkDown {
				sh.learning(i, sh.s[i].cur)
			}
		}
		b.lpCount = 0
	}
	b.tlb.tick()
	if b.rlb != nil {
		b.rlb.tick()
	}
}

// Drain returns and forgets the frames and promiscuous-mode changes
// queued since the last Tick or Drain.
func (b *Bond) Drain() Output {
	o := b.sh.out
	b.sh.out = Output{}
	return o
}
