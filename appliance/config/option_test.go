package config

import (
	"math"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestTableSanity(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range Options() {
		if seen[o.Key()] {
			t.Errorf("%s: listed twice", o.Key())
		}
		seen[o.Key()] = true
		if o.Desc == "" {
			t.Errorf("%s: no description", o.Key())
		}
		if o.get == nil || o.set == nil {
			t.Errorf("%s: no accessors", o.Key())
		}
		if o.hasStaticDefault() {
			if _, err := o.Parse(o.Default); err != nil {
				t.Errorf("%s: default %q does not parse: %v", o.Key(), o.Default, err)
			}
		}
		if (o.Section == SectionBond || o.Section == SectionSlave) && o.Modes == 0 {
			t.Errorf("%s: no modes", o.Key())
		}
		if o.Kind == KindInt && o.Min > o.Max {
			t.Errorf("%s: empty range", o.Key())
		}
	}
}

// Every option of bonding.rst and bond_options.c is in the table.
func TestEveryBondingOption(t *testing.T) {
	bonding := []string{
		"active_slave", "ad_actor_sys_prio", "ad_actor_system", "ad_select", "ad_user_port_key",
		"all_slaves_active", "arp_interval", "arp_ip_target", "ns_ip6_target", "arp_validate",
		"arp_all_targets", "arp_missed_max", "broadcast_neighbor", "coupled_control", "downdelay",
		"fail_over_mac", "lacp_active", "lacp_rate", "miimon", "min_links", "mode", "num_grat_arp",
		"num_unsol_na", "packets_per_slave", "peer_notif_delay", "primary", "primary_reselect",
		"tlb_dynamic_lb", "updelay", "use_carrier", "xmit_hash_policy", "resend_igmp", "lp_interval",
		"slaves",
	}
	for _, n := range bonding {
		if _, ok := LookupOption(n); !ok {
			t.Errorf("bonding option %s missing", n)
		}
	}
	for _, n := range []string{"prio", "queue_id", "actor_port_prio"} {
		if _, ok := LookupOption("bonds[].slaves[]." + n); !ok {
			t.Errorf("slave option %s missing", n)
		}
	}
	for _, n := range []string{"max_bonds", "tx_queues"} {
		if _, ok := notPerBond[n]; !ok {
			t.Errorf("module-global %s is not explained", n)
		}
	}
}

func TestLookupOption(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"miimon", "bonds[].miimon", true},
		{"bonds[].miimon", "bonds[].miimon", true},
		{"dataplane.batch", "dataplane.batch", true},
		{"bonds[].slaves[].prio", "bonds[].slaves[].prio", true},
		{"batch", "", false},
		{"miimom", "", false},
	}
	for _, tt := range tests {
		o, ok := LookupOption(tt.name)
		if ok != tt.ok || (ok && o.Key() != tt.key) {
			t.Errorf("LookupOption(%q) = %s, %v; want %s, %v", tt.name, o.Key(), ok, tt.key, tt.ok)
		}
	}
}

