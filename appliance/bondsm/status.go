package bondsm

import (
	"fmt"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/policy"
)

// BondStatus follows /proc/net/bonding/<bond>.
type BondStatus struct {
	Name                 string        `json:"name"`
	Mode                 string        `json:"mode"`
	ModeNumber           int           `json:"mode_number"`
	ModeDescription      string        `json:"mode_description"`
	TransmitHashPolicy   string        `json:"xmit_hash_policy,omitempty"`
	PrimarySlave         string        `json:"primary_slave,omitempty"`
	PrimaryReselect      string        `json:"primary_reselect,omitempty"`
	CurrentlyActiveSlave string        `json:"currently_active_slave"`
	MIIStatus            string        `json:"mii_status"`
	MIIPollingInterval   int           `json:"mii_polling_interval_ms"`
	UpDelay              int           `json:"up_delay_ms"`
	DownDelay            int           `json:"down_delay_ms"`
	PeerNotifDelay       int           `json:"peer_notification_delay_ms"`
	PacketsPerSlave      int           `json:"packets_per_slave,omitempty"`
	AllSlavesActive      int           `json:"all_slaves_active"`
	MAC                  string        `json:"mac"`
	MTU                  int           `json:"mtu"`
	HostDevice           string        `json:"host_device"`
	Slaves               []SlaveStatus `json:"slaves"`
	Host                 Counters      `json:"host_counters"`
	AD                   *ADInfo       `json:"ad_info,omitempty"` // 802.3ad only
	ArpInterval          int           `json:"arp_polling_interval_ms"`
	ArpMissedMax         int           `json:"arp_missed_max"`
	ArpValidate          string        `json:"arp_validate"`
	ArpTargets           []string      `json:"arp_ip_targets,omitempty"`
	NSTargets            []string      `json:"ns_ipv6_targets,omitempty"`
	Monitor              *MonitorInfo  `json:"monitor,omitempty"`
	ALB                  *alb.Status   `json:"alb,omitempty"` // balance-tlb / balance-alb
}

// SlaveStatus is one slave block.
type SlaveStatus struct {
	Name             string   `json:"name"`
	MIIStatus        string   `json:"mii_status"`
	Speed            int      `json:"speed_mbps"`
	Duplex           string   `json:"duplex"`
	LinkFailureCount int      `json:"link_failure_count"`
	PermanentHWAddr  string   `json:"permanent_hw_addr"`
	QueueID          int      `json:"queue_id"`
	Prio             int      `json:"prio"`
	Counters         Counters `json:"counters"`
	AD               *SlaveAD `json:"ad,omitempty"` // 802.3ad only
	// Index is the member index (for the caller to attach counters).
	Index int `json:"-"`
	// ArpMonitor is the ARP/NS monitor's verdict (up, down, going back,
	// going down) when it runs; MII Status is the carrier monitor's.
	ArpMonitor string `json:"arp_monitor,omitempty"`
}

// Counters are packet counters summed over lanes (or of one port).
type Counters struct {
	RxPackets    uint64 `json:"rx_packets"`
	RxBytes      uint64 `json:"rx_bytes"`
	TxPackets    uint64 `json:"tx_packets"`
	TxBytes      uint64 `json:"tx_bytes"`
	DropTxFull   uint64 `json:"drop_tx_full"`
	DropNoSlave  uint64 `json:"drop_no_slave"`
	DropInactive uint64 `json:"drop_inactive_slave"`
	DropNoFrame  uint64 `json:"drop_no_frame"`
	DropChain    uint64 `json:"drop_chain"`         // multi-buffer frames dropped whole (could not be completed)
	DropTooLong  uint64 `json:"drop_too_long"`      // TAP frames longer than a UMEM frame's room
	DropBadVnet  uint64 `json:"drop_bad_vnet"`      // TAP super-frames the lane could not segment
	CtrlRx       uint64 `json:"slow_protocol_rx"`   // LACPDUs and markers handed to control
	CtrlDrop     uint64 `json:"slow_protocol_drop"` // ... lost because their ring was full
	NeighRx      uint64 `json:"neigh_copy_rx"`      // ARP/ND frames copied to control (ARP/NS monitor, alb)
	NeighDrop    uint64 `json:"neigh_copy_drop"`    // ... lost because their ring was full
	CtrlTx       uint64 `json:"control_tx"`
	CtrlBad      uint64 `json:"control_bad"` // frames from control with an impossible length
	// XDP socket statistics (XDP_STATISTICS)
	XSKRxDropped       uint64 `json:"xsk_rx_dropped"`
	XSKRxRingFull      uint64 `json:"xsk_rx_ring_full"`
	XSKFillRingEmpty   uint64 `json:"xsk_fill_ring_empty"`
	XSKTxInvalidDescs  uint64 `json:"xsk_tx_invalid_descs"`
	XSKRxInvalidDescs  uint64 `json:"xsk_rx_invalid_descs"`
	XSKTxRingEmptyDesc uint64 `json:"xsk_tx_ring_empty_descs"`
}

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

