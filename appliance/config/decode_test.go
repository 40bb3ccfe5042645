package config

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// bondYAML is a configuration with one bond, bond0 over m0 and m1, and the
// given extra bond keys (one "key: value" per line).
func bondYAML(extra ...string) string {
	var b strings.Builder
	b.WriteString("bonds:\n  - name: bond0\n    slaves: [m0, m1]\n")
	for _, e := range extra {
		b.WriteString("    " + e + "\n")
	}
	return b.String()
}

func mustParse(t *testing.T, y string) (*Config, []string) {
	t.Helper()
	c, w, err := Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", y, err)
	}
	return c, w
}

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// Every option without an explicit key has bonding's default (or the
// appliance's); the table and this list must agree.
func TestDefaults(t *testing.T) {
	saved := defaultCores
	defaultCores = func() []int { return []int{7} }
	defer func() { defaultCores = saved }()

	c, w := mustParse(t, bondYAML())
	if len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	want := map[string]any{
		"dataplane.cores":       []int{7},
		"dataplane.queues":      1,
		"dataplane.batch":       64,
		"dataplane.frame_size":  2048,
		"dataplane.ring_size":   2048,
		"dataplane.xdp_attach":  "auto",
		"dataplane.fast_path":   "auto",
		"dataplane.xdp_bind":    "auto",
		"dataplane.poll":        "adaptive",
		"dataplane.host_device": "veth",
		"dataplane.hugepages":   true,
		"control.socket":        "/run/bond-appliance/control.sock",
		"control.group":         "",
		"control.max_clients":   16,
		"control.state_dir":     "/var/lib/bond-appliance",
		"log.level":             "info",
		"log.format":            "text",
		"metrics.listen":        "",

		"name":               "bond0",
		"slaves":             []Slave{defaultSlave("m0"), defaultSlave("m1")},
		"mode":               ModeBalanceRR,
		"mac":                net.HardwareAddr(nil),
		"mtu":                1500,
		"vlans":              []int(nil),
		"force":              false,
		"combine_monitors":   false,
		"active_slave":       "",
		"ad_actor_sys_prio":  65535,
		"ad_actor_system":    net.HardwareAddr{0, 0, 0, 0, 0, 0},
		"ad_select":          ADSelectStable,
		"ad_user_port_key":   0,
		"all_slaves_active":  false,
		"arp_interval":       0,
		"arp_ip_target":      []netip.Addr(nil),
		"ns_ip6_target":      []netip.Addr(nil),
		"arp_validate":       ArpValidateNone,
		"arp_all_targets":    ArpAllTargetsAny,
		"arp_missed_max":     2,
		"broadcast_neighbor": false,
		"coupled_control":    true,
		"downdelay":          0,
		"fail_over_mac":      FailOverMACNone,
		"lacp_active":        true,
		"lacp_rate":          LACPRateSlow,
		"miimon":             DefaultMiimon,
		"min_links":          0,
		"num_grat_arp":       1,
		"num_unsol_na":       1,
		"packets_per_slave":  1,
		"peer_notif_delay":   0,
		"primary":            "",
		"primary_reselect":   PrimaryReselectAlways,
		"tlb_dynamic_lb":     true,
		"updelay":            0,
		"use_carrier":        true,
		"xmit_hash_policy":   XmitLayer2,
		"resend_igmp":        1,
		"lp_interval":        1,

		"bonds[].slaves[].name":            "m0",
		"bonds[].slaves[].prio":            0,
		"bonds[].slaves[].queue_id":        0,
		"bonds[].slaves[].actor_port_prio": 255,
	}
	b := &c.Bonds[0]
	for _, o := range Options() {
		t.Run(o.Key(), func(t *testing.T) {
			key := o.Key()
			if o.Section == SectionBond {
				key = o.Name
			}
			w, ok := want[key]
			if !ok {
				t.Fatalf("no expected default for %s", o.Key())
			}
			got := o.get(c, b, &b.Slaves[0])
			if !reflect.DeepEqual(got, w) {
				t.Errorf("default %#v; want %#v", got, w)
			}
			if o.hasStaticDefault() && o.Format(o.defaultValue()) != o.Format(w) {
				t.Errorf("table default %q; want %q", o.Default, o.Format(w))
			}
		})
	}
}

