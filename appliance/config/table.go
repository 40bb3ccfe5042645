package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/bond-appliance/bond-appliance/policy"
)

// Value tables of the bonding driver (drivers/net/bonding/bond_options.c),
// in the driver's order.
var (
	// mode and xmit_hash_policy: package policy's tables (policy.Mode,
	// policy.HashPolicy), so that config and the data path share one
	// list of names and numbers.
	modeValues        = modeTable()
	xmitHashValues    = hashPolicyTable()
	arpValidateValues = []Value{
		{"none", ArpValidateNone, true},
		{"active", ArpValidateActive, false},
		{"backup", ArpValidateBackup, false},
		{"all", ArpValidateAll, false},
		{"filter", ArpValidateFilter, false},
		{"filter_active", ArpValidateFilterActive, false},
		{"filter_backup", ArpValidateFilterBackup, false},
	}
	arpAllTargetsValues = []Value{
		{"any", ArpAllTargetsAny, true},
		{"all", ArpAllTargetsAll, false},
	}
	failOverMACValues = []Value{
		{"none", FailOverMACNone, true},
		{"active", FailOverMACActive, false},
		{"follow", FailOverMACFollow, false},
	}
	intMaxValues = []Value{
		{"off", 0, true},
		{"maxval", math.MaxInt32, false},
	}
	lacpActiveValues = []Value{
		{"off", 0, false},
		{"on", 1, true},
	}
	lacpRateValues = []Value{ // no default flag in the driver's table
		{"slow", LACPRateSlow, false},
		{"fast", LACPRateFast, false},
	}
	adSelectValues = []Value{
		{"stable", ADSelectStable, true},
		{"bandwidth", ADSelectBandwidth, false},
		{"count", ADSelectCount, false},
		{"actor_port_prio", ADSelectActorPortPrio, false},
	}
	numPeerNotifValues = []Value{
		{"off", 0, false},
		{"maxval", 255, false},
		{"default", 1, true},
	}
	peerNotifDelayValues = []Value{
		{"off", 0, false},
		{"maxval", 300000, false},
	}
	primaryReselectValues = []Value{
		{"always", PrimaryReselectAlways, true},
		{"better", PrimaryReselectBetter, false},
		{"failure", PrimaryReselectFailure, false},
	}
	// Since Linux 6.18 bonding accepts only use_carrier=1.
	useCarrierValues = []Value{
		{"off", 0, false},
		{"on", 1, true},
	}
	allSlavesActiveValues = []Value{
		{"off", 0, true},
		{"on", 1, false},
	}
	resendIGMPValues = []Value{
		{"off", 0, false},
		{"maxval", 255, false},
		{"default", 1, true},
	}
	lpIntervalValues = []Value{
		{"minval", 1, true},
		{"maxval", math.MaxInt32, false},
	}
	tlbDynamicLBValues = []Value{
		{"off", 0, false},
		{"on", 1, true},
	}
	adActorSysPrioValues = []Value{
		{"minval", 1, false},
		{"maxval", 65535, true},
	}
	adUserPortKeyValues = []Value{
		{"minval", 0, true},
		{"maxval", 1023, false},
	}
	missedMaxValues = []Value{
		{"minval", 1, false},
		{"maxval", 255, false},
		{"default", 2, true},
	}
	coupledControlValues = []Value{
		{"on", 1, true},
		{"off", 0, false},
	}
	broadcastNeighValues = []Value{
		{"off", 0, true},
		{"on", 1, false},
	}
	ppsValues = []Value{
		{"default", 1, true},
		{"maxval", 65535, false},
	}
	actorPortPrioValues = []Value{
		{"minval", 0, false},
		{"maxval", 65535, false},
		{"default", 255, true},
	}
	boolValues = []Value{ // appliance booleans
		{"false", 0, false},
		{"true", 1, false},
	}
)

// modeTable lists every valid policy.Mode by its name, balance-rr being
// the default, as bonding's bond_mode_tbl.
func modeTable() []Value {
	var v []Value
	for m := policy.Mode(0); m.Valid(); m++ {
		v = append(v, Value{Name: m.String(), Num: int(m), Default: m == policy.BalanceRR})
	}
	return v
}

