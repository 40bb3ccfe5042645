package appliance

import (
	"net"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/lacp"
)

// adState is a bond's 802.3ad control state: the LACP System, run by the
// control goroutine on a 100 ms tick, never by a lane.
type adState struct {
	sys     *lacp.System
	start   time.Time
	version uint64
	tx      *lane.Lane // lane serving queue 0: LACPDUs go out there
	txDrops uint64
	jitter  jitterStats
}

// jitterStats measures how far the 100 ms LACP tick strays from its period.
type jitterStats struct {
	last   time.Time
	n      uint64
	sumAbs time.Duration
	max    time.Duration
	// the last full 10 s window and the current one
	winStart        time.Time
	winMax, prevWin time.Duration
}

const jitterWindow = 10 * time.Second

func (j *jitterStats) observe(now time.Time, period time.Duration) {
	if !j.last.IsZero() {
		d := now.Sub(j.last) - period
		if d < 0 {
			d = -d
		}
		j.n++
		j.sumAbs += d
		if d > j.max {
			j.max = d
		}
		if now.Sub(j.winStart) >= jitterWindow {
			j.prevWin, j.winMax, j.winStart = j.winMax, 0, now
		}
		if d > j.winMax {
			j.winMax = d
		}
	} else {
		j.winStart = now
	}
	j.last = now
}

// recentMax is the largest deviation in the last 10 to 20 s.
func (j *jitterStats) recentMax() time.Duration { return max(j.winMax, j.prevWin) }

func macArray(m net.HardwareAddr) (a [6]byte) {
	copy(a[:], m)
	return a
}

// setupAD creates the LACP System of an 802.3ad bond; tx is the lane that
// transmits its PDUs.
func (b *bond) setupAD(tx *lane.Lane) error {
	c := b.cfg
	sysID := c.ADActorSystem
	if len(sysID) == 0 || macArray(sysID) == ([6]byte{}) {
		sysID = b.mac
	}
	lc := lacp.Config{
		SystemPriority: uint16(c.ADActorSysPrio),
		SystemID:       macArray(sysID),
		FastRate:       c.LACPRate == config.LACPRateFast,
		Active:         c.LACPActive,
		Select:         lacp.Select(c.ADSelect),
		MinLinks:       c.MinLinks,
		CoupledControl: c.CoupledControl,
	}
	ad := &adState{start: time.Now(), tx: tx}
	var cf lane.CtrlFrame
	send := func(port int, frame []byte) {
		cf.Bond, cf.Member = uint16(b.idx), uint16(port)
		cf.Len = uint16(copy(cf.Data[:], frame))
		if !ad.tx.FromCtrl.Push(&cf) {
			ad.txDrops++
		}
	}
	sys, err := lacp.New(lc, send)
	if err != nil {
		return err
	}
	for _, m := range b.members {
		pc := lacp.PortConfig{
			Number:   uint16(m.idx + 1),
			Priority: uint16(m.cfg.ActorPortPrio),
			UserKey:  uint16(c.ADUserPortKey),
			MAC:      macArray(m.permMAC),
		}
		if err := sys.AddPort(m.idx, pc); err != nil {
			return err
		}
	}
	ad.sys = sys
	b.ad = ad
	return nil
}

func (ad *adState) now() time.Duration { return time.Since(ad.start) }

// adLink tells LACP about a member's MII state; callers hold mu.
func (b *bond) adLink(m *member) {
	if b.ad == nil {
		return
	}
	b.ad.sys.SetLink(m.idx, m.usable(), m.speed, m.duplex == "full")
}

// adTick runs the LACP machines; callers hold mu. It republishes the
// snapshot when LACP's forwarding decision changed.
func (b *bond) adTick(now time.Time) {
	b.ad.jitter.observe(now, adTickPeriod)
	b.ad.sys.Tick(b.ad.now())
	b.adMaybeRebuild()
}

// adReceive hands a slow-protocol frame received on member m to LACP.
func (b *bond) adReceive(m int, frame []byte) {
	b.ad.sys.Receive(m, frame, b.ad.now())
	b.adMaybeRebuild()
}

func (b *bond) adMaybeRebuild() {
	if v := b.ad.sys.Version(); v != b.ad.version {
		b.ad.version = v
		b.rebuild()
	}
}

// adSnapshot fills the forwarding state of an 802.3ad bond: transmit over
// the active aggregator's distributing ports, receive on its collecting
// ports; carrier needs min_links.
func (b *bond) adSnapshot(s *lane.Snapshot) {
	dist, up := b.ad.sys.Distributing()
	if up {
		for _, p := range dist {
			if p >= 0 && p < len(b.members) && b.members[p].usable() {
				s.TX = append(s.TX, p)
			}
		}
	}
	for _, p := range b.ad.sys.Collecting() {
		if p >= 0 && p < lane.MaxMembers {
			s.RX |= 1 << uint(p)
		}
	}
}

const adTickPeriod = 100 * time.Millisecond

// ADInfo is the "802.3ad info" part of a bond's status.
type ADInfo struct {
	LACPActive       string           `json:"lacp_active"`
	LACPRate         string           `json:"lacp_rate"`
	CoupledControl   string           `json:"coupled_control"`
	MinLinks         int              `json:"min_links"`
	ADSelect         string           `json:"ad_select"`
	SystemPriority   int              `json:"system_priority"`
	SystemMAC        string           `json:"system_mac"`
	ActiveAggregator *AggregatorInfo  `json:"active_aggregator,omitempty"`
	Aggregators      []AggregatorInfo `json:"aggregators"`
	// The 100 ms LACP tick measured on the control goroutine.
	TickJitterMeanMs float64 `json:"tick_jitter_mean_ms"`
	TickJitterMaxMs  float64 `json:"tick_jitter_max_ms"`
	// largest deviation in the last 10-20 s
	TickJitterRecentMaxMs float64 `json:"tick_jitter_recent_max_ms"`
	PDUTxQueueDrops       uint64  `json:"pdu_tx_queue_drops"`
}

