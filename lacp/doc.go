// Package lacp is the Link Aggregation Control Protocol of the appliance:
// IEEE Std 802.1AX-2014 (formerly IEEE 802.3ad, clause 43 of IEEE 802.3)
// version 1, with the aggregator selection and the options of Linux bonding
// mode 802.3ad (drivers/net/bonding/bond_3ad.c,
// Documentation/networking/bonding.rst).
//
// # Use
//
// A System is one bond. The caller owns time and I/O: it calls Tick every
// TickInterval (100 ms) with a monotonic time, hands received Slow
// Protocols frames to Receive, reports links with SetLink, and gets frames
// to send through the TxFunc given to New. Nothing here starts goroutines,
// opens sockets, reads the clock or allocates on the steady-state receive
// path; everything is deterministic, and a System must not be used from
// two goroutines at once. After each call the caller compares Version with
// the last one it published and, if it changed, publishes Distributing
// (transmit) and Collecting (receive) to the data plane.
//
// # Where the standard is implemented (clauses of 802.1AX-2014)
//
//	6.4.2.3  LACPDU structure ............ pdu.go: DecodeLACPDU, EncodeLACPDU, CheckLACPDU
//	6.5.3    Marker PDU structure ........ pdu.go: DecodeMarker, EncodeMarker, CheckMarker
//	6.4.4    constants ................... system.go: FastPeriodicTime ... AggregateWaitTime
//	6.4.7-8  port and machine variables .. port.go: port (Selected, NTT, port_moved, Ready_N ...)
//	6.4.9    functions ................... port.go: recordPDU, recordDefault, updateSelected,
//	                                       updateDefaultSelected, updateNTT
//	6.4.10   timers ...................... system.go: timer (deadlines, not tick counts)
//	6.4.12   Receive machine ............. port.go: enterRx, rxStep, rxPDU
//	6.4.13   Periodic Transmission ....... port.go: enterPeriodic, periodicStep
//	6.4.14   Selection Logic ............. port.go: selection, lagOf, selectActive
//	6.4.15   Mux machine (coupled and
//	         independent control) ........ port.go: enterMux, muxStep, ready
//	6.4.16   Transmit machine ............ port.go: txStep (3 per Fast_Periodic_Time)
//	6.4.17   Churn Detection machines .... port.go: churnStep
//	6.5.4.2  Marker Responder ............ system.go: markerRespond (SendMarker generates)
//	6.3      System, port, key, LAG ids .. key.go: PortKey; port.go: lagID
//
// # Decisions
//
// Received PDUs. As 6.4.12 requires, a receiver does not validate the
// Version Number, TLV_type or Reserved fields: any version is processed as
// version 1 (a version 2 LACPDU keeps the version 1 fields in place and has
// further TLVs where version 1 has its Terminator). DecodeLACPDU checks the
// length (124 octets; longer frames are accepted and the rest ignored), the
// type and subtype and the three information lengths. CheckLACPDU also
// checks what 6.4.2.3 requires of a transmitter; such PDUs are processed
// and counted as NonConformantRx. The destination address is not checked
// (802.1AX-2014 allows other group addresses; bonding and Open vSwitch do
// not check it either). Bad PDUs are dropped and counted (IllegalRx).
//
// One active aggregator. 802.1AX runs every Aggregator at once; a bond has
// one, chosen as bonding's ad_select does (SelectStable, SelectBandwidth,
// SelectCount, SelectActorPortPrio). The ports of the other Aggregators are
// STANDBY (6.4.8): they stay in WAITING and advertise OUT_OF_SYNC, so their
// partner does not send traffic to them either, and take over without a new
// aggregate wait. Ties keep the current aggregator. As bonding's
// agg_select_timer, stable does not hold on to its first choice during the
// first AggregateWaitTime.
//
// Selection. A port joins the Aggregator that already carries its LAG ID,
// else takes its own Aggregator (identified by its port number), else the
// lowest free one; a LAG never moves while in use (bonding's behaviour; the
// recommended default of 6.4.14.2 would move it to the Aggregator of its
// lowest port). Individual ports (LACP disabled, Individual partner or
// defaulted partner) are always alone. When a port is removed, the ports
// that used its Aggregator move with their LAG to a free one and keep their
// Selected and Mux states (bonding's bond_3ad_unbind_slave), so the
// aggregate carries on over them without a new AggregateWaitTime.
//
// Partner defaults. The Partner_Admin values are all zero: a DEFAULTED port
// is Individual, OUT_OF_SYNC and passive, so it never collects or
// distributes, and a passive port with no active partner stays silent.
// Bonding's fallback of enabling the ports of an active aggregator that has
// no partner is not implemented.
//
// Loopback. As bonding, an LACPDU carrying our own System id is discarded
// and counted (LoopbackRx): the port never records a partner, defaults,
// and is not aggregated.
//
// min_links. The aggregator is up when it has at least MinLinks (and at
// least one) distributing ports; bonding counts ports with link up.
//
// Timing. Timers are deadlines on the injected clock; SetLink, AddPort and
// RemovePort act at the time of the last Tick or Receive. The Transmit
// machine's three-per-second limit is a sliding window, so it holds for any
// interval. EXPIRED also sets NTT, as 802.1AX-2014/Cor 1-2018 does, so a
// port speaks at once on link up and when it times out its partner. A
// change to half duplex is treated as the link going down and up, since
// the Receive machine only reads LACP_Enabled in PORT_DISABLED.
//
// # Not implemented
//
// LACP version 2 (6.4.18 Long LACPDU machine, the Port Algorithm and
// Conversation TLVs, conversation-sensitive collection and distribution,
// 6.6), Distributed Resilient Network Interconnect (clause 9), the
// 802.1AX-2020 Mux machine (ATTACH, ATTACHED_WTR and the wait-to-restore
// timer), management of Partner_Admin values and of the protocol
// destination address (always Slow_Protocols_Multicast), dynamic key
// changes (Annex C), and a configurable CollectorMaxDelay (always 0).
package lacp