// hashPolicyTable lists every valid policy.HashPolicy by its name, layer2
// being the default, as bonding's bond_xmit_hashtype_tbl.
func hashPolicyTable() []Value {
	var v []Value
	for p := policy.HashPolicy(0); p.Valid(); p++ {
		v = append(v, Value{Name: p.String(), Num: int(p), Default: p == policy.Layer2})
	}
	return v
}

// Modes in which options are supported (the complement of the driver's
// unsuppmodes).
var (
	arpModes     = modes(ModeBalanceRR, ModeActiveBackup, ModeBalanceXOR, ModeBroadcast)
	lacpModes    = modes(Mode8023AD)
	primaryModes = modes(ModeActiveBackup, ModeBalanceTLB, ModeBalanceALB)
	tlbModes     = modes(ModeBalanceTLB, ModeBalanceALB)
	rrModes      = modes(ModeBalanceRR)
)

// defaultCores is the default of dataplane.cores: the last CPU.
var defaultCores = func() []int { return []int{runtime.NumCPU() - 1} }

// cfgField makes an option of the dataplane, control, log or metrics
// section; they are all read at start (EffectRestart).
func cfgField[T any](sec Section, o Option, f func(*Config) *T) Option {
	o.Section = sec
	if o.Effect == 0 {
		o.Effect = EffectRestart
	}
	o.get = func(c *Config, _ *Bond, _ *Slave) any { return *f(c) }
	o.set = func(c *Config, _ *Bond, _ *Slave, v any) { *f(c) = v.(T) }
	return o
}

func bondField[T any](o Option, f func(*Bond) *T) Option {
	o.Section = SectionBond
	if o.Modes == 0 {
		o.Modes = AllModes
	}
	o.get = func(_ *Config, b *Bond, _ *Slave) any { return *f(b) }
	o.set = func(_ *Config, b *Bond, _ *Slave, v any) { *f(b) = v.(T) }
	return o
}

func slaveField[T any](o Option, f func(*Slave) *T) Option {
	o.Section = SectionSlave
	if o.Modes == 0 {
		o.Modes = AllModes
	}
	o.get = func(_ *Config, _ *Bond, s *Slave) any { return *f(s) }
	o.set = func(_ *Config, _ *Bond, s *Slave, v any) { *f(s) = v.(T) }
	return o
}

func intMax(o Option) Option {
	o.Kind, o.Values, o.Min, o.Max = KindInt, intMaxValues, 0, math.MaxInt32
	return o
}

func checkSocket(v any) error {
	s := v.(string)
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute path", s)
	}
	if len(s) > MaxSocketPath {
		return fmt.Errorf("%q is %d bytes long (allowed at most %d)", s, len(s), MaxSocketPath)
	}
	return nil
}

// checkGroup checks the syntax of a group name (whether the group exists
// is checked when the appliance starts).
func checkGroup(v any) error {
	s := v.(string)
	if s == "" {
		return nil
	}
	if len(s) > 32 {
		return fmt.Errorf("%q is %d bytes long (allowed: a group name of at most 32 bytes)", s, len(s))
	}
	for i, r := range s {
		ok := r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r == '-' || r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("%q is not a group name (allowed: letters, digits, '_', '.', '-', not starting with a digit or '-')", s)
		}
	}
	return nil
}

// checkStateDir checks that the state directory is an absolute path.
func checkStateDir(v any) error {
	s := v.(string)
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute path", s)
	}
	return nil
}

func checkListen(v any) error {
	s := v.(string)
	if s == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return fmt.Errorf("%q is not host:port", s)
	}
	return nil
}

func checkCores(v any) error {
	l := v.([]int)
	if len(l) == 0 {
		return fmt.Errorf("at least one CPU is required (allowed 0..%d)", MaxCPU)
	}
	return checkUnique(l, "duplicate CPU %d (allowed: each CPU once)")
}

func checkVLANs(v any) error {
	return checkUnique(v.([]int), "duplicate VLAN id %d (allowed: each id once)")
}

