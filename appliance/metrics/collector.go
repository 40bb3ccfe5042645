package metrics

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bond-appliance/bond-appliance/appliance"
)

const namespace = "bond_appliance"

// Drop reasons, the values of the reason label.
const (
	ReasonTxFull                = "tx_full"
	ReasonNoSlave               = "no_slave"
	ReasonInactiveSlave         = "inactive_slave"
	ReasonNoFrame               = "no_frame"
	ReasonTooLong               = "too_long"
	ReasonBadVnet               = "bad_vnet"
	ReasonSlowProtocolQueueFull = "slow_protocol_queue_full"
	ReasonNeighbourQueueFull    = "neighbour_queue_full"
	ReasonControlBad            = "control_bad"
	ReasonChain                 = "chain"
)

// descs builds the descriptors of a collector and remembers them all for
// Describe.
type descs struct{ all []*prometheus.Desc }

func (d *descs) new(name, help string, labels ...string) *prometheus.Desc {
	desc := prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	d.all = append(d.all, desc)
	return desc
}

// counterSet describes one appliance.Counters: the packet counters of a
// bond's host side, of a slave, or of one lane port.
type counterSet struct {
	rxPackets, rxBytes, txPackets, txBytes *prometheus.Desc
	dropped                                *prometheus.Desc
	ctrlRx, ctrlTx                         *prometheus.Desc
	xskRxDropped, xskRxRingFull            *prometheus.Desc
	xskFillRingEmpty                       *prometheus.Desc
	xskRxInvalid, xskTxInvalid             *prometheus.Desc
	xskTxRingEmpty                         *prometheus.Desc
}

func newCounterSet(d *descs, prefix, what string, labels []string) counterSet {
	withReason := append(append([]string(nil), labels...), "reason")
	return counterSet{
		rxPackets: d.new(prefix+"_receive_packets_total", "Packets received on "+what+".", labels...),
		rxBytes:   d.new(prefix+"_receive_bytes_total", "Bytes received on "+what+".", labels...),
		txPackets: d.new(prefix+"_transmit_packets_total", "Packets transmitted on "+what+".", labels...),
		txBytes:   d.new(prefix+"_transmit_bytes_total", "Bytes transmitted on "+what+".", labels...),
		dropped: d.new(prefix+"_dropped_packets_total", "Packets dropped on "+what+", by reason: "+
			"tx_full (TX ring or pending batch full), no_slave (host frame with no slave able to transmit), "+
			"inactive_slave (received on a slave that may not deliver), no_frame (UMEM exhausted: a broadcast copy or control frame not made), "+
			"too_long (tap frame longer than a UMEM frame's room), "+
			"slow_protocol_queue_full (LACPDU or marker for the control plane lost because its queue was full), "+
			"neighbour_queue_full (ARP/ND copy for the control plane lost because its queue was full), "+
			"control_bad (frame from the control plane with an impossible length), "+
			"chain (multi-buffer frame dropped whole: it could not be completed).", withReason...),
		ctrlRx: d.new(prefix+"_control_receive_packets_total",
			"Frames received on "+what+" and handed to the control plane (LACP/marker, and ARP/ND copies for the ARP/NS monitor).", labels...),
		ctrlTx: d.new(prefix+"_control_transmit_packets_total",
			"Frames the control plane (LACP, ARP/NS monitor, peer notifications) asked to transmit on "+what+".", labels...),
		xskRxDropped:     d.new(prefix+"_xsk_rx_dropped_packets_total", "AF_XDP socket statistics of "+what+": packets dropped for reasons other than invalid descriptors (XDP_STATISTICS rx_dropped).", labels...),
		xskRxRingFull:    d.new(prefix+"_xsk_rx_ring_full_total", "AF_XDP socket statistics of "+what+": packets dropped because the RX ring was full (rx_ring_full).", labels...),
		xskFillRingEmpty: d.new(prefix+"_xsk_fill_ring_empty_total", "AF_XDP socket statistics of "+what+": times the fill ring was found empty (rx_fill_ring_empty_descs).", labels...),
		xskRxInvalid:     d.new(prefix+"_xsk_rx_invalid_descriptors_total", "AF_XDP socket statistics of "+what+": invalid RX descriptors (rx_invalid_descs).", labels...),
		xskTxInvalid:     d.new(prefix+"_xsk_tx_invalid_descriptors_total", "AF_XDP socket statistics of "+what+": invalid TX descriptors (tx_invalid_descs).", labels...),
		xskTxRingEmpty:   d.new(prefix+"_xsk_tx_ring_empty_descriptors_total", "AF_XDP socket statistics of "+what+": times the TX ring was found empty (tx_ring_empty_descs).", labels...),
	}
}

