package lacp

import "slices"

// RxState is a state of the Receive machine (6.4.12).
type RxState uint8

// Receive machine states.
const (
	RxInitialize RxState = iota
	RxPortDisabled
	RxExpired
	RxLACPDisabled
	RxDefaulted
	RxCurrent
)

var rxNames = [...]string{"INITIALIZE", "PORT_DISABLED", "EXPIRED", "LACP_DISABLED", "DEFAULTED", "CURRENT"}

func (s RxState) String() string { return rxNames[s%RxState(len(rxNames))] }

// MuxState is a state of the Mux machine (6.4.15).
type MuxState uint8

// Mux machine states. COLLECTING and DISTRIBUTING are only used with
// independent control, COLLECTING_DISTRIBUTING only with coupled control.
const (
	MuxDetached MuxState = iota
	MuxWaiting
	MuxAttached
	MuxCollecting
	MuxDistributing
	MuxCollectingDistributing
)

var muxNames = [...]string{"DETACHED", "WAITING", "ATTACHED", "COLLECTING", "DISTRIBUTING", "COLLECTING_DISTRIBUTING"}

func (s MuxState) String() string { return muxNames[s%MuxState(len(muxNames))] }

// PeriodicState is a state of the Periodic Transmission machine (6.4.13).
type PeriodicState uint8

// Periodic Transmission machine states.
const (
	PeriodicNone PeriodicState = iota // NO_PERIODIC
	PeriodicFast                      // FAST_PERIODIC
	PeriodicSlow                      // SLOW_PERIODIC
	PeriodicTx                        // PERIODIC_TX
)

var periodicNames = [...]string{"NO_PERIODIC", "FAST_PERIODIC", "SLOW_PERIODIC", "PERIODIC_TX"}

func (s PeriodicState) String() string { return periodicNames[s%PeriodicState(len(periodicNames))] }

// ChurnState is a state of an Actor or Partner Churn Detection machine
// (6.4.17). The names are those of /proc/net/bonding.
type ChurnState uint8

// Churn Detection machine states.
const (
	ChurnMonitoring ChurnState = iota // ACTOR/PARTNER_CHURN_MONITOR
	ChurnNone                         // NO_ACTOR/PARTNER_CHURN
	Churned                           // ACTOR/PARTNER_CHURN
)

var churnNames = [...]string{"monitoring", "none", "churned"}

func (s ChurnState) String() string { return churnNames[s%ChurnState(len(churnNames))] }

// Counters are a port's statistics, after aAggPortStats* and
// aAggPortDebug* of 802.1AX-2014 clause 7.
type Counters struct {
	LACPDUsRx            uint64
	LACPDUsTx            uint64
	MarkerPDUsRx         uint64 // Marker Information PDUs received
	MarkerPDUsTx         uint64 // Marker Information PDUs sent (SendMarker)
	MarkerResponsePDUsRx uint64
	MarkerResponsePDUsTx uint64 // answers of the Marker Responder
	MarkersDropped       uint64 // Marker PDUs not answered (link down or rate limit)
	// UnknownRx counts Slow Protocols frames of another protocol
	// (subtypes 3-10) and frames that are not Slow Protocols frames.
	UnknownRx uint64
	// IllegalRx counts badly formed LACPDUs and Marker PDUs and illegal
	// subtypes (0, above 10): the bad PDUs, dropped. The last reason is
	// in PortStatus.LastRxError.
	IllegalRx uint64
	// NonConformantRx counts PDUs that were processed although they break
	// a transmission rule a receiver must not enforce (a version 0, wrong
	// TLV_types, no terminator; see CheckLACPDU).
	NonConformantRx uint64
	// LoopbackRx counts LACPDUs carrying our own System id, discarded.
	LoopbackRx             uint64
	RxStateTransitions     uint64
	MuxStateTransitions    uint64
	ActorSyncTransitions   uint64 // Actor_Oper_Port_State.Synchronization changes
	PartnerSyncTransitions uint64 // Partner_Oper_Port_State.Synchronization changes
	ActorChurnCount        uint64 // entries into ACTOR_CHURN
	PartnerChurnCount      uint64 // entries into PARTNER_CHURN
}