func TestDefaultCoresIsLastCPU(t *testing.T) {
	c := Defaults()
	if len(c.Dataplane.Cores) != 1 || c.Dataplane.Cores[0] < 0 || c.Dataplane.Queues != 1 {
		t.Errorf("default cores %v queues %d", c.Dataplane.Cores, c.Dataplane.Queues)
	}
	c, _ = mustParse(t, "dataplane:\n  cores: [0, 1]\n"+bondYAML())
	if c.Dataplane.Queues != 2 {
		t.Errorf("queues default %d; want len(cores) 2", c.Dataplane.Queues)
	}
}

// The same value by name, by number and by quoted number, for every enum
// and boolean bond option, in a mode that supports it.
func TestEnumsInYAML(t *testing.T) {
	context := map[string][]string{
		"arp_validate":    {"arp_interval: 100", "arp_ip_target: 10.0.0.1", "miimon: 0"},
		"arp_all_targets": {"arp_interval: 100", "arp_ip_target: 10.0.0.1", "miimon: 0"},
	}
	for _, o := range Options() {
		if o.Section != SectionBond || (o.Kind != KindEnum && o.Kind != KindBool) {
			continue
		}
		mode := 0
		for !o.Modes.Has(mode) {
			mode++
		}
		for _, v := range o.Values {
			for _, lit := range []string{v.Name, strconv.Itoa(v.Num), strconv.Quote(strconv.Itoa(v.Num))} {
				extra := append([]string{o.Name + ": " + lit}, context[o.Name]...)
				if o.Name != "mode" {
					extra = append(extra, "mode: "+strconv.Itoa(mode))
				}
				c, _, err := Parse([]byte(bondYAML(extra...)))
				if err != nil {
					t.Errorf("%s: %s: %v", o.Name, lit, err)
					continue
				}
				var want any = v.Num
				if o.Kind == KindBool {
					want = v.Num == 1
				}
				if got := o.Current(&c.Bonds[0]); got != want {
					t.Errorf("%s: %s: got %v; want %v", o.Name, lit, got, want)
				}
			}
		}
	}
}

func TestModeSpellings(t *testing.T) {
	for _, lit := range []string{"4", `"4"`, "802.3ad", `"802.3ad"`, "' 4 '"} {
		c, _ := mustParse(t, bondYAML("mode: "+lit))
		if c.Bonds[0].Mode != Mode8023AD {
			t.Errorf("mode: %s gave %d", lit, c.Bonds[0].Mode)
		}
	}
}

// Out-of-range values of every integer bond, slave and dataplane option,
// through the file.
func TestOutOfRangeInYAML(t *testing.T) {
	for _, o := range Options() {
		if o.Kind != KindInt {
			continue
		}
		for _, n := range []int{o.Min - 1, o.Max + 1} {
			var y, want string
			msg := strconv.Itoa(n) + " out of range (allowed " + o.Allowed() + ")"
			switch o.Section {
			case SectionBond:
				y = bondYAML(o.Name + ": " + strconv.Itoa(n))
				want = "bonds[0] (bond0): " + o.Name + ": " + msg
			case SectionSlave:
				y = "bonds:\n  - name: bond0\n    slaves: [{name: m0, " + o.Name + ": " + strconv.Itoa(n) + "}]\n"
				want = "bonds[0] (bond0): slaves[0] (m0): " + o.Name + ": " + msg
			default:
				y = string(o.Section) + ":\n  " + o.Name + ": " + strconv.Itoa(n) + "\n" + bondYAML()
				want = string(o.Section) + "." + o.Name + ": " + msg
			}
			_, _, err := Parse([]byte(y))
			if !slices.Contains(errLines(err), want) {
				t.Errorf("%s = %d: errors\n%v\nwant line %q", o.Key(), n, err, want)
			}
		}
	}
}

