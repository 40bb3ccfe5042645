package lacp

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Protocol timing (802.1AX-2014 6.4.4 constants; 6.4.3 time base).
const (
	// TickInterval is how often the caller should call Tick: the state
	// machines' time base is a 100 ms tick (6.4.3). Timers are deadlines
	// compared against the injected time, so a late tick only delays
	// expiries to that tick.
	TickInterval       = 100 * time.Millisecond
	FastPeriodicTime   = 1 * time.Second
	SlowPeriodicTime   = 30 * time.Second
	ShortTimeoutTime   = 3 * FastPeriodicTime
	LongTimeoutTime    = 3 * SlowPeriodicTime
	ChurnDetectionTime = 60 * time.Second
	AggregateWaitTime  = 2 * time.Second

	// MaxTxPerPeriod is the Transmit machine's limit (6.4.16): no more than
	// three LACPDUs in any Fast_Periodic_Time interval. It is enforced as a
	// sliding window, so it holds for every interval, not only aligned ones.
	MaxTxPerPeriod = 3

	// MaxMarkersPerSecond limits the Marker and Marker Response PDUs a port
	// sends, so that a flood of Marker PDUs cannot push this System past
	// the Slow Protocols transmission limit (IEEE Std 802.3 Annex 57A).
	MaxMarkersPerSecond = 5
)

// Select is the active-aggregator selection policy, bonding's ad_select.
type Select uint8

// ad_select values (Documentation/networking/bonding.rst).
const (
	// SelectStable picks the aggregator with the largest bandwidth and
	// reselects only when every port of the active aggregator is down or
	// it has no ports (and, as in bond_3ad.c, when the active one has no
	// LACP partner but another has).
	SelectStable Select = iota
	// SelectBandwidth picks the largest aggregate bandwidth, reselecting
	// whenever ports, link states or LACP association states change.
	SelectBandwidth
	// SelectCount picks the most ports (ties: bandwidth), reselecting like
	// SelectBandwidth.
	SelectCount
	// SelectActorPortPrio picks the highest sum of actor port priorities
	// of the active (link up) ports (ties: count, then bandwidth),
	// reselecting like SelectBandwidth. bonding.rst calls it
	// "actor_port_prio or 3".
	SelectActorPortPrio
)

var selectNames = [...]string{"stable", "bandwidth", "count", "actor_port_prio"}

func (s Select) String() string {
	if int(s) < len(selectNames) {
		return selectNames[s]
	}
	return "Select(" + strconv.Itoa(int(s)) + ")"
}

// ParseSelect parses an ad_select value: a name ("stable", "bandwidth",
// "count", "actor_port_prio", or its early name "prio") or its number.
func ParseSelect(v string) (Select, error) {
	for i, n := range selectNames {
		if v == n || v == strconv.Itoa(i) {
			return Select(i), nil
		}
	}
	if v == "prio" {
		return SelectActorPortPrio, nil
	}
	return 0, fmt.Errorf("lacp: unknown ad_select %q", v)
}

// Config is the System-wide configuration (bonding's 802.3ad options).
type Config struct {
	// SystemPriority is the Actor_System_Priority (ad_actor_sys_prio,
	// 1-65535). 0 means the default, 65535.
	SystemPriority uint16
	// SystemID is the Actor_System (ad_actor_system). bonding uses the
	// bond's MAC address when ad_actor_system is all-zero: the caller does
	// that substitution. It must be a non-zero unicast address.
	SystemID [6]byte
	// FastRate is lacp_rate=fast: our LACP_Timeout bit asks the partner
	// to send every second, and we time the partner out after 3 s instead
	// of 90 s.
	FastRate bool
	// Active is lacp_active=on. When false (passive) a port transmits
	// only while its partner is active (6.4.13), i.e. once spoken to.
	Active bool
	// Select is ad_select.
	Select Select
	// MinLinks is min_links: the bond has carrier only when the active
	// aggregator has at least this many distributing ports (0 and 1 both
	// mean one).
	MinLinks int
	// CoupledControl is coupled_control: the Mux machine with a single
	// COLLECTING_DISTRIBUTING state (6.4.15, coupled control). When false
	// COLLECTING and DISTRIBUTING are separate states (independent
	// control).
	CoupledControl bool
}

