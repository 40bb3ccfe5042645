package config

import (
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/bond-appliance/bond-appliance/policy"
)

// Bonding modes, numbered as the bonding driver numbers them (mode=N).
// They are package policy's modes (policy.Mode), whose table also gives
// the names the mode option takes.
const (
	ModeBalanceRR    = int(policy.BalanceRR)    // balance-rr
	ModeActiveBackup = int(policy.ActiveBackup) // active-backup
	ModeBalanceXOR   = int(policy.BalanceXOR)   // balance-xor
	ModeBroadcast    = int(policy.Broadcast)    // broadcast
	Mode8023AD       = int(policy.IEEE8023AD)   // 802.3ad
	ModeBalanceTLB   = int(policy.BalanceTLB)   // balance-tlb
	ModeBalanceALB   = int(policy.BalanceALB)   // balance-alb
)

// Transmit hash policies (xmit_hash_policy=N): package policy's
// policy.HashPolicy values, whose table also gives their names.
const (
	XmitLayer2     = int(policy.Layer2)     // layer2
	XmitLayer34    = int(policy.Layer34)    // layer3+4
	XmitLayer23    = int(policy.Layer23)    // layer2+3
	XmitEncap23    = int(policy.Encap23)    // encap2+3
	XmitEncap34    = int(policy.Encap34)    // encap3+4
	XmitVLANSrcMAC = int(policy.VlanSrcMac) // vlan+srcmac
)

// ARP validation (arp_validate=N).
const (
	ArpValidateNone         = 0 // none
	ArpValidateActive       = 1 // active
	ArpValidateBackup       = 2 // backup
	ArpValidateAll          = 3 // all
	ArpValidateFilter       = 4 // filter
	ArpValidateFilterActive = 5 // filter_active
	ArpValidateFilterBackup = 6 // filter_backup
)

// ARP target quantifier (arp_all_targets=N).
const (
	ArpAllTargetsAny = 0 // any
	ArpAllTargetsAll = 1 // all
)

// MAC policy of active-backup (fail_over_mac=N).
const (
	FailOverMACNone   = 0 // none
	FailOverMACActive = 1 // active
	FailOverMACFollow = 2 // follow
)

// Primary reselection policy (primary_reselect=N).
const (
	PrimaryReselectAlways  = 0 // always
	PrimaryReselectBetter  = 1 // better
	PrimaryReselectFailure = 2 // failure
)

// LACPDU rate asked of the partner (lacp_rate=N).
const (
	LACPRateSlow = 0 // slow
	LACPRateFast = 1 // fast
)

// 802.3ad aggregator selection (ad_select=N).
const (
	ADSelectStable        = 0 // stable
	ADSelectBandwidth     = 1 // bandwidth
	ADSelectCount         = 2 // count
	ADSelectActorPortPrio = 3 // actor_port_prio
)

// Limits and fixed values shared with the data plane.
const (
	// MaxARPTargets is the most arp_ip_target addresses a bond takes
	// (BOND_MAX_ARP_TARGETS).
	MaxARPTargets = 16
	// MaxNSTargets is the most ns_ip6_target addresses a bond takes
	// (BOND_MAX_NS_TARGETS).
	MaxNSTargets = 16
	// DefaultMiimon is the miimon used when neither miimon nor
	// arp_interval is given, and the value bonding forces in modes that
	// cannot use ARP monitoring (BOND_DEFAULT_MIIMON).
	DefaultMiimon = 100
	// XDPHeadroom is the headroom the kernel reserves at the start of
	// every UMEM frame (XDP_PACKET_HEADROOM).
	XDPHeadroom = 256
	// MaxL2Header is the link-layer header an MTU-sized frame may carry:
	// Ethernet plus one 802.1Q tag.
	MaxL2Header = 18
	// MaxCPU bounds CPU ids (the size of a Linux cpu_set_t).
	MaxCPU = 1023
	// MaxSocketPath is the longest control socket path (sun_path less
	// its terminating NUL).
	MaxSocketPath = 107
)