func (s *counterSet) collect(ch chan<- prometheus.Metric, c *appliance.Counters, lv ...string) {
	counter(ch, s.rxPackets, c.RxPackets, lv...)
	counter(ch, s.rxBytes, c.RxBytes, lv...)
	counter(ch, s.txPackets, c.TxPackets, lv...)
	counter(ch, s.txBytes, c.TxBytes, lv...)
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{ReasonTxFull, c.DropTxFull},
		{ReasonNoSlave, c.DropNoSlave},
		{ReasonInactiveSlave, c.DropInactive},
		{ReasonNoFrame, c.DropNoFrame},
		{ReasonTooLong, c.DropTooLong},
		{ReasonBadVnet, c.DropBadVnet},
		{ReasonSlowProtocolQueueFull, c.CtrlDrop},
		{ReasonNeighbourQueueFull, c.NeighDrop},
		{ReasonControlBad, c.CtrlBad},
		{ReasonChain, c.DropChain},
	} {
		counter(ch, s.dropped, r.v, append(lv[:len(lv):len(lv)], r.reason)...)
	}
	counter(ch, s.ctrlRx, c.CtrlRx+c.NeighRx, lv...)
	counter(ch, s.ctrlTx, c.CtrlTx, lv...)
	counter(ch, s.xskRxDropped, c.XSKRxDropped, lv...)
	counter(ch, s.xskRxRingFull, c.XSKRxRingFull, lv...)
	counter(ch, s.xskFillRingEmpty, c.XSKFillRingEmpty, lv...)
	counter(ch, s.xskRxInvalid, c.XSKRxInvalidDescs, lv...)
	counter(ch, s.xskTxInvalid, c.XSKTxInvalidDescs, lv...)
	counter(ch, s.xskTxRingEmpty, c.XSKTxRingEmptyDesc, lv...)
}

// collector exports an appliance.Status read on each scrape.
type collector struct {
	src  func() (*appliance.Status, error)
	desc descs

	info, uptime, statusErr *prometheus.Desc

	bondInfo, bondUp, activeSlave *prometheus.Desc
	host                          counterSet

	slaveMIIUp, slaveARPUp, slaveFailures, slaveSpeed *prometheus.Desc
	slave                                             counterSet

	lacpActiveAgg, lacpActiveAggPorts                      *prometheus.Desc
	lacpJitterMean, lacpJitterMax, lacpTxDrops             *prometheus.Desc
	lacpActorState, lacpPartnerState                       *prometheus.Desc
	lacpActorKey, lacpPartnerKey                           *prometheus.Desc
	lacpCollecting, lacpDistributing, lacpAggID            *prometheus.Desc
	lacpActorChurned, lacpPartnerChurned                   *prometheus.Desc
	lacpActorChurns, lacpPartnerChurns                     *prometheus.Desc
	lacpPDURx, lacpPDUTx, lacpMarkerRx, lacpMarkerTx       *prometheus.Desc
	lacpMarkerRespRx, lacpMarkerRespTx                     *prometheus.Desc
	lacpBadRx, lacpUnknownRx, lacpLoopbackRx, lacpTransits *prometheus.Desc

	monProbes, monNotifs, monTxDrops *prometheus.Desc

	laneInfo, laneIter, laneBusy, laneSleeps, laneBusyRatio, laneBusySeconds *prometheus.Desc
	laneFrames, laneUMEMFrames, laneLostReclaim                              *prometheus.Desc
	port                                                                     counterSet
}