// DefaultConfig returns bonding's defaults for the System id: priority
// 65535, lacp_rate slow, lacp_active on, ad_select stable, min_links 0 and
// coupled_control on.
func DefaultConfig(systemID [6]byte) Config {
	return Config{SystemPriority: 65535, SystemID: systemID, Active: true, CoupledControl: true}
}

func (c Config) normalize() (Config, error) {
	if c.SystemPriority == 0 {
		c.SystemPriority = 65535
	}
	if c.SystemID == ([6]byte{}) {
		return c, errors.New("lacp: system id is all-zero (pass the bond's MAC address)")
	}
	if c.SystemID[0]&1 != 0 {
		return c, errors.New("lacp: system id is a multicast address")
	}
	if int(c.Select) >= len(selectNames) {
		return c, fmt.Errorf("lacp: invalid ad_select %d", c.Select)
	}
	if c.MinLinks < 0 {
		return c, errors.New("lacp: min_links is negative")
	}
	return c, nil
}

// PortConfig configures one Aggregation Port.
type PortConfig struct {
	// Number is the Actor_Port_Number: non-zero and distinct within the
	// System. It is also the identifier of the port's Aggregator.
	Number uint16
	// Priority is the Actor_Port_Priority (bonding's actor_port_prio,
	// 1-65535); 0 means the default, 255.
	Priority uint16
	// UserKey is ad_user_port_key, the upper ten bits of the key (0-1023);
	// the rest of the key follows speed and duplex (see PortKey).
	UserKey uint16
	// MAC is the source address of the port's PDUs (bonding uses the
	// permanent address of the slave).
	MAC [6]byte
}

// TxFunc transmits a frame on a port. frame is only valid during the call.
// It should not call back into the System: if it does, Receive and SetLink
// are recorded but the machines only run on the next call, RemovePort is
// done once the current call ends, and AddPort and SetConfig fail.
type TxFunc func(port int, frame []byte)

// Selection is the Selected variable of a port (6.4.8).
type Selection uint8

// Selected values.
const (
	Unselected Selection = iota
	Selected
	// Standby: selected for an Aggregator that may not be used now. Ports
	// of every Aggregator but the active one are STANDBY, so they stay in
	// WAITING, advertise OUT_OF_SYNC and the partner does not send on them.
	Standby
)

func (s Selection) String() string {
	switch s {
	case Selected:
		return "SELECTED"
	case Standby:
		return "STANDBY"
	}
	return "UNSELECTED"
}

// timer is one of the timers of 6.4.10, kept as a deadline.
type timer struct {
	deadline time.Duration
	running  bool
}

func (t *timer) start(now, d time.Duration) { t.deadline, t.running = now+d, true }
func (t *timer) stop()                      { t.running = false }

// expired is the "timer expired" event: it stays true until restarted.
func (t *timer) expired(now time.Duration) bool { return t.running && now >= t.deadline }

// rateLimit allows at most max transmissions in any window of one second.
type rateLimit struct {
	times [MaxMarkersPerSecond]time.Duration
	n     int // entries in use
	old   int // index of the oldest entry once n == max
}

func (r *rateLimit) allow(now time.Duration, max int) bool {
	return r.n < max || now-r.times[r.old] >= time.Second
}

func (r *rateLimit) record(now time.Duration, max int) {
	if r.n < max {
		r.times[r.n] = now
		r.n++
		return
	}
	r.times[r.old] = now
	r.old = (r.old + 1) % max
}

// lagID is the Link Aggregation Group Identifier of a port (802.1AX-2014
// 6.3: the actor System is common to all ports, so it is left out).
type lagID struct {
	key         uint16 // Actor_Oper_Port_Key
	partnerPrio uint16
	partnerSys  [6]byte
	partnerKey  uint16
	individual  bool
	port        uint16 // actor port number, only for an Individual link
}