// MaxMTU is the largest bond MTU whose frames fit a UMEM frame of
// frameSize bytes (single-buffer). Above it, up to MaxJumboMTU, frames
// travel as AF_XDP multi-buffer chains (Jumbo).
func MaxMTU(frameSize int) int { return frameSize - XDPHeadroom - MaxL2Header }

// MaxJumboMTU is the largest bond MTU (the mtu option's maximum).
const MaxJumboMTU = 9000

// Jumbo reports whether a bond MTU needs multi-buffer AF_XDP frames
// (XDP_USE_SG sockets and xdp.frags programs) with frameSize-byte UMEM
// frames.
func Jumbo(mtu, frameSize int) bool { return mtu > MaxMTU(frameSize) }

// Config is the whole configuration file.
type Config struct {
	Dataplane Dataplane
	Control   Control
	Log       Log
	Metrics   Metrics
	Bonds     []Bond

	// broken marks the scopes ("dataplane", "bonds[N]") whose keys
	// failed to decode, so that Validate does not report follow-on
	// errors about them.
	broken map[string]bool
}

// Dataplane configures the AF_XDP lanes.
type Dataplane struct {
	Cores      []int  // cores: CPU ids, one busy-polling lane per core
	Queues     int    // queues: queues used per member and on the host device
	Batch      int    // batch: descriptors handled per ring operation
	FrameSize  int    // frame_size: UMEM frame size
	RingSize   int    // ring_size: AF_XDP ring size
	XDPAttach  string // xdp_attach: auto, native or generic
	XDPBind    string // xdp_bind: auto, zerocopy or copy
	Poll       string // poll: busy or adaptive
	HostDevice string // host_device: veth or tap
	HugePages  bool   // hugepages: try hugepages for the UMEM
	FastPath   string // fast_path: auto or off (XDP redirect between members and the host veth)
}

// Control configures the control socket and the state directory.
type Control struct {
	Socket     string // socket: path of the control socket
	Group      string // group: group whose members may use the socket ("" = root only)
	MaxClients int    // max_clients: concurrent connections
	StateDir   string // state_dir: directory of the persisted undo journal
}

// Log configures logging.
type Log struct {
	Level  string // level: debug, info, warn or error
	Format string // format: text or json
}

// Slave is one member of a bond.
type Slave struct {
	Name          string // name
	Prio          int    // prio: failover priority (active-backup, balance-tlb, balance-alb)
	QueueID       int    // queue_id: host-device queue sent on this slave (0: none)
	ActorPortPrio int    // actor_port_prio: 802.3ad actor port priority

	explicit map[string]bool // keys given in the configuration
}

