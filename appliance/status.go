package appliance

import (
	"fmt"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/bondsm"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
)

// Status is the JSON document `bond-appliance status --json` prints.
type Status struct {
	Version string       `json:"version"`
	Uptime  float64      `json:"uptime_seconds"`
	Bonds   []BondStatus `json:"bonds"`
	Lanes   []LaneStatus `json:"lanes"`
	// ControlStalls counts control loop steps that took longer than
	// 50 ms (each is logged with what it was doing): its LACP and monitor
	// timers ran that late.
	ControlStalls uint64 `json:"control_loop_stalls"`
}

// The bond part of the status layout is defined beside the state machine
// that fills it (package bondsm); these names keep the documented API.
type (
	BondStatus     = bondsm.BondStatus
	SlaveStatus    = bondsm.SlaveStatus
	Counters       = bondsm.Counters
	ADInfo         = bondsm.ADInfo
	AggregatorInfo = bondsm.AggregatorInfo
	SlaveAD        = bondsm.SlaveAD
	LACPInfo       = bondsm.LACPInfo
	ADCounters     = bondsm.ADCounters
	MonitorInfo    = bondsm.MonitorInfo
)

// LaneStatus is one lane's view.
type LaneStatus struct {
	ID         int          `json:"id"`
	CPU        int          `json:"cpu"`
	Iterations uint64       `json:"iterations"`
	Busy       uint64       `json:"busy_iterations"`
	BusyNanos  uint64       `json:"busy_nanoseconds"` // time spent moving frames
	BusyRatio  float64      `json:"busy_ratio"`       // busy_nanoseconds / uptime: the share of the core doing work
	Sleeps     uint64       `json:"sleeps"`
	UMEM       LaneUMEM     `json:"umem"`
	Ports      []PortStatus `json:"ports"`
}

// LaneUMEM says where a lane's UMEM frames are (every frame is in exactly
// one place). Free, Fill, RX, TX and Completion are read without stopping
// the lane (the free stack as the lane left it after its last iteration,
// the rings' shared producer and consumer indices); InFlight is the rest:
// frames the lane holds within an iteration, frames inside the kernel
// between two rings, frames queued for reclaim or on a retired socket.
// LostToReclaim frames (retired sockets' frames not handed back to the
// lane within the worker's deadline) are in no place any more. An idle
// lane's places are exact; under traffic they are a moment's sample (the
// in-flight figure absorbs the difference and is never below zero). A
// leak shows as InFlight growing on an idle lane.
type LaneUMEM struct {
	Frames        uint64 `json:"frames"`
	Free          uint64 `json:"free"`
	Fill          uint64 `json:"fill"`
	RX            uint64 `json:"rx"`
	InFlight      uint64 `json:"in_flight"`
	TX            uint64 `json:"tx"`
	Completion    uint64 `json:"completion"`
	LostToReclaim uint64 `json:"lost_to_reclaim"`
}

// laneUMEM reads where l's frames are.
func laneUMEM(l *lane.Lane) LaneUMEM {
	p := l.Places()
	u := LaneUMEM{Frames: p.Frames, Free: p.Free, Fill: p.Fill, RX: p.RX, TX: p.TX, Completion: p.Completion, LostToReclaim: l.LostToReclaim()}
	if placed := u.Free + u.Fill + u.RX + u.TX + u.Completion + u.LostToReclaim; placed < u.Frames {
		u.InFlight = u.Frames - placed
	}
	return u
}

// PortStatus is one socket of a lane.
type PortStatus struct {
	Name     string   `json:"name"`
	Counters Counters `json:"counters"`
}