// partnerAdmin holds the Partner_Admin_* values (6.4.7), recorded when the
// partner is unknown: all zero, so a defaulted port is Individual,
// OUT_OF_SYNC and passive. It never collects or distributes: bonding's
// "enable the ports of an active aggregator without partner" fallback is
// not implemented.
var partnerAdmin = PortInfo{}

// port is an Aggregation Port and its state machines.
type port struct {
	id  int
	cfg PortConfig
	agg *aggregator // the port's own Aggregator
	sel *aggregator // the Aggregator it selected, nil when none

	begun       bool
	enabled     bool // port_enabled
	speed       int
	fullDuplex  bool
	lacpEnabled bool   // LACP_Enabled
	key         uint16 // Actor_Oper_Port_Key

	// state holds the Actor_Oper_Port_State bits the machines own (SYN,
	// COL, DIS, DEF, EXP); ACT, TMO and AGG come from the configuration.
	state     State
	partner   PortInfo // Partner_Oper_*
	selected  Selection
	ntt       bool
	portMoved bool
	loopback  bool
	lastErr   DecodeError

	rx                             RxState
	mux                            MuxState
	periodic                       PeriodicState
	actorChurn                     ChurnState
	partnerChurn                   ChurnState
	currentWhile                   timer
	periodicTimer                  timer
	waitWhile                      timer
	actorChurnTimer                timer
	partnerChurnTimer              timer
	txLimit, markerLimit           rateLimit
	lastActorSync, lastPartnerSync bool

	cnt Counters
}

func (p *port) badPDU(err error) {
	p.cnt.IllegalRx++
	if e, ok := err.(DecodeError); ok {
		p.lastErr = e
	}
}

func (p *port) nonConformant(err error) {
	p.cnt.NonConformantRx++
	if e, ok := err.(DecodeError); ok {
		p.lastErr = e
	}
}

func (a *aggregator) remove(p *port) {
	a.members = slices.DeleteFunc(a.members, func(q *port) bool { return q == p })
}

func (a *aggregator) add(p *port) {
	i, _ := slices.BinarySearchFunc(a.members, p.id, func(q *port, id int) int { return q.id - id })
	a.members = slices.Insert(a.members, i, p)
}

// actor returns the port's actor information as transmitted: the System,
// the port's key and identifier, and Actor_Oper_Port_State.
func (s *System) actor(p *port) PortInfo {
	st := p.state & (StateSync | StateCollecting | StateDistributing | StateDefaulted | StateExpired)
	if s.cfg.Active {
		st |= StateActivity
	}
	if s.cfg.FastRate {
		st |= StateTimeout
	}
	if p.lacpEnabled {
		st |= StateAggregation
	}
	return PortInfo{
		SystemPriority: s.cfg.SystemPriority,
		System:         s.cfg.SystemID,
		Key:            p.key,
		PortPriority:   p.cfg.Priority,
		Port:           p.cfg.Number,
		State:          st,
	}
}

// begin applies BEGIN to every machine of a new port.
func (s *System) begin(p *port) {
	p.begun = true
	s.enterRx(p, RxInitialize, nil)
	s.enterMux(p, MuxDetached)
	s.enterPeriodic(p, PeriodicNone)
	s.enterActorChurn(p, ChurnMonitoring)
	s.enterPartnerChurn(p, ChurnMonitoring)
}

// countSync counts Synchronization transitions of actor and partner.
func (p *port) countSync() {
	if a := p.state.Has(StateSync); a != p.lastActorSync {
		p.lastActorSync = a
		p.cnt.ActorSyncTransitions++
	}
	if b := p.partner.State.Has(StateSync); b != p.lastPartnerSync {
		p.lastPartnerSync = b
		p.cnt.PartnerSyncTransitions++
	}
}