// AggregatorInfo describes one aggregator.
type AggregatorInfo struct {
	ID            int    `json:"id"`
	Active        bool   `json:"active"`
	NumberOfPorts int    `json:"number_of_ports"`
	ActorKey      int    `json:"actor_key"`
	PartnerKey    int    `json:"partner_key"`
	PartnerMAC    string `json:"partner_mac"`
	BandwidthMbps uint64 `json:"bandwidth_mbps"`
}

// SlaveAD is a slave's 802.3ad state.
type SlaveAD struct {
	AggregatorID        int        `json:"aggregator_id"`
	ActorChurnState     string     `json:"actor_churn_state"`
	PartnerChurnState   string     `json:"partner_churn_state"`
	ActorChurnedCount   uint64     `json:"actor_churned_count"`
	PartnerChurnedCount uint64     `json:"partner_churned_count"`
	RxState             string     `json:"rx_state"`
	MuxState            string     `json:"mux_state"`
	Collecting          bool       `json:"collecting"`
	Distributing        bool       `json:"distributing"`
	Actor               LACPInfo   `json:"actor"`
	Partner             LACPInfo   `json:"partner"`
	Counters            ADCounters `json:"counters"`
}

// LACPInfo is one side's LACPDU information.
type LACPInfo struct {
	SystemPriority int    `json:"system_priority"`
	SystemMAC      string `json:"system_mac"`
	Key            int    `json:"key"`
	PortPriority   int    `json:"port_priority"`
	PortNumber     int    `json:"port_number"`
	PortState      int    `json:"port_state"`
}

// ADCounters are a port's LACP counters.
type ADCounters struct {
	LACPDUsRx         uint64 `json:"lacpdus_rx"`
	LACPDUsTx         uint64 `json:"lacpdus_tx"`
	MarkersRx         uint64 `json:"markers_rx"`
	MarkersTx         uint64 `json:"markers_tx"`
	MarkerResponsesRx uint64 `json:"marker_responses_rx"`
	MarkerResponsesTx uint64 `json:"marker_responses_tx"`
	BadPDUs           uint64 `json:"bad_pdus"`
	UnknownRx         uint64 `json:"unknown_rx"`
	LoopbackRx        uint64 `json:"loopback_rx"`
	StateTransitions  uint64 `json:"state_transitions"`
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

func lacpInfo(p lacp.PortInfo) LACPInfo {
	return LACPInfo{SystemPriority: int(p.SystemPriority), SystemMAC: net.HardwareAddr(p.System[:]).String(),
		Key: int(p.Key), PortPriority: int(p.PortPriority), PortNumber: int(p.Port), PortState: int(p.State)}
}

// adStatus fills the 802.3ad parts of a bond status; callers hold mu.
func (b *bond) adStatus(bs *BondStatus) {
	st := b.ad.sys.Status()
	c := st.Config
	rate := "slow"
	if c.FastRate {
		rate = "fast"
	}
	info := &ADInfo{LACPActive: onOff(c.Active), LACPRate: rate, CoupledControl: onOff(c.CoupledControl),
		MinLinks: c.MinLinks, ADSelect: c.Select.String(), SystemPriority: int(c.SystemPriority),
		SystemMAC: net.HardwareAddr(c.SystemID[:]).String(), PDUTxQueueDrops: b.ad.txDrops}
	if j := b.ad.jitter; j.n > 0 {
		info.TickJitterMeanMs = float64(j.sumAbs) / float64(j.n) / 1e6
		info.TickJitterMaxMs = float64(j.max) / 1e6
		info.TickJitterRecentMaxMs = float64(j.recentMax()) / 1e6
	}
	for _, a := range st.Aggregators {
		ai := AggregatorInfo{ID: int(a.ID), Active: a.ID == st.ActiveAggregator, NumberOfPorts: len(a.Ports),
			ActorKey: int(a.ActorKey), PartnerKey: int(a.PartnerKey),
			PartnerMAC: net.HardwareAddr(a.PartnerSystem[:]).String(), BandwidthMbps: a.BandwidthMbps}
		info.Aggregators = append(info.Aggregators, ai)
		if ai.Active {
			cp := ai
			info.ActiveAggregator = &cp
		}
	}
	bs.AD = info
	for i := range bs.Slaves {
		p, ok := st.Port(bs.Slaves[i].idx)
		if !ok {
			continue
		}
		k := p.Counters
		bs.Slaves[i].AD = &SlaveAD{
			AggregatorID: int(p.AggregatorID), ActorChurnState: p.ActorChurn.String(), PartnerChurnState: p.PartnerChurn.String(),
			ActorChurnedCount: k.ActorChurnCount, PartnerChurnedCount: k.PartnerChurnCount,
			RxState: p.RxState.String(), MuxState: p.MuxState.String(), Collecting: p.Collecting, Distributing: p.Distributing,
			Actor: lacpInfo(p.Actor), Partner: lacpInfo(p.Partner),
			Counters: ADCounters{LACPDUsRx: k.LACPDUsRx, LACPDUsTx: k.LACPDUsTx, MarkersRx: k.MarkerPDUsRx, MarkersTx: k.MarkerPDUsTx,
				MarkerResponsesRx: k.MarkerResponsePDUsRx, MarkerResponsesTx: k.MarkerResponsePDUsTx, BadPDUs: k.IllegalRx,
				UnknownRx: k.UnknownRx, LoopbackRx: k.LoopbackRx, StateTransitions: k.RxStateTransitions + k.MuxStateTransitions},
		}
	}
}