// NewCollector returns a collector that calls src on every scrape and
// exports what it returns (see the package documentation for the metrics).
// It keeps no state between scrapes and starts no goroutine; src must be
// safe to call concurrently, as (*appliance.Appliance).Status is.
func NewCollector(src func() (*appliance.Status, error)) prometheus.Collector {
	c := &collector{src: src}
	d := &c.desc
	bond := []string{"bond"}
	slave := []string{"bond", "slave"}
	lane := []string{"lane"}
	port := []string{"lane", "queue", "port"}

	c.info = d.new("info", "Appliance information; the value is always 1.", "version")
	c.uptime = d.new("uptime_seconds", "Seconds since the appliance started.")
	c.statusErr = d.new("status_error", "Reading the appliance status failed.")

	c.bondInfo = d.new("bond_info", "Bond information; the value is always 1.", "bond", "mode")
	c.bondUp = d.new("bond_up", "Whether the bond has carrier (1) or not (0).", bond...)
	c.activeSlave = d.new("bond_active_slave_info", "The bond's currently active slave; the value is always 1 and the series is absent when there is none.", slave...)
	c.host = newCounterSet(d, "host", "the bond's host-side port (host device or tap, summed over queues; receive is what the host sent to the bond)", bond)

	c.slaveMIIUp = d.new("slave_mii_up", "Whether the MII (carrier) monitor considers the slave up (1) or not (0: down, going down or going back).", slave...)
	c.slaveARPUp = d.new("slave_arp_monitor_up", "Whether the ARP/NS monitor considers the slave up (1) or not (0); absent when the monitor does not run.", slave...)
	c.slaveFailures = d.new("slave_link_failures_total", "Link failures of the slave (Link Failure Count).", slave...)
	c.slaveSpeed = d.new("slave_speed_bytes", "Link speed of the slave in bytes per second; absent when unknown.", slave...)
	c.slave = newCounterSet(d, "slave", "the slave (summed over queues)", slave)

	c.lacpActiveAgg = d.new("lacp_active_aggregator_id", "Aggregator ID of the bond's active aggregator, 0 when there is none.", bond...)
	c.lacpActiveAggPorts = d.new("lacp_active_aggregator_ports", "Number of ports in the bond's active aggregator, 0 when there is none.", bond...)
	c.lacpJitterMean = d.new("lacp_tick_jitter_mean_seconds", "Mean absolute deviation of the 100 ms LACP tick from its period since start.", bond...)
	c.lacpJitterMax = d.new("lacp_tick_jitter_max_seconds", "Largest deviation of the 100 ms LACP tick from its period since start.", bond...)
	c.lacpTxDrops = d.new("lacp_tx_queue_dropped_packets_total", "LACPDUs and marker PDUs lost because the control transmit queue was full.", bond...)
	c.lacpActorState = d.new("lacp_port_actor_state", "Actor port state octet (bit 0 activity, 1 timeout, 2 aggregation, 3 synchronization, 4 collecting, 5 distributing, 6 defaulted, 7 expired).", slave...)
	c.lacpPartnerState = d.new("lacp_port_partner_state", "Partner port state octet (bit 0 activity, 1 timeout, 2 aggregation, 3 synchronization, 4 collecting, 5 distributing, 6 defaulted, 7 expired).", slave...)
	c.lacpActorKey = d.new("lacp_port_actor_key", "Actor operational key of the port.", slave...)
	c.lacpPartnerKey = d.new("lacp_port_partner_key", "Partner operational key of the port.", slave...)
	c.lacpCollecting = d.new("lacp_port_collecting", "Whether the port is collecting (1) or not (0).", slave...)
	c.lacpDistributing = d.new("lacp_port_distributing", "Whether the port is distributing (1) or not (0).", slave...)
	c.lacpAggID = d.new("lacp_port_aggregator_id", "Aggregator ID the port is attached to, 0 when none.", slave...)
	c.lacpActorChurned = d.new("lacp_port_actor_churned", "Whether the actor churn detection machine is in ACTOR_CHURN (1) or not (0).", slave...)
	c.lacpPartnerChurned = d.new("lacp_port_partner_churned", "Whether the partner churn detection machine is in PARTNER_CHURN (1) or not (0).", slave...)
	c.lacpActorChurns = d.new("lacp_port_actor_churns_total", "Times the actor churn detection machine entered ACTOR_CHURN.", slave...)
	c.lacpPartnerChurns = d.new("lacp_port_partner_churns_total", "Times the partner churn detection machine entered PARTNER_CHURN.", slave...)
	c.lacpPDURx = d.new("lacp_port_lacpdus_received_total", "Valid LACPDUs received on the port.", slave...)
	c.lacpPDUTx = d.new("lacp_port_lacpdus_transmitted_total", "LACPDUs transmitted on the port.", slave...)
	c.lacpMarkerRx = d.new("lacp_port_markers_received_total", "Marker PDUs received on the port.", slave...)
	c.lacpMarkerTx = d.new("lacp_port_markers_transmitted_total", "Marker PDUs transmitted on the port.", slave...)
	c.lacpMarkerRespRx = d.new("lacp_port_marker_responses_received_total", "Marker response PDUs received on the port.", slave...)
	c.lacpMarkerRespTx = d.new("lacp_port_marker_responses_transmitted_total", "Marker response PDUs transmitted on the port.", slave...)
	c.lacpBadRx = d.new("lacp_port_bad_pdus_received_total", "Badly formed LACPDUs and marker PDUs, and illegal slow protocol subtypes, received on the port and dropped.", slave...)
	c.lacpUnknownRx = d.new("lacp_port_unknown_pdus_received_total", "Frames of another slow protocol, or not slow protocol frames, received on the port.", slave...)
	c.lacpLoopbackRx = d.new("lacp_port_loopback_pdus_received_total", "LACPDUs carrying the bond's own system ID received on the port (loopback), discarded.", slave...)
	c.lacpTransits = d.new("lacp_port_state_transitions_total", "Receive and mux machine state transitions of the port.", slave...)

	c.monProbes = d.new("monitor_probes_sent_total", "ARP requests and IPv6 neighbour solicitations the ARP/NS monitor sent.", bond...)
	c.monNotifs = d.new("monitor_notifications_sent_total", "Peer notifications (gratuitous ARP, unsolicited NA, IGMP reports) sent after failovers.", bond...)
	c.monTxDrops = d.new("monitor_tx_queue_dropped_packets_total", "Monitor and notification frames lost because the control transmit queue was full.", bond...)

	c.laneInfo = d.new("lane_info", "Lane information; the value is always 1. A lane serves queue <lane> of every device.", "lane", "queue", "cpu")
	c.laneIter = d.new("lane_iterations_total", "Polling loop iterations of the lane.", lane...)
	c.laneBusy = d.new("lane_busy_iterations_total", "Polling loop iterations of the lane that moved at least one frame.", lane...)
	c.laneSleeps = d.new("lane_sleeps_total", "Polls of the lane in adaptive mode (waits for the kernel instead of busy polling).", lane...)
	c.laneBusyRatio = d.new("lane_busy_ratio", "Share of the lane's core spent moving frames since start (0 to 1); rate(lane_busy_seconds_total) gives a recent value.", lane...)
	c.laneFrames = d.new("lane_umem_frames", "Frames of the lane's UMEM.", lane...)
	c.laneUMEMFrames = d.new("lane_umem_place_frames", "Frames of the lane's UMEM by place: free, fill, rx, in_flight, tx, completion "+
		"(read without stopping the lane: exact when idle, a moment's sample under traffic; in_flight growing on an idle lane is a leak).", "lane", "place")
	c.laneLostReclaim = d.new("lane_umem_lost_to_reclaim_frames_total", "Frames of retired sockets not handed back to the lane before the reclaim deadline (lost until restart).", lane...)
	c.laneBusySeconds = d.new("lane_busy_seconds_total", "Time the lane spent in iterations that moved frames.", lane...)
	c.port = newCounterSet(d, "port", "one AF_XDP socket (or tap queue) of a lane", port)
	return c
}