// MonitorInfo counts what the ARP/NS monitor and the notifier sent.
type MonitorInfo struct {
	ProbesSent        uint64 `json:"probes_sent"`
	NotificationsSent uint64 `json:"notifications_sent"`
	TxQueueDrops      uint64 `json:"tx_queue_drops"`
}

// ALBStatus is the tlb/alb part of a bond's status (package alb's).
type ALBStatus = alb.Status

var primaryReselectNames = []string{"always", "better", "failure"}

// UsesPrimary reports whether a mode has a primary and an active slave in
// its status (active-backup, balance-tlb, balance-alb).
func UsesPrimary(m policy.Mode) bool {
	return m == policy.ActiveBackup || m == policy.BalanceTLB || m == policy.BalanceALB
}

// Status is the bond's part of `status`: everything but the packet
// counters (Host and every slave's Counters stay zero: the caller sums the
// lanes' counters, by SlaveStatus.Index). Removed members are left out.
func (b *Bond) Status() BondStatus {
	bs := BondStatus{
		Name: b.cfg.Name, Mode: b.mode.String(), ModeNumber: int(b.mode), ModeDescription: b.mode.Description(),
		MIIStatus: "down", MIIPollingInterval: b.cfg.Miimon, UpDelay: b.cfg.Updelay, DownDelay: b.cfg.Downdelay,
		PeerNotifDelay: b.cfg.PeerNotifDelay, MAC: b.mac.String(), MTU: b.mtu, HostDevice: b.hostDevice,
		CurrentlyActiveSlave: "None",
	}
	if b.carrier {
		bs.MIIStatus = "up"
	}
	if b.cfg.AllSlavesActive {
		bs.AllSlavesActive = 1
	}
	switch b.mode {
	case policy.BalanceXOR, policy.IEEE8023AD, policy.BalanceTLB, policy.BalanceALB:
		bs.TransmitHashPolicy = b.hash.ProcString()
	case policy.BalanceRR:
		bs.PacketsPerSlave = b.cfg.PacketsPerSlave
	}
	if UsesPrimary(b.mode) {
		bs.PrimarySlave = "None"
		if b.cfg.Primary != "" {
			bs.PrimarySlave = b.cfg.Primary
			if b.cfg.PrimaryReselect >= 0 && b.cfg.PrimaryReselect < len(primaryReselectNames) {
				bs.PrimaryReselect = fmt.Sprintf("%s (%d)", primaryReselectNames[b.cfg.PrimaryReselect], b.cfg.PrimaryReselect)
			}
		}
	}
	if m := b.member(b.active); m != nil {
		bs.CurrentlyActiveSlave = m.name
	}
	for _, m := range b.members {
		if m.removed {
			continue
		}
		bs.Slaves = append(bs.Slaves, SlaveStatus{Index: m.idx, Name: m.name, MIIStatus: m.state.String(), Speed: m.speed, Duplex: m.duplex,
			LinkFailureCount: m.failures, PermanentHWAddr: m.permMAC.String(), QueueID: m.cfg.QueueID, Prio: m.cfg.Prio})
	}
	if b.ad != nil {
		b.adStatus(&bs)
	}
	b.monStatus(&bs)
	if b.alb != nil {
		st := b.alb.b.Status()
		bs.ALB = &st
	}
	return bs
}