// ---- Receive machine (6.4.12) and its functions (6.4.9) ----

// recordDefault: the Partner_Admin values become the partner's operational
// values and the actor is Defaulted.
func (s *System) recordDefault(p *port) {
	p.partner = partnerAdmin
	p.state |= StateDefaulted
}

// recordPDU: the PDU's actor information becomes the partner's operational
// information, Defaulted is cleared, and Partner_Oper_Port_State.Sync is
// TRUE only if the partner is in sync, its view of us matches (or it is
// Individual), and one side is active.
func (s *System) recordPDU(p *port, pdu *LACPDU) {
	a := s.actor(p)
	matched := (pdu.Partner.Port == a.Port &&
		pdu.Partner.PortPriority == a.PortPriority &&
		pdu.Partner.System == a.System &&
		pdu.Partner.SystemPriority == a.SystemPriority &&
		pdu.Partner.Key == a.Key &&
		pdu.Partner.State&StateAggregation == a.State&StateAggregation) ||
		!pdu.Actor.State.Has(StateAggregation)
	activeLink := pdu.Actor.State.Has(StateActivity) ||
		(a.State.Has(StateActivity) && pdu.Partner.State.Has(StateActivity))
	p.partner = pdu.Actor
	p.state &^= StateDefaulted
	if matched && activeLink && pdu.Actor.State.Has(StateSync) {
		p.partner.State |= StateSync
	} else {
		p.partner.State &^= StateSync
	}
}

// updateSelected: a change of the partner's part of the LAG ID unselects.
func (s *System) updateSelected(p *port, pdu *LACPDU) {
	q := &pdu.Actor
	if q.Port != p.partner.Port || q.PortPriority != p.partner.PortPriority ||
		q.System != p.partner.System || q.SystemPriority != p.partner.SystemPriority ||
		q.Key != p.partner.Key ||
		q.State&StateAggregation != p.partner.State&StateAggregation {
		p.selected = Unselected
	}
}

// updateDefaultSelected: the same comparison against Partner_Admin.
func (s *System) updateDefaultSelected(p *port) {
	q := &partnerAdmin
	if q.Port != p.partner.Port || q.PortPriority != p.partner.PortPriority ||
		q.System != p.partner.System || q.SystemPriority != p.partner.SystemPriority ||
		q.Key != p.partner.Key ||
		q.State&StateAggregation != p.partner.State&StateAggregation {
		p.selected = Unselected
	}
}

// updateNTT: if the partner's view of us is out of date, transmit.
func (s *System) updateNTT(p *port, pdu *LACPDU) {
	a := s.actor(p)
	const bits = StateActivity | StateTimeout | StateSync | StateAggregation
	q := &pdu.Partner
	if q.Port != a.Port || q.PortPriority != a.PortPriority || q.System != a.System ||
		q.SystemPriority != a.SystemPriority || q.Key != a.Key || q.State&bits != a.State&bits {
		p.ntt = true
	}
}

func (s *System) enterRx(p *port, st RxState, pdu *LACPDU) {
	if s.trace != nil {
		s.trace(p.id, "rx", p.rx.String(), st.String())
	}
	p.rx = st
	p.cnt.RxStateTransitions++
	switch st {
	case RxInitialize:
		p.selected = Unselected
		s.recordDefault(p)
		p.state &^= StateExpired
		p.portMoved = false
		p.loopback = false
		p.currentWhile.stop()
	case RxPortDisabled:
		p.partner.State &^= StateSync
		p.currentWhile.stop()
		if !p.enabled {
			p.loopback = false
		}
	case RxLACPDisabled:
		p.selected = Unselected
		s.recordDefault(p)
		p.partner.State &^= StateAggregation
		p.state &^= StateExpired
		p.currentWhile.stop()
	case RxExpired:
		p.partner.State &^= StateSync
		p.partner.State |= StateTimeout
		p.currentWhile.start(s.now, ShortTimeoutTime)
		p.state |= StateExpired
		// 802.1AX-2014/Cor 1-2018 also sets NTT here, so the partner
		// learns at once that we expired (and, on link up, hears from us
		// without waiting for the periodic timer).
		p.ntt = true
	case RxDefaulted:
		s.updateDefaultSelected(p)
		s.recordDefault(p)
		p.state &^= StateExpired
		p.currentWhile.stop()
	case RxCurrent:
		s.updateSelected(p, pdu)
		s.updateNTT(p, pdu)
		s.recordPDU(p, pdu)
		if s.cfg.FastRate {
			p.currentWhile.start(s.now, ShortTimeoutTime)
		} else {
			p.currentWhile.start(s.now, LongTimeoutTime)
		}
		p.state &^= StateExpired
		p.loopback = false
	}
	p.countSync()
}

