package importer

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vishvananda/netlink"

	"github.com/bond-appliance/bond-appliance/appliance/config"
)

// want is what a bond must look like after an import: exactly these
// options taken from the input (by configuration key, in Option.Format's
// syntax), these slaves, and these slave queue ids.
type want struct {
	name   string
	slaves []string
	opts   map[string]string
	queue  map[string]int
}

type testCase struct {
	name  string
	load  func() (*Result, error)
	bonds []want
	// skipped: one substring per Skipped line (all lines accounted for).
	skipped []string
	// notes, warnings: substrings that must each occur in some line.
	notes    []string
	warnings []string
	// frameSize: dataplane.frame_size the YAML must give (0: 2048).
	frameSize int
}

func file(path string) func() (*Result, error) {
	return func() (*Result, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		switch {
		case strings.Contains(path, "modprobe"):
			return FromModprobe(f)
		default:
			return FromInterfaces(f)
		}
	}
}

func text(s string, from func(r *strings.Reader) (*Result, error)) func() (*Result, error) {
	return func() (*Result, error) { return from(strings.NewReader(s)) }
}

func modprobe(r *strings.Reader) (*Result, error) { return FromModprobe(r) }

func ifcfgDir(dir string) func() (*Result, error) {
	return func() (*Result, error) {
		files := map[string][]byte{}
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return nil, err
			}
			files[n] = b
		}
		return FromIfcfg(files)
	}
}

var lacpOpts = map[string]string{
	"mode": "802.3ad", "miimon": "100", "lacp_rate": "fast", "xmit_hash_policy": "layer3+4",
	"updelay": "200", "downdelay": "200", "min_links": "1",
}

func with(m map[string]string, kv ...string) map[string]string {
	c := map[string]string{}
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(c, kv[i])
		} else {
			c[kv[i]] = kv[i+1]
		}
	}
	return c
}