func checkUnique[T comparable](l []T, format string) error {
	for i, x := range l {
		if slices.Contains(l[:i], x) {
			return fmt.Errorf(format, x)
		}
	}
	return nil
}

func checkNSTargets(v any) error {
	return checkUnique(v.([]netip.Addr), "NS target %s is already present (allowed: each address once)")
}

func checkBondMAC(v any) error {
	m := v.(net.HardwareAddr)
	if m != nil && [6]byte(m) == [6]byte{} {
		return errors.New("00:00:00:00:00:00 is not a valid bond address (allowed: a unicast MAC address, or empty)")
	}
	return nil
}

// table describes every key of the configuration file, in reference order.
var table = []Option{
	// dataplane
	cfgField(SectionDataplane, Option{Name: "cores", Kind: KindIntList, Min: 0, Max: MaxCPU,
		DefaultDoc: "[last CPU]", Flags: FlagExtension | FlagStartup, check: checkCores,
		Desc: "CPU ids that run a busy-polling lane each; at least one, no duplicates."},
		func(c *Config) *[]int { return &c.Dataplane.Cores }),
	cfgField(SectionDataplane, Option{Name: "queues", Kind: KindInt, Min: 1, Max: 256,
		DefaultDoc: "the number of cores", Flags: FlagExtension | FlagStartup,
		Desc: "Queues used on every member and on the host device; at least the number of cores."},
		func(c *Config) *int { return &c.Dataplane.Queues }),
	cfgField(SectionDataplane, Option{Name: "batch", Kind: KindInt, Min: 1, Max: 1024, Default: "64",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Descriptors a lane moves per ring operation; at most ring_size."},
		func(c *Config) *int { return &c.Dataplane.Batch }),
	cfgField(SectionDataplane, Option{Name: "frame_size", Kind: KindEnum,
		Values: []Value{{"2048", 2048, true}, {"4096", 4096, false}}, Default: "2048",
		Flags: FlagExtension | FlagStartup,
		Desc:  "UMEM frame size in bytes. A bond MTU above frame_size - 274 (1774, 3822) makes frames span several UMEM frames: AF_XDP multi-buffer (see mtu)."},
		func(c *Config) *int { return &c.Dataplane.FrameSize }),
	cfgField(SectionDataplane, Option{Name: "ring_size", Kind: KindInt, Min: 64, Max: 16384, PowerOfTwo: true,
		Default: "2048", Flags: FlagExtension | FlagStartup,
		Desc: "Entries of every AF_XDP ring (fill, completion, RX, TX)."},
		func(c *Config) *int { return &c.Dataplane.RingSize }),
	cfgField(SectionDataplane, Option{Name: "xdp_attach", Kind: KindChoice,
		Values: []Value{{"auto", 0, true}, {"native", 1, false}, {"generic", 2, false}}, Default: "auto",
		Flags: FlagExtension | FlagStartup,
		Desc:  "How the XDP program is attached to members: native (driver) or generic (skb); auto tries native first."},
		func(c *Config) *string { return &c.Dataplane.XDPAttach }),
	cfgField(SectionDataplane, Option{Name: "xdp_bind", Kind: KindChoice,
		Values: []Value{{"auto", 0, true}, {"zerocopy", 1, false}, {"copy", 2, false}}, Default: "auto",
		Flags: FlagExtension | FlagStartup,
		Desc:  "How AF_XDP sockets bind: zerocopy or copy; auto tries zerocopy first."},
		func(c *Config) *string { return &c.Dataplane.XDPBind }),
	cfgField(SectionDataplane, Option{Name: "poll", Kind: KindChoice,
		Values: []Value{{"busy", 0, false}, {"adaptive", 1, true}}, Default: "adaptive",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Lane polling: busy spins always; adaptive backs off to sleeping when idle."},
		func(c *Config) *string { return &c.Dataplane.Poll }),
	cfgField(SectionDataplane, Option{Name: "host_device", Kind: KindChoice,
		Values: []Value{{"veth", 0, true}, {"tap", 1, false}}, Default: "veth",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Device that presents each bond to the host stack (tap: a TAP with offloads — TSO/USO and checksum — the lane segments and coalesces)."},
		func(c *Config) *string { return &c.Dataplane.HostDevice }),
	cfgField(SectionDataplane, Option{Name: "hugepages", Kind: KindBool, Values: boolValues, Default: "true",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Try to back the UMEM with hugepages (falls back to normal pages)."},
		func(c *Config) *bool { return &c.Dataplane.HugePages }),
	cfgField(SectionDataplane, Option{Name: "fast_path", Kind: KindChoice,
		Values: []Value{{"auto", 0, true}, {"off", 1, false}}, Default: "auto",
		Flags: FlagExtension | FlagStartup,
		Desc: "auto: frames that need no user-space decision move between members and the host veth in the kernel, as skbs, by TC programs (Linux >= 6.6, TCX; " +
			"an XDP-redirect fallback otherwise), keeping the host's offloads (TSO super-frames out, GRO in): member to host in active-backup, balance-rr, balance-xor, broadcast and 802.3ad without an ARP/NS monitor (those members run no XDP program meanwhile), " +
			"host to member in active-backup, balance-rr and in balance-xor and 802.3ad with layer2, layer2+3 or layer3+4; " +
			"everything else, tlb/alb, TAP hosts and jumbo (multi-buffer) lanes keep the AF_XDP lane. off: every frame crosses the lane."},
		func(c *Config) *string { return &c.Dataplane.FastPath }),

	// control
	cfgField(SectionControl, Option{Name: "socket", Kind: KindString, Default: "/run/bond-appliance/control.sock",
		Flags: FlagExtension | FlagStartup, check: checkSocket,
		Desc: "Path of the control socket."},
		func(c *Config) *string { return &c.Control.Socket }),
	cfgField(SectionControl, Option{Name: "group", Kind: KindString, Default: "",
		Flags: FlagExtension | FlagStartup, check: checkGroup,
		Desc: "Group whose members may use the control socket besides root (the socket gets mode 0660 and this group, its directory 0750); empty: root only."},
		func(c *Config) *string { return &c.Control.Group }),
	cfgField(SectionControl, Option{Name: "max_clients", Kind: KindInt, Min: 1, Max: 1024, Default: "16",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Control socket connections served at once; one more is answered \"too many clients\" and closed."},
		func(c *Config) *int { return &c.Control.MaxClients }),
	cfgField(SectionControl, Option{Name: "state_dir", Kind: KindString, Default: "/var/lib/bond-appliance",
		Flags: FlagExtension | FlagStartup, check: checkStateDir,
		Desc: "Directory of the undo journal: every device change is written here before it is made, so a restart after a crash (or `bond-appliance cleanup`) puts the devices back as they were found."},
		func(c *Config) *string { return &c.Control.StateDir }),

	// metrics
	cfgField(SectionMetrics, Option{Name: "listen", Kind: KindString, Default: "",
		Flags: FlagExtension | FlagStartup, check: checkListen,
		Desc: "host:port of the Prometheus /metrics endpoint, for example 127.0.0.1:9469; empty turns the exporter off."},
		func(c *Config) *string { return &c.Metrics.Listen }),

	// log
	cfgField(SectionLog, Option{Name: "level", Kind: KindChoice,
		Values: []Value{{"debug", 0, false}, {"info", 1, true}, {"warn", 2, false}, {"error", 3, false}}, Default: "info",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Least severe level logged."},
		func(c *Config) *string { return &c.Log.Level }),
	cfgField(SectionLog, Option{Name: "format", Kind: KindChoice,
		Values: []Value{{"text", 0, true}, {"json", 1, false}}, Default: "text",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Log line format."},
		func(c *Config) *string { return &c.Log.Format }),

	// bonds[]: identity and appliance extensions
	bondField(Option{Name: "name", Effect: EffectRestart, Kind: KindIfName, Flags: FlagExtension | FlagStartup | FlagRequired,
		Desc: "Interface name of the bond; unique."},
		func(b *Bond) *string { return &b.Name }),
	bondField(Option{Name: "slaves", Effect: EffectRestart, Kind: KindSlaves, Flags: FlagRawVal | FlagStartup | FlagRequired,
		Desc: "Member interfaces: names, or objects with the slave keys below; at least one, each in one bond only."},
		func(b *Bond) *[]Slave { return &b.Slaves }),
	bondField(Option{Name: "mode", Effect: EffectRestart, Kind: KindEnum, Values: modeValues, Default: "balance-rr",
		Flags: FlagNoSlaves | FlagIfDown,
		Desc:  "Bonding policy: how frames are spread over, or failed over between, the slaves."},
		func(b *Bond) *int { return &b.Mode }),
	bondField(Option{Name: "mac", Effect: EffectRestart, Kind: KindMAC, DefaultDoc: "the first slave's MAC",
		Flags: FlagExtension | FlagStartup, check: checkBondMAC,
		Desc: "MAC address of the bond."},
		func(b *Bond) *net.HardwareAddr { return &b.MAC }),
	bondField(Option{Name: "mtu", Effect: EffectRestart, Kind: KindInt, Min: 68, Max: MaxJumboMTU, Default: "1500",
		Flags: FlagExtension | FlagStartup,
		Desc: "MTU of the bond, its host device and its members. Above dataplane.frame_size - 274 (jumbo) frames travel as AF_XDP multi-buffer chains: " +
			"this needs Linux >= 6.6 (XDP_USE_SG sockets, xdp.frags programs), members whose MTU can be raised to it, host_device veth (TAP refuses it), " +
			"and in zero-copy a driver with multi-buffer zero-copy (else auto binds in copy mode). Checked at start, before any change."},
		func(b *Bond) *int { return &b.MTU }),
	bondField(Option{Name: "vlans", Effect: EffectRestart, Kind: KindIntList, Min: 1, Max: 4094,
		Flags: FlagExtension | FlagStartup, check: checkVLANs,
		Desc: "VLAN ids above the bond that get tagged copies of peer notifications; no duplicates."},
		func(b *Bond) *[]int { return &b.VLANs }),
	bondField(Option{Name: "force", Effect: EffectRestart, Kind: KindBool, Values: boolValues, Default: "false",
		Flags: FlagExtension | FlagStartup,
		Desc:  "Start even when a member already has an XDP program attached (it is replaced, and re-attached at a clean stop; after a crash only if it still exists, that is pinned or held by another process)."},
		func(b *Bond) *bool { return &b.Force }),
	bondField(Option{Name: "combine_monitors", Effect: EffectMII | EffectMonitor, Kind: KindBool, Values: boolValues, Default: "false",
		Flags: FlagExtension,
		Desc:  "Run the MII monitor and the ARP/NS monitor together; a slave is up only when every enabled monitor says so. Bonding forbids both (it disables ARP monitoring when miimon is set); teamd allows it."},
		func(b *Bond) *bool { return &b.CombineMonitors }),

	// bonds[]: bonding options, in bonding.rst order
	bondField(Option{Name: "active_slave", Effect: EffectSnapshot, Kind: KindIfName, Modes: primaryModes, Flags: FlagRawVal,
		Desc: "Slave to make active (must be a slave of the bond); empty lets bonding choose."},
		func(b *Bond) *string { return &b.ActiveSlave }),
	bondField(Option{Name: "ad_actor_sys_prio", Effect: EffectLACP, Kind: KindInt, Values: adActorSysPrioValues, Min: 1, Max: 65535,
		Default: "65535", Modes: lacpModes,
		Desc: "802.3ad actor system priority sent in LACPDUs."},
		func(b *Bond) *int { return &b.ADActorSysPrio }),
	bondField(Option{Name: "ad_actor_system", Effect: EffectLACP, Kind: KindMAC, Default: "00:00:00:00:00:00", Modes: lacpModes,
		Flags: FlagRawVal,
		Desc:  "802.3ad actor system MAC sent in LACPDUs; 00:00:00:00:00:00 uses the bond's MAC."},
		func(b *Bond) *net.HardwareAddr { return &b.ADActorSystem }),
	bondField(Option{Name: "ad_select", Effect: EffectLACP, Kind: KindEnum, Values: adSelectValues, Default: "stable",
		Flags: FlagIfDown,
		Desc:  "802.3ad aggregator selection: keep it (stable), or pick by bandwidth, port count or actor port priorities."},
		func(b *Bond) *int { return &b.ADSelect }),
	bondField(Option{Name: "ad_user_port_key", Effect: EffectLACP, Kind: KindInt, Values: adUserPortKeyValues, Min: 0, Max: 1023,
		Default: "0", Modes: lacpModes, Flags: FlagIfDown,
		Desc: "Upper 10 bits of the 802.3ad port key."},
		func(b *Bond) *int { return &b.ADUserPortKey }),
	bondField(Option{Name: "all_slaves_active", Effect: EffectSnapshot | EffectALB, Kind: KindBool, Values: allSlavesActiveValues, Default: "off",
		Desc: "Deliver duplicate frames received on inactive slaves (1) instead of dropping them (0)."},
		func(b *Bond) *bool { return &b.AllSlavesActive }),
	bondField(intMax(Option{Name: "arp_interval", Effect: EffectMonitor, Default: "0", Modes: arpModes,
		Desc: "ARP/NS link monitoring interval in milliseconds; 0 disables it; not together with miimon."}),
		func(b *Bond) *int { return &b.ArpInterval }),
	bondField(Option{Name: "arp_ip_target", Effect: EffectMonitor, Kind: KindIPv4List, MaxItems: MaxARPTargets, Flags: FlagRawVal,
		Desc: "IPv4 addresses the ARP monitor probes."},
		func(b *Bond) *[]netip.Addr { return &b.ArpIPTargets }),
	bondField(Option{Name: "ns_ip6_target", Effect: EffectMonitor, Kind: KindIPv6List, MaxItems: MaxNSTargets, Flags: FlagRawVal,
		check: checkNSTargets,
		Desc:  "IPv6 addresses the ARP monitor probes with Neighbor Solicitations."},
		func(b *Bond) *[]netip.Addr { return &b.NSIP6Targets }),
	bondField(Option{Name: "arp_validate", Effect: EffectMonitor, Kind: KindEnum, Values: arpValidateValues, Default: "none", Modes: arpModes,
		Desc: "Which slaves must see valid ARP traffic to count as up, or only count ARP traffic (filter); needs arp_interval."},
		func(b *Bond) *int { return &b.ArpValidate }),
	bondField(Option{Name: "arp_all_targets", Effect: EffectMonitor, Kind: KindEnum, Values: arpAllTargetsValues, Default: "any",
		Desc: "Whether any or all ARP targets must answer for a slave to be up (active-backup with arp_validate)."},
		func(b *Bond) *int { return &b.ArpAllTargets }),
	bondField(Option{Name: "arp_missed_max", Effect: EffectMonitor, Kind: KindInt, Values: missedMaxValues, Min: 1, Max: 255,
		Default: "2", Modes: arpModes,
		Desc: "ARP monitor intervals that may pass without traffic before a slave is marked down."},
		func(b *Bond) *int { return &b.ArpMissedMax }),
	bondField(Option{Name: "broadcast_neighbor", Effect: EffectSnapshot, Kind: KindBool, Values: broadcastNeighValues, Default: "off",
		Modes: lacpModes,
		Desc:  "802.3ad: send ARP and IPv6 neighbor discovery packets on all active slaves."},
		func(b *Bond) *bool { return &b.BroadcastNeighbor }),
	bondField(Option{Name: "coupled_control", Effect: EffectLACP, Kind: KindBool, Values: coupledControlValues, Default: "on",
		Modes: lacpModes, Flags: FlagIfDown,
		Desc: "802.3ad: one mux state for collecting and distributing (1), or separate states (0)."},
		func(b *Bond) *bool { return &b.CoupledControl }),
	bondField(intMax(Option{Name: "downdelay", Effect: EffectMII, Default: "0",
		Desc: "Milliseconds a link must stay down before its slave is disabled; rounded down to a multiple of miimon."}),
		func(b *Bond) *int { return &b.Downdelay }),
	bondField(Option{Name: "fail_over_mac", Effect: EffectRestart, Kind: KindEnum, Values: failOverMACValues, Default: "none",
		Flags: FlagNoSlaves,
		Desc:  "active-backup MAC policy: one MAC on all slaves (none), bond takes the active slave's (active), or move it on failover (follow)."},
		func(b *Bond) *int { return &b.FailOverMAC }),
	bondField(Option{Name: "lacp_active", Effect: EffectLACP, Kind: KindBool, Values: lacpActiveValues, Default: "on",
		Modes: lacpModes, Flags: FlagIfDown,
		Desc: "802.3ad: send LACPDUs periodically (on) or only when the partner does (off)."},
		func(b *Bond) *bool { return &b.LACPActive }),
	bondField(Option{Name: "lacp_rate", Effect: EffectLACP, Kind: KindEnum, Values: lacpRateValues, Default: "slow",
		Modes: lacpModes, Flags: FlagIfDown,
		Desc: "LACPDU rate asked of the 802.3ad partner: every 30 seconds (slow) or every second (fast)."},
		func(b *Bond) *int { return &b.LACPRate }),
	bondField(intMax(Option{Name: "miimon", Effect: EffectMII | EffectMonitor, DefaultDoc: "100 if arp_interval is 0, else 0",
		Desc: "Link (carrier) monitoring interval in milliseconds; 0 disables it."}),
		func(b *Bond) *int { return &b.Miimon }),
	bondField(intMax(Option{Name: "min_links", Effect: EffectLACP, Default: "0",
		Desc: "Slaves that must be up before the bond asserts carrier (802.3ad)."}),
		func(b *Bond) *int { return &b.MinLinks }),
	bondField(Option{Name: "num_grat_arp", Effect: EffectMonitor, Kind: KindInt, Values: numPeerNotifValues, Min: 0, Max: 255, Default: "1",
		Desc: "Peer notifications (gratuitous ARP, unsolicited NA) sent after a failover; alias of num_unsol_na."},
		func(b *Bond) *int { return &b.NumGratARP }),
	bondField(Option{Name: "num_unsol_na", Effect: EffectMonitor, Kind: KindInt, Values: numPeerNotifValues, Min: 0, Max: 255, Default: "1",
		Desc: "Peer notifications (gratuitous ARP, unsolicited NA) sent after a failover; alias of num_grat_arp."},
		func(b *Bond) *int { return &b.NumUnsolNA }),
	bondField(Option{Name: "packets_per_slave", Effect: EffectSnapshot, Kind: KindInt, Values: ppsValues, Min: 0, Max: 65535, Default: "1",
		Modes: rrModes,
		Desc:  "Packets sent on a slave before moving to the next; 0 picks a slave at random."},
		func(b *Bond) *int { return &b.PacketsPerSlave }),
	bondField(Option{Name: "peer_notif_delay", Effect: EffectMonitor, Kind: KindInt, Values: peerNotifDelayValues, Min: 0, Max: 300000,
		Default: "0",
		Desc:    "Milliseconds between repeated peer notifications; a multiple of miimon; 0 means miimon."},
		func(b *Bond) *int { return &b.PeerNotifDelay }),
	bondField(Option{Name: "primary", Effect: EffectSnapshot | EffectMonitor, Kind: KindIfName, Modes: primaryModes, Flags: FlagRawVal,
		Desc: "Slave that is active whenever it is usable."},
		func(b *Bond) *string { return &b.Primary }),
	bondField(Option{Name: "primary_reselect", Effect: EffectSnapshot | EffectMonitor, Kind: KindEnum, Values: primaryReselectValues, Default: "always",
		Desc: "When a recovered primary takes over: always, if better (speed, duplex), or only on failure of the active slave."},
		func(b *Bond) *int { return &b.PrimaryReselect }),
	bondField(Option{Name: "tlb_dynamic_lb", Effect: EffectALB, Kind: KindBool, Values: tlbDynamicLBValues, Default: "on",
		Modes: tlbModes, Flags: FlagIfDown,
		Desc: "Rebalance flows by load (1) or place them by the transmit hash only (0)."},
		func(b *Bond) *bool { return &b.TLBDynamicLB }),
	bondField(intMax(Option{Name: "updelay", Effect: EffectMII, Default: "0",
		Desc: "Milliseconds a link must stay up before its slave is used; rounded down to a multiple of miimon."}),
		func(b *Bond) *int { return &b.Updelay }),
	bondField(Option{Name: "use_carrier", Effect: EffectMII, Kind: KindBool, Values: useCarrierValues, Default: "on",
		Desc: "MII monitor source: on (1) reads the carrier (netlink); off (0) asks the driver through ethtool (ETHTOOL_MSG_LINKSTATE) at every miimon poll. Recent kernels dropped 0; the appliance keeps it for drivers whose carrier is unreliable."},
		func(b *Bond) *bool { return &b.UseCarrier }),
	bondField(Option{Name: "xmit_hash_policy", Effect: EffectSnapshot, Kind: KindEnum, Values: xmitHashValues, Default: "layer2",
		Desc: "Hash that picks the transmitting slave in balance-xor, 802.3ad and balance-tlb."},
		func(b *Bond) *int { return &b.XmitHashPolicy }),
	bondField(Option{Name: "resend_igmp", Effect: EffectMonitor, Kind: KindInt, Values: resendIGMPValues, Min: 0, Max: 255, Default: "1",
		Desc: "IGMP membership reports sent after a failover, 200 ms apart."},
		func(b *Bond) *int { return &b.ResendIGMP }),
	bondField(Option{Name: "lp_interval", Effect: EffectALB, Kind: KindInt, Values: lpIntervalValues, Min: 1, Max: math.MaxInt32,
		Default: "1",
		Desc:    "Seconds between learning packets sent to each slave's peer switch (balance-tlb, balance-alb)."},
		func(b *Bond) *int { return &b.LPInterval }),

	// bonds[].slaves[]
	slaveField(Option{Name: "name", Effect: EffectRestart, Kind: KindIfName, Flags: FlagRawVal | FlagStartup | FlagRequired,
		Desc: "Interface name of the member."},
		func(s *Slave) *string { return &s.Name }),
	slaveField(Option{Name: "prio", Effect: EffectPort, Kind: KindInt, Min: math.MinInt32, Max: math.MaxInt32, Default: "0",
		Modes: primaryModes, Flags: FlagRawVal,
		Desc: "Failover priority of the slave (higher is preferred) when no primary is set."},
		func(s *Slave) *int { return &s.Prio }),
	slaveField(Option{Name: "queue_id", Effect: EffectPort, Kind: KindInt, Min: 0, Max: 65535, Default: "0", Flags: FlagRawVal,
		Desc: "Host-device queue whose frames this slave transmits (0: none); at most dataplane.queues, unique within the bond."},
		func(s *Slave) *int { return &s.QueueID }),
	slaveField(Option{Name: "actor_port_prio", Effect: EffectPort, Kind: KindInt, Values: actorPortPrioValues, Min: 0, Max: 65535,
		Default: "255", Modes: lacpModes,
		Desc: "802.3ad actor port priority of the slave (used by ad_select actor_port_prio)."},
		func(s *Slave) *int { return &s.ActorPortPrio }),
}

// notPerBond explains keys that bonding has but that are not options of a
// bond entry.
var notPerBond = map[string]string{
	"max_bonds":       "a global parameter of the bonding module, not a per-bond option; every entry under bonds: creates one bond",
	"tx_queues":       "a global parameter of the bonding module, not a per-bond option; the queue count is dataplane.queues",
	"queue_id":        "a per-slave option: give it in the slave object, e.g. slaves: [{name: eth1, queue_id: 1}]",
	"prio":            "a per-slave option: give it in the slave object, e.g. slaves: [{name: eth1, prio: 10}]",
	"actor_port_prio": "a per-slave option: give it in the slave object, e.g. slaves: [{name: eth1, actor_port_prio: 100}]",
}