// Bond is one bond and its bonding options. Numeric option values use the
// bonding driver's numbering (see the Mode*, Xmit*, ... constants); times
// are in milliseconds, updelay, downdelay and peer_notif_delay after
// rounding to a multiple of miimon.
type Bond struct {
	Name   string           // name: the bond's interface name
	Slaves []Slave          // slaves
	MAC    net.HardwareAddr // mac: bond MAC; nil: the first slave's MAC
	MTU    int              // mtu
	VLANs  []int            // vlans: VLAN ids that get peer-notification copies
	Force  bool             // force: take over members that already have an XDP program
	// CombineMonitors (combine_monitors, extension): MII and ARP/NS
	// monitors run together instead of ARP monitoring being disabled.
	CombineMonitors bool

	Mode              int              // mode
	XmitHashPolicy    int              // xmit_hash_policy
	Miimon            int              // miimon
	Updelay           int              // updelay
	Downdelay         int              // downdelay
	UseCarrier        bool             // use_carrier (obsolete, always true)
	ArpInterval       int              // arp_interval
	ArpIPTargets      []netip.Addr     // arp_ip_target
	ArpValidate       int              // arp_validate
	ArpAllTargets     int              // arp_all_targets
	ArpMissedMax      int              // arp_missed_max
	NSIP6Targets      []netip.Addr     // ns_ip6_target
	Primary           string           // primary
	PrimaryReselect   int              // primary_reselect
	FailOverMAC       int              // fail_over_mac
	LACPRate          int              // lacp_rate
	LACPActive        bool             // lacp_active
	ADSelect          int              // ad_select
	ADActorSysPrio    int              // ad_actor_sys_prio
	ADActorSystem     net.HardwareAddr // ad_actor_system (all zeroes: the bond's MAC)
	ADUserPortKey     int              // ad_user_port_key
	MinLinks          int              // min_links
	NumGratARP        int              // num_grat_arp (alias of num_unsol_na)
	NumUnsolNA        int              // num_unsol_na (alias of num_grat_arp)
	PeerNotifDelay    int              // peer_notif_delay
	PacketsPerSlave   int              // packets_per_slave
	ResendIGMP        int              // resend_igmp
	AllSlavesActive   bool             // all_slaves_active
	TLBDynamicLB      bool             // tlb_dynamic_lb
	LPInterval        int              // lp_interval (seconds)
	CoupledControl    bool             // coupled_control
	ActiveSlave       string           // active_slave
	BroadcastNeighbor bool             // broadcast_neighbor

	// explicit records the keys given in the configuration (or set with
	// Apply). Nil means the bond was built in Go: an option then counts
	// as given when it differs from its default.
	explicit map[string]bool
}

// Clone returns a deep copy of b.
func (b Bond) Clone() Bond {
	c := b
	c.Slaves = slices.Clone(b.Slaves)
	for i := range c.Slaves {
		c.Slaves[i].explicit = maps.Clone(c.Slaves[i].explicit)
	}
	c.MAC = slices.Clone(b.MAC)
	c.VLANs = slices.Clone(b.VLANs)
	c.ArpIPTargets = slices.Clone(b.ArpIPTargets)
	c.NSIP6Targets = slices.Clone(b.NSIP6Targets)
	c.ADActorSystem = slices.Clone(b.ADActorSystem)
	c.explicit = maps.Clone(b.explicit)
	return c
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	n := *c
	n.Dataplane.Cores = slices.Clone(c.Dataplane.Cores)
	n.Bonds = make([]Bond, len(c.Bonds))
	for i := range c.Bonds {
		n.Bonds[i] = c.Bonds[i].Clone()
	}
	n.broken = maps.Clone(c.broken)
	return &n
}

// Defaults returns a configuration with every dataplane, control and log
// key at its default and no bonds.
func Defaults() *Config {
	c := &Config{}
	for _, o := range table {
		switch o.Section {
		case SectionDataplane, SectionControl, SectionLog, SectionMetrics:
			if o.hasStaticDefault() {
				o.set(c, nil, nil, o.defaultValue())
			}
		}
	}
	c.Dataplane.Cores = defaultCores()
	c.Dataplane.Queues = len(c.Dataplane.Cores)
	return c
}

// DefaultBond returns a bond with every option at its bonding default (and
// miimon at DefaultMiimon) and the given slaves, each with default slave
// options.
func DefaultBond(name string, slaves ...string) Bond {
	b := Bond{}
	for _, o := range table {
		if o.Section == SectionBond && o.hasStaticDefault() {
			o.set(nil, &b, nil, o.defaultValue())
		}
	}
	b.Name = name
	b.Miimon = DefaultMiimon
	for _, s := range slaves {
		b.Slaves = append(b.Slaves, defaultSlave(s))
	}
	return b
}

func defaultSlave(name string) Slave {
	s := Slave{}
	for _, o := range table {
		if o.Section == SectionSlave && o.hasStaticDefault() {
			o.set(nil, nil, &s, o.defaultValue())
		}
	}
	s.Name = name
	return s
}

// Metrics configures the Prometheus exporter (off when Listen is empty).
type Metrics struct {
	Listen string // host:port of the /metrics endpoint
}