var cases = []testCase{
	// modprobe
	{
		name:    "modprobe/options bonding",
		load:    file("testdata/modprobe.d/bonding.conf"),
		bonds:   []want{{name: "bond0", opts: lacpOpts}},
		skipped: []string{"bond0: slaves: none found in the input"},
	},
	{
		name: "modprobe/alias, options bondN -o, install",
		load: file("testdata/modprobe.d/multi.conf"),
		bonds: []want{
			{name: "bond0", opts: map[string]string{"mode": "balance-rr", "miimon": "100", "packets_per_slave": "4"}},
			{name: "bond1", opts: map[string]string{"mode": "balance-alb", "miimon": "50", "lp_interval": "5"}},
			{name: "bond2", opts: map[string]string{"mode": "active-backup", "miimon": "100", "primary": "eth4"}},
		},
		skipped: []string{
			"bond0: slaves: none", "bond1: slaves: none", "bond2: slaves: none",
			`bond2: option arp_validate=all: all requires arp_interval (allowed without ARP monitoring: none|0) (modprobe:7)`,
		},
		warnings: []string{"bond2: Recording eth4 as primary, but it has not been enslaved yet"},
	},
	{
		name: "modprobe/bad values, max_bonds, non-module parameters",
		load: file("testdata/modprobe.d/problems.conf"),
		bonds: []want{
			{name: "bond0", opts: map[string]string{"mode": "active-backup", "miimon": "100", "arp_ip_target": "10.0.0.1,10.0.0.2", "num_grat_arp": "3", "use_carrier": "off"}},
			{name: "bond1", opts: map[string]string{"mode": "active-backup", "miimon": "100", "arp_ip_target": "10.0.0.1,10.0.0.2", "num_grat_arp": "3", "use_carrier": "off"}},
		},
		skipped: []string{
			`bonding: option tx_queues=32: a global parameter of the bonding module`,
			`bonding: option ad_actor_sys_prio=100: not a parameter of the bonding module`,
			`bonding: option fail_over_mac=actve: invalid value "actve" (allowed: none|0, active|1, follow|2)`,
			`bond0: option lacp_rate=fast: not supported in mode active-backup(1) (lacp_rate is supported in modes: 802.3ad)`,
			`bond1: option lacp_rate=fast: not supported in mode active-backup(1)`,
			"bond0: slaves: none", "bond1: slaves: none",
		},
	},
	{
		name: "modprobe/quoting, continuation, other modules, max_bonds=0",
		load: text("options bonding max_bonds=0 mode=\"balance-xor\"\noptions e1000e InterruptThrottleRate=3000\n"+
			"alias bond7 bonding\noptions bond7 miimon=200 \\\n  arp_interval=1000\n", modprobe),
		bonds: []want{{name: "bond7", opts: map[string]string{"mode": "balance-xor", "miimon": "200", "arp_interval": "1000"}}},
		skipped: []string{
			"bond7: slaves: none",
		},
		warnings: []string{"miimon (200) and arp_interval (1000) can't be used simultaneously"},
	},

	// ifupdown
	{
		name: "interfaces/bond-master slaves, LACP, VLAN, IP left to the host",
		load: file("testdata/interfaces/lacp"),
		bonds: []want{{name: "bond0", slaves: []string{"eno1", "eno2"},
			opts: with(lacpOpts, "mtu", "1500", "vlans", "100")}},
		notes: []string{
			"bond0: IP configuration inet static (address, gateway, dns-nameservers): not bonding configuration",
			"source /etc/network/interfaces.d/*: not followed",
		},
	},
	{
		name: "interfaces/underscores, primary on a slave stanza, hwaddress",
		load: file("testdata/interfaces/active-backup"),
		bonds: []want{{name: "bond0", slaves: []string{"eth0", "eth1"}, opts: map[string]string{
			"mode": "active-backup", "miimon": "100", "updelay": "200", "downdelay": "200",
			"fail_over_mac": "active", "primary": "eth0", "mac": "02:00:5e:10:00:01"}}},
		notes: []string{"bond0: IP configuration inet dhcp"},
	},
	{
		name: "interfaces/ifenslave, slaves, sysfs and ip link hooks",
		load: file("testdata/interfaces/legacy"),
		bonds: []want{
			{name: "bond0", slaves: []string{"eth2", "eth3"}, opts: map[string]string{"mode": "balance-xor", "xmit_hash_policy": "layer2+3"}},
			{name: "bond1", slaves: []string{"eth4", "eth5"}, opts: map[string]string{"mode": "broadcast", "miimon": "100"}},
			{name: "bond2", slaves: []string{"eth6", "eth7"}, opts: map[string]string{"mode": "active-backup", "miimon": "100", "peer_notif_delay": "200"}},
		},
		notes: []string{"bond0: post-up commands: not bonding configuration"},
	},
	{
		name: "interfaces/bad values, mode rules, cross-option rules, shared slave",
		load: file("testdata/interfaces/problems"),
		bonds: []want{
			{name: "bond0", slaves: []string{"eth0", "eth1"}, opts: map[string]string{"mode": "broadcast", "use_carrier": "off"}},
			{name: "bond1", slaves: []string{"eth9"}, opts: map[string]string{"mode": "active-backup"}},
		},
		skipped: []string{
			`bond0: option bond-miimon 1OO: invalid value "1OO" (allowed 0..2147483647 or off, maxval) (interfaces:6)`,
			`bond0: option bond-foo bar: not a bonding option`,
			`bond0: option bond-queue-id 2: a per-slave option`,
			`bond0: option bond-lacp-rate fast: not supported in mode broadcast(3)`,
			`bond0: option mtu 9500: 9500 out of range (allowed 68..9000)`,
			`bond0: slave eth0: option bond-queue-id 7: 7 out of range (allowed 0..1, the number of dataplane.queues)`,
			`bond0: option bond-arp-validate all: all requires arp_interval`,
			`bond1: slave eth1: "eth1" is already a slave of bond0`,
			`bond1: option bond-active-slave eth5: "eth5" is not a slave of bond1 (allowed: eth9, or empty)`,
		},
	},
	{
		name: "interfaces/ifupdown2 names and yes/no, jumbo MTU, vlan-raw-device",
		load: file("testdata/interfaces/ifupdown2"),
		bonds: []want{{name: "uplink", slaves: []string{"swp1", "swp2"}, opts: map[string]string{
			"mode": "802.3ad", "use_carrier": "on", "lacp_rate": "fast", "ad_actor_sys_prio": "100",
			"min_links": "1", "mtu": "3000", "vlans": "300"}}},
		skipped:   []string{"uplink: option bond-lacp-bypass-allow no: not a bonding option"},
		notes:     []string{"uplink: option mtu 3000: dataplane.frame_size is set to 4096"},
		frameSize: 4096,
	},
	{
		name: "interfaces/source directive followed",
		load: func() (*Result, error) { return FromInterfacesPath("testdata/interfaces/main") },
		bonds: []want{{name: "bond0", slaves: []string{"enp1s0f0", "enp1s0f1"}, opts: map[string]string{
			"mode": "balance-xor", "xmit_hash_policy": "layer2+3", "miimon": "100"}}},
	},

	{
		name: "interfaces/master commands name bonds only when they are bonds",
		load: func() (*Result, error) {
			return FromInterfaces(strings.NewReader("iface br0 inet manual\n  bridge_ports eth5\n  up ip link set eth6 master br0\n" +
				"iface bond0 inet manual\n  bond-slaves eth0\n  up ip link set dev eth1 master bond0\n"))
		},
		bonds: []want{{name: "bond0", slaves: []string{"eth0", "eth1"}, opts: map[string]string{}}},
	},

	{
		name: "interfaces/repeated sysfs writes accumulate, bad names",
		load: func() (*Result, error) {
			return FromInterfaces(strings.NewReader(`iface bond3 inet manual
    bond-slaves eth0 bad/name averyveryverylongname
    bond-mode active-backup
    pre-up echo 500 > /sys/class/net/bond3/bonding/arp_interval
    pre-up echo +192.0.2.1 > /sys/class/net/bond3/bonding/arp_ip_target
    pre-up echo +192.0.2.2 > /sys/class/net/bond3/bonding/arp_ip_target; echo +192.0.2.1 > /sys/class/net/bond3/bonding/arp_ip_target
    bond-arp-ip-target 198.51.100.1 198.51.100.2
    bond-miimon 0
iface bond3.7 inet manual
iface bond3.5000 inet manual
`))
		},
		bonds: []want{{name: "bond3", slaves: []string{"eth0"}, opts: map[string]string{
			"mode": "active-backup", "miimon": "0", "arp_interval": "500", "vlans": "7",
			"arp_ip_target": "198.51.100.1,198.51.100.2,192.0.2.1,192.0.2.2"}}},
		skipped: []string{
			`bond3: slave bad/name: invalid interface name "bad/name": contains '/' or ':'`,
			`bond3: slave averyveryverylongname: invalid interface name "averyveryverylongname": longer than 15 characters`,
			`bond3: VLAN iface bond3.5000: 5000 out of range (allowed 1..4094)`,
		},
	},

	// ifcfg
	{
		name: "ifcfg/BONDING_OPTS, MASTER/SLAVE, VLAN, MACADDR",
		load: func() (*Result, error) { return FromIfcfgDir("testdata/ifcfg/rhel") },
		bonds: []want{
			{name: "bond0", slaves: []string{"ens1f0", "ens1f1"}, opts: map[string]string{
				"mode": "802.3ad", "miimon": "100", "lacp_rate": "fast", "xmit_hash_policy": "layer3+4",
				"ad_select": "bandwidth", "mtu": "1500", "vlans": "200"}},
			{name: "bond1", slaves: []string{"eno3", "eno4"}, opts: map[string]string{
				"mode": "active-backup", "arp_interval": "1000", "arp_ip_target": "192.0.2.1,192.0.2.2",
				"arp_validate": "all", "primary": "eno3", "primary_reselect": "failure", "mac": "02:00:00:00:b0:01"}},
		},
		notes: []string{
			"bond0: IP configuration (IPADDR, PREFIX, GATEWAY)",
			"eno4: MASTER=bond1 without SLAVE=yes: taken as a slave of bond1",
		},
	},
	{
		name: "ifcfg/files as a map",
		load: ifcfgDir("testdata/ifcfg/rhel"),
		bonds: []want{
			{name: "bond0", slaves: []string{"ens1f0", "ens1f1"}, opts: map[string]string{
				"mode": "802.3ad", "miimon": "100", "lacp_rate": "fast", "xmit_hash_policy": "layer3+4",
				"ad_select": "bandwidth", "mtu": "1500", "vlans": "200"}},
			{name: "bond1", slaves: []string{"eno3", "eno4"}, opts: map[string]string{
				"mode": "active-backup", "arp_interval": "1000", "arp_ip_target": "192.0.2.1,192.0.2.2",
				"arp_validate": "all", "primary": "eno3", "primary_reselect": "failure", "mac": "02:00:00:00:b0:01"}},
		},
	},
	{
		name: "ifcfg/NetworkManager MASTER_UUID, quoting, bad BONDING_OPTS",
		load: func() (*Result, error) {
			return FromIfcfg(map[string][]byte{
				"/etc/sysconfig/network-scripts/ifcfg-Bond_connection_1": []byte(
					"BONDING_OPTS=\"downdelay=0 miimon=1 mode=balance-rr updelay=0 resend_igmp=300 packets_per_slave=0\"\n" +
						"TYPE=Bond\nBONDING_MASTER=yes\nNAME=\"Bond connection 1\"\nUUID=3bf9a0d7-5d5e-4a6b-9f2e-0d1c2e3f4a5b\nDEVICE=nm-bond\nONBOOT=yes\n"),
				"/etc/sysconfig/network-scripts/ifcfg-enp7s0": []byte(
					"TYPE=Ethernet\nNAME=enp7s0\nDEVICE=enp7s0\nONBOOT=yes\nMASTER_UUID=3bf9a0d7-5d5e-4a6b-9f2e-0d1c2e3f4a5b\nSLAVE=yes\n"),
				"/etc/sysconfig/network-scripts/ifcfg-enp8s0": []byte(
					"TYPE=Ethernet\nDEVICE='enp8s0'\nMASTER=nm-bond # the bond\nSLAVE=yes\n"),
				"/etc/sysconfig/network-scripts/route-nm-bond": []byte("10.0.0.0/8 via 192.0.2.1\n"),
			})
		},
		bonds: []want{{name: "nm-bond", slaves: []string{"enp7s0", "enp8s0"}, opts: map[string]string{
			"mode": "balance-rr", "miimon": "1", "updelay": "0", "downdelay": "0", "packets_per_slave": "0"}}},
		skipped: []string{`nm-bond: option resend_igmp=300: 300 out of range (allowed 0..255 or off, maxval, default)`},
	},
}