// rxStep takes at most one Receive machine transition that needs no PDU.
func (s *System) rxStep(p *port) bool {
	if !p.enabled && !p.portMoved {
		if p.rx == RxPortDisabled {
			return false
		}
		s.enterRx(p, RxPortDisabled, nil) // global transition
		return true
	}
	switch p.rx {
	case RxInitialize:
		s.enterRx(p, RxPortDisabled, nil)
	case RxPortDisabled:
		switch {
		case p.portMoved:
			s.enterRx(p, RxInitialize, nil)
		case p.enabled && p.lacpEnabled:
			s.enterRx(p, RxExpired, nil)
		case p.enabled:
			s.enterRx(p, RxLACPDisabled, nil)
		default:
			return false
		}
	case RxLACPDisabled:
		if !p.lacpEnabled {
			return false
		}
		s.enterRx(p, RxPortDisabled, nil)
	case RxExpired:
		if !p.currentWhile.expired(s.now) {
			return false
		}
		s.enterRx(p, RxDefaulted, nil)
	case RxCurrent:
		if !p.currentWhile.expired(s.now) {
			return false
		}
		s.enterRx(p, RxExpired, nil)
	default:
		return false
	}
	return true
}

// rxPDU is the "LACPDU received" event: EXPIRED, DEFAULTED and CURRENT go
// to CURRENT; the other states ignore the PDU. A recorded partner that was
// the partner of a disabled port of ours sets that port's port_moved.
func (s *System) rxPDU(p *port, pdu *LACPDU) {
	switch p.rx {
	case RxExpired, RxDefaulted, RxCurrent:
	default:
		return
	}
	s.enterRx(p, RxCurrent, pdu)
	for _, q := range s.ports {
		if q != p && q.rx == RxPortDisabled &&
			q.partner.System == pdu.Actor.System &&
			q.partner.SystemPriority == pdu.Actor.SystemPriority &&
			q.partner.Port == pdu.Actor.Port {
			q.portMoved = true
		}
	}
}

// ---- Periodic Transmission machine (6.4.13) ----

func (s *System) enterPeriodic(p *port, st PeriodicState) {
	p.periodic = st
	switch st {
	case PeriodicNone:
		p.periodicTimer.stop()
	case PeriodicFast:
		p.periodicTimer.start(s.now, FastPeriodicTime)
	case PeriodicSlow:
		p.periodicTimer.start(s.now, SlowPeriodicTime)
	case PeriodicTx:
		p.ntt = true
	}
}

func (s *System) periodicStep(p *port) bool {
	on := p.enabled && p.lacpEnabled && (s.cfg.Active || p.partner.State.Has(StateActivity))
	if !on {
		if p.periodic == PeriodicNone {
			return false
		}
		s.enterPeriodic(p, PeriodicNone)
		return true
	}
	short := p.partner.State.Has(StateTimeout)
	switch p.periodic {
	case PeriodicNone:
		s.enterPeriodic(p, PeriodicFast)
	case PeriodicFast:
		switch {
		case p.periodicTimer.expired(s.now):
			s.enterPeriodic(p, PeriodicTx)
		case !short:
			s.enterPeriodic(p, PeriodicSlow)
		default:
			return false
		}
	case PeriodicSlow:
		if !p.periodicTimer.expired(s.now) && !short {
			return false
		}
		s.enterPeriodic(p, PeriodicTx)
	case PeriodicTx:
		if short {
			s.enterPeriodic(p, PeriodicFast)
		} else {
			s.enterPeriodic(p, PeriodicSlow)
		}
	}
	return true
}