// aggregator is an Aggregator (6.4.6). There is one per port, with the
// port's number as identifier (6.4.14.2).
type aggregator struct {
	id      uint16
	lag     lagID
	members []*port // ports that selected it, sorted by id
}

func (a *aggregator) hasPartner() bool { return a.lag.partnerSys != [6]byte{} }

// System is the Link Aggregation Control of one System (one bond). It is
// not safe for concurrent use: the caller serialises all calls.
type System struct {
	cfg   Config
	tx    TxFunc
	now   time.Duration
	clock bool          // now is valid (a Tick or Receive was seen)
	start time.Duration // first time seen

	ports  []*port       // sorted by id
	aggs   []*aggregator // sorted by id
	active *aggregator

	running     bool
	removeLater []int
	buf         [FrameLen]byte // LACPDUs
	mbuf        [FrameLen]byte // Marker PDUs

	version                  uint64
	fwdActive                uint16
	fwdUp                    bool
	fwdColl, fwdDist         []int
	scratchColl, scratchDist []int
	unknownPortRx            uint64

	// trace, when set (by tests), sees every Receive and Mux transition.
	trace func(id int, machine, from, to string)
}

// New returns a System with no ports. tx may be nil (nothing is sent).
func New(cfg Config, tx TxFunc) (*System, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return &System{cfg: cfg, tx: tx}, nil
}

// Config returns the normalised configuration.
func (s *System) Config() Config { return s.cfg }