// The error lines of the brief, verbatim.
func TestErrorWording(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"bad mode", bondYAML("mode: 5x"), []string{
			`bonds[0] (bond0): mode: invalid value "5x" (allowed: balance-rr|0, active-backup|1, balance-xor|2, broadcast|3, 802.3ad|4, balance-tlb|5, balance-alb|6)`,
		}},
		{"batch", "dataplane:\n  batch: 0\n" + bondYAML(), []string{
			"dataplane.batch: 0 out of range (allowed 1..1024)",
		}},
		{"unknown bond key", bondYAML("miimom: 100"), []string{
			`bonds[0] (bond0): unknown key "miimom" (did you mean "miimon"?)`,
		}},
		{"several errors, one per line", "dataplane:\n  batch: 0\n" + bondYAML("mode: 5x", "miimom: 100"), []string{
			"dataplane.batch: 0 out of range (allowed 1..1024)",
			`bonds[0] (bond0): mode: invalid value "5x" (allowed: balance-rr|0, active-backup|1, balance-xor|2, broadcast|3, 802.3ad|4, balance-tlb|5, balance-alb|6)`,
			`bonds[0] (bond0): unknown key "miimom" (did you mean "miimon"?)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.yaml))
			if got := errLines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"top level", "dataplan:\n  batch: 1\n" + bondYAML(), `unknown key "dataplan" (did you mean "dataplane"?)`},
		{"top level, case", "Bonds: []\n" + bondYAML(), `unknown key "Bonds" (did you mean "bonds"?)`},
		{"top level, bond option", "miimon: 100\n" + bondYAML(), `unknown key "miimon" (it is a bond option: give it in an entry under bonds:)`},
		{"top level, nothing near", "frobnicate: 1\n" + bondYAML(), `unknown key "frobnicate"`},
		{"dataplane", "dataplane:\n  bacth: 1\n" + bondYAML(), `dataplane: unknown key "bacth" (did you mean "batch"?)`},
		{"control", "control:\n  sock: /x\n" + bondYAML(), `control: unknown key "sock" (did you mean "socket"?)`},
		{"log", "log:\n  levle: info\n" + bondYAML(), `log: unknown key "levle" (did you mean "level"?)`},
		{"bond", bondYAML("miimom: 100"), `bonds[0] (bond0): unknown key "miimom" (did you mean "miimon"?)`},
		{"bond, case-sensitive", bondYAML("Miimon: 100"), `bonds[0] (bond0): unknown key "Miimon" (did you mean "miimon"?)`},
		{"bond, dashes", bondYAML("xmit-hash-policy: layer2"), `bonds[0] (bond0): unknown key "xmit-hash-policy" (did you mean "xmit_hash_policy"?)`},
		{"slave", "bonds:\n  - name: bond0\n    slaves: [{name: m0, queue: 1}]\n", `bonds[0] (bond0): slaves[0] (m0): unknown key "queue" (did you mean "queue_id"?)`},
		{"max_bonds", bondYAML("max_bonds: 2"), "bonds[0] (bond0): max_bonds: rejected: a global parameter of the bonding module, not a per-bond option; every entry under bonds: creates one bond"},
		{"max_bonds top level", "max_bonds: 2\n" + bondYAML(), "max_bonds: rejected: a global parameter of the bonding module, not a per-bond option; every entry under bonds: creates one bond"},
		{"tx_queues", bondYAML("tx_queues: 16"), "bonds[0] (bond0): tx_queues: rejected: a global parameter of the bonding module, not a per-bond option; the queue count is dataplane.queues"},
		{"queue_id on the bond", bondYAML("queue_id: 1"), "bonds[0] (bond0): queue_id: rejected: a per-slave option: give it in the slave object, e.g. slaves: [{name: eth1, queue_id: 1}]"},
		{"bond without name", "bonds:\n  - slaves: [m0]\n    miimom: 1\n", `bonds[0]: unknown key "miimom" (did you mean "miimon"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.yaml))
			if !slices.Contains(errLines(err), tt.want) {
				t.Errorf("errors:\n%v\nwant line:\n%s", err, tt.want)
			}
		})
	}
}

