// Package importer reads Linux bonding configuration in the forms
// operators have — modprobe options (/etc/modprobe.d), ifupdown
// (/etc/network/interfaces), sysconfig/initscripts ifcfg files, and a live
// kernel bond read over netlink — and produces the equivalent bond-appliance
// configuration (YAML that config.Parse accepts), listing what it could not
// carry over and why.
//
// Every value goes through the configuration's option table
// (config.Option.Parse), so a value the appliance would refuse is reported
// with the option's own error text instead of being written. Options that
// the bond's mode does not support, and values that break a cross-option
// rule of the configuration (config.Parse), are left out and reported the
// same way; the YAML a Result produces always parses.
//
// Sources combine (Merge) as the kernel combines them: the parameters of
// "options bonding" are the defaults of every bond; per-bond settings
// (ifupdown, ifcfg, "options bond0") override them, later sources over
// earlier ones; a bond read from the running kernel replaces whatever the
// files said about it.
package importer

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bond-appliance/bond-appliance/appliance/config"
)

// Result is what an import found.
type Result struct {
	// Bonds are the bonds found, with the options taken from the input.
	Bonds []Bond
	// Skipped lists what could not be carried over, one line each:
	// "bond0: option lacp_rate=fast: not supported in mode
	// active-backup(1) ... (/etc/modprobe.d/bonding.conf:3)".
	Skipped []string
	// Notes are things the importer did or deliberately left to the
	// host (IP addressing of the bond device, hook commands), and other
	// remarks for the operator.
	Notes []string
	// Warnings are the warnings the bonding driver (and so the
	// appliance) gives for the imported configuration, such as an
	// updelay rounded down to a multiple of miimon.
	Warnings []string
	// Sources name the inputs, for the YAML header.
	Sources []string

	// What was read, before the checks that produce the fields above.
	raw      []*rawBond
	module   []given // "options bonding" parameters, in input order
	skipped0 []string
	notes0   []string

	frameSize int   // dataplane.frame_size needed by the bonds' MTU (0: default)
	err       error // why no YAML can be produced
}

// Bond is one imported bond.
type Bond struct {
	// Bond holds the option values: the input's where given, the
	// configuration's defaults elsewhere.
	config.Bond
	// Given lists the bond options taken from the input, by their
	// configuration key, in option-table order. Only these (and name
	// and slaves) are written to the YAML.
	Given []string
	// Source says where the bond was defined ("/etc/network/interfaces:12").
	Source string

	from      map[string]given            // Given options, as written
	slaveFrom map[string]map[string]given // slave options given, by slave name
}

// given is one option value taken from the input.
type given struct {
	name string // configuration key ("lacp_rate")
	v    any    // as config.Option.Parse returns it
	text string // as the input writes it ("bond-lacp-rate fast")
	src  string // where ("interfaces:12")
}

type rawSlave struct {
	name string
	src  string
	opts map[string]given // slave options (queue_id, prio, actor_port_prio)
}

type rawBond struct {
	name   string
	src    string
	opts   map[string]given // bond options by configuration key
	slaves []rawSlave
	// implicit: created by the bonding module (max_bonds) rather than
	// named by the input.
	implicit bool
	// complete: read from a running kernel, which reports every
	// option; module defaults do not apply and it replaces file
	// settings when merged.
	complete bool
}

func newResult(sources ...string) *Result { return &Result{Sources: sources} }

// bond returns the raw bond named name, creating it.
func (r *Result) bond(name, src string) *rawBond {
	for _, b := range r.raw {
		if b.name == name {
			if b.src == "" {
				b.src = src
			}
			return b
		}
	}
	b := &rawBond{name: name, src: src, opts: map[string]given{}}
	r.raw = append(r.raw, b)
	return b
}

func (r *Result) lookup(name string) *rawBond {
	for _, b := range r.raw {
		if b.name == name {
			return b
		}
	}
	return nil
}

// skip records something not carried over: "bond0: option x=y: reason (src)".
func (r *Result) skip(bond, what, reason, src string) {
	r.skipped0 = append(r.skipped0, message(bond, what, reason, src))
}

// note records a remark for the operator.
func (r *Result) note(bond, what, reason, src string) {
	r.notes0 = append(r.notes0, message(bond, what, reason, src))
}

func message(bond, what, reason, src string) string {
	var b strings.Builder
	if bond != "" {
		b.WriteString(bond + ": ")
	}
	if what != "" {
		b.WriteString(what + ": ")
	}
	b.WriteString(reason)
	if src != "" {
		b.WriteString(" (" + src + ")")
	}
	return b.String()
}

