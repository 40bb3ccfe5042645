package config

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Options given in a mode whose bonding descriptor excludes it are errors.
func TestModeDependencies(t *testing.T) {
	tests := []struct {
		mode  string
		extra string
		want  string // "" = accepted
	}{
		{"802.3ad", "arp_interval: 100", "bonds[0] (bond0): arp_interval: 100 is not supported in mode 802.3ad(4) (mode dependency failed; arp_interval is supported in modes: balance-rr, active-backup, balance-xor, broadcast)"},
		{"balance-tlb", "arp_interval: 100", "bonds[0] (bond0): arp_interval: 100 is not supported in mode balance-tlb(5)"},
		{"balance-alb", "arp_interval: 100", "bonds[0] (bond0): arp_interval: 100 is not supported in mode balance-alb(6)"},
		{"active-backup", "arp_interval: 100\n    arp_ip_target: 10.0.0.1", ""},
		{"802.3ad", "arp_validate: active", "bonds[0] (bond0): arp_validate: active is not supported in mode 802.3ad(4)"},
		{"802.3ad", "arp_missed_max: 3", "bonds[0] (bond0): arp_missed_max: 3 is not supported in mode 802.3ad(4)"},
		{"active-backup", "packets_per_slave: 2", "bonds[0] (bond0): packets_per_slave: 2 is not supported in mode active-backup(1) (mode dependency failed; packets_per_slave is supported in modes: balance-rr)"},
		{"balance-rr", "packets_per_slave: 0", ""},
		{"balance-xor", "primary: m0", "bonds[0] (bond0): primary: m0 is not supported in mode balance-xor(2) (mode dependency failed; primary is supported in modes: active-backup, balance-tlb, balance-alb)"},
		{"active-backup", "primary: m0", ""},
		{"balance-alb", "primary: m0", ""},
		{"balance-xor", "active_slave: m0", "bonds[0] (bond0): active_slave: m0 is not supported in mode balance-xor(2)"},
		{"balance-xor", "lacp_rate: fast", "bonds[0] (bond0): lacp_rate: fast is not supported in mode balance-xor(2) (mode dependency failed; lacp_rate is supported in modes: 802.3ad)"},
		{"balance-xor", "lacp_rate: slow", "bonds[0] (bond0): lacp_rate: slow is not supported in mode balance-xor(2)"},
		{"802.3ad", "lacp_rate: fast", ""},
		{"active-backup", "lacp_active: off", "bonds[0] (bond0): lacp_active: off is not supported in mode active-backup(1)"},
		{"balance-rr", "ad_actor_sys_prio: 100", "bonds[0] (bond0): ad_actor_sys_prio: 100 is not supported in mode balance-rr(0)"},
		{"balance-rr", "ad_actor_system: 02:00:00:00:00:09", "bonds[0] (bond0): ad_actor_system: 02:00:00:00:00:09 is not supported in mode balance-rr(0)"},
		{"balance-rr", "ad_user_port_key: 5", "bonds[0] (bond0): ad_user_port_key: 5 is not supported in mode balance-rr(0)"},
		{"balance-rr", "coupled_control: 0", "bonds[0] (bond0): coupled_control: off is not supported in mode balance-rr(0)"},
		{"balance-rr", "broadcast_neighbor: on", "bonds[0] (bond0): broadcast_neighbor: on is not supported in mode balance-rr(0)"},
		{"802.3ad", "broadcast_neighbor: on", ""},
		{"active-backup", "tlb_dynamic_lb: 0", "bonds[0] (bond0): tlb_dynamic_lb: off is not supported in mode active-backup(1) (mode dependency failed; tlb_dynamic_lb is supported in modes: balance-tlb, balance-alb)"},
		{"balance-alb", "tlb_dynamic_lb: 0", ""},
		{"balance-xor", "slaves: [m0, {name: m1, prio: 5}]", "bonds[0] (bond0): slaves[1] (m1): prio: 5 is not supported in mode balance-xor(2) (mode dependency failed; prio is supported in modes: active-backup, balance-tlb, balance-alb)"},
		{"active-backup", "slaves: [m0, {name: m1, prio: 5}]", ""},
		{"active-backup", "slaves: [{name: m0, actor_port_prio: 5}]", "bonds[0] (bond0): slaves[0] (m0): actor_port_prio: 5 is not supported in mode active-backup(1) (mode dependency failed; actor_port_prio is supported in modes: 802.3ad)"},
		{"802.3ad", "slaves: [{name: m0, actor_port_prio: 5}]\n    ad_select: actor_port_prio", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode+" "+tt.extra, func(t *testing.T) {
			y := "bonds:\n  - name: bond0\n    mode: " + tt.mode + "\n    " + tt.extra + "\n"
			if !strings.Contains(tt.extra, "slaves:") {
				y += "    slaves: [m0, m1]\n"
			}
			_, _, err := Parse([]byte(y))
			if tt.want == "" {
				if err != nil {
					t.Errorf("error: %v", err)
				}
				return
			}
			ok := slices.ContainsFunc(errLines(err), func(l string) bool { return strings.HasPrefix(l, tt.want) })
			if !ok {
				t.Errorf("errors:\n%v\nwant a line starting:\n%s", err, tt.want)
			}
		})
	}
}