// Describe sends every descriptor the collector may use.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.desc.all {
		ch <- d
	}
}

// Collect reads the status once and sends the metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.src()
	if err == nil && st == nil {
		err = errors.New("no status")
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.statusErr, err)
		return
	}
	gauge(ch, c.info, 1, st.Version)
	gauge(ch, c.uptime, st.Uptime)
	for i := range st.Bonds {
		c.collectBond(ch, &st.Bonds[i])
	}
	for i := range st.Lanes {
		c.collectLane(ch, &st.Lanes[i])
	}
}

func (c *collector) collectBond(ch chan<- prometheus.Metric, b *appliance.BondStatus) {
	gauge(ch, c.bondInfo, 1, b.Name, b.Mode)
	gauge(ch, c.bondUp, boolValue(b.MIIStatus == "up"), b.Name)
	if s := b.CurrentlyActiveSlave; s != "" && s != "None" {
		gauge(ch, c.activeSlave, 1, b.Name, s)
	}
	c.host.collect(ch, &b.Host, b.Name)
	for i := range b.Slaves {
		s := &b.Slaves[i]
		gauge(ch, c.slaveMIIUp, boolValue(s.MIIStatus == "up"), b.Name, s.Name)
		if s.ArpMonitor != "" {
			gauge(ch, c.slaveARPUp, boolValue(s.ArpMonitor == "up"), b.Name, s.Name)
		}
		counter(ch, c.slaveFailures, uint64(max(s.LinkFailureCount, 0)), b.Name, s.Name)
		if s.Speed > 0 {
			gauge(ch, c.slaveSpeed, float64(s.Speed)*1e6/8, b.Name, s.Name)
		}
		c.slave.collect(ch, &s.Counters, b.Name, s.Name)
		if s.AD != nil {
			c.collectPort(ch, s.AD, b.Name, s.Name)
		}
	}
	if ad := b.AD; ad != nil {
		var id, ports float64
		if a := ad.ActiveAggregator; a != nil {
			id, ports = float64(a.ID), float64(a.NumberOfPorts)
		}
		gauge(ch, c.lacpActiveAgg, id, b.Name)
		gauge(ch, c.lacpActiveAggPorts, ports, b.Name)
		gauge(ch, c.lacpJitterMean, ad.TickJitterMeanMs/1e3, b.Name)
		gauge(ch, c.lacpJitterMax, ad.TickJitterMaxMs/1e3, b.Name)
		counter(ch, c.lacpTxDrops, ad.PDUTxQueueDrops, b.Name)
	}
	if m := b.Monitor; m != nil {
		counter(ch, c.monProbes, m.ProbesSent, b.Name)
		counter(ch, c.monNotifs, m.NotificationsSent, b.Name)
		counter(ch, c.monTxDrops, m.TxQueueDrops, b.Name)
	}
}