func addCounters(c *Counters, p *lane.Port) {
	s := &p.Stats
	c.RxPackets += s.RxPackets.Load()
	c.RxBytes += s.RxBytes.Load()
	c.TxPackets += s.TxPackets.Load()
	c.TxBytes += s.TxBytes.Load()
	c.DropTxFull += s.DropTxFull.Load()
	c.DropNoSlave += s.DropNoSlave.Load()
	c.DropInactive += s.DropInactive.Load()
	c.DropNoFrame += s.DropNoFrame.Load()
	c.DropChain += s.DropChain.Load()
	c.DropTooLong += s.DropTooLong.Load()
	c.DropBadVnet += s.DropBadVnet.Load()
	c.CtrlRx += s.SlowRx.Load()
	c.CtrlDrop += s.SlowDrop.Load()
	c.NeighRx += s.NeighRx.Load()
	c.NeighDrop += s.NeighDrop.Load()
	c.CtrlBad += s.CtrlBad.Load()
	c.CtrlTx += s.CtrlTx.Load()
	if k, ok := p.Kick.(interface {
		XDPStats() (rxDropped, rxInvalid, txInvalid, rxRingFull, fillEmpty, txEmpty uint64, err error)
	}); ok {
		a, b, d, e, f, g, err := k.XDPStats()
		if err == nil {
			c.XSKRxDropped += a
			c.XSKRxInvalidDescs += b
			c.XSKTxInvalidDescs += d
			c.XSKRxRingFull += e
			c.XSKFillRingEmpty += f
			c.XSKTxRingEmptyDesc += g
		}
	}
}

// Version is set by the build.
var Version = "dev"

// Status collects the current state (from the control loop, which owns it).
func (a *Appliance) Status(bondName string) (*Status, error) {
	var st *Status
	var err error
	if derr := a.do(func(c *ctl) { st, err = c.status(bondName) }); derr != nil {
		return nil, derr
	}
	return st, err
}

func (c *ctl) status(bondName string) (*Status, error) {
	a := c.a
	st := &Status{Version: Version, Uptime: time.Since(a.started).Seconds(), ControlStalls: c.stalls}
	found := bondName == ""
	for _, b := range c.live() {
		if bondName != "" && b.name != bondName {
			continue
		}
		found = true
		bs := b.sm.Status()
		for _, lb := range b.lanes {
			if lb.Host != nil {
				addCounters(&bs.Host, lb.Host)
			}
		}
		for i := range bs.Slaves {
			idx := bs.Slaves[i].Index
			if idx >= 0 && idx < len(b.members) && b.members[idx] != nil {
				bs.Slaves[i].Counters.CtrlRx += b.members[idx].slowRx
			}
			for _, ps := range b.ports {
				if idx >= 0 && idx < len(ps) && ps[idx] != nil {
					addCounters(&bs.Slaves[i].Counters, ps[idx])
				}
			}
			c.addFastCounters(b, &bs.Host, idx, &bs.Slaves[i].Counters)
		}
		st.Bonds = append(st.Bonds, bs)
	}
	if !found {
		return nil, fmt.Errorf("no bond %q", bondName)
	}
	for _, l := range a.lanes {
		lc := l.Config()
		ls := LaneStatus{ID: lc.ID, CPU: lc.CPU, Iterations: l.Stats.Iterations.Load(), Busy: l.Stats.Busy.Load(), Sleeps: l.Stats.Sleeps.Load(), BusyNanos: l.Stats.BusyNanos.Load()}
		if st.Uptime > 0 {
			ls.BusyRatio = float64(ls.BusyNanos) / 1e9 / st.Uptime
		}
		ls.UMEM = laneUMEM(l)
		// the ports of the layout the loop published last: their sockets
		// stay open until every lane let go of them
		for _, p := range l.Ports() {
			ps := PortStatus{Name: p.Name}
			addCounters(&ps.Counters, p)
			ls.Ports = append(ls.Ports, ps)
		}
		st.Lanes = append(st.Lanes, ls)
	}
	return st, nil
}