// The rules and warnings of bond_check_params, and of the sysfs/netlink
// options.
func TestBondingRules(t *testing.T) {
	tests := []struct {
		name  string
		extra []string
		check func(b *Bond) bool
		warns []string
		errs  []string
	}{
		{"miimon default", nil, func(b *Bond) bool { return b.Miimon == 100 }, nil, nil},
		{"miimon default with ARP", []string{"arp_interval: 200", "arp_ip_target: 10.0.0.1"},
			func(b *Bond) bool { return b.Miimon == 0 && b.ArpInterval == 200 }, nil, nil},
		{"updelay rounded", []string{"miimon: 100", "updelay: 150", "downdelay: 250"},
			func(b *Bond) bool { return b.Updelay == 100 && b.Downdelay == 200 },
			[]string{
				"bond0: Warning: updelay (150) is not a multiple of miimon (100), updelay rounded to 100 ms",
				"bond0: Warning: downdelay (250) is not a multiple of miimon (100), downdelay rounded to 200 ms",
			}, nil},
		{"updelay multiple", []string{"miimon: 50", "updelay: 150"}, func(b *Bond) bool { return b.Updelay == 150 }, nil, nil},
		{"updelay below miimon", []string{"miimon: 100", "updelay: 50"}, func(b *Bond) bool { return b.Updelay == 0 },
			[]string{"bond0: Warning: updelay (50) is not a multiple of miimon (100), updelay rounded to 0 ms"}, nil},
		{"delays without miimon", []string{"miimon: 0", "updelay: 100", "arp_interval: 100", "arp_ip_target: 10.0.0.1"},
			func(b *Bond) bool { return b.Updelay == 100 },
			[]string{"bond0: Warning: miimon module parameter not set and updelay (100) or downdelay (0) module parameter is set; updelay and downdelay have no effect unless miimon is set"}, nil},
		{"miimon and arp_interval", []string{"miimon: 100", "arp_interval: 200", "arp_ip_target: 10.0.0.1"},
			func(b *Bond) bool { return b.Miimon == 100 && b.ArpInterval == 0 },
			[]string{"bond0: Warning: miimon (100) and arp_interval (200) can't be used simultaneously, disabling ARP monitoring"}, nil},
		{"arp_interval without targets", []string{"arp_interval: 200"},
			func(b *Bond) bool { return b.ArpInterval == 0 && b.Miimon == 0 },
			[]string{
				"bond0: Warning: arp_interval module parameter (200) specified without providing an arp_ip_target parameter, arp_interval was reset to 0",
				"bond0: Warning: either miimon or arp_interval and arp_ip_target module parameters must be specified, otherwise bonding will not detect link failures! see bonding.txt for details",
			}, nil},
		{"arp_interval with NS targets only", []string{"arp_interval: 200", "ns_ip6_target: 2001:db8::1"},
			func(b *Bond) bool { return b.ArpInterval == 200 }, nil, nil},
		{"no monitoring", []string{"miimon: 0"}, nil,
			[]string{"bond0: Warning: either miimon or arp_interval and arp_ip_target module parameters must be specified, otherwise bonding will not detect link failures! see bonding.txt for details"}, nil},
		{"802.3ad forces miimon", []string{"mode: 802.3ad", "miimon: 0"}, func(b *Bond) bool { return b.Miimon == 100 },
			[]string{
				"bond0: Warning: miimon must be specified, otherwise bonding will not detect link failure, speed and duplex which are essential for 802.3ad operation",
				"bond0: Forcing miimon to 100msec",
			}, nil},
		{"arp_validate needs arp_interval", []string{"mode: active-backup", "arp_validate: all"}, nil, nil,
			[]string{"bonds[0] (bond0): arp_validate: all requires arp_interval (allowed without ARP monitoring: none|0)"}},
		{"arp_validate none without arp_interval", []string{"arp_validate: none"}, nil, nil, nil},
		{"arp_validate with ARP", []string{"mode: active-backup", "arp_validate: 3", "arp_interval: 100", "arp_ip_target: 10.0.0.1", "arp_all_targets: all"},
			func(b *Bond) bool { return b.ArpValidate == ArpValidateAll && b.ArpAllTargets == ArpAllTargetsAll }, nil, nil},
		{"xmit_hash_policy irrelevant", []string{"mode: active-backup", "xmit_hash_policy: layer2+3"},
			func(b *Bond) bool { return b.XmitHashPolicy == XmitLayer23 },
			[]string{"bond0: xmit_hash_policy param is irrelevant in mode fault-tolerance (active-backup)"}, nil},
		{"ad_select outside 802.3ad", []string{"ad_select: count"}, nil,
			[]string{"bond0: ad_select param only affects 802.3ad mode"}, nil},
		{"fail_over_mac outside active-backup", []string{"fail_over_mac: active"}, nil,
			[]string{"bond0: Warning: fail_over_mac only affects active-backup mode"}, nil},
		{"fail_over_mac in active-backup", []string{"mode: 1", "fail_over_mac: follow"},
			func(b *Bond) bool { return b.FailOverMAC == FailOverMACFollow }, nil, nil},
		{"ALB notice", []string{"mode: balance-alb", "updelay: 200"}, nil,
			[]string{"bond0: In ALB mode you might experience client disconnections upon reconnection of a link if the bonding module updelay parameter (200 msec) is incompatible with the forwarding delay time of the switch"}, nil},
		{"primary not a slave", []string{"mode: active-backup", "primary: eth9"}, func(b *Bond) bool { return b.Primary == "eth9" },
			[]string{"bond0: Recording eth9 as primary, but it has not been enslaved yet (it is not in slaves)"}, nil},
		{"active_slave not a slave", []string{"mode: active-backup", "active_slave: eth9"}, nil, nil,
			[]string{`bonds[0] (bond0): active_slave: "eth9" is not a slave of bond0 (allowed: m0, m1, or empty)`}},
		{"active_slave", []string{"mode: active-backup", "active_slave: m1"}, func(b *Bond) bool { return b.ActiveSlave == "m1" }, nil, nil},
		{"peer_notif_delay rounded", []string{"mode: active-backup", "peer_notif_delay: 250"},
			func(b *Bond) bool { return b.PeerNotifDelay == 200 },
			[]string{"bond0: peer notification delay (250) is not a multiple of miimon (100), value rounded to 200 ms"}, nil},
		{"peer_notif_delay without miimon", []string{"mode: active-backup", "peer_notif_delay: 200", "arp_interval: 100", "arp_ip_target: 10.0.0.1"}, nil, nil,
			[]string{"bonds[0] (bond0): peer_notif_delay: 200 cannot be set as MII monitoring is disabled (allowed: 0 while miimon is 0)"}},
		{"num_grat_arp alone", []string{"num_grat_arp: 3"}, func(b *Bond) bool { return b.NumGratARP == 3 && b.NumUnsolNA == 3 }, nil, nil},
		{"num_unsol_na alone", []string{"num_unsol_na: 0"}, func(b *Bond) bool { return b.NumGratARP == 0 && b.NumUnsolNA == 0 }, nil, nil},
		{"aliases agree", []string{"num_unsol_na: 5", "num_grat_arp: 5"}, func(b *Bond) bool { return b.NumGratARP == 5 }, nil, nil},
		{"aliases differ", []string{"num_grat_arp: 3", "num_unsol_na: 5"}, nil, nil,
			[]string{"bonds[0] (bond0): num_grat_arp: 3 differs from num_unsol_na 5 (allowed: the same value; they are aliases of one setting)"}},
		{"use_carrier 0", []string{"use_carrier: 0"}, nil, nil, nil},
		{"lp_interval 0", []string{"lp_interval: 0"}, nil, nil,
			[]string{"bonds[0] (bond0): lp_interval: 0 out of range (allowed 1..2147483647 or minval, maxval)"}},
		{"mtu jumbo", []string{"mtu: 9000"}, func(b *Bond) bool { return b.MTU == 9000 && Jumbo(b.MTU, 2048) }, nil, nil},
		{"mtu too big", []string{"mtu: 9001"}, nil, nil,
			[]string{"bonds[0] (bond0): mtu: 9001 out of range (allowed 68..9000)"}},
		{"mtu fits", []string{"mtu: 1774"}, func(b *Bond) bool { return b.MTU == 1774 }, nil, nil},
		{"bond mac", []string{`mac: "02:00:00:00:00:01"`}, func(b *Bond) bool { return b.MAC.String() == "02:00:00:00:00:01" }, nil, nil},
		{"multicast bond mac", []string{`mac: "01:00:00:00:00:01"`}, nil, nil,
			[]string{"bonds[0] (bond0): mac: 01:00:00:00:00:01 is a multicast address (allowed: a unicast MAC address such as 02:00:00:00:00:01, or empty)"}},
		{"duplicate vlan", []string{"vlans: [100, 200, 100]"}, nil, nil,
			[]string{"bonds[0] (bond0): vlans: duplicate VLAN id 100 (allowed: each id once)"}},
		{"bad arp target", []string{"arp_interval: 100", "arp_ip_target: 10.0.0.256"}, nil, nil,
			[]string{`bonds[0] (bond0): arp_ip_target: invalid address "10.0.0.256" (allowed: at most 16 IPv4 addresses, not 0.0.0.0/8 or 255.255.255.255, as a list or comma-separated)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, w, err := Parse([]byte(bondYAML(tt.extra...)))
			if !reflect.DeepEqual(errLines(err), tt.errs) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errLines(err), "\n"), strings.Join(tt.errs, "\n"))
			}
			if !reflect.DeepEqual(w, tt.warns) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(tt.warns, "\n"))
			}
			if tt.check != nil && err == nil && !tt.check(&c.Bonds[0]) {
				t.Errorf("bond: %+v", c.Bonds[0])
			}
		})
	}
}

func TestDataplaneRules(t *testing.T) {
	tests := []struct {
		name string
		dp   string
		want string
	}{
		{"queues below cores", "cores: [0, 1]\n  queues: 1", "dataplane.queues: 1 is less than the number of dataplane.cores (2) (allowed 2..256)"},
		{"duplicate core", "cores: [1, 1]", "dataplane.cores: duplicate CPU 1 (allowed: each CPU once)"},
		{"no cores", "cores: []", "dataplane.cores: at least one CPU is required (allowed 0..1023)"},
		{"core out of range", "cores: [1024]", "dataplane.cores: 1024 out of range (allowed 0..1023)"},
		{"ring not a power of two", "ring_size: 1000", "dataplane.ring_size: 1000 is not a power of two (allowed powers of two 64..16384)"},
		{"batch above ring", "ring_size: 64\n  batch: 128", "dataplane.batch: 128 exceeds dataplane.ring_size 64 (allowed 1..64)"},
		{"frame size", "frame_size: 1024", `dataplane.frame_size: invalid value "1024" (allowed: 2048, 4096)`},
		{"xdp_attach", "xdp_attach: skb", `dataplane.xdp_attach: invalid value "skb" (allowed: auto, native, generic)`},
		{"xdp_bind", "xdp_bind: zc", `dataplane.xdp_bind: invalid value "zc" (allowed: auto, zerocopy, copy)`},
		{"host_device", "host_device: tun", `dataplane.host_device: invalid value "tun" (allowed: veth, tap)`},
		{"hugepages", "hugepages: maybe", `dataplane.hugepages: invalid value "maybe" (allowed: false|0, true|1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte("dataplane:\n  " + tt.dp + "\n" + bondYAML()))
			if !slices.Contains(errLines(err), tt.want) {
				t.Errorf("errors:\n%v\nwant line:\n%s", err, tt.want)
			}
		})
	}
	// jumbo frames are multi-buffer chains, which a TAP host does not carry
	_, _, err := Parse([]byte("dataplane:\n  host_device: tap\n" + bondYAML("mtu: 9000")))
	if want := "bonds[0] (bond0): mtu: 9000 does not fit dataplane.frame_size 2048 with dataplane.host_device tap: a TAP host carries single-buffer frames only (allowed: mtu at most 1774 = frame_size - 256 XDP headroom - 18 Ethernet and VLAN header, or host_device veth for up to 9000)"; !slices.Contains(errLines(err), want) {
		t.Errorf("errors:\n%v\nwant line:\n%s", err, want)
	}
	c, _ := mustParse(t, "dataplane:\n  frame_size: 4096\n  ring_size: 64\n  batch: 64\n  cores: 2,3\n  queues: 4\n  poll: busy\n  xdp_bind: copy\n  xdp_attach: generic\n  host_device: tap\n  hugepages: false\n  fast_path: off\n"+bondYAML("mtu: 3822"))
	want := Dataplane{Cores: []int{2, 3}, Queues: 4, Batch: 64, FrameSize: 4096, RingSize: 64,
		XDPAttach: "generic", XDPBind: "copy", Poll: "busy", HostDevice: "tap", HugePages: false, FastPath: "off"}
	if !reflect.DeepEqual(c.Dataplane, want) {
		t.Errorf("dataplane %+v; want %+v", c.Dataplane, want)
	}

	for _, tt := range []struct{ y, want string }{
		{"control:\n  socket: run/x.sock\n", `control.socket: "run/x.sock" is not an absolute path`},
		{"control:\n  state_dir: var/lib/x\n", `control.state_dir: "var/lib/x" is not an absolute path`},
		{"control:\n  socket: /" + strings.Repeat("x", 107) + "\n", "control.socket: \"/" + strings.Repeat("x", 107) + "\" is 108 bytes long (allowed at most 107)"},
		{"log:\n  level: trace\n", `log.level: invalid value "trace" (allowed: debug, info, warn, error)`},
		{"log:\n  format: xml\n", `log.format: invalid value "xml" (allowed: text, json)`},
	} {
		_, _, err := Parse([]byte(tt.y + bondYAML()))
		if !slices.Contains(errLines(err), tt.want) {
			t.Errorf("errors:\n%v\nwant line:\n%s", err, tt.want)
		}
	}
}