func TestImport(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.load()
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r, tc)
			roundTrip(t, r, tc.frameSize)
		})
	}
}

func checkResult(t *testing.T, r *Result, tc testCase) {
	t.Helper()
	var names []string
	for _, b := range r.Bonds {
		names = append(names, b.Name)
	}
	var wantNames []string
	for _, w := range tc.bonds {
		wantNames = append(wantNames, w.name)
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("bonds %q; want %q\nskipped:\n%s", names, wantNames, strings.Join(r.Skipped, "\n"))
	}
	for i, w := range tc.bonds {
		b := &r.Bonds[i]
		var slaves []string
		for _, s := range b.Slaves {
			slaves = append(slaves, s.Name)
			if s.QueueID != w.queue[s.Name] {
				t.Errorf("%s: slave %s: queue_id %d; want %d", b.Name, s.Name, s.QueueID, w.queue[s.Name])
			}
		}
		if !slices.Equal(slaves, w.slaves) {
			t.Errorf("%s: slaves %q; want %q", b.Name, slaves, w.slaves)
		}
		got := map[string]string{}
		for _, k := range b.Given {
			o, _ := config.LookupOption(k)
			got[k] = o.Format(o.Current(&b.Bond))
		}
		for k, v := range w.opts {
			if got[k] != v {
				t.Errorf("%s: %s = %q; want %q", b.Name, k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := w.opts[k]; !ok {
				t.Errorf("%s: unexpected option %s = %q", b.Name, k, v)
			}
		}
	}
	matchAll(t, "skipped", r.Skipped, tc.skipped, true)
	matchAll(t, "notes", r.Notes, tc.notes, false)
	matchAll(t, "warnings", r.Warnings, tc.warnings, false)
}

// matchAll checks that every substring in want occurs in a distinct line
// of got; with exact, that no line is left over.
func matchAll(t *testing.T, what string, got, want []string, exact bool) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && strings.Contains(g, w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("%s: no line contains %q; got:\n  %s", what, w, strings.Join(got, "\n  "))
		}
	}
	if exact {
		for i, g := range got {
			if !used[i] {
				t.Errorf("%s: unexpected line %q", what, g)
			}
		}
	}
}

