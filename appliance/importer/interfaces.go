package importer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// FromInterfaces reads ifupdown configuration (interfaces(5): Debian's
// ifupdown with ifenslave, ifupdown2, ifupdown-ng) and imports its bonds:
//
//   - bond stanzas: "iface bond0 inet ..." with bond-mode, bond-miimon,
//     bond-slaves, bond-primary, bond-lacp-rate, bond-xmit-hash-policy,
//     bond-updelay, ... (any bonding option as bond-NAME or bond_NAME,
//     with - or _), the older "slaves eth0 eth1", ifupdown-ng's
//     bond-members, mtu and hwaddress;
//   - slave stanzas: "bond-master bond0" (with bond-primary, and
//     bond-queue-id for the slave's queue_id; other bond-* options there
//     apply to the master where its own stanza does not set them);
//   - hook commands: "up ifenslave bond0 eth0 eth1",
//     "pre-up echo 100 > /sys/class/net/bond0/bonding/miimon",
//     "up ip link add bond0 type bond mode 802.3ad", "up ip link set eth0 master bond0";
//   - VLANs above a bond ("iface bond0.100", or vlan-raw-device bond0).
//
// IP configuration of the bond stays with the host and is listed in
// Notes. "source" directives are not followed (use FromInterfacesPath).
func FromInterfaces(r io.Reader) (*Result, error) {
	res := newResult()
	p := &ifupParser{res: res}
	if err := p.read("interfaces", r, nil); err != nil {
		return nil, err
	}
	p.apply()
	res.finish()
	return res, nil
}

// FromInterfacesPath is FromInterfaces for a file such as
// /etc/network/interfaces; it follows its "source" and "source-directory"
// directives (relative paths from the file's directory).
func FromInterfacesPath(path string) (*Result, error) {
	res := newResult(path)
	p := &ifupParser{res: res}
	if err := p.readFile(path, 0); err != nil {
		return nil, err
	}
	p.apply()
	res.finish()
	return res, nil
}

type ifupOpt struct {
	key, value, src string
}

type stanza struct {
	name    string
	src     string
	methods []string // "inet static", ...
	opts    []ifupOpt
}

type ifupParser struct {
	res      *Result
	stanzas  []*stanza
	included map[string]bool
}

func (p *ifupParser) stanza(name, src string) *stanza {
	for _, s := range p.stanzas {
		if s.name == name {
			return s
		}
	}
	s := &stanza{name: name, src: src}
	p.stanzas = append(p.stanzas, s)
	return s
}