func TestNotYAML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"broken flow", "bonds: [\n", "config is not valid YAML"},
		{"tab indent", "bonds:\n\t- name: bond0\n", "config is not valid YAML"},
		{"binary", "\x00\x01\x02\xff", "config is not valid YAML"},
		{"duplicate key", "log:\n  level: info\n  level: debug\n" + bondYAML(), `config is not valid YAML: line 3: mapping key "level" already defined at line 2`},
		{"top-level scalar", "just some text", `config: the top level must be a mapping with the keys dataplane, control, log, metrics, bonds, got "just some text"`},
		{"top-level list", "- a\n- b\n", "config: the top level must be a mapping with the keys dataplane, control, log, metrics, bonds, got a list"},
		{"empty", "", "bonds: at least one bond is required"},
		{"comment only", "# nothing\n", "bonds: at least one bond is required"},
		{"no bonds", "log:\n  level: info\n", "bonds: at least one bond is required"},
		{"empty bonds", "bonds: []\n", "bonds: at least one bond is required"},
		{"bonds a mapping", "bonds:\n  bond0: {}\n", "bonds: must be a list of bonds, got a mapping"},
		{"bond a scalar", "bonds: [bond0]\n", `bonds[0]: must be a mapping of keys, got "bond0"`},
		{"dataplane a list", "dataplane: [1]\n" + bondYAML(), "dataplane: must be a mapping of keys, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %v; want containing %q", tt.in, err, tt.want)
			}
			if c != nil {
				t.Errorf("Parse(%q) returned a config with an error", tt.in)
			}
			for _, l := range errLines(err) {
				if l == "" {
					t.Errorf("empty error line in %q", err)
				}
			}
		})
	}
}

func TestSlaves(t *testing.T) {
	y := `bonds:
  - name: bond0
    mode: active-backup
    slaves:
      - m0
      - {name: m1, prio: 10, queue_id: 1}
  - name: bond1
    mode: 802.3ad
    slaves: "m2, m3"
`
	c, _ := mustParse(t, "dataplane:\n  cores: [0]\n  queues: 2\n"+y)
	s := c.Bonds[0].Slaves
	if len(s) != 2 || s[0].Name != "m0" || s[1].Name != "m1" || s[1].Prio != 10 || s[1].QueueID != 1 || s[1].ActorPortPrio != 255 {
		t.Errorf("bond0 slaves %+v", s)
	}
	if s := c.Bonds[1].Slaves; len(s) != 2 || s[0].Name != "m2" || s[1].Name != "m3" {
		t.Errorf("bond1 slaves %+v", s)
	}

	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"duplicate", bondYAML()[:len(bondYAML())-len("[m0, m1]\n")] + "[m0, m1, m0]\n",
			`bonds[0] (bond0): slaves: duplicate slave "m0" (allowed: each interface once)`},
		{"duplicate object", "bonds:\n  - name: bond0\n    slaves: [m0, {name: m0}]\n",
			`bonds[0] (bond0): slaves: duplicate slave "m0" (allowed: each interface once)`},
		{"in two bonds", bondYAML() + "  - name: bond1\n    slaves: [m1, m2]\n",
			`bonds[1] (bond1): slaves: "m1" is already a slave of bond0 (allowed: an interface in one bond only)`},
		{"a bond as slave", bondYAML() + "  - name: bond1\n    slaves: [bond0]\n",
			`bonds[1] (bond1): slaves: "bond0" is the name of a bond (allowed: member interfaces only)`},
		{"duplicate bond name", bondYAML() + "  - name: bond0\n    slaves: [m2]\n",
			`bonds[1] (bond0): name: "bond0" is already used by bonds[0] (allowed: a name not used by another bond)`},
		{"no slaves key", "bonds:\n  - name: bond0\n", "bonds[0] (bond0): slaves: required (at least one member interface)"},
		{"empty slaves", "bonds:\n  - name: bond0\n    slaves: []\n", "bonds[0] (bond0): slaves: at least one slave is required"},
		{"no name", "bonds:\n  - slaves: [m0]\n", "bonds[0]: name: required (the bond's interface name)"},
		{"bad bond name", "bonds:\n  - name: bond/0\n    slaves: [m0]\n", `bonds[0]: name: invalid interface name "bond/0": contains '/' or ':'`},
		{"long bond name", "bonds:\n  - name: bond0123456789abc\n    slaves: [m0]\n", `bonds[0]: name: invalid interface name "bond0123456789abc": longer than 15 characters`},
		{"bad slave name", "bonds:\n  - name: bond0\n    slaves: [\"m 0\"]\n", `bonds[0] (bond0): slaves[0]: invalid interface name "m 0": contains whitespace`},
		{"slave object without name", "bonds:\n  - name: bond0\n    slaves: [{prio: 1}]\n", "bonds[0] (bond0): slaves[0]: name: required (the member's interface name)"},
		{"slave a list", "bonds:\n  - name: bond0\n    slaves: [[m0]]\n", "bonds[0] (bond0): slaves[0]: must be an interface name or a mapping, got a list"},
		{"queue_id above queues", "bonds:\n  - name: bond0\n    slaves: [{name: m0, queue_id: 2}]\n",
			"bonds[0] (bond0): slaves[0] (m0): queue_id: 2 out of range (allowed 0..1, the number of dataplane.queues)"},
		{"queue_id twice", "dataplane:\n  queues: 4\n  cores: [0]\nbonds:\n  - name: bond0\n    slaves: [{name: m0, queue_id: 2}, {name: m1, queue_id: 2}]\n",
			"bonds[0] (bond0): slaves[1] (m1): queue_id: 2 is already used by slave m0 (allowed: a queue id used by no other slave of the bond, or 0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.yaml))
			if !slices.Contains(errLines(err), tt.want) {
				t.Errorf("errors:\n%v\nwant line:\n%s", err, tt.want)
			}
		})
	}
}