// roundTrip checks that the YAML parses and gives every option the value
// the import found, and the same slaves.
func roundTrip(t *testing.T, r *Result, frameSize int) {
	t.Helper()
	y, err := r.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	if !strings.HasPrefix(string(y), "# bond-appliance configuration imported") {
		t.Errorf("YAML has no header comment:\n%s", y)
	}
	cfg, _, err := config.Parse(y)
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, y)
	}
	if frameSize == 0 {
		frameSize = 2048
	}
	if cfg.Dataplane.FrameSize != frameSize {
		t.Errorf("frame_size %d; want %d", cfg.Dataplane.FrameSize, frameSize)
	}
	def := config.Defaults()
	if cfg.Dataplane.Batch != def.Dataplane.Batch || cfg.Control.Socket != def.Control.Socket || cfg.Log.Level != def.Log.Level {
		t.Errorf("dataplane/control/log not at their defaults: %+v %+v %+v", cfg.Dataplane, cfg.Control, cfg.Log)
	}
	if len(cfg.Bonds) != len(r.Bonds) {
		t.Fatalf("YAML has %d bonds; want %d\n%s", len(cfg.Bonds), len(r.Bonds), y)
	}
	for i := range r.Bonds {
		b, p := &r.Bonds[i], &cfg.Bonds[i]
		if p.Name != b.Name {
			t.Errorf("bond %d: name %q; want %q", i, p.Name, b.Name)
		}
		for _, o := range config.Options() {
			if o.Section != config.SectionBond || o.Name == "slaves" || o.Name == "name" {
				continue
			}
			// Options left at their defaults must also agree, unless
			// bonding's own rules change them (listed in Warnings).
			if !slices.Contains(b.Given, o.Name) && len(r.Warnings) > 0 {
				continue
			}
			// A value bonding's rules change is named in a warning.
			if slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, o.Name) }) {
				continue
			}
			if g, w := o.Format(o.Current(p)), o.Format(o.Current(&b.Bond)); g != w {
				t.Errorf("%s: %s: YAML gives %q; import found %q\n%s", b.Name, o.Name, g, w, y)
			}
		}
		if len(b.Slaves) == 0 {
			if len(p.Slaves) != 1 || !strings.HasPrefix(p.Slaves[0].Name, "TODO") {
				t.Errorf("%s: slaves %v; want a TODO placeholder", b.Name, p.Slaves)
			}
			continue
		}
		if len(p.Slaves) != len(b.Slaves) {
			t.Errorf("%s: %d slaves; want %d", b.Name, len(p.Slaves), len(b.Slaves))
			continue
		}
		for j := range b.Slaves {
			if p.Slaves[j].Name != b.Slaves[j].Name || p.Slaves[j].QueueID != b.Slaves[j].QueueID ||
				p.Slaves[j].Prio != b.Slaves[j].Prio || p.Slaves[j].ActorPortPrio != b.Slaves[j].ActorPortPrio {
				t.Errorf("%s: slave %d: %+v; want %+v", b.Name, j, p.Slaves[j], b.Slaves[j])
			}
		}
	}
}

