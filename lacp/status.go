package lacp

import (
	"fmt"
	"io"
	"net"
)

// Status is a snapshot of the System for status output, such as the
// 802.3ad part of /proc/net/bonding/<bond> (see WriteProcBond and
// WriteProcPort).
type Status struct {
	Config           Config
	ActiveAggregator uint16 // 0: none
	Up               bool   // carrier: enough distributing ports (min_links)
	Version          uint64
	Aggregators      []AggregatorStatus // with ports, in identifier order
	Ports            []PortStatus       // in id order
	UnknownPortRx    uint64             // frames for a port id that does not exist
}

// AggregatorStatus describes an Aggregator that has ports.
type AggregatorStatus struct {
	ID     uint16
	Active bool
	Ready  bool
	// Individual: the LAG is an Individual link (one port).
	Individual bool
	// Ports are the ids of the ports that selected it: bonding's "Number
	// of ports" is len(Ports).
	Ports                 []int
	ActivePorts           int    // ports with link up
	BandwidthMbps         uint64 // sum of the speeds of the active ports
	PrioritySum           uint64 // sum of their actor port priorities
	ActorKey              uint16
	PartnerSystemPriority uint16
	PartnerSystem         [6]byte // bonding's "Partner Mac Address"
	PartnerKey            uint16
}

// PortStatus describes an Aggregation Port.
type PortStatus struct {
	ID          int
	Number      uint16
	MAC         [6]byte
	LinkUp      bool
	SpeedMbps   int
	FullDuplex  bool
	LACPEnabled bool
	// AggregatorID is the selected Aggregator, 0 when none.
	AggregatorID  uint16
	Selected      Selection
	RxState       RxState
	MuxState      MuxState
	PeriodicState PeriodicState
	ActorChurn    ChurnState
	PartnerChurn  ChurnState
	// Actor is what the port transmits as actor (Actor_Oper_Port_State
	// in Actor.State); Partner is the partner's operational information.
	Actor   PortInfo
	Partner PortInfo
	// Loopback: the port receives our own LACPDUs back.
	Loopback bool
	// Collecting and Distributing are the data-plane results: set only
	// for ports of the active Aggregator.
	Collecting   bool
	Distributing bool
	// LastRxError says why the last bad PDU was dropped (IllegalRx) or
	// what was wrong with the last non-conformant one (NonConformantRx);
	// nil if none.
	LastRxError error
	Counters    Counters
}

// Status returns a snapshot of the System.
func (s *System) Status() Status {
	st := Status{
		Config:           s.cfg,
		ActiveAggregator: s.fwdActive,
		Up:               s.fwdUp,
		Version:          s.version,
		UnknownPortRx:    s.unknownPortRx,
	}
	for _, a := range s.aggs {
		if len(a.members) == 0 {
			continue
		}
		as := AggregatorStatus{
			ID:                    a.id,
			Active:                a == s.active,
			Ready:                 s.ready(a),
			Individual:            a.lag.individual,
			ActivePorts:           s.activePorts(a),
			BandwidthMbps:         s.bandwidth(a),
			PrioritySum:           s.prioritySum(a),
			ActorKey:              a.lag.key,
			PartnerSystemPriority: a.lag.partnerPrio,
			PartnerSystem:         a.lag.partnerSys,
			PartnerKey:            a.lag.partnerKey,
		}
		for _, p := range a.members {
			as.Ports = append(as.Ports, p.id)
		}
		st.Aggregators = append(st.Aggregators, as)
	}
	for _, p := range s.ports {
		ps := PortStatus{
			ID:            p.id,
			Number:        p.cfg.Number,
			MAC:           p.cfg.MAC,
			LinkUp:        p.enabled,
			SpeedMbps:     p.speed,
			FullDuplex:    p.fullDuplex,
			LACPEnabled:   p.lacpEnabled,
			Selected:      p.selected,
			RxState:       p.rx,
			MuxState:      p.mux,
			PeriodicState: p.periodic,
			ActorChurn:    p.actorChurn,
			PartnerChurn:  p.partnerChurn,
			Actor:         s.actor(p),
			Partner:       p.partner,
			Loopback:      p.loopback,
			Counters:      p.cnt,
		}
		if p.sel != nil {
			ps.AggregatorID = p.sel.id
		}
		if p.lastErr != 0 {
			ps.LastRxError = p.lastErr
		}
		for _, id := range s.fwdColl {
			ps.Collecting = ps.Collecting || id == p.id
		}
		for _, id := range s.fwdDist {
			ps.Distributing = ps.Distributing || id == p.id
		}
		st.Ports = append(st.Ports, ps)
	}
	return st
}