func (c *collector) collectPort(ch chan<- prometheus.Metric, ad *appliance.SlaveAD, lv ...string) {
	gauge(ch, c.lacpActorState, float64(ad.Actor.PortState), lv...)
	gauge(ch, c.lacpPartnerState, float64(ad.Partner.PortState), lv...)
	gauge(ch, c.lacpActorKey, float64(ad.Actor.Key), lv...)
	gauge(ch, c.lacpPartnerKey, float64(ad.Partner.Key), lv...)
	gauge(ch, c.lacpCollecting, boolValue(ad.Collecting), lv...)
	gauge(ch, c.lacpDistributing, boolValue(ad.Distributing), lv...)
	gauge(ch, c.lacpAggID, float64(ad.AggregatorID), lv...)
	gauge(ch, c.lacpActorChurned, boolValue(ad.ActorChurnState == "churned"), lv...)
	gauge(ch, c.lacpPartnerChurned, boolValue(ad.PartnerChurnState == "churned"), lv...)
	counter(ch, c.lacpActorChurns, ad.ActorChurnedCount, lv...)
	counter(ch, c.lacpPartnerChurns, ad.PartnerChurnedCount, lv...)
	k := &ad.Counters
	counter(ch, c.lacpPDURx, k.LACPDUsRx, lv...)
	counter(ch, c.lacpPDUTx, k.LACPDUsTx, lv...)
	counter(ch, c.lacpMarkerRx, k.MarkersRx, lv...)
	counter(ch, c.lacpMarkerTx, k.MarkersTx, lv...)
	counter(ch, c.lacpMarkerRespRx, k.MarkerResponsesRx, lv...)
	counter(ch, c.lacpMarkerRespTx, k.MarkerResponsesTx, lv...)
	counter(ch, c.lacpBadRx, k.BadPDUs, lv...)
	counter(ch, c.lacpUnknownRx, k.UnknownRx, lv...)
	counter(ch, c.lacpLoopbackRx, k.LoopbackRx, lv...)
	counter(ch, c.lacpTransits, k.StateTransitions, lv...)
}