// Module parameters are the defaults of every bond; a bond's own settings
// win whatever the order of the sources.
func TestMergeModuleDefaults(t *testing.T) {
	const ifaces = `
iface bond0 inet manual
    bond-slaves eth0 eth1
    bond-xmit-hash-policy layer2+3
iface bond1 inet manual
    bond-slaves eth2 eth3
    bond-mode active-backup
`
	tc := testCase{
		bonds: []want{
			{name: "bond0", slaves: []string{"eth0", "eth1"}, opts: with(lacpOpts, "xmit_hash_policy", "layer2+3")},
			{name: "bond1", slaves: []string{"eth2", "eth3"}, opts: with(lacpOpts, "mode", "active-backup", "lacp_rate", "")},
		},
		skipped:  []string{"bond1: option lacp_rate=fast: not supported in mode active-backup(1)"},
		warnings: []string{"bond1: xmit_hash_policy param is irrelevant in mode fault-tolerance (active-backup)"},
	}
	for _, modprobeFirst := range []bool{true, false} {
		m, err := file("testdata/modprobe.d/bonding.conf")()
		if err != nil {
			t.Fatal(err)
		}
		i, err := FromInterfaces(strings.NewReader(ifaces))
		if err != nil {
			t.Fatal(err)
		}
		var r *Result
		if modprobeFirst {
			r = Merge(m, i)
		} else {
			r = Merge(i, m)
		}
		checkResult(t, r, tc)
		roundTrip(t, r, 0)
	}
}