// FormatText renders the status like /proc/net/bonding/<bond>, followed by
// the appliance's per-slave and per-lane counters.
func FormatText(st *Status) string {
	var w strings.Builder
	for i, b := range st.Bonds {
		if i > 0 {
			w.WriteString("\n")
		}
		fmt.Fprintf(&w, "Ethernet Channel Bonding Driver: bond-appliance %s\n\n", st.Version)
		fmt.Fprintf(&w, "Bonding Mode: %s\n", b.ModeDescription)
		if b.TransmitHashPolicy != "" {
			fmt.Fprintf(&w, "Transmit Hash Policy: %s\n", b.TransmitHashPolicy)
		}
		if b.PrimarySlave != "" {
			fmt.Fprintf(&w, "Primary Slave: %s", b.PrimarySlave)
			if b.PrimaryReselect != "" {
				fmt.Fprintf(&w, " (primary_reselect %s)", b.PrimaryReselect)
			}
			w.WriteString("\n")
		}
		if b.Mode == "active-backup" || b.PrimarySlave != "" {
			fmt.Fprintf(&w, "Currently Active Slave: %s\n", b.CurrentlyActiveSlave)
		}
		fmt.Fprintf(&w, "MII Status: %s\n", b.MIIStatus)
		fmt.Fprintf(&w, "MII Polling Interval (ms): %d\n", b.MIIPollingInterval)
		fmt.Fprintf(&w, "Up Delay (ms): %d\n", b.UpDelay)
		fmt.Fprintf(&w, "Down Delay (ms): %d\n", b.DownDelay)
		fmt.Fprintf(&w, "Peer Notification Delay (ms): %d\n", b.PeerNotifDelay)
		if b.ArpInterval > 0 {
			fmt.Fprintf(&w, "ARP Polling Interval (ms): %d\nARP Missed Max: %d\nARP IP target/s (n.n.n.n form): %s\n",
				b.ArpInterval, b.ArpMissedMax, strings.Join(b.ArpTargets, ","))
			if len(b.NSTargets) > 0 {
				fmt.Fprintf(&w, "NS IPv6 target/s (xx::xx form): %s\n", strings.Join(b.NSTargets, ","))
			}
		}
		if b.Mode == "balance-rr" {
			fmt.Fprintf(&w, "Packets Per Slave: %d\n", b.PacketsPerSlave)
		}
		if ad := b.AD; ad != nil {
			fmt.Fprintf(&w, "\n802.3ad info\nLACP active: %s\nLACP rate: %s\nMin links: %d\nAggregator selection policy (ad_select): %s\nSystem priority: %d\nSystem MAC address: %s\n",
				ad.LACPActive, ad.LACPRate, ad.MinLinks, ad.ADSelect, ad.SystemPriority, ad.SystemMAC)
			if a := ad.ActiveAggregator; a != nil {
				fmt.Fprintf(&w, "Active Aggregator Info:\n\tAggregator ID: %d\n\tNumber of ports: %d\n\tActor Key: %d\n\tPartner Key: %d\n\tPartner Mac Address: %s\n",
					a.ID, a.NumberOfPorts, a.ActorKey, a.PartnerKey, a.PartnerMAC)
			} else {
				fmt.Fprintf(&w, "bond %s has no active aggregator\n", b.Name)
			}
			fmt.Fprintf(&w, "LACP tick jitter (ms): mean %.3f max %.3f\n", ad.TickJitterMeanMs, ad.TickJitterMaxMs)
		}
		fmt.Fprintf(&w, "Bond MAC: %s  MTU: %d  Host device: %s\n", b.MAC, b.MTU, b.HostDevice)
		fmt.Fprintf(&w, "Host counters: %s\n", counterLine(b.Host))
		for i, s := range b.Slaves {
			fmt.Fprintf(&w, "\nSlave Interface: %s\n", s.Name)
			fmt.Fprintf(&w, "MII Status: %s\n", s.MIIStatus)
			if s.ArpMonitor != "" {
				fmt.Fprintf(&w, "ARP/NS Monitor Status: %s\n", s.ArpMonitor)
			}
			if s.Speed > 0 {
				fmt.Fprintf(&w, "Speed: %d Mbps\n", s.Speed)
			} else {
				w.WriteString("Speed: Unknown\n")
			}
			fmt.Fprintf(&w, "Duplex: %s\n", s.Duplex)
			fmt.Fprintf(&w, "Link Failure Count: %d\n", s.LinkFailureCount)
			fmt.Fprintf(&w, "Permanent HW addr: %s\n", s.PermanentHWAddr)
			fmt.Fprintf(&w, "Slave queue ID: %d\n", s.QueueID)
			if ad := s.AD; ad != nil {
				if ad.AggregatorID == 0 {
					w.WriteString("Aggregator ID: N/A\n")
				} else {
					fmt.Fprintf(&w, "Aggregator ID: %d\n", ad.AggregatorID)
				}
				fmt.Fprintf(&w, "Actor Churn State: %s\nPartner Churn State: %s\nActor Churned Count: %d\nPartner Churned Count: %d\n",
					ad.ActorChurnState, ad.PartnerChurnState, ad.ActorChurnedCount, ad.PartnerChurnedCount)
				for _, side := range []struct {
					name, key string
					i         LACPInfo
				}{{"actor", "port key", ad.Actor}, {"partner", "oper key", ad.Partner}} {
					fmt.Fprintf(&w, "details %s lacp pdu:\n    system priority: %d\n    system mac address: %s\n    %s: %d\n    port priority: %d\n    port number: %d\n    port state: %d\n",
						side.name, side.i.SystemPriority, side.i.SystemMAC, side.key, side.i.Key, side.i.PortPriority, side.i.PortNumber, side.i.PortState)
				}
				c := ad.Counters
				fmt.Fprintf(&w, "LACP counters: lacpdu rx %d tx %d, marker rx %d tx %d, marker response rx %d tx %d, bad %d, unknown %d, loopback %d, state transitions %d\n",
					c.LACPDUsRx, c.LACPDUsTx, c.MarkersRx, c.MarkersTx, c.MarkerResponsesRx, c.MarkerResponsesTx, c.BadPDUs, c.UnknownRx, c.LoopbackRx, c.StateTransitions)
			}
			if b.ALB != nil {
				for _, as := range b.ALB.Slaves {
					if as.Index == i {
						fmt.Fprintf(&w, "TLB load (bytes/s): %d  hash indexes: %d  RLB clients: %d  current MAC: %s\n", as.Load, as.Indexes, as.Clients, as.MAC)
					}
				}
			}
			fmt.Fprintf(&w, "Counters: %s\n", counterLine(s.Counters))
		}
	}
	for _, l := range st.Lanes {
		fmt.Fprintf(&w, "\nLane %d (cpu %d): busy %.3f of the core since start, iterations %d (%d moved frames), sleeps %d\n", l.ID, l.CPU, l.BusyRatio, l.Iterations, l.Busy, l.Sleeps)
		u := l.UMEM
		fmt.Fprintf(&w, "  UMEM frames %d: free %d, fill %d, rx %d, in flight %d, tx %d, completion %d, lost to reclaim %d\n",
			u.Frames, u.Free, u.Fill, u.RX, u.InFlight, u.TX, u.Completion, u.LostToReclaim)
		for _, p := range l.Ports {
			fmt.Fprintf(&w, "  %-15s %s\n", p.Name, counterLine(p.Counters))
		}
	}
	return w.String()
}

func counterLine(c Counters) string {
	return fmt.Sprintf("rx %d pkts %d bytes, tx %d pkts %d bytes, drops tx_full %d no_slave %d inactive %d no_frame %d chain %d too_long %d bad_vnet %d, slow_rx %d drop %d, neigh_rx %d drop %d, xsk rx_dropped %d fill_empty %d",
		c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes, c.DropTxFull, c.DropNoSlave, c.DropInactive, c.DropNoFrame, c.DropChain, c.DropTooLong, c.DropBadVnet, c.CtrlRx, c.CtrlDrop, c.NeighRx, c.NeighDrop, c.XSKRxDropped, c.XSKFillRingEmpty)
}