// Reasons for bonding names that are not options of a bond entry.
var notPerBond = map[string]string{
	"max_bonds": "a global parameter of the bonding module: every bond of the configuration is an entry under bonds:",
	"tx_queues": "a global parameter of the bonding module: the queue count of the appliance is dataplane.queues",
}

// bondOption returns the option table entry of a bonding option
// ("miimon"), or an explanation why name is not one. Appliance extensions
// (mtu, mac, ...) are not bonding options.
func bondOption(name string) (config.Option, string) {
	if why, ok := notPerBond[name]; ok {
		return config.Option{}, why
	}
	o, ok := config.LookupOption(name)
	if !ok || o.Section != config.SectionBond || o.Flags&config.FlagExtension != 0 || o.Name == "slaves" {
		if so, ok := config.LookupOption("bonds[].slaves[]." + name); ok && name != "name" {
			return config.Option{}, "a per-slave option, not a bond option (" + so.Desc + ")"
		}
		return config.Option{}, "not a bonding option"
	}
	return o, ""
}

// normalize turns a value as written in the input into Option.Parse's
// syntax: lists comma-separated with sysfs's "+" prefixes dropped, yes/no
// (ifupdown2) as 1/0 for booleans.
func normalize(o config.Option, value string) string {
	s := strings.TrimSpace(unquote(strings.TrimSpace(value)))
	switch o.Kind {
	case config.KindIPv4List, config.KindIPv6List, config.KindIntList, config.KindSlaves:
		f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		for i := range f {
			f[i] = strings.TrimPrefix(f[i], "+")
		}
		return strings.Join(f, ",")
	case config.KindBool:
		switch strings.ToLower(s) {
		case "yes":
			return "1"
		case "no":
			return "0"
		}
	}
	return s
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// setOption parses value for the bonding option name of bond b and records
// it; text is how the input writes it, for messages. Appliance keys (mtu,
// mac) are accepted when ext is set.
func (r *Result) setOption(b *rawBond, name, value, text, src string, ext bool) {
	var o config.Option
	var why string
	if ext && (name == "mtu" || name == "mac") {
		o, _ = config.LookupOption(name)
	} else if o, why = bondOption(name); why != "" {
		r.skip(b.name, "option "+text, why, src)
		return
	}
	v, err := o.Parse(normalize(o, value))
	if err != nil {
		r.skip(b.name, "option "+text, err.Error(), src)
		return
	}
	r.put(b, given{name: o.Name, v: v, text: text, src: src})
}

// put records a parsed value. Lists (arp_ip_target, ns_ip6_target, vlans)
// accumulate, as repeated sysfs writes ("+addr") do; num_unsol_na is
// recorded as num_grat_arp, the one setting both names stand for.
func (r *Result) put(b *rawBond, g given) {
	if g.name == "num_unsol_na" {
		g.name = "num_grat_arp"
	}
	if old, ok := b.opts[g.name]; ok {
		switch l := g.v.(type) {
		case []int:
			g.v = appendNew(slices.Clone(old.v.([]int)), l...)
			g.text = old.text + ", " + g.text
		case []netip.Addr:
			g.v = appendNew(slices.Clone(old.v.([]netip.Addr)), l...)
			g.text = old.text + ", " + g.text
		}
	}
	b.opts[g.name] = g
}

func appendNew[T comparable](l []T, add ...T) []T {
	for _, x := range add {
		if !slices.Contains(l, x) {
			l = append(l, x)
		}
	}
	return l
}

// addSlave adds a member to b.
func (r *Result) addSlave(b *rawBond, name, src string) *rawSlave {
	for i := range b.slaves {
		if b.slaves[i].name == name {
			return &b.slaves[i]
		}
	}
	o, _ := config.LookupOption("slaves")
	if _, err := o.Parse(name); err != nil || strings.Contains(name, ",") {
		if err == nil {
			err = fmt.Errorf("invalid interface name %q", name)
		}
		r.skip(b.name, "slave "+name, err.Error(), src)
		return nil
	}
	b.slaves = append(b.slaves, rawSlave{name: name, src: src, opts: map[string]given{}})
	return &b.slaves[len(b.slaves)-1]
}

// setSlaveOption parses value for the slave option name (queue_id, prio,
// actor_port_prio) of slave s of bond b.
func (r *Result) setSlaveOption(b *rawBond, s *rawSlave, name, value, text, src string) {
	o, ok := config.LookupOption("bonds[].slaves[]." + name)
	if !ok || name == "name" {
		r.skip(b.name, "slave "+s.name+": option "+text, "not a slave option", src)
		return
	}
	v, err := o.Parse(normalize(o, value))
	if err != nil {
		r.skip(b.name, "slave "+s.name+": option "+text, err.Error(), src)
		return
	}
	s.opts[name] = given{name: name, v: v, text: text, src: src}
}

// addVLAN records a VLAN above bond b.
func (r *Result) addVLAN(b *rawBond, id, text, src string) {
	o, _ := config.LookupOption("vlans")
	v, err := o.Parse(id)
	if err != nil {
		r.skip(b.name, "VLAN "+text, err.Error(), src)
		return
	}
	r.put(b, given{name: "vlans", v: v, text: text, src: src})
}

// Merge combines results, in order: bonds of the same name are one bond,
// a later source's per-bond options override an earlier one's, the
// parameters of "options bonding" are the defaults of every bond that does
// not set them, and a bond read from a running kernel replaces what other
// sources said about it. Bonds the bonding module would create (max_bonds)
// that no source gives slaves are dropped when another bond has slaves.
func Merge(results ...*Result) *Result {
	m := &Result{}
	for _, r := range results {
		if r == nil {
			continue
		}
		m.Sources = append(m.Sources, r.Sources...)
		m.skipped0 = append(m.skipped0, r.skipped0...)
		m.notes0 = append(m.notes0, r.notes0...)
		m.module = append(m.module, r.module...)
		for _, rb := range r.raw {
			old := m.lookup(rb.name)
			switch {
			case old == nil:
				m.raw = append(m.raw, rb.clone())
			case rb.complete:
				if !old.implicit || len(old.opts) > 0 || len(old.slaves) > 0 {
					m.notes0 = append(m.notes0, message(rb.name, "", "taken from the running kernel ("+rb.src+"); what other sources say about this bond is not used", ""))
				}
				*old = *rb.clone()
			case old.complete:
				m.notes0 = append(m.notes0, message(rb.name, "", "taken from the running kernel ("+old.src+"); "+rb.src+" is not used for this bond", ""))
			default:
				old.overlay(rb)
			}
		}
	}
	m.finish()
	return m
}

func (b *rawBond) clone() *rawBond {
	c := *b
	c.opts = maps.Clone(b.opts)
	c.slaves = slices.Clone(b.slaves)
	for i := range c.slaves {
		c.slaves[i].opts = maps.Clone(c.slaves[i].opts)
	}
	return &c
}

// overlay adds what n says about the same bond. Options of a bond the
// module created (implicit) are module parameters: they only fill gaps.
func (b *rawBond) overlay(n *rawBond) {
	if b.implicit && !n.implicit {
		b.src = n.src
	}
	for k, g := range n.opts {
		if _, ok := b.opts[k]; ok && n.implicit {
			continue
		}
		b.opts[k] = g
	}
	for _, s := range n.slaves {
		i := slices.IndexFunc(b.slaves, func(x rawSlave) bool { return x.name == s.name })
		if i < 0 {
			b.slaves = append(b.slaves, rawSlave{name: s.name, src: s.src, opts: maps.Clone(s.opts)})
			continue
		}
		maps.Copy(b.slaves[i].opts, s.opts)
	}
	b.implicit = b.implicit && n.implicit
}

// finish turns what was read into Bonds, Skipped, Notes and Warnings: it
// applies module defaults, leaves out options the mode does not support,
// and validates the configuration the way config.Parse does, leaving out
// (and reporting) values it refuses.
func (r *Result) finish() {
	r.Skipped = slices.Clone(r.skipped0)
	r.Notes = slices.Clone(r.notes0)
	r.Warnings, r.err, r.frameSize, r.Bonds = nil, nil, 0, nil

	// Module-created bonds nobody gives slaves to are only kept when
	// no bond has slaves (modprobe options alone).
	withSlaves := slices.ContainsFunc(r.raw, func(b *rawBond) bool { return len(b.slaves) > 0 })
	nameOpt, _ := config.LookupOption("name")
	for _, rb := range r.raw {
		if _, err := nameOpt.Parse(rb.name); err != nil {
			r.Skipped = append(r.Skipped, message(rb.name, "bond", err.Error(), rb.src))
			continue
		}
		if rb.implicit && len(rb.slaves) == 0 && withSlaves {
			r.Notes = append(r.Notes, message(rb.name, "", "created by the bonding module (max_bonds) but given no slaves by any source; not imported", ""))
			continue
		}
		r.Bonds = append(r.Bonds, r.effective(rb))
	}
	if len(r.Bonds) == 0 {
		r.err = fmt.Errorf("importer: no bond found in the input")
		return
	}

	mtuOpt, _ := config.LookupOption("mtu")
	for i := range r.Bonds {
		b := &r.Bonds[i]
		if len(b.Slaves) == 0 {
			r.Skipped = append(r.Skipped, message(b.Name, "slaves", fmt.Sprintf(
				"none found in the input (modprobe options never name slaves); the YAML names the placeholder %s, which the appliance refuses to start with: replace it with the members, or import the ifupdown or ifcfg files too", placeholder(i, b.Name)), b.Source))
		}
		if b.given("mtu") && b.MTU > config.MaxMTU(2048) {
			if b.MTU <= config.MaxMTU(4096) {
				r.frameSize = 4096
				r.Notes = append(r.Notes, message(b.Name, "option "+b.from["mtu"].text, "dataplane.frame_size is set to 4096: an MTU above "+strconv.Itoa(config.MaxMTU(2048))+" does not fit a 2048-byte frame", b.from["mtu"].src))
			} else if b.MTU <= config.MaxJumboMTU {
				r.Notes = append(r.Notes, message(b.Name, "option "+b.from["mtu"].text, "a jumbo MTU: frames span several AF_XDP frames (multi-buffer AF_XDP, Linux ≥ 6.6, and members whose drivers take the MTU)", b.from["mtu"].src))
			} else {
				r.drop(b, mtuOpt, fmt.Sprintf("%d is above the largest MTU the appliance carries (allowed at most %d); the bond keeps the default MTU", b.MTU, config.MaxJumboMTU))
			}
		}
	}

	// One value at a time, so that each message describes the
	// configuration as it then is.
	for range 1000 {
		_, warns, err := config.Parse(r.render(false))
		if err == nil {
			r.Warnings = warns
			return
		}
		lines := strings.Split(err.Error(), "\n")
		if !slices.ContainsFunc(lines, r.fix) {
			r.err = fmt.Errorf("importer: the imported configuration does not validate:\n%s", err)
			return
		}
	}
	r.err = fmt.Errorf("importer: the imported configuration does not validate")
}

// effective builds a Bond from a raw one: module defaults for options it
// does not set, then its own options, leaving out those its mode does not
// support.
func (r *Result) effective(rb *rawBond) Bond {
	b := Bond{Bond: config.DefaultBond(rb.name), Source: rb.src, from: map[string]given{}, slaveFrom: map[string]map[string]given{}}
	opts := maps.Clone(rb.opts)
	if !rb.complete {
		for _, g := range r.module {
			if _, ok := rb.opts[g.name]; ok {
				continue
			}
			// A bond's own choice of link monitor wins over the
			// module's other one, as setting it through sysfs or
			// netlink turns the other off.
			if g.name == "miimon" && positive(rb.opts["arp_interval"]) || g.name == "arp_interval" && positive(rb.opts["miimon"]) {
				continue
			}
			opts[g.name] = g
		}
	}
	mode := config.ModeBalanceRR
	if g, ok := opts["mode"]; ok {
		mode = g.v.(int)
	}
	for _, o := range config.Options() {
		if o.Section != config.SectionBond {
			continue
		}
		g, ok := opts[o.Name]
		if !ok {
			continue
		}
		if !o.Modes.Has(mode) {
			r.Skipped = append(r.Skipped, message(rb.name, "option "+g.text, fmt.Sprintf(
				"not supported in mode %s(%d) (%s is supported in modes: %s); bonding ignores it at module load and refuses it through sysfs and netlink",
				config.ModeName(mode), mode, o.Name, o.Modes), g.src))
			continue
		}
		if err := o.Apply(&b.Bond, g.v); err != nil { // values were parsed by the same option
			r.Skipped = append(r.Skipped, message(rb.name, "option "+g.text, err.Error(), g.src))
			continue
		}
		b.Given = append(b.Given, o.Name)
		b.from[o.Name] = g
	}
	if g, ok := b.from["num_grat_arp"]; ok {
		b.NumUnsolNA = g.v.(int)
	}
	if !b.given("miimon") && b.ArpInterval > 0 {
		b.Miimon = 0
	}
	slavesOpt, _ := config.LookupOption("slaves")
	for _, rs := range rb.slaves {
		v, err := slavesOpt.Parse(rs.name)
		if err != nil {
			continue // reported by addSlave
		}
		s := v.([]config.Slave)[0]
		for _, o := range config.Options() {
			g, ok := rs.opts[o.Name]
			if o.Section != config.SectionSlave || !ok {
				continue
			}
			if !o.Modes.Has(mode) {
				r.Skipped = append(r.Skipped, message(rb.name, "slave "+rs.name+": option "+g.text, fmt.Sprintf(
					"not supported in mode %s(%d) (%s is supported in modes: %s)", config.ModeName(mode), mode, o.Name, o.Modes), g.src))
				continue
			}
			setSlaveField(&s, o.Name, g.v)
			if b.slaveFrom[rs.name] == nil {
				b.slaveFrom[rs.name] = map[string]given{}
			}
			b.slaveFrom[rs.name][o.Name] = g
		}
		b.Slaves = append(b.Slaves, s)
	}
	return b
}

func positive(g given) bool {
	n, ok := g.v.(int)
	return ok && n > 0
}

func setSlaveField(s *config.Slave, name string, v any) {
	switch name {
	case "prio":
		s.Prio = v.(int)
	case "queue_id":
		s.QueueID = v.(int)
	case "actor_port_prio":
		s.ActorPortPrio = v.(int)
	}
}

func (b *Bond) given(name string) bool { return slices.Contains(b.Given, name) }

// drop leaves option o of b out (back to its default) and reports why.
func (r *Result) drop(b *Bond, o config.Option, reason string) {
	g := b.from[o.Name]
	r.Skipped = append(r.Skipped, message(b.Name, "option "+g.text, reason, g.src))
	b.Given = slices.DeleteFunc(b.Given, func(n string) bool { return n == o.Name })
	delete(b.from, o.Name)
	switch {
	case o.Name == "mac":
		b.MAC = nil
	case o.Name == "miimon":
		b.Miimon = config.DefaultMiimon
	case o.DefaultDoc == "":
		if v, err := o.Parse(o.Default); err == nil {
			_ = o.Apply(&b.Bond, v)
		}
	}
	if o.Name == "num_grat_arp" {
		b.NumUnsolNA = b.NumGratARP
	}
}

// errLine matches config.Parse's error lines about a bond or a slave:
// "bonds[0] (bond0): key: message", "bonds[0] (bond0): slaves[1] (eth1): key: message".
var errLine = regexp.MustCompile(`^bonds\[(\d+)\](?: \([^)]*\))?: (?:slaves\[(\d+)\](?: \([^)]*\))?: )?([a-z0-9_]+): (.*)$`)

var otherSlave = regexp.MustCompile(`^"([^"]+)" is (already a slave of \S+|the name of a bond)`)

// fix leaves out the value an error line of config.Parse is about, and
// reports it. It returns false when the error is not about a value taken
// from the input.
func (r *Result) fix(line string) bool {
	m := errLine.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(r.Bonds) {
		return false
	}
	b := &r.Bonds[i]
	key, msg := m[3], m[4]
	if m[2] != "" {
		j, _ := strconv.Atoi(m[2])
		if j >= len(b.Slaves) {
			return false
		}
		s := &b.Slaves[j]
		g, ok := b.slaveFrom[s.Name][key]
		if !ok {
			return false
		}
		o, _ := config.LookupOption("bonds[].slaves[]." + key)
		v, _ := o.Parse(o.Default)
		setSlaveField(s, key, v)
		delete(b.slaveFrom[s.Name], key)
		r.Skipped = append(r.Skipped, message(b.Name, "slave "+s.Name+": option "+g.text, msg, g.src))
		return true
	}
	if key == "slaves" {
		sm := otherSlave.FindStringSubmatch(msg)
		if sm == nil {
			return false
		}
		j := slices.IndexFunc(b.Slaves, func(s config.Slave) bool { return s.Name == sm[1] })
		if j < 0 {
			return false
		}
		b.Slaves = slices.Delete(b.Slaves, j, j+1)
		r.Skipped = append(r.Skipped, message(b.Name, "slave "+sm[1], msg+"; left out of "+b.Name, b.Source))
		return true
	}
	if !b.given(key) {
		return false
	}
	o, _ := config.LookupOption(key)
	r.drop(b, o, msg)
	return true
}

// placeholder is the slave name written for a bond the input gives no
// slaves: a valid interface name that no system has, so that the
// configuration parses but the appliance refuses to start with it.
func placeholder(i int, bond string) string {
	s := fmt.Sprintf("TODO%d-%s", i, bond)
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}