// Each enum and boolean value parses by name and by number.
func TestParseEnumByNameAndNumber(t *testing.T) {
	for _, o := range Options() {
		if o.Kind != KindEnum && o.Kind != KindBool {
			continue
		}
		for _, v := range o.Values {
			var want any = v.Num
			if o.Kind == KindBool {
				want = v.Num == 1
			}
			for _, in := range []string{v.Name, strconv.Itoa(v.Num), " " + v.Name + "\n"} {
				got, err := o.Parse(in)
				if err != nil || got != want {
					t.Errorf("%s: Parse(%q) = %v, %v; want %v", o.Key(), in, got, err, want)
				}
			}
		}
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		key  string
		in   string
		want any
		err  string
	}{
		{"mode", "802.3ad", 4, ""},
		{"mode", "4", 4, ""},
		{"mode", "default", 0, ""},
		{"mode", "5x", nil, `invalid value "5x" (allowed: balance-rr|0, active-backup|1, balance-xor|2, broadcast|3, 802.3ad|4, balance-tlb|5, balance-alb|6)`},
		{"mode", "7", nil, `invalid value "7" (allowed: balance-rr|0`},
		{"mode", "802.3AD", nil, `invalid value "802.3AD"`}, // case-sensitive, as bonding
		{"lacp_rate", "fast", 1, ""},
		{"lacp_rate", "1", 1, ""},
		{"lacp_rate", "default", nil, "invalid value"}, // bonding's table has no default
		{"lacp_active", "off", false, ""},
		{"lacp_active", "0", false, ""},
		{"lacp_active", "true", true, ""},
		{"lacp_active", "yes", nil, `invalid value "yes" (allowed: off|0, on|1)`},
		{"coupled_control", "off", false, ""},
		{"use_carrier", "1", true, ""},
		{"use_carrier", "0", false, ""},
		{"use_carrier", "2", nil, `invalid value "2" (allowed: off|0, on|1)`},
		{"miimon", "off", 0, ""},
		{"miimon", "maxval", math.MaxInt32, ""},
		{"miimon", "default", 0, ""},
		{"miimon", "-1", nil, "-1 out of range (allowed 0..2147483647 or off, maxval)"},
		{"miimon", "100ms", nil, `invalid value "100ms" (allowed 0..2147483647 or off, maxval)`},
		{"miimon", "99999999999999999999", nil, "invalid value"},
		{"num_grat_arp", "default", 1, ""},
		{"num_grat_arp", "maxval", 255, ""},
		{"packets_per_slave", "default", 1, ""},
		{"lp_interval", "minval", 1, ""},
		{"arp_missed_max", "default", 2, ""},
		{"ad_actor_sys_prio", "default", 65535, ""},
		{"peer_notif_delay", "300001", nil, "300001 out of range (allowed 0..300000 or off, maxval)"},
		{"dataplane.batch", "0", nil, "0 out of range (allowed 1..1024)"},
		{"dataplane.ring_size", "1000", nil, "1000 is not a power of two (allowed powers of two 64..16384)"},
		{"dataplane.ring_size", "4096", 4096, ""},
		{"dataplane.frame_size", "4096", 4096, ""},
		{"dataplane.frame_size", "3000", nil, `invalid value "3000" (allowed: 2048, 4096)`},
		{"dataplane.poll", "busy", "busy", ""},
		{"dataplane.poll", "spin", nil, `invalid value "spin" (allowed: busy, adaptive)`},
		{"dataplane.cores", "1, 3", []int{1, 3}, ""},
		{"dataplane.cores", "1024", nil, "1024 out of range (allowed 0..1023)"},
		{"dataplane.hugepages", "false", false, ""},
		{"control.socket", "run/x.sock", nil, "not an absolute path"},
		{"control.group", "bondctl", "bondctl", ""},
		{"control.group", "", "", ""},
		{"control.group", "9ops", nil, `"9ops" is not a group name (allowed: letters, digits, '_', '.', '-', not starting with a digit or '-')`},
		{"control.group", "a b", nil, "is not a group name"},
		{"control.max_clients", "0", nil, "0 out of range (allowed 1..1024)"},
		{"control.max_clients", "4", 4, ""},
		{"arp_ip_target", "10.0.0.1, 10.0.0.2", []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}, ""},
		{"arp_ip_target", "255.255.255.255", nil, "invalid ARP target 255.255.255.255"},
		{"arp_ip_target", "0.1.2.3", nil, "invalid ARP target 0.1.2.3"},
		{"arp_ip_target", "2001:db8::1", nil, `invalid address "2001:db8::1"`},
		{"arp_ip_target", "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9,1.1.1.10,1.1.1.11,1.1.1.12,1.1.1.13,1.1.1.14,1.1.1.15,1.1.1.16,1.1.1.17", nil, "17 addresses given (allowed at most 16)"},
		{"ns_ip6_target", "2001:db8::1", []netip.Addr{netip.MustParseAddr("2001:db8::1")}, ""},
		{"ns_ip6_target", "ff02::1", nil, "invalid NS target ff02::1"},
		{"ns_ip6_target", "::1", nil, "invalid NS target ::1"},
		{"ns_ip6_target", "10.0.0.1", nil, `invalid address "10.0.0.1"`},
		{"ad_actor_system", "02:00:00:00:00:01", net.HardwareAddr{2, 0, 0, 0, 0, 1}, ""},
		{"ad_actor_system", "01:00:5e:00:00:01", nil, "is a multicast address"},
		{"mac", "", net.HardwareAddr(nil), ""},
		{"mac", "00:00:00:00:00:00", nil, "not a valid bond address"},
		{"mac", "02:00:00:00:00:01:02:03", nil, "invalid MAC address"},
		{"primary", "eth0", "eth0", ""},
		{"primary", "", "", ""},
		{"primary", "eth0:1", nil, "contains '/' or ':'"},
		{"primary", "a-very-long-interface", nil, "longer than 15 characters"},
		{"name", "", nil, "an interface name is required"},
		{"slaves", "m0, m1", []Slave{defaultSlave("m0"), defaultSlave("m1")}, ""},
		{"bonds[].slaves[].prio", "-5", -5, ""},
		{"bonds[].slaves[].actor_port_prio", "65536", nil, "65536 out of range (allowed 0..65535 or minval, maxval, default)"},
	}
	for _, tt := range tests {
		o, ok := LookupOption(tt.key)
		if !ok {
			t.Fatalf("no option %s", tt.key)
		}
		got, err := o.Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: Parse(%q) error = %v; want containing %q", tt.key, tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Parse(%q) = %#v, %v; want %#v", tt.key, tt.in, got, err, tt.want)
		}
	}
}