func (p *ifupParser) readFile(path string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("importer: %s: source directives nested too deeply", path)
	}
	if p.included == nil {
		p.included = map[string]bool{}
	}
	abs, _ := filepath.Abs(path)
	if p.included[abs] {
		return nil
	}
	p.included[abs] = true
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("importer: %w", err)
	}
	defer f.Close()
	dir := filepath.Dir(path)
	return p.read(path, f, func(kind, arg string) error {
		if !filepath.IsAbs(arg) {
			arg = filepath.Join(dir, arg)
		}
		var files []string
		if kind == "source" {
			m, err := filepath.Glob(arg)
			if err != nil {
				return fmt.Errorf("importer: %s: %w", path, err)
			}
			files = m
		} else {
			ents, err := os.ReadDir(arg)
			if err != nil {
				return fmt.Errorf("importer: %w", err)
			}
			for _, e := range ents {
				if !e.IsDir() && sourceDirName.MatchString(e.Name()) {
					files = append(files, filepath.Join(arg, e.Name()))
				}
			}
		}
		slices.Sort(files)
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.IsDir() {
				continue
			}
			if err := p.readFile(f, depth+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// sourceDirName: the file names source-directory reads (run-parts rules).
var sourceDirName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// read parses one interfaces file; include (nil: not followed) handles
// source and source-directory.
func (p *ifupParser) read(name string, r io.Reader, include func(kind, arg string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var cur *stanza
	n, start := 0, 0
	var cont strings.Builder
	for sc.Scan() {
		n++
		line := sc.Text()
		if cont.Len() == 0 {
			start = n
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cont.WriteString(line)
		line = strings.TrimSpace(cont.String())
		cont.Reset()
		if line == "" {
			continue
		}
		src := name + ":" + strconv.Itoa(start)
		key, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(key, '\t'); i >= 0 {
			key, rest = key[:i], key[i+1:]+" "+rest
		}
		rest = strings.TrimSpace(rest)
		switch {
		case key == "iface":
			f := strings.Fields(rest)
			if len(f) == 0 {
				cur = nil
				continue
			}
			cur = p.stanza(f[0], src)
			if len(f) >= 3 {
				cur.methods = append(cur.methods, f[1]+" "+f[2])
			}
		case key == "source" || key == "source-directory" || key == "source-dir":
			cur = nil
			kind := "source"
			if key != "source" {
				kind = "source-directory"
			}
			if include == nil {
				p.res.note("", key+" "+rest, "not followed: import the included files too (or give the path of the interfaces file)", src)
				continue
			}
			if err := include(kind, rest); err != nil {
				return err
			}
		case key == "auto" || strings.HasPrefix(key, "allow-") || key == "mapping" ||
			key == "rename" || key == "template" || key == "no-auto-down" || key == "no-scripts":
			cur = nil
		default:
			if cur != nil {
				cur.opts = append(cur.opts, ifupOpt{key: key, value: rest, src: src})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("importer: %s: %w", name, err)
	}
	return nil
}

// bondKey returns the bonding name of an ifupdown option ("bond-lacp-rate",
// "bond_lacp_rate" -> "lacp_rate"), and whether it is a bonding option.
func bondKey(key string) (string, bool) {
	k := strings.ToLower(key)
	if k == "slaves" {
		return "slaves", true
	}
	if !strings.HasPrefix(k, "bond-") && !strings.HasPrefix(k, "bond_") {
		return "", false
	}
	k = strings.ReplaceAll(k[5:], "-", "_")
	if a, ok := ifupAliases[k]; ok {
		k = a
	}
	return k, true
}

// ifupAliases: names ifupdown2 and ifupdown-ng use for bonding options.
var ifupAliases = map[string]string{
	"members":           "slaves",
	"ports":             "slaves",
	"ad_sys_priority":   "ad_actor_sys_prio",
	"ad_sys_mac_addr":   "ad_actor_system",
	"peer_notify_delay": "peer_notif_delay",
	"missed_max":        "arp_missed_max",
}

// ipKeys are ifupdown options that configure IP on an interface.
var ipKeys = map[string]bool{
	"address": true, "netmask": true, "gateway": true, "broadcast": true, "network": true,
	"pointopoint": true, "metric": true, "scope": true, "hostname": true, "media": true,
	"accept_ra": true, "autoconf": true, "privext": true, "dhcp": true, "request_prefix": true,
	"leasetime": true, "vendor": true, "client": true, "dad-attempts": true, "dad-interval": true,
}

var hookKeys = map[string]bool{
	"up": true, "pre-up": true, "post-up": true, "down": true, "pre-down": true, "post-down": true,
}

func (p *ifupParser) apply() {
	r := p.res
	// Which stanzas are bonds, which are slaves of which bond.
	isBond := map[string]bool{}
	masterOf := map[string]string{}
	for _, s := range p.stanzas {
		for _, o := range s.opts {
			k, ok := bondKey(o.key)
			switch {
			case ok && k == "master":
				masterOf[s.name] = strings.TrimSpace(o.value)
			case ok && k != "queue_id" && k != "primary":
				isBond[s.name] = true
			}
		}
	}
	for sl, m := range masterOf {
		isBond[m] = true
		delete(isBond, sl)
	}
	// Hooks can create bonds and enslave (ifenslave, sysfs, ip link).
	for _, s := range p.stanzas {
		for _, o := range s.opts {
			if hookKeys[strings.ToLower(o.key)] && !strings.Contains(o.key, "down") {
				for _, c := range parseHook(o.value) {
					if !c.weak {
						isBond[c.bond] = true
					}
				}
			}
		}
	}

	// Bonds, in the order of their stanzas (or of their first mention).
	for _, s := range p.stanzas {
		if isBond[s.name] {
			r.bond(s.name, s.src)
		}
	}
	for _, s := range p.stanzas {
		for _, o := range s.opts {
			if hookKeys[strings.ToLower(o.key)] && !strings.Contains(o.key, "down") {
				for _, c := range parseHook(o.value) {
					if !c.weak {
						r.bond(c.bond, o.src)
					}
				}
			}
		}
	}
	for _, m := range masterOf {
		r.bond(m, "")
	}

	for _, s := range p.stanzas {
		switch {
		case isBond[s.name]:
			p.master(s)
		case masterOf[s.name] != "":
			p.slave(s, r.lookup(masterOf[s.name]))
		}
	}
	// Slave stanzas' bond-* options apply where the master does not set
	// them (ifenslave creates the master from the first slave's stanza).
	for _, s := range p.stanzas {
		m := r.lookup(masterOf[s.name])
		if m == nil {
			continue
		}
		scratch := &rawBond{name: m.name, opts: map[string]given{}}
		for _, o := range s.opts {
			k, ok := bondKey(o.key)
			if !ok || k == "master" || k == "queue_id" || k == "slaves" {
				continue
			}
			r.setOption(scratch, k, o.value, o.key+" "+o.value, o.src, false)
		}
		for k, g := range scratch.opts {
			if _, ok := m.opts[k]; !ok {
				m.opts[k] = g
			}
		}
	}
	// Hooks in any stanza.
	for _, s := range p.stanzas {
		for _, o := range s.opts {
			if !hookKeys[strings.ToLower(o.key)] {
				continue
			}
			if strings.Contains(o.key, "down") {
				continue
			}
			for _, c := range parseHook(o.value) {
				b := r.lookup(c.bond)
				if b == nil || !isBond[c.bond] {
					continue
				}
				switch {
				case c.slave != "":
					r.addSlave(b, c.slave, o.src)
				case c.option != "":
					r.setOption(b, c.option, c.value, c.text, o.src, false)
				}
			}
		}
	}
	// VLANs above bonds.
	for _, s := range p.stanzas {
		base, id, ok := strings.Cut(s.name, ".")
		raw := ""
		for _, o := range s.opts {
			switch strings.ToLower(o.key) {
			case "vlan-raw-device", "vlan_raw_device":
				raw = o.value
			case "vlan-id", "vlan_id":
				id, ok = o.value, true
			}
		}
		if raw != "" {
			base = raw
			if !ok {
				id = strings.TrimLeftFunc(s.name, func(c rune) bool { return c < '0' || c > '9' })
			}
		}
		if b := r.lookup(base); b != nil && (ok || raw != "") && isBond[base] {
			r.addVLAN(b, id, "iface "+s.name, s.src)
		}
	}
}

// master imports the options of a bond's stanza.
func (p *ifupParser) master(s *stanza) {
	r := p.res
	b := r.lookup(s.name)
	var ipOpts, hooks []string
	ipSrc := ""
	for _, o := range s.opts {
		key := strings.ToLower(o.key)
		text := o.key + " " + o.value
		if k, ok := bondKey(o.key); ok {
			switch k {
			case "slaves":
				for _, sl := range strings.Fields(strings.ReplaceAll(o.value, ",", " ")) {
					switch sl {
					case "none":
					case "all", "glob", "regex":
						r.skip(s.name, "option "+text, "interface patterns are not expanded: list the members", o.src)
					default:
						r.addSlave(b, sl, o.src)
					}
				}
			case "master":
				r.skip(s.name, "option "+text, "a bond inside a bond is not supported", o.src)
			case "queue_id":
				r.skip(s.name, "option "+text, "a per-slave option: give bond-queue-id in the slave's stanza", o.src)
			case "give_a_chance", "wait_for_slaves":
				r.note(s.name, "option "+text, "ifenslave timing, not a bonding option; not needed", o.src)
			default:
				r.setOption(b, k, o.value, text, o.src, false)
			}
			continue
		}
		switch {
		case key == "mtu":
			r.setOption(b, "mtu", o.value, text, o.src, true)
		case key == "hwaddress":
			v := strings.Fields(o.value)
			if len(v) == 2 && v[0] == "ether" {
				v = v[1:]
			}
			if len(v) != 1 {
				r.skip(s.name, "option "+text, "not an Ethernet address", o.src)
				continue
			}
			r.setOption(b, "mac", v[0], text, o.src, true)
		case ipKeys[key] || strings.HasPrefix(key, "dns-") || strings.HasPrefix(key, "dns_"):
			ipOpts = appendNew(ipOpts, o.key)
			if ipSrc == "" {
				ipSrc = o.src
			}
		case hookKeys[key]:
			if len(parseHook(o.value)) == 0 && !strings.Contains(o.value, "ifenslave") && !strings.Contains(o.value, "/bonding") {
				hooks = append(hooks, o.key)
			}
		default:
			r.skip(s.name, "option "+text, "not a bonding option, and not carried over", o.src)
		}
	}
	methods := slices.DeleteFunc(slices.Clone(s.methods), func(m string) bool { return strings.HasSuffix(m, " manual") })
	if len(methods) > 0 || len(ipOpts) > 0 {
		what := strings.Join(methods, ", ")
		if len(ipOpts) > 0 {
			what += " (" + strings.Join(ipOpts, ", ") + ")"
		}
		if ipSrc == "" {
			ipSrc = s.src
		}
		r.note(s.name, "IP configuration "+strings.TrimSpace(what), "not bonding configuration: keep it in the host's network configuration, for the host device "+s.name+" the appliance creates", ipSrc)
	}
	if len(hooks) > 0 {
		r.note(s.name, strings.Join(appendNew([]string(nil), hooks...), ", ")+" commands", "not bonding configuration: keep them in the host's network configuration", s.src)
	}
}

// slave imports a slave stanza (bond-master NAME).
func (p *ifupParser) slave(s *stanza, b *rawBond) {
	r := p.res
	var sl *rawSlave
	for _, o := range s.opts {
		if k, ok := bondKey(o.key); ok && k == "master" {
			sl = r.addSlave(b, s.name, o.src)
		}
	}
	if sl == nil {
		return
	}
	for _, o := range s.opts {
		if k, ok := bondKey(o.key); ok && k == "queue_id" {
			r.setSlaveOption(b, sl, "queue_id", o.value, o.key+" "+o.value, o.src)
		}
	}
}

// hookCmd is what a hook command does to a bond: enslave slave, or set
// option to value.
type hookCmd struct {
	bond, slave, option, value, text string
	// weak: "ip link set X master M", where M may be a bridge: used only
	// when M is known to be a bond.
	weak bool
}

var (
	sysfsEcho   = regexp.MustCompile(`echo\s+(?:-n\s+)?("[^"]*"|'[^']*'|\S+)\s*>>?\s*/sys/class/net/([^/\s]+)/bonding/([a-z_0-9]+)`)
	sysfsMaster = regexp.MustCompile(`echo\s+(?:-n\s+)?["']?\+([^\s"']+)["']?\s*>>?\s*/sys/class/net/bonding_masters`)
)

// parseHook finds bonding commands in a hook line: ifenslave, writes to
// /sys/class/net/*/bonding, "ip link add|set ... type bond ...", "ip link
// set X master BOND".
func parseHook(line string) []hookCmd {
	var out []hookCmd
	for _, m := range sysfsMaster.FindAllStringSubmatch(line, -1) {
		out = append(out, hookCmd{bond: m[1]})
	}
	for _, m := range sysfsEcho.FindAllStringSubmatch(line, -1) {
		v, bond, opt := unquote(m[1]), m[2], m[3]
		switch {
		case opt == "slaves" && strings.HasPrefix(v, "+"):
			out = append(out, hookCmd{bond: bond, slave: v[1:]})
		case opt == "slaves":
		default:
			out = append(out, hookCmd{bond: bond, option: opt, value: v, text: "echo " + m[1] + " > .../" + opt})
		}
	}
	for cmd := range strings.FieldsFuncSeq(line, func(r rune) bool { return r == ';' || r == '&' || r == '|' }) {
		w := strings.Fields(cmd)
		if len(w) == 0 {
			continue
		}
		switch filepath.Base(w[0]) {
		case "ifenslave":
			a := w[1:]
			for len(a) > 0 && strings.HasPrefix(a[0], "-") {
				if a[0] != "-f" && a[0] != "--force" {
					a = nil // -d (detach), -c (change active), -a, ...: not an enslave
					break
				}
				a = a[1:]
			}
			if len(a) >= 2 {
				for _, s := range a[1:] {
					out = append(out, hookCmd{bond: a[0], slave: s})
				}
			}
		case "ip":
			out = append(out, parseIPLink(w[1:])...)
		}
	}
	return out
}

// parseIPLink reads "link add [name] BOND type bond K V ...", "link set
// [dev] BOND type bond K V ..." and "link set [dev] X master BOND".
func parseIPLink(w []string) []hookCmd {
	if len(w) < 3 || w[0] != "link" && w[0] != "l" {
		return nil
	}
	verb, a := w[1], w[2:]
	if verb != "add" && verb != "set" {
		return nil
	}
	dev := ""
	var out []hookCmd
	for i := 0; i < len(a); i++ {
		switch a[i] {
		case "name", "dev":
			if i+1 < len(a) {
				dev = a[i+1]
				i++
			}
		case "master":
			if i+1 < len(a) && dev != "" {
				out = append(out, hookCmd{bond: a[i+1], slave: dev, weak: true})
				i++
			}
		case "type":
			if i+1 < len(a) && a[i+1] == "bond" && dev != "" {
				out = append(out, hookCmd{bond: dev})
				kv := a[i+2:]
				for j := 0; j+1 < len(kv); j += 2 {
					k := kv[j]
					if ak, ok := ifupAliases[k]; ok {
						k = ak
					}
					out = append(out, hookCmd{bond: dev, option: k, value: kv[j+1], text: "ip link " + kv[j] + " " + kv[j+1]})
				}
				return out
			}
			i++
		default:
			if dev == "" && !strings.HasPrefix(a[i], "-") {
				dev = a[i]
			}
		}
	}
	return out
}