// A bond's own link monitor wins over the module's other one: setting
// arp_interval through sysfs turns miimon off.
func TestMergeMonitorChoice(t *testing.T) {
	m, _ := FromModprobe(strings.NewReader("options bonding miimon=100 max_bonds=0\n"))
	c, _ := FromIfcfg(map[string][]byte{
		"ifcfg-bond1": []byte("DEVICE=bond1\nBONDING_OPTS='mode=1 arp_interval=1000 arp_ip_target=192.0.2.1 arp_validate=all'\n"),
		"ifcfg-bond2": []byte("DEVICE=bond2\nBONDING_OPTS='mode=1'\n"),
		"ifcfg-eth0":  []byte("DEVICE=eth0\nMASTER=bond1\nSLAVE=yes\n"),
		"ifcfg-eth1":  []byte("DEVICE=eth1\nMASTER=bond2\nSLAVE=yes\n"),
	})
	r := Merge(m, c)
	checkResult(t, r, testCase{bonds: []want{
		{name: "bond1", slaves: []string{"eth0"}, opts: map[string]string{
			"mode": "active-backup", "arp_interval": "1000", "arp_ip_target": "192.0.2.1", "arp_validate": "all"}},
		{name: "bond2", slaves: []string{"eth1"}, opts: map[string]string{"mode": "active-backup", "miimon": "100"}},
	}})
	if r.Bonds[0].Miimon != 0 {
		t.Errorf("bond1: miimon %d; want 0", r.Bonds[0].Miimon)
	}
	roundTrip(t, r, 0)
}

// Bonds the module creates (max_bonds) that no source gives slaves are
// dropped once another bond has slaves.
func TestMergeDropsEmptyModuleBonds(t *testing.T) {
	m, _ := FromModprobe(strings.NewReader("options bonding max_bonds=3 miimon=100\n"))
	if len(m.Bonds) != 3 {
		t.Fatalf("modprobe alone: %d bonds; want 3", len(m.Bonds))
	}
	i, _ := FromInterfaces(strings.NewReader("iface bond1 inet manual\n  bond-slaves eth0\n"))
	r := Merge(m, i)
	tc := testCase{
		bonds: []want{{name: "bond1", slaves: []string{"eth0"}, opts: map[string]string{"miimon": "100"}}},
		notes: []string{"bond0: created by the bonding module (max_bonds) but given no slaves", "bond2: created by the bonding module"},
	}
	checkResult(t, r, tc)
	roundTrip(t, r, 0)
}

// A bond read from the kernel replaces what files say about it.
func TestMergeKernelWins(t *testing.T) {
	i, _ := FromInterfaces(strings.NewReader("iface bond0 inet manual\n  bond-slaves eth7\n  bond-mode balance-rr\n"))
	bond, links, sysfs := lacpBond()
	k, err := FromNetlink(bond, links, sysfs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Result{Merge(i, k), Merge(k, i)} {
		tc := lacpKernelCase()
		tc.notes = append(tc.notes, "bond0: taken from the running kernel")
		checkResult(t, r, tc)
	}
}

func lacpBond() (*netlink.Bond, []netlink.Link, *fstest.MapFS) {
	perm := net.HardwareAddr{0x3c, 0xfd, 0xfe, 0x00, 0x00, 0x01}
	b := netlink.NewLinkBond(netlink.LinkAttrs{Name: "bond0", Index: 10, MTU: 1500, HardwareAddr: perm})
	b.Mode = netlink.BOND_MODE_802_3AD
	b.ActiveSlave = 0
	b.Miimon, b.UpDelay, b.DownDelay, b.UseCarrier = 100, 200, 200, 1
	b.ArpInterval, b.ArpValidate, b.ArpAllTargets = 0, netlink.BOND_ARP_VALIDATE_NONE, netlink.BOND_ARP_ALL_TARGETS_ANY
	b.Primary, b.PrimaryReselect, b.FailOverMac = 0, netlink.BOND_PRIMARY_RESELECT_ALWAYS, netlink.BOND_FAIL_OVER_MAC_NONE
	b.XmitHashPolicy = netlink.BOND_XMIT_HASH_POLICY_LAYER3_4
	b.ResendIgmp, b.NumPeerNotif, b.AllSlavesActive, b.MinLinks, b.LpInterval, b.PacketsPerSlave = 1, 1, 0, 1, 1, 1
	b.LacpRate, b.AdSelect = netlink.BOND_LACP_RATE_FAST, netlink.BOND_AD_SELECT_STABLE
	b.AdActorSysPrio, b.AdUserPortKey, b.AdActorSystem, b.TlbDynamicLb = 65535, 0, net.HardwareAddr{0, 0, 0, 0, 0, 0}, 1
	links := []netlink.Link{
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: 1}},
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth1", Index: 3, MasterIndex: 10, HardwareAddr: perm,
			Slave: &netlink.BondSlave{QueueId: 1, PermHardwareAddr: net.HardwareAddr{0x3c, 0xfd, 0xfe, 0, 0, 2}}}},
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2, MasterIndex: 10, HardwareAddr: perm,
			Slave: &netlink.BondSlave{PermHardwareAddr: perm}}},
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth2", Index: 4}},
		b,
		&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "bond0.100", Index: 11, ParentIndex: 10}, VlanId: 100},
		&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "eth2.5", Index: 12, ParentIndex: 4}, VlanId: 5},
	}
	sysfs := &fstest.MapFS{
		"lacp_active":     {Data: []byte("off 0\n")},
		"arp_missed_max":  {Data: []byte("2\n")},
		"coupled_control": {Data: []byte("1\n")},
		"ns_ip6_target":   {Data: []byte("\n")},
	}
	return b, links, sysfs
}