// Port returns the status of port id.
func (st Status) Port(id int) (PortStatus, bool) {
	for _, p := range st.Ports {
		if p.ID == id {
			return p, true
		}
	}
	return PortStatus{}, false
}

// Aggregator returns the status of Aggregator id (only those with ports).
func (st Status) Aggregator(id uint16) (AggregatorStatus, bool) {
	for _, a := range st.Aggregators {
		if a.ID == id {
			return a, true
		}
	}
	return AggregatorStatus{}, false
}

func mac(b [6]byte) string { return net.HardwareAddr(b[:]).String() }

// WriteProcBond writes the "802.3ad info" block of /proc/net/bonding/<bond>
// as bonding's bond_info_show_master prints it.
func (st Status) WriteProcBond(w io.Writer, bond string) error {
	onoff := map[bool]string{true: "on", false: "off"}
	rate := map[bool]string{true: "fast", false: "slow"}
	c := st.Config
	_, err := fmt.Fprintf(w, "\n802.3ad info\nLACP active: %s\nLACP rate: %s\nLACP coupled_control: %s\n"+
		"Min links: %d\nAggregator selection policy (ad_select): %s\nSystem priority: %d\nSystem MAC address: %s\n",
		onoff[c.Active], rate[c.FastRate], onoff[c.CoupledControl], c.MinLinks, c.Select,
		c.SystemPriority, mac(c.SystemID))
	if err != nil {
		return err
	}
	a, ok := st.Aggregator(st.ActiveAggregator)
	if !ok {
		_, err = fmt.Fprintf(w, "bond %s has no active aggregator\n", bond)
		return err
	}
	_, err = fmt.Fprintf(w, "Active Aggregator Info:\n\tAggregator ID: %d\n\tNumber of ports: %d\n"+
		"\tActor Key: %d\n\tPartner Key: %d\n\tPartner Mac Address: %s\n",
		a.ID, len(a.Ports), a.ActorKey, a.PartnerKey, mac(a.PartnerSystem))
	return err
}

// WriteProcPort writes the 802.3ad lines of a slave block of
// /proc/net/bonding/<bond> for port id, as bond_info_show_slave does.
func (st Status) WriteProcPort(w io.Writer, id int) error {
	p, ok := st.Port(id)
	if !ok || p.AggregatorID == 0 {
		_, err := io.WriteString(w, "Aggregator ID: N/A\n")
		return err
	}
	_, err := fmt.Fprintf(w, "Aggregator ID: %d\nActor Churn State: %s\nPartner Churn State: %s\n"+
		"Actor Churned Count: %d\nPartner Churned Count: %d\n"+
		"details actor lacp pdu:\n    system priority: %d\n    system mac address: %s\n"+
		"    port key: %d\n    port priority: %d\n    port number: %d\n    port state: %d\n"+
		"details partner lacp pdu:\n    system priority: %d\n    system mac address: %s\n"+
		"    oper key: %d\n    port priority: %d\n    port number: %d\n    port state: %d\n",
		p.AggregatorID, p.ActorChurn, p.PartnerChurn, p.Counters.ActorChurnCount, p.Counters.PartnerChurnCount,
		p.Actor.SystemPriority, mac(p.Actor.System), p.Actor.Key, p.Actor.PortPriority, p.Actor.Port, p.Actor.State,
		p.Partner.SystemPriority, mac(p.Partner.System), p.Partner.Key, p.Partner.PortPriority, p.Partner.Port,
		p.Partner.State)
	return err
}