// ---- Mux machine (6.4.15) ----

// enterMux runs a Mux state's entry actions. Attach/Detach_Mux_To_Aggregator
// and Enable/Disable_Collecting/Distributing have no work of their own
// here: the collecting and distributing results are derived from the Mux
// state when they are published.
func (s *System) enterMux(p *port, st MuxState) {
	if s.trace != nil {
		s.trace(p.id, "mux", p.mux.String(), st.String())
	}
	p.mux = st
	p.cnt.MuxStateTransitions++
	switch st {
	case MuxDetached:
		p.state &^= StateSync | StateCollecting | StateDistributing
		p.ntt = true
		p.waitWhile.stop()
	case MuxWaiting:
		p.waitWhile.start(s.now, AggregateWaitTime)
	case MuxAttached:
		p.state |= StateSync
		p.state &^= StateCollecting | StateDistributing
		p.ntt = true
	case MuxCollecting:
		p.state |= StateSync | StateCollecting
		p.state &^= StateDistributing
		p.ntt = true
	case MuxDistributing:
		p.state |= StateDistributing
	case MuxCollectingDistributing:
		p.state |= StateSync | StateCollecting | StateDistributing
		p.ntt = true
	}
	p.countSync()
}

// ready is the Ready variable of an Aggregator (6.4.8): the
// wait_while_timer has expired on every port selected for it that is
// waiting to attach. A selected port still DETACHED is about to wait.
func (s *System) ready(a *aggregator) bool {
	for _, m := range a.members {
		if m.selected != Selected {
			continue
		}
		if m.mux == MuxDetached || (m.mux == MuxWaiting && !m.waitWhile.expired(s.now)) {
			return false
		}
	}
	return true
}

func (s *System) muxStep(p *port) bool {
	sel := p.selected
	psync := p.partner.State.Has(StateSync)
	pcoll := p.partner.State.Has(StateCollecting)
	switch p.mux {
	case MuxDetached:
		if sel == Unselected {
			return false
		}
		s.enterMux(p, MuxWaiting)
	case MuxWaiting:
		switch {
		case sel == Unselected:
			s.enterMux(p, MuxDetached)
		case sel == Selected && p.sel != nil && s.ready(p.sel):
			s.enterMux(p, MuxAttached)
		default:
			return false
		}
	case MuxAttached:
		switch {
		case sel == Selected && psync:
			if s.cfg.CoupledControl {
				s.enterMux(p, MuxCollectingDistributing)
			} else {
				s.enterMux(p, MuxCollecting)
			}
		case sel != Selected:
			s.enterMux(p, MuxDetached)
		default:
			return false
		}
	case MuxCollecting:
		switch {
		case sel == Selected && psync && pcoll:
			s.enterMux(p, MuxDistributing)
		case sel != Selected || !psync:
			s.enterMux(p, MuxAttached)
		default:
			return false
		}
	case MuxDistributing:
		if sel == Selected && psync && pcoll {
			return false
		}
		s.enterMux(p, MuxCollecting)
	case MuxCollectingDistributing:
		if sel == Selected && psync {
			return false
		}
		s.enterMux(p, MuxAttached)
	}
	return true
}

// ---- Churn Detection machines (6.4.17) ----

func (s *System) enterActorChurn(p *port, st ChurnState) {
	p.actorChurn = st
	switch st {
	case ChurnMonitoring:
		p.actorChurnTimer.start(s.now, ChurnDetectionTime)
	case Churned:
		p.cnt.ActorChurnCount++
	}
}

