package bondsm

import (
	"net"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/lacp"
)

// adState is the bond's 802.3ad control state: the LACP System, run on a
// 100 ms tick (TickLACP).
type adState struct {
	sys     *lacp.System
	version uint64
	txDrops uint64
	jitter  jitterStats
}

// adTickPeriod is the LACP tick the caller runs TickLACP at.
const adTickPeriod = lacp.TickInterval

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

// lacpConfig is the LACP System configuration of options c.
func (b *Bond) lacpConfig(c config.Bond) lacp.Config {
	sysID := c.ADActorSystem
	if len(sysID) == 0 || macArray(sysID) == ([6]byte{}) {
		sysID = b.mac
	}
	return lacp.Config{
		SystemPriority: uint16(c.ADActorSysPrio),
		SystemID:       macArray(sysID),
		FastRate:       c.LACPRate == config.LACPRateFast,
		Active:         c.LACPActive,
		Select:         lacp.Select(c.ADSelect),
		MinLinks:       c.MinLinks,
		CoupledControl: c.CoupledControl,
	}
}

func (b *Bond) portConfig(m *member, userKey int) lacp.PortConfig {
	return lacp.PortConfig{
		Number:   uint16(m.idx + 1),
		Priority: uint16(m.cfg.ActorPortPrio),
		UserKey:  uint16(userKey),
		MAC:      macArray(m.permMAC),
	}
}

// lacpTx is the System's TxFunc: LACPDUs and markers go into the Output.
func (b *Bond) lacpTx(port int, frame []byte) { b.emit(port, ClassSlow, originAD, frame) }

// setupAD creates the LACP System of an 802.3ad bond.
func (b *Bond) setupAD() error {
	sys, err := lacp.New(b.lacpConfig(b.cfg), b.lacpTx)
	if err != nil {
		return err
	}
	for _, m := range b.members {
		if err := sys.AddPort(m.idx, b.portConfig(m, b.cfg.ADUserPortKey)); err != nil {
			return err
		}
	}
	b.ad = &adState{sys: sys}
	return nil
}

// adLink tells LACP about a member's MII state.
func (b *Bond) adLink(m *member) {
	if b.ad == nil || m.removed {
		return
	}
	b.ad.sys.SetLink(m.idx, m.usable(), m.speed, m.duplex == "full")
}

// adReceive hands a slow-protocol frame received on member m to LACP.
func (b *Bond) adReceive(m int, frame []byte) {
	b.ad.sys.Receive(m, frame, b.t)
	b.adMaybeRebuild()
}

// adMaybeRebuild rebuilds the snapshot when LACP's forwarding decision
// changed.
func (b *Bond) adMaybeRebuild() {
	if b.ad == nil {
		return
	}
	if v := b.ad.sys.Version(); v != b.ad.version {
		b.ad.version = v
		b.rebuild()
	}
}

// TickLACP runs the LACP machines; call it on the 100 ms LACP period. It
// does nothing outside 802.3ad. The time between calls is measured as the
// tick's jitter (status).
func (b *Bond) TickLACP(now time.Time) Output {
	b.begin(now)
	if b.ad == nil {
		return b.finish()
	}
	b.ad.jitter.observe(now, adTickPeriod)
	b.ad.sys.Tick(b.t)
	b.adMaybeRebuild()
	return b.finish()
}

// adSnapshot fills the forwarding state of an 802.3ad bond: transmit over
// the active aggregator's distributing ports, receive on its collecting
// ports; carrier needs min_links.
func (b *Bond) adSnapshot(s *lane.Snapshot) {
	if b.ad == nil {
		return
	}
	dist, up := b.ad.sys.Distributing()
	if up {
		for _, p := range dist {
			if m := b.member(p); m != nil && m.usable() {
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

// adLogDistributing logs a change of the slaves the bond transmits on
// (the active aggregator's distributing ports): what an operator reads to
// see when, and on which ports, the aggregate carries traffic.
func (b *Bond) adLogDistributing(tx []int) {
	names := make([]string, 0, len(tx))
	for _, i := range tx {
		if m := b.member(i); m != nil {
			names = append(names, m.name)
		}
	}
	b.log("802.3ad distributing", "bond", b.cfg.Name, "slaves", strings.Join(names, ","), "count", len(names),
		"aggregator", int(b.ad.sys.ActiveAggregator()))
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

// adStatus fills the 802.3ad parts of a bond status.
func (b *Bond) adStatus(bs *BondStatus) {
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
		p, ok := st.Port(bs.Slaves[i].Index)
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