func TestARPTargets(t *testing.T) {
	var l []string
	for i := 1; i <= 17; i++ {
		l = append(l, "10.0.0."+strconv.Itoa(i))
	}
	list := "[" + strings.Join(l, ", ") + "]"
	comma := strings.Join(l, ",")
	for _, v := range []string{list, comma} {
		_, _, err := Parse([]byte(bondYAML("arp_interval: 100", "arp_ip_target: "+v)))
		want := "bonds[0] (bond0): arp_ip_target: 17 addresses given (allowed at most 16)"
		if !slices.Contains(errLines(err), want) {
			t.Errorf("17 targets as %s: errors\n%v\nwant %q", v[:10], err, want)
		}
	}
	for _, v := range []string{"[" + strings.Join(l[:16], ", ") + "]", strings.Join(l[:16], ",")} {
		c, _ := mustParse(t, bondYAML("arp_interval: 100", "arp_ip_target: "+v))
		b := c.Bonds[0]
		if len(b.ArpIPTargets) != 16 || b.ArpInterval != 100 || b.Miimon != 0 {
			t.Errorf("16 targets: %d targets, arp_interval %d, miimon %d", len(b.ArpIPTargets), b.ArpInterval, b.Miimon)
		}
	}
	c, w := mustParse(t, bondYAML("arp_interval: 100", "arp_ip_target: [10.0.0.1, 10.0.0.2, 10.0.0.1]"))
	if got := c.Bonds[0].ArpIPTargets; len(got) != 2 {
		t.Errorf("duplicate target kept: %v", got)
	}
	if !slices.Contains(w, "bond0: Warning: duplicate address 10.0.0.1 in arp_ip_target, skipping") {
		t.Errorf("warnings %q", w)
	}
	_, _, err := Parse([]byte(bondYAML("arp_interval: 100", "ns_ip6_target: [2001:db8::1, 2001:db8::1]")))
	if want := "bonds[0] (bond0): ns_ip6_target: NS target 2001:db8::1 is already present (allowed: each address once)"; !slices.Contains(errLines(err), want) {
		t.Errorf("errors\n%v\nwant %q", err, want)
	}
	_, _, err = Parse([]byte(bondYAML("arp_ip_target: [10.0.0.1, [10.0.0.2]]")))
	if err == nil || !strings.Contains(err.Error(), "list elements must be single values") {
		t.Errorf("nested list: %v", err)
	}
}