// Validating again changes nothing and repeats no rounding warning.
func TestValidateIdempotent(t *testing.T) {
	c, w := mustParse(t, bondYAML("mode: active-backup", "miimon: 100", "updelay: 150", "peer_notif_delay: 250",
		"arp_ip_target: [10.0.0.1, 10.0.0.1]"))
	if len(w) != 3 {
		t.Fatalf("warnings %q", w)
	}
	before := c.Clone()
	w, err := c.Validate()
	if err != nil || len(w) != 0 {
		t.Errorf("second Validate: %q, %v", w, err)
	}
	if !reflect.DeepEqual(before, c) {
		t.Errorf("second Validate changed the config:\n%+v\n%+v", before, c)
	}
}

// A configuration built in Go: options count as given when they differ
// from their defaults.
func TestValidateGoBuilt(t *testing.T) {
	c := Defaults()
	c.Bonds = []Bond{DefaultBond("bond0", "m0", "m1")}
	if w, err := c.Validate(); err != nil || len(w) != 0 {
		t.Fatalf("default bond: %q, %v", w, err)
	}

	tests := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{"mode out of range", func(c *Config) { c.Bonds[0].Mode = 9 }, `bonds[0] (bond0): mode: invalid value "9" (allowed: balance-rr|0`},
		{"lacp_rate outside 802.3ad", func(c *Config) { c.Bonds[0].LACPRate = LACPRateFast }, "bonds[0] (bond0): lacp_rate: fast is not supported in mode balance-rr(0)"},
		{"no bonds", func(c *Config) { c.Bonds = nil }, "bonds: at least one bond is required"},
		{"no name", func(c *Config) { c.Bonds[0].Name = "" }, "bonds[0]: name: an interface name is required"},
		{"no slaves", func(c *Config) { c.Bonds[0].Slaves = nil }, "bonds[0] (bond0): slaves: at least one slave is required"},
		{"zero batch", func(c *Config) { c.Dataplane.Batch = 0 }, "dataplane.batch: 0 out of range (allowed 1..1024)"},
		{"bad level", func(c *Config) { c.Log.Level = "loud" }, `log.level: invalid value "loud"`},
		{"slave prio outside its modes", func(c *Config) { c.Bonds[0].Slaves[0].Prio = 3 }, "bonds[0] (bond0): slaves[0] (m0): prio: 3 is not supported in mode balance-rr(0)"},
		{"v6 address as ARP target", func(c *Config) { c.Bonds[0].ArpIPTargets = []netip.Addr{netip.MustParseAddr("::1")} }, `bonds[0] (bond0): arp_ip_target: invalid address "::1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			c.Bonds = []Bond{DefaultBond("bond0", "m0", "m1")}
			tt.modify(c)
			_, err := c.Validate()
			ok := slices.ContainsFunc(errLines(err), func(l string) bool { return strings.HasPrefix(l, tt.want) })
			if !ok {
				t.Errorf("errors:\n%v\nwant a line starting:\n%s", err, tt.want)
			}
		})
	}
}

func TestClone(t *testing.T) {
	c, _ := mustParse(t, bondYAML("arp_interval: 100", "arp_ip_target: 10.0.0.1", "vlans: [3]", `mac: "02:00:00:00:00:01"`))
	d := c.Clone()
	d.Bonds[0].ArpIPTargets[0] = netip.MustParseAddr("10.9.9.9")
	d.Bonds[0].VLANs[0] = 4
	d.Bonds[0].MAC[5] = 9
	d.Bonds[0].Slaves[0].Name = "x"
	d.Bonds[0].explicit["lacp_rate"] = true
	b := c.Bonds[0]
	if b.ArpIPTargets[0].String() != "10.0.0.1" || b.VLANs[0] != 3 || b.MAC[5] != 1 || b.Slaves[0].Name != "m0" || b.explicit["lacp_rate"] {
		t.Errorf("Clone shares memory: %+v", b)
	}
}