// SetConfig changes the configuration at run time. A new System id,
// priority or mux control unselects every port (their LAG ID changes); a
// new rate or activity is advertised at once.
func (s *System) SetConfig(cfg Config) error {
	if s.running {
		return errReentrant
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	old := s.cfg
	s.cfg = cfg
	lag := old.SystemPriority != cfg.SystemPriority || old.SystemID != cfg.SystemID ||
		old.CoupledControl != cfg.CoupledControl
	adv := lag || old.Active != cfg.Active || old.FastRate != cfg.FastRate
	for _, p := range s.ports {
		if lag {
			p.selected = Unselected
			p.loopback = false
		}
		if adv {
			p.ntt = true
		}
	}
	s.run()
	return nil
}

func (s *System) port(id int) *port {
	i, ok := slices.BinarySearchFunc(s.ports, id, func(p *port, id int) int { return p.id - id })
	if !ok {
		return nil
	}
	return s.ports[i]
}

// AddPort adds an Aggregation Port with its link down. id is the caller's
// name for the port (the member index), used in TxFunc and the results.
func (s *System) AddPort(id int, pc PortConfig) error {
	if s.running {
		return errReentrant
	}
	if id < 0 {
		return errors.New("lacp: negative port id")
	}
	if pc.Number == 0 {
		return errors.New("lacp: port number 0")
	}
	if pc.UserKey > MaxUserKey {
		return fmt.Errorf("lacp: user key %d > %d", pc.UserKey, MaxUserKey)
	}
	if pc.Priority == 0 {
		pc.Priority = 255
	}
	if s.port(id) != nil {
		return fmt.Errorf("lacp: port %d exists", id)
	}
	for _, q := range s.ports {
		if q.cfg.Number == pc.Number {
			return fmt.Errorf("lacp: port number %d is used by port %d", pc.Number, q.id)
		}
	}
	p := &port{id: id, cfg: pc}
	p.key, p.lacpEnabled = PortKey(0, false, pc.UserKey)
	p.agg = &aggregator{id: pc.Number}
	i, _ := slices.BinarySearchFunc(s.ports, id, func(p *port, id int) int { return p.id - id })
	s.ports = slices.Insert(s.ports, i, p)
	j, _ := slices.BinarySearchFunc(s.aggs, pc.Number, func(a *aggregator, n uint16) int { return int(a.id) - int(n) })
	s.aggs = slices.Insert(s.aggs, j, p.agg)
	s.run()
	return nil
}

// RemovePort removes a port. If it can still transmit it first tells its
// partner, with a last LACPDU whose actor state is Individual and
// OUT_OF_SYNC (as bonding does when a slave is released). Ports that used
// its Aggregator move, with their LAG, to a free Aggregator and keep their
// Selected and Mux states (bond_3ad_unbind_slave): the aggregate goes on
// on the other ports without a break.
func (s *System) RemovePort(id int) {
	p := s.port(id)
	if p == nil {
		return
	}
	if s.running {
		s.removeLater = append(s.removeLater, id)
		return
	}
	if p.begun && p.enabled && p.lacpEnabled && p.periodic != PeriodicNone && p.txLimit.allow(s.now, MaxTxPerPeriod) {
		a := s.actor(p)
		a.State &^= StateAggregation | StateSync | StateCollecting | StateDistributing
		s.sendLACPDU(p, a)
	}
	if p.sel != nil {
		p.sel.remove(p)
	}
	if len(p.agg.members) > 0 {
		s.moveLAG(p.agg)
	}
	if s.active == p.agg {
		s.active = nil
	}
	s.aggs = slices.DeleteFunc(s.aggs, func(a *aggregator) bool { return a == p.agg })
	s.ports = slices.DeleteFunc(s.ports, func(q *port) bool { return q == p })
	s.run()
}

// moveLAG hands the ports of from, the Aggregator of a port being removed,
// to a free Aggregator with the same LAG ID, as bonding's
// bond_3ad_unbind_slave does: their Selected and Mux states are kept, so a
// LAG that stays in use keeps collecting and distributing on its other
// ports without a new wait_while_timer. The lowest such port's own
// Aggregator is taken if free, else the lowest free one (one always is:
// there is one Aggregator per port, and the moved ports leave theirs
// empty or in use by other LAGs of fewer ports).
func (s *System) moveLAG(from *aggregator) {
	var to *aggregator
	for _, m := range from.members {
		if m.agg != from && len(m.agg.members) == 0 {
			to = m.agg
			break
		}
	}
	if to == nil {
		for _, a := range s.aggs {
			if a != from && len(a.members) == 0 {
				to = a
				break
			}
		}
	}
	if to == nil { // cannot happen; select again rather than keep a dangling LAG
		for _, m := range from.members {
			m.selected, m.sel = Unselected, nil
		}
		from.members = nil
		return
	}
	to.lag = from.lag
	to.members, from.members = from.members, nil
	for _, m := range to.members {
		m.sel = to
	}
	if s.active == from {
		s.active = to
	}
}

// SetLink reports a port's link state, speed (Mb/s) and duplex, as the
// MII/ethtool monitor sees them. Up is port_enabled (6.4.7); speed and
// duplex set the key (PortKey) and LACP_Enabled, and are ignored while the
// link is down (the key keeps its last value). A key change while up
// changes the port's LAG ID, so it is unselected and reselected.
func (s *System) SetLink(id int, up bool, speedMbps int, fullDuplex bool) {
	p := s.port(id)
	if p == nil {
		return
	}
	if up {
		key, en := PortKey(speedMbps, fullDuplex, p.cfg.UserKey)
		if p.enabled && p.lacpEnabled && !en {
			// Only PORT_DISABLED and LACP_DISABLED look at
			// LACP_Enabled: a change to half duplex renegotiates the
			// link, so model it as the link going down and up.
			p.enabled = false
			s.run()
		}
		if key != p.key || en != p.lacpEnabled {
			p.selected = Unselected
			p.ntt = true
		}
		p.key, p.lacpEnabled = key, en
		p.speed, p.fullDuplex = speedMbps, fullDuplex
	}
	p.enabled = up
	s.run()
}

// Tick advances time to now (monotonic) and runs the state machines. Call
// it every TickInterval.
func (s *System) Tick(now time.Duration) {
	s.setClock(now)
	s.run()
}

func (s *System) setClock(now time.Duration) {
	if !s.clock {
		s.clock, s.start, s.now = true, now, now
		return
	}
	if now > s.now {
		s.now = now
	}
}

// Receive hands the System a Slow Protocols frame received on port id at
// time now. LACPDUs drive the port's Receive machine, Marker PDUs are
// answered by the Marker Responder; anything else is counted and dropped.
// It never panics, whatever the frame.
func (s *System) Receive(id int, frame []byte, now time.Duration) {
	s.setClock(now)
	p := s.port(id)
	if p == nil {
		s.unknownPortRx++
		return
	}
	s.run() // timers that expired before this frame
	if len(frame) < EthernetHeaderLen+1 ||
		frame[offType] != EtherTypeSlowProtocols>>8 || frame[offType+1] != EtherTypeSlowProtocols&0xff {
		p.cnt.UnknownRx++
		return
	}
	switch st := frame[offSubtype]; st {
	case SubtypeLACP:
		var pdu LACPDU
		if err := DecodeLACPDU(frame, &pdu); err != nil {
			p.badPDU(err)
			return
		}
		p.cnt.LACPDUsRx++
		if err := CheckLACPDU(frame); err != nil {
			p.nonConformant(err)
		}
		if pdu.Actor.System == s.cfg.SystemID {
			// Our own LACPDU came back (a loop, or two of our ports
			// cabled together): bonding discards it, so the port
			// never records a partner and is never aggregated.
			p.cnt.LoopbackRx++
			p.loopback = true
			break
		}
		s.rxPDU(p, &pdu)
	case SubtypeMarker:
		var m Marker
		if err := DecodeMarker(frame, &m); err != nil {
			p.badPDU(err)
			return
		}
		if err := CheckMarker(frame); err != nil {
			p.nonConformant(err)
		}
		if m.Response {
			p.cnt.MarkerResponsePDUsRx++
			break
		}
		p.cnt.MarkerPDUsRx++
		s.markerRespond(p, &m)
	default:
		// Subtypes 1-10 are Slow Protocols (OAM is 3, OSSP 10): not
		// ours. 0 and above 10 are illegal (aAggPortStatsIllegalRx).
		if st == 0 || st > 10 {
			p.cnt.IllegalRx++
			p.lastErr = ErrSubtype
		} else {
			p.cnt.UnknownRx++
		}
		return
	}
	s.run()
}

// markerRespond is the Marker Responder (6.5.4.2): a Marker Information PDU
// is answered on the same port by a Marker Response PDU carrying the same
// Requester_Port, Requester_System and Requester_Transaction_ID.
func (s *System) markerRespond(p *port, m *Marker) {
	if !p.enabled || !p.markerLimit.allow(s.now, MaxMarkersPerSecond) {
		p.cnt.MarkersDropped++
		return
	}
	r := *m
	r.Response = true
	n, _ := EncodeMarker(s.mbuf[:], p.cfg.MAC, &r)
	p.markerLimit.record(s.now, MaxMarkersPerSecond)
	p.cnt.MarkerResponsePDUsTx++
	s.send(p.id, s.mbuf[:n])
}

// SendMarker sends a Marker Information PDU on port id (the optional Marker
// Generator, 6.5.1), with this System and the port's number as requester.
func (s *System) SendMarker(id int, transactionID uint32) error {
	p := s.port(id)
	switch {
	case p == nil:
		return fmt.Errorf("lacp: no port %d", id)
	case !p.enabled:
		return fmt.Errorf("lacp: port %d is down", id)
	case !p.markerLimit.allow(s.now, MaxMarkersPerSecond):
		return fmt.Errorf("lacp: port %d: marker rate limit", id)
	}
	m := Marker{RequesterPort: p.cfg.Number, RequesterSystem: s.cfg.SystemID, TransactionID: transactionID}
	n, _ := EncodeMarker(s.mbuf[:], p.cfg.MAC, &m)
	p.markerLimit.record(s.now, MaxMarkersPerSecond)
	p.cnt.MarkerPDUsTx++
	s.send(p.id, s.mbuf[:n])
	return nil
}

// Distributing returns the ports of the active aggregator that distribute
// (DISTRIBUTING or COLLECTING_DISTRIBUTING), in id order, and whether the
// aggregator is up: it has at least max(MinLinks, 1) distributing ports.
func (s *System) Distributing() (ports []int, up bool) {
	return slices.Clone(s.fwdDist), s.fwdUp
}

// Collecting returns the ports of the active aggregator that collect
// (COLLECTING, DISTRIBUTING or COLLECTING_DISTRIBUTING), in id order:
// frames received on them are delivered. With coupled control it equals
// the distributing ports.
func (s *System) Collecting() []int { return slices.Clone(s.fwdColl) }

// ActiveAggregator returns the identifier of the active aggregator, 0 when
// there is none.
func (s *System) ActiveAggregator() uint16 { return s.fwdActive }

// Version increases whenever the results of Distributing, Collecting or
// ActiveAggregator change, so the caller knows when to republish.
func (s *System) Version() uint64 { return s.version }

// errReentrant is returned by methods that change the ports or the
// configuration when called from within the TxFunc.
var errReentrant = errors.New("lacp: called from within the TxFunc")

// run runs the state machines until nothing changes, then the Transmit
// machines, then recomputes the forwarding results. Calls made from the
// TxFunc do not run the machines (the next call does); a port removed from
// there is removed afterwards.
func (s *System) run() {
	if !s.clock || s.running {
		return
	}
	s.running = true
	s.step()
	s.running = false
	s.removeDeferred()
}

func (s *System) removeDeferred() {
	for len(s.removeLater) > 0 {
		id := s.removeLater[0]
		s.removeLater = s.removeLater[1:]
		s.RemovePort(id)
	}
}

// send hands a frame to the TxFunc, guarding against calls back into the
// System.
func (s *System) send(id int, frame []byte) {
	if s.tx == nil {
		return
	}
	was := s.running
	s.running = true
	s.tx(id, frame)
	s.running = was
	if !was {
		s.removeDeferred()
	}
}

func (s *System) step() {
	for _, p := range s.ports {
		if !p.begun {
			s.begin(p)
		}
	}
	for range 32 {
		changed := false
		for _, p := range s.ports {
			changed = s.rxStep(p) || changed
			changed = s.periodicStep(p) || changed
		}
		changed = s.selection() || changed
		for _, p := range s.ports {
			changed = s.muxStep(p) || changed
			changed = s.churnStep(p) || changed
		}
		if !changed {
			break
		}
	}
	for _, p := range s.ports {
		s.txStep(p)
	}
	s.publish()
}

// publish recomputes the forwarding results and bumps the version when
// they change. Only ports of the active aggregator count.
func (s *System) publish() {
	coll, dist := s.scratchColl[:0], s.scratchDist[:0]
	var id uint16
	if a := s.active; a != nil {
		id = a.id
		for _, p := range a.members {
			if !p.enabled {
				continue
			}
			switch p.mux {
			case MuxCollecting:
				coll = append(coll, p.id)
			case MuxDistributing, MuxCollectingDistributing:
				coll = append(coll, p.id)
				dist = append(dist, p.id)
			}
		}
	}
	up := id != 0 && len(dist) > 0 && len(dist) >= s.cfg.MinLinks
	if id == s.fwdActive && up == s.fwdUp && slices.Equal(coll, s.fwdColl) && slices.Equal(dist, s.fwdDist) {
		s.scratchColl, s.scratchDist = coll, dist
		return
	}
	s.fwdActive, s.fwdUp = id, up
	s.fwdColl, s.scratchColl = coll, s.fwdColl[:0]
	s.fwdDist, s.scratchDist = dist, s.fwdDist[:0]
	s.version++
}