func lacpKernelCase() testCase {
	return testCase{
		bonds: []want{{name: "bond0", slaves: []string{"eth0", "eth1"}, queue: map[string]int{"eth1": 1},
			opts: with(lacpOpts, "lacp_active", "off", "vlans", "100")}},
		notes: []string{"bond0: slave prio and actor_port_prio: not read"},
	}
}

func TestFromNetlink(t *testing.T) {
	t.Run("802.3ad", func(t *testing.T) {
		b, links, sysfs := lacpBond()
		r, err := FromNetlink(b, links, sysfs)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, r, lacpKernelCase())
		roundTrip(t, r, 0)
	})
	t.Run("active-backup, ARP, set MAC, jumbo, no sysfs", func(t *testing.T) {
		b := netlink.NewLinkBond(netlink.LinkAttrs{Name: "bond1", Index: 20, MTU: 3000,
			HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}})
		b.Mode = netlink.BOND_MODE_ACTIVE_BACKUP
		b.Miimon, b.ArpInterval = 0, 500
		b.ArpIpTargets = []net.IP{net.ParseIP("192.0.2.1").To4(), net.ParseIP("192.0.2.2").To4()}
		b.ArpValidate = netlink.BOND_ARP_VALIDATE_ALL
		b.Primary, b.ActiveSlave = 22, 21
		b.UseCarrier = 0
		b.FailOverMac = netlink.BOND_FAIL_OVER_MAC_ACTIVE
		b.NumPeerNotif = 2
		links := []netlink.Link{b,
			&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "ens1", Index: 21, MasterIndex: 20,
				Slave: &netlink.BondSlave{PermHardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 1, 1}}}},
			&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "ens2", Index: 22, MasterIndex: 20,
				Slave: &netlink.BondSlave{PermHardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 1, 2}}}},
		}
		r, err := FromNetlink(b, links, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, r, testCase{
			bonds: []want{{name: "bond1", slaves: []string{"ens1", "ens2"}, opts: map[string]string{
				"mode": "active-backup", "miimon": "0", "arp_interval": "500", "arp_ip_target": "192.0.2.1,192.0.2.2",
				"arp_validate": "all", "primary": "ens2", "fail_over_mac": "active", "num_grat_arp": "2",
				"mtu": "3000", "mac": "02:00:00:00:00:99", "use_carrier": "off"}}},
			notes: []string{
				"bond1: active slave ens1: the current active slave is runtime state",
				"bond1: ns_ip6_target, peer_notif_delay, lacp_active, arp_missed_max, coupled_control, broadcast_neighbor: not read",
				"bond1: option mtu 3000: dataplane.frame_size is set to 4096",
			},
		})
		roundTrip(t, r, 4096)
	})
}