func (s *System) enterPartnerChurn(p *port, st ChurnState) {
	p.partnerChurn = st
	switch st {
	case ChurnMonitoring:
		p.partnerChurnTimer.start(s.now, ChurnDetectionTime)
	case Churned:
		p.cnt.PartnerChurnCount++
	}
}

// churnStep runs both machines. While the port is disabled the global
// transition to CHURN_MONITOR holds, restarting the timer: churn is only
// timed while the link is up.
func (s *System) churnStep(p *port) bool {
	changed := false
	async := p.state.Has(StateSync)
	psync := p.partner.State.Has(StateSync)
	if !p.enabled {
		if p.actorChurn != ChurnMonitoring {
			s.enterActorChurn(p, ChurnMonitoring)
			changed = true
		}
		if p.partnerChurn != ChurnMonitoring {
			s.enterPartnerChurn(p, ChurnMonitoring)
			changed = true
		}
		p.actorChurnTimer.start(s.now, ChurnDetectionTime)
		p.partnerChurnTimer.start(s.now, ChurnDetectionTime)
		return changed
	}
	if next, ok := churnNext(p.actorChurn, async, p.actorChurnTimer.expired(s.now)); ok {
		s.enterActorChurn(p, next)
		changed = true
	}
	if next, ok := churnNext(p.partnerChurn, psync, p.partnerChurnTimer.expired(s.now)); ok {
		s.enterPartnerChurn(p, next)
		changed = true
	}
	return changed
}

func churnNext(st ChurnState, sync, expired bool) (ChurnState, bool) {
	switch st {
	case ChurnMonitoring:
		if sync {
			return ChurnNone, true
		}
		if expired {
			return Churned, true
		}
	case ChurnNone:
		if !sync {
			return ChurnMonitoring, true
		}
	case Churned:
		if sync {
			return ChurnNone, true
		}
	}
	return st, false
}

// ---- Transmit machine (6.4.16) ----

// txStep transmits a LACPDU when NTT is set, at most MaxTxPerPeriod in any
// Fast_Periodic_Time; a delayed NTT is sent when the limit allows. With
// the Periodic machine in NO_PERIODIC nothing is sent and NTT is cleared.
func (s *System) txStep(p *port) {
	if p.periodic == PeriodicNone || !p.enabled || !p.lacpEnabled {
		p.ntt = false
		return
	}
	if !p.ntt || !p.txLimit.allow(s.now, MaxTxPerPeriod) {
		return
	}
	p.ntt = false
	s.sendLACPDU(p, s.actor(p))
}

func (s *System) sendLACPDU(p *port, actor PortInfo) {
	pdu := LACPDU{Version: VersionLACP, Actor: actor, Partner: p.partner}
	n, _ := EncodeLACPDU(s.buf[:], p.cfg.MAC, &pdu)
	p.txLimit.record(s.now, MaxTxPerPeriod)
	p.cnt.LACPDUsTx++
	s.send(p.id, s.buf[:n])
}

// ---- Selection Logic (6.4.14) ----

// lagOf returns the port's LAG ID. A port is Individual when LACP is
// disabled on it or its partner is Individual (which includes a defaulted
// partner: Partner_Admin_Port_State.Aggregation is FALSE).
func (s *System) lagOf(p *port) lagID {
	l := lagID{
		key:         p.key,
		partnerPrio: p.partner.SystemPriority,
		partnerSys:  p.partner.System,
		partnerKey:  p.partner.Key,
		individual:  !p.lacpEnabled || !p.partner.State.Has(StateAggregation),
	}
	if l.individual {
		l.port = p.cfg.Number
	}
	return l
}