// Every integer option refuses the values just outside its range.
func TestParseOutOfRange(t *testing.T) {
	for _, o := range Options() {
		if o.Kind != KindInt && o.Kind != KindIntList {
			continue
		}
		for _, n := range []int{o.Min - 1, o.Max + 1} {
			in := strconv.Itoa(n)
			_, err := o.Parse(in)
			want := in + " out of range (allowed " + o.Allowed() + ")"
			if err == nil || err.Error() != want {
				t.Errorf("%s: Parse(%q) error = %v; want %q", o.Key(), in, err, want)
			}
		}
		for _, n := range []int{o.Min, o.Max} {
			if _, err := o.Parse(strconv.Itoa(n)); err != nil {
				t.Errorf("%s: Parse(%d): %v", o.Key(), n, err)
			}
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	b := DefaultBond("bond0", "m0", "m1")
	b.ArpIPTargets = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	b.VLANs = []int{5, 6}
	b.Mode = Mode8023AD
	for _, o := range Options() {
		if o.Section != SectionBond || o.Flags&FlagRequired != 0 && o.Name == "name" {
			continue
		}
		v := o.Current(&b)
		got, err := o.Parse(o.Format(v))
		if err != nil {
			t.Errorf("%s: Parse(Format(%v)): %v", o.Name, v, err)
			continue
		}
		if o.Format(got) != o.Format(v) {
			t.Errorf("%s: round trip %q -> %q", o.Name, o.Format(v), o.Format(got))
		}
	}
	if got := opt("mode").Format(4); got != "802.3ad" {
		t.Errorf("Format(mode 4) = %q", got)
	}
}

func TestApply(t *testing.T) {
	b := DefaultBond("bond0", "m0", "m1")
	for _, tt := range []struct{ name, value string }{
		{"mode", "active-backup"}, {"miimon", "200"}, {"primary", "m1"}, {"arp_ip_target", "10.0.0.1"},
		{"num_unsol_na", "3"}, // an alias: num_grat_arp follows, or Validate would refuse
	} {
		o, _ := LookupOption(tt.name)
		v, err := o.Parse(tt.value)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Apply(&b, v); err != nil {
			t.Fatal(err)
		}
	}
	if b.Mode != ModeActiveBackup || b.Miimon != 200 || b.Primary != "m1" || len(b.ArpIPTargets) != 1 ||
		b.NumGratARP != 3 || b.NumUnsolNA != 3 {
		t.Errorf("Apply: got %+v", b)
	}
	o, _ := LookupOption("mode")
	if err := o.Apply(&b, 9); err == nil || !strings.Contains(err.Error(), `mode: invalid value "9"`) {
		t.Errorf("Apply(mode, 9) = %v", err)
	}
	o, _ = LookupOption("dataplane.batch")
	if err := o.Apply(&b, 3); err == nil {
		t.Error("Apply of a dataplane option to a bond succeeded")
	}
	c := Defaults()
	c.Bonds = []Bond{b}
	if _, err := c.Validate(); err != nil {
		t.Errorf("Validate after Apply: %v", err)
	}
}

func TestModeSet(t *testing.T) {
	if got := AllModes.String(); got != "all" {
		t.Errorf("AllModes = %q", got)
	}
	if got := lacpModes.String(); got != "802.3ad" {
		t.Errorf("lacpModes = %q", got)
	}
	if got := primaryModes.String(); got != "active-backup, balance-tlb, balance-alb" {
		t.Errorf("primaryModes = %q", got)
	}
	if AllModes.Has(7) || AllModes.Has(-1) {
		t.Error("Has accepts modes out of range")
	}
}

func TestMaxMTU(t *testing.T) {
	if got := MaxMTU(2048); got != 1774 {
		t.Errorf("MaxMTU(2048) = %d", got)
	}
	if got := MaxMTU(4096); got != 3822 {
		t.Errorf("MaxMTU(4096) = %d", got)
	}
}

func TestEditDistanceSuggest(t *testing.T) {
	tests := []struct {
		key  string
		want string
	}{
		{"miimom", "miimon"},
		{"Miimon", "miimon"},
		{"xmit_hash_polcy", "xmit_hash_policy"},
		{"lacprate", "lacp_rate"},
		{"zzzzzz", ""},
	}
	names := sectionNames(SectionBond)
	for _, tt := range tests {
		if got := suggest(tt.key, names); got != tt.want {
			t.Errorf("suggest(%q) = %q; want %q", tt.key, got, tt.want)
		}
	}
}