func TestFromKernelErrors(t *testing.T) {
	_, err := FromKernel("nosuchbond0")
	if err != nil && strings.Contains(err.Error(), "over netlink") {
		t.Skipf("netlink unavailable: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), `no bond "nosuchbond0": no interface of that name`) {
		t.Errorf("FromKernel(nosuchbond0) = %v; want no bond", err)
	}
	_, err = FromKernel("lo")
	if err == nil || !strings.Contains(err.Error(), `lo is a device of type "device", not a bond`) {
		t.Errorf("FromKernel(lo) = %v; want not a bond", err)
	}
}

// source-directory reads the directory's files whose names run-parts
// would run (no dots), relative to the including file.
func TestInterfacesSourceDirectory(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "interfaces.d"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "interfaces"), []byte("auto lo\niface lo inet loopback\nsource-directory interfaces.d\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "interfaces.d", "bond0"), []byte("iface bond0 inet manual\n  bond-slaves eth0 eth1\n  bond-mode 1\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "interfaces.d", "bond0.dpkg-old"), []byte("iface bond9 inet manual\n  bond-slaves eth8\n"), 0o644))
	r, err := FromInterfacesPath(filepath.Join(dir, "interfaces"))
	must(err)
	checkResult(t, r, testCase{bonds: []want{{name: "bond0", slaves: []string{"eth0", "eth1"}, opts: map[string]string{"mode": "active-backup"}}}})
}

func TestNoBonds(t *testing.T) {
	r, err := FromInterfaces(strings.NewReader("auto lo\niface lo inet loopback\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.YAML(); err == nil || !strings.Contains(err.Error(), "no bond found") {
		t.Errorf("YAML() = %v; want no bond found", err)
	}
	r, _ = FromModprobe(strings.NewReader("options bonding max_bonds=0 miimon=100\n"))
	if _, err := r.YAML(); err == nil {
		t.Error("modprobe with max_bonds=0: YAML succeeded")
	}
}

// The header lists what was not carried over, the notes and warnings.
func TestYAMLHeader(t *testing.T) {
	r, err := FromModprobePath("testdata/modprobe.d")
	if err != nil {
		t.Fatal(err)
	}
	y, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"#   testdata/modprobe.d\n",
		"# Not carried over (",
		"#   - bonding: option tx_queues=32:",
		"# Warnings bonding gives",
		"slaves: [TODO0-bond0] # TODO: the input names no slaves",
	} {
		if !strings.Contains(string(y), w) {
			t.Errorf("YAML lacks %q:\n%s", w, y)
		}
	}
	if _, _, err := config.Parse(y); err != nil {
		t.Error(err)
	}
}

func TestParseHook(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []hookCmd
	}{
		{"/sbin/ifenslave bond0 eth0 eth1", []hookCmd{{bond: "bond0", slave: "eth0"}, {bond: "bond0", slave: "eth1"}}},
		{"ifenslave -f bond0 eth0", []hookCmd{{bond: "bond0", slave: "eth0"}}},
		{"ifenslave -d bond0 eth0", nil},
		{"ifenslave -c bond0 eth1", nil},
		{"echo +eth3 > /sys/class/net/bond1/bonding/slaves", []hookCmd{{bond: "bond1", slave: "eth3"}}},
		{`echo "fast" > /sys/class/net/bond1/bonding/lacp_rate`, []hookCmd{{bond: "bond1", option: "lacp_rate", value: "fast", text: `echo "fast" > .../lacp_rate`}}},
		{"echo +bond3 > /sys/class/net/bonding_masters", []hookCmd{{bond: "bond3"}}},
		{"ip link add bond4 type bond mode 802.3ad", []hookCmd{{bond: "bond4"}, {bond: "bond4", option: "mode", value: "802.3ad", text: "ip link mode 802.3ad"}}},
		{"ip link set dev eth9 master bond4", []hookCmd{{bond: "bond4", slave: "eth9", weak: true}}},
		{"ip route add default via 192.0.2.1", nil},
	} {
		if got := parseHook(tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("parseHook(%q) = %+v; want %+v", tc.line, got, tc.want)
		}
	}
}

func TestShellValue(t *testing.T) {
	for in, want := range map[string]string{
		`"mode=4 miimon=100"`:   "mode=4 miimon=100",
		`'a b'`:                 "a b",
		`plain # comment`:       "plain",
		`"say \"hi\"" trailing`: `say "hi"`,
		`a\ b`:                  "a b",
		`""`:                    "",
	} {
		if got := shellValue(in); got != want {
			t.Errorf("shellValue(%s) = %q; want %q", in, got, want)
		}
	}
}