// selection is the Selection Logic. An UNSELECTED port whose Mux machine
// has detached selects an Aggregator (6.4.14.1):
//   - an aggregatable port joins the Aggregator that already carries its
//     LAG ID, so a LAG never moves while it is in use (bonding does the
//     same; 6.4.14.2 would move it to the lowest port's Aggregator);
//   - otherwise it takes its own Aggregator if that is free, else the free
//     Aggregator with the lowest identifier (there is one per port, so one
//     is always free). An Individual port is always alone.
//
// Then the active Aggregator is chosen (selectActive) and the ports of the
// others are set to STANDBY.
func (s *System) selection() bool {
	changed := false
	for _, p := range s.ports {
		if p.selected != Unselected || p.mux != MuxDetached {
			continue
		}
		if p.sel != nil {
			p.sel.remove(p)
			p.sel = nil
		}
		l := s.lagOf(p)
		var target *aggregator
		if !l.individual {
			for _, a := range s.aggs {
				if len(a.members) > 0 && a.lag == l {
					target = a
					break
				}
			}
		}
		if target == nil && len(p.agg.members) == 0 {
			target = p.agg
		}
		if target == nil {
			for _, a := range s.aggs {
				if len(a.members) == 0 {
					target = a
					break
				}
			}
		}
		if target == nil {
			continue // cannot happen: one Aggregator per port
		}
		if len(target.members) == 0 {
			target.lag = l
		}
		target.add(p)
		p.sel = target
		p.selected = Standby
		if target == s.active {
			p.selected = Selected
		}
		changed = true
	}
	return s.selectActive() || changed
}

func (s *System) activePorts(a *aggregator) (n int) {
	for _, p := range a.members {
		if p.enabled {
			n++
		}
	}
	return n
}

func (s *System) bandwidth(a *aggregator) (bw uint64) {
	for _, p := range a.members {
		if p.enabled && p.speed > 0 {
			bw += uint64(p.speed)
		}
	}
	return bw
}

func (s *System) prioritySum(a *aggregator) (sum uint64) {
	for _, p := range a.members {
		if p.enabled {
			sum += uint64(p.cfg.Priority)
		}
	}
	return sum
}

// candidate: an Aggregator with ports of which at least one is up.
func (s *System) candidate(a *aggregator) bool {
	return a != nil && len(a.members) > 0 && s.activePorts(a) > 0
}

// better reports whether a is strictly better than b, as bonding's
// ad_agg_selection_test: aggregatable beats Individual, then an answering
// partner beats none, then the ad_select policy decides.
func (s *System) better(a, b *aggregator) bool {
	if a.lag.individual != b.lag.individual {
		return !a.lag.individual
	}
	if a.hasPartner() != b.hasPartner() {
		return a.hasPartner()
	}
	switch s.cfg.Select {
	case SelectActorPortPrio:
		if x, y := s.prioritySum(a), s.prioritySum(b); x != y {
			return x > y
		}
		fallthrough
	case SelectCount:
		if x, y := s.activePorts(a), s.activePorts(b); x != y {
			return x > y
		}
	}
	return s.bandwidth(a) > s.bandwidth(b)
}

// selectActive chooses the active Aggregator (bonding's
// ad_agg_selection_logic, Documentation/networking/bonding.rst ad_select):
// the best candidate, keeping the current one on a tie. With
// SelectStable the current one is kept while it has a port up, unless it
// has no LACP partner and the best has one, or its key is zero and the
// best's is not; during the first AggregateWaitTime (bonding's
// agg_select_timer) stable chooses like bandwidth.
func (s *System) selectActive() bool {
	var best *aggregator
	for _, a := range s.aggs {
		if s.candidate(a) && (best == nil || s.better(a, best)) {
			best = a
		}
	}
	cur := s.active
	if best != nil && cur != nil && best != cur && s.candidate(cur) {
		keep := !s.better(best, cur)
		if s.cfg.Select == SelectStable && s.now-s.start >= AggregateWaitTime &&
			(cur.hasPartner() || !best.hasPartner()) &&
			(cur.lag.key != 0 || best.lag.key == 0) {
			keep = true
		}
		if keep {
			best = cur
		}
	}
	changed := best != s.active
	s.active = best
	for _, p := range s.ports {
		switch {
		case p.selected == Selected && p.sel != best:
			p.selected = Standby
			changed = true
		case p.selected == Standby && p.sel == best:
			p.selected = Selected
			changed = true
		}
	}
	return changed
}