func TestLoadExample(t *testing.T) {
	c, w, err := Load("../../configs/bond.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	if !reflect.DeepEqual(c.Dataplane.Cores, []int{1}) || c.Dataplane.Queues != 1 {
		t.Errorf("dataplane %+v", c.Dataplane)
	}
	if len(c.Bonds) != 1 {
		t.Fatalf("bonds %+v", c.Bonds)
	}
	b := c.Bonds[0]
	if b.Name != "bond0" || b.Mode != ModeBalanceXOR || b.XmitHashPolicy != XmitLayer34 || b.Miimon != 100 {
		t.Errorf("bond %+v", b)
	}
	if len(b.Slaves) != 2 || b.Slaves[0].Name != "m0" || b.Slaves[1].Name != "m1" {
		t.Errorf("slaves %+v", b.Slaves)
	}
	if _, _, err := Load("testdata/does-not-exist.yaml"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestYAMLScalars(t *testing.T) {
	tests := []struct {
		line string
		key  string
		want any
	}{
		{"miimon: 0x64", "miimon", 100},
		{"all_slaves_active: true", "all_slaves_active", true},
		{"all_slaves_active: True", "all_slaves_active", true},
		{"all_slaves_active: on", "all_slaves_active", true},
		{"all_slaves_active: 1", "all_slaves_active", true},
		{"tlb_dynamic_lb: off\n    mode: balance-tlb", "tlb_dynamic_lb", false},
		{"primary:\n    mode: active-backup", "primary", ""},
		{"vlans: 100", "vlans", []int{100}},
		{"vlans: [100, 200]", "vlans", []int{100, 200}},
		{`vlans: "100,200"`, "vlans", []int{100, 200}},
		{`mac: "02:00:00:00:00:01"`, "mac", net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		{"mac: 02:00:00:00:00:01", "mac", net.HardwareAddr{2, 0, 0, 0, 0, 1}},
	}
	for _, tt := range tests {
		c, _, err := Parse([]byte(bondYAML(tt.line)))
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		o, _ := LookupOption(tt.key)
		if got := o.Current(&c.Bonds[0]); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %#v; want %#v", tt.line, got, tt.want)
		}
	}
	for _, tt := range []struct{ line, want string }{
		{"miimon: 1.5", `bonds[0] (bond0): miimon: invalid value "1.5" (allowed 0..2147483647 or off, maxval)`},
		{"miimon: [1]", "bonds[0] (bond0): miimon: expected a single value, got a list (allowed: 0..2147483647 or off, maxval)"},
		{"mode: {a: 1}", "bonds[0] (bond0): mode: expected a value, got a mapping (allowed: balance-rr|0, active-backup|1, balance-xor|2, broadcast|3, 802.3ad|4, balance-tlb|5, balance-alb|6)"},
		{"force: yes", `bonds[0] (bond0): force: invalid value "yes" (allowed: false|0, true|1)`},
		{"vlans: [0]", "bonds[0] (bond0): vlans: 0 out of range (allowed 1..4094)"},
		{"vlans: [4095]", "bonds[0] (bond0): vlans: 4095 out of range (allowed 1..4094)"},
	} {
		_, _, err := Parse([]byte(bondYAML(tt.line)))
		if !slices.Contains(errLines(err), tt.want) {
			t.Errorf("%s: errors\n%v\nwant %q", tt.line, err, tt.want)
		}
	}
}

func TestAnchors(t *testing.T) {
	y := `x-common: &common [m0, m1]
bonds:
  - name: bond0
    slaves: *common
`
	_, _, err := Parse([]byte(y))
	if err == nil || !strings.Contains(err.Error(), `unknown key "x-common"`) {
		t.Errorf("extra top-level key: %v", err)
	}
	y = `bonds:
  - &b
    name: bond0
    slaves: [m0]
    miimon: 200
`
	c, _ := mustParse(t, y)
	if c.Bonds[0].Miimon != 200 {
		t.Errorf("anchored bond: %+v", c.Bonds[0])
	}
}
