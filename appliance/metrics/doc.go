// Package metrics exports the appliance's state to Prometheus.
//
// NewCollector returns a collector that calls a status function, normally
//
//	func() (*appliance.Status, error) { return a.Status("") }
//
// once per scrape and turns the result into constant metrics: the data path
// does no per-frame work for it and no goroutine polls in the background.
// Serve runs an HTTP server with the collector on /metrics (together with the
// standard go_*, process_* and promhttp_metric_handler_* metrics) until its
// context ends. When the status cannot be read the scrape fails (HTTP 500),
// so Prometheus records up == 0.
//
// # Labels
//
//   - bond: bond name.
//   - slave: slave (member) interface name.
//   - lane: lane id. Lane N is the polling loop that serves queue N of every
//     device, so queue always equals lane; both are there so that queries can
//     use either.
//   - queue: device queue the lane serves.
//   - port: device of one socket in a lane: a slave, or a bond's host device
//     (veth end or tap).
//   - reason: drop reason, one of
//     tx_full (the TX ring or the pending batch of the destination was full),
//     no_slave (a frame from the host with no slave able to transmit it),
//     inactive_slave (received on a slave that may not deliver: a backup
//     slave, a port that is not collecting),
//     no_frame (UMEM exhausted: broadcast copies, control frames),
//     too_long (a frame read from a tap host device longer than a UMEM
//     frame's room),
//     slow_protocol_queue_full (a LACPDU or marker for the control plane
//     lost because the lane-to-control slow-protocol queue was full),
//     neighbour_queue_full (an ARP/ND copy for the ARP/NS monitor or alb
//     lost because the lane-to-control neighbour queue was full),
//     control_bad (a frame from the control plane with an impossible length),
//     chain (a multi-buffer frame dropped whole: it could not be completed).
//   - place: where UMEM frames are, one of free, fill, rx, in_flight, tx,
//     completion (bond_appliance_lane_umem_place_frames only).
//   - version, mode, cpu: on the _info metrics only.
//
// # Metrics
//
// Appliance:
//
//	bond_appliance_info{version}                       gauge  always 1
//	bond_appliance_uptime_seconds                      gauge  seconds since the appliance started
//
// Bond:
//
//	bond_appliance_bond_info{bond,mode}                gauge  always 1; mode as in /proc/net/bonding ("802.3ad", "active-backup", ...)
//	bond_appliance_bond_up{bond}                       gauge  1 when the bond has carrier
//	bond_appliance_bond_active_slave_info{bond,slave}  gauge  always 1 for the slave status reports as Currently Active Slave (curr_active_slave); absent when "None"
//
// Packet counters. Each of the three prefixes below carries the same set of
// counters:
//
//	bond_appliance_host_*{bond}               the bond's host-side port (host device or tap), summed over queues;
//	                                          "receive" is what the host sent into the bond, "transmit" what the bond delivered to the host
//	bond_appliance_slave_*{bond,slave}        a slave, summed over queues
//	bond_appliance_port_*{lane,queue,port}    one socket of one lane (the per-queue breakdown of the two above)
//
// with the suffixes
//
//	_receive_packets_total                     counter
//	_receive_bytes_total                       counter
//	_transmit_packets_total                    counter
//	_transmit_bytes_total                      counter
//	_dropped_packets_total{...,reason}         counter  one series per reason (see Labels)
//	_control_receive_packets_total             counter  frames handed to the control plane (LACP/marker, ARP/ND copies for the ARP/NS monitor)
//	_control_transmit_packets_total            counter  frames the control plane sent (LACPDUs, probes, peer notifications)
//	_xsk_rx_dropped_packets_total              counter  XDP_STATISTICS rx_dropped
//	_xsk_rx_ring_full_total                    counter  XDP_STATISTICS rx_ring_full
//	_xsk_fill_ring_empty_total                 counter  XDP_STATISTICS rx_fill_ring_empty_descs
//	_xsk_rx_invalid_descriptors_total          counter  XDP_STATISTICS rx_invalid_descs
//	_xsk_tx_invalid_descriptors_total          counter  XDP_STATISTICS tx_invalid_descs
//	_xsk_tx_ring_empty_descriptors_total       counter  XDP_STATISTICS tx_ring_empty_descs
//
// The XDP socket statistics are 0 for tap ports, which have no AF_XDP socket.
//
// Slave and link monitoring:
//
//	bond_appliance_slave_mii_up{bond,slave}              gauge    1 when the MII (carrier) monitor says "up"; 0 for down, going down (downdelay running) and going back (updelay running)
//	bond_appliance_slave_arp_monitor_up{bond,slave}      gauge    1 when the ARP/NS monitor says "up"; absent when the monitor does not run
//	bond_appliance_slave_link_failures_total{bond,slave} counter  link failures (Link Failure Count): the failover count
//	bond_appliance_slave_speed_bytes{bond,slave}         gauge    link speed in bytes per second; absent when unknown
//	bond_appliance_monitor_probes_sent_total{bond}                  counter  ARP requests and neighbour solicitations sent by the ARP/NS monitor
//	bond_appliance_monitor_notifications_sent_total{bond}           counter  peer notifications (gratuitous ARP, unsolicited NA, IGMP) sent
//	bond_appliance_monitor_tx_queue_dropped_packets_total{bond}     counter  monitor frames lost because the control transmit queue was full
//
// The monitor_* metrics are present only for bonds that run the ARP/NS
// monitor or peer notifications.
//
// 802.3ad, for 802.3ad bonds only. Per bond:
//
//	bond_appliance_lacp_active_aggregator_id{bond}             gauge    0 when there is no active aggregator
//	bond_appliance_lacp_active_aggregator_ports{bond}          gauge    ports in the active aggregator
//	bond_appliance_lacp_tick_jitter_mean_seconds{bond}         gauge    mean absolute deviation of the 100 ms LACP tick since start
//	bond_appliance_lacp_tick_jitter_max_seconds{bond}          gauge    largest deviation of the LACP tick since start
//	bond_appliance_lacp_tx_queue_dropped_packets_total{bond}   counter  LACPDUs/marker PDUs lost because the control transmit queue was full
//
// Per port (slave):
//
//	bond_appliance_lacp_port_actor_state{bond,slave}            gauge    actor port state octet (bit 0 activity, 1 timeout, 2 aggregation, 3 synchronization, 4 collecting, 5 distributing, 6 defaulted, 7 expired)
//	bond_appliance_lacp_port_partner_state{bond,slave}          gauge    partner port state octet
//	bond_appliance_lacp_port_actor_key{bond,slave}              gauge    actor operational key
//	bond_appliance_lacp_port_partner_key{bond,slave}            gauge    partner operational key
//	bond_appliance_lacp_port_collecting{bond,slave}             gauge    0/1
//	bond_appliance_lacp_port_distributing{bond,slave}           gauge    0/1
//	bond_appliance_lacp_port_aggregator_id{bond,slave}          gauge    0 when not attached
//	bond_appliance_lacp_port_actor_churned{bond,slave}          gauge    1 in ACTOR_CHURN
//	bond_appliance_lacp_port_partner_churned{bond,slave}        gauge    1 in PARTNER_CHURN
//	bond_appliance_lacp_port_actor_churns_total{bond,slave}     counter  entries into ACTOR_CHURN
//	bond_appliance_lacp_port_partner_churns_total{bond,slave}   counter  entries into PARTNER_CHURN
//	bond_appliance_lacp_port_lacpdus_received_total{bond,slave}               counter
//	bond_appliance_lacp_port_lacpdus_transmitted_total{bond,slave}            counter
//	bond_appliance_lacp_port_markers_received_total{bond,slave}               counter
//	bond_appliance_lacp_port_markers_transmitted_total{bond,slave}            counter
//	bond_appliance_lacp_port_marker_responses_received_total{bond,slave}      counter
//	bond_appliance_lacp_port_marker_responses_transmitted_total{bond,slave}   counter
//	bond_appliance_lacp_port_bad_pdus_received_total{bond,slave}              counter  malformed LACPDUs/marker PDUs and illegal subtypes, dropped
//	bond_appliance_lacp_port_unknown_pdus_received_total{bond,slave}          counter  other slow protocols, non-slow-protocol frames
//	bond_appliance_lacp_port_loopback_pdus_received_total{bond,slave}         counter  LACPDUs carrying our own system ID, dropped
//	bond_appliance_lacp_port_state_transitions_total{bond,slave}              counter  receive and mux machine transitions
//
// Lanes:
//
//	bond_appliance_lane_info{lane,queue,cpu}          gauge    always 1
//	bond_appliance_lane_iterations_total{lane}        counter  polling loop iterations
//	bond_appliance_lane_busy_iterations_total{lane}   counter  iterations that moved at least one frame
//	bond_appliance_lane_sleeps_total{lane}            counter  adaptive-mode polls
//	bond_appliance_lane_busy_ratio{lane}              gauge    share of the core spent moving frames since start (0 to 1)
//	bond_appliance_lane_busy_seconds_total{lane}      counter  time spent in iterations that moved frames
//	bond_appliance_lane_umem_frames{lane}             gauge    frames of the lane's UMEM
//	bond_appliance_lane_umem_place_frames{lane,place} gauge    frames per place (free, fill, rx, in_flight, tx, completion)
//	bond_appliance_lane_umem_lost_to_reclaim_frames_total{lane} counter  retired sockets' frames not handed back before the reclaim deadline
//
// lane_busy_ratio is busy seconds / uptime (busy_nanoseconds / uptime in
// the status), not busy iterations / iterations. For a recent busy ratio,
// use
//
//	rate(bond_appliance_lane_busy_seconds_total[1m])
//
// The places are read without stopping the lane: exact on an idle lane, a
// moment's sample under traffic. in_flight that grows on an idle lane, or
// lost_to_reclaim above 0, is a leak of frames.
//
// Series of bonds, slaves and lanes that no longer exist disappear from the
// next scrape.
package metrics