func (c *collector) collectLane(ch chan<- prometheus.Metric, l *appliance.LaneStatus) {
	id := strconv.Itoa(l.ID)
	gauge(ch, c.laneInfo, 1, id, id, strconv.Itoa(l.CPU))
	counter(ch, c.laneIter, l.Iterations, id)
	counter(ch, c.laneBusy, l.Busy, id)
	counter(ch, c.laneSleeps, l.Sleeps, id)
	gauge(ch, c.laneBusyRatio, l.BusyRatio, id)
	send(ch, c.laneBusySeconds, prometheus.CounterValue, float64(l.BusyNanos)/1e9, []string{id})
	u := &l.UMEM
	gauge(ch, c.laneFrames, float64(u.Frames), id)
	for _, p := range []struct {
		place string
		v     uint64
	}{{"free", u.Free}, {"fill", u.Fill}, {"rx", u.RX}, {"in_flight", u.InFlight}, {"tx", u.TX}, {"completion", u.Completion}} {
		gauge(ch, c.laneUMEMFrames, float64(p.v), id, p.place)
	}
	counter(ch, c.laneLostReclaim, u.LostToReclaim, id)
	// A lane holds one port per device; should two carry the same name,
	// export their sum rather than a duplicate series that fails the scrape.
	seen := make(map[string]int, len(l.Ports))
	merged := make([]appliance.PortStatus, 0, len(l.Ports))
	for _, p := range l.Ports {
		if i, ok := seen[p.Name]; ok {
			addCounters(&merged[i].Counters, &p.Counters)
			continue
		}
		seen[p.Name] = len(merged)
		merged = append(merged, p)
	}
	for i := range merged {
		c.port.collect(ch, &merged[i].Counters, id, id, merged[i].Name)
	}
}

func addCounters(d, s *appliance.Counters) {
	d.RxPackets += s.RxPackets
	d.RxBytes += s.RxBytes
	d.TxPackets += s.TxPackets
	d.TxBytes += s.TxBytes
	d.DropTxFull += s.DropTxFull
	d.DropNoSlave += s.DropNoSlave
	d.DropInactive += s.DropInactive
	d.DropNoFrame += s.DropNoFrame
	d.DropTooLong += s.DropTooLong
	d.DropBadVnet += s.DropBadVnet
	d.CtrlRx += s.CtrlRx
	d.CtrlDrop += s.CtrlDrop
	d.NeighRx += s.NeighRx
	d.NeighDrop += s.NeighDrop
	d.CtrlBad += s.CtrlBad
	d.DropChain += s.DropChain
	d.CtrlTx += s.CtrlTx
	d.XSKRxDropped += s.XSKRxDropped
	d.XSKRxRingFull += s.XSKRxRingFull
	d.XSKFillRingEmpty += s.XSKFillRingEmpty
	d.XSKTxInvalidDescs += s.XSKTxInvalidDescs
	d.XSKRxInvalidDescs += s.XSKRxInvalidDescs
	d.XSKTxRingEmptyDesc += s.XSKTxRingEmptyDesc
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, lv ...string) {
	send(ch, d, prometheus.CounterValue, float64(v), lv)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, lv ...string) {
	send(ch, d, prometheus.GaugeValue, v, lv)
}

// send reports a label value that is not valid UTF-8 as a scrape error
// instead of panicking as MustNewConstMetric would.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, lv []string) {
	m, err := prometheus.NewConstMetric(d, t, v, lv...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
