package config

import (
	"fmt"
	"slices"
	"strings"
)

// Reference returns a manual page, in Markdown, of every key of the
// configuration file, generated from the option table: allowed values,
// default, supported modes, when it may change, and a description. Its
// output depends on nothing but the table.
func Reference() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }

	p("# bond-appliance configuration reference\n\n")
	p("<!-- Generated from the option table by config.Reference() (appliance/config); do not edit. -->\n\n")
	p("## NAME\n\nbond.yaml - configuration of the AF_XDP bonding appliance\n\n")
	p("## SYNOPSIS\n\n```yaml\n")
	p("dataplane:\n  cores: [1]\n  queues: 1\n")
	p("control:\n  socket: /run/bond-appliance/control.sock\n")
	p("log:\n  level: info\n")
	p("bonds:\n  - name: bond0\n    slaves: [eth1, eth2]\n    mode: 802.3ad\n    miimon: 100\n")
	p("```\n\n")
	p("## DESCRIPTION\n\n")
	p("The file is YAML with four top-level keys: `dataplane`, `control`, `log` and `bonds`, a list of bonds. ")
	p("Keys are case-sensitive; an unknown key at any level is an error.\n\n")
	p("Every option of the Linux bonding driver is a key of a bond, with the driver's name, default, range, ")
	p("value names and numbers (`mode: 4`, `mode: \"4\"` and `mode: 802.3ad` are the same) and cross-option rules. ")
	p("Where the driver has a module parameter, the file behaves like loading the module: for example updelay ")
	p("and downdelay are rounded down to a multiple of miimon, and miimon together with arp_interval disables ")
	p("ARP monitoring, each with the driver's warning. An option given in a mode the driver does not support it ")
	p("in is an error (\"mode dependency failed\"), as in sysfs and netlink. Integer options also take the ")
	p("driver's value names (such as `off` and `maxval`), and `default` where the driver has one. Booleans of ")
	p("the driver take their names or 0/1; YAML `true`/`false` and `on`/`off` are accepted too.\n\n")
	p("Lists (`arp_ip_target`, `ns_ip6_target`, `vlans`, `cores`) are YAML lists or comma-separated strings.\n\n")
	p("Runtime: an option marked *startup only* is read when the appliance starts. Other options may be ")
	p("changed at runtime (`set BOND OPTION VALUE`), with the same syntax and errors, subject to the noted ")
	p("conditions.\n\n")
	p("Each option says where a change *takes effect* in the running appliance (`set` and `reload` ")
	p("act accordingly):\n\n")
	for _, e := range Effect(effectEnd - 1).List() {
		p("- `%s`: %s\n", e, effectDocs[e])
	}
	p("\n")

	dataplanePoll, _ := LookupOption("dataplane.poll")
	p("## ENVIRONMENT AND COMMAND LINE\n\n")
	p("The `dataplane`, `control`, `log` and `metrics` keys are layered; each layer overrides the one before:\n\n")
	p("1. the defaults below;\n2. the file;\n")
	p("3. the environment: `%s<SECTION>_<KEY>`, the key in upper case (`%s`);\n", EnvPrefix, dataplanePoll.EnvVar()+"=busy")
	p("4. the command line: `%s SECTION.KEY=VALUE`, repeated (`%s dataplane.poll=busy`); the last one for a key counts.\n\n", OverrideFlag, OverrideFlag)
	p("Values from the environment and the command line take the same syntax as the file (lists comma-separated) ")
	p("and are checked the same way; an error names the variable or the flag, the key and what is allowed. ")
	p("An empty variable sets the empty value. A `%s` variable of these sections with an unknown key is an error ", EnvPrefix)
	p("that suggests the nearest one, a `%sBONDS_...` variable is refused, and other `%s` variables ", EnvPrefix, EnvPrefix)
	p("(such as `%sPRIVILEGED`, read by the tests) are ignored. Bond options (`bonds`) come from the file only. ", EnvPrefix)
	p("`bond-appliance -c FILE` (and with `--check`) reads the environment and `%s`.\n\n", OverrideFlag)

	sections := []struct {
		sec   Section
		title string
		intro string
	}{
		{SectionDataplane, "dataplane", "The AF_XDP data plane, shared by all bonds."},
		{SectionControl, "control", "The control socket."},
		{SectionLog, "log", "Logging."},
		{SectionMetrics, "metrics", "The Prometheus exporter (off unless listen is set)."},
		{SectionBond, "bonds[]", "Each entry of `bonds` is one bond. Options other than `name`, `slaves`, `mac`, `mtu`, `vlans` and `force` are the bonding driver's."},
		{SectionSlave, "bonds[].slaves[]", "A slave is an interface name, or a mapping with these keys."},
	}
	for _, s := range sections {
		p("## %s\n\n%s\n\n", strings.ToUpper(s.title), s.intro)
		for _, o := range table {
			if o.Section != s.sec {
				continue
			}
			p("### %s\n\n%s\n\n", o.Key(), o.Desc)
			p("- Type: %s\n", o.Kind)
			p("- Allowed: %s\n", o.Allowed())
			p("- Default: %s\n", o.defaultDoc())
			if o.Section == SectionBond || o.Section == SectionSlave {
				p("- Modes: %s\n", o.Modes)
			}
			p("- Changes: %s\n", o.changes())
			p("- Takes effect: %s\n", o.effectDoc())
			if o.IsLayered() {
				p("- Environment: `%s`; command line: `%s %s=VALUE`\n", o.EnvVar(), OverrideFlag, o.Key())
			}
			if o.Flags&FlagExtension != 0 {
				p("- Origin: appliance (not a bonding option)\n")
			} else if o.Section == SectionBond || o.Section == SectionSlave {
				p("- Origin: bonding\n")
			}
			if o.Note != "" {
				p("- Note: %s\n", o.Note)
			}
			p("\n")
		}
	}

	p("## KEYS THAT ARE NOT BOND OPTIONS\n\n")
	p("These bonding names are refused in a bond entry, with an explanation:\n\n")
	keys := make([]string, 0, len(notPerBond))
	for k := range notPerBond {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p("- `%s`: %s.\n", k, notPerBond[k])
	}
	p("\n## WARNINGS AND ERRORS\n\n")
	p("Loading returns the warnings the bonding driver would log, in its wording, prefixed with the bond's name, ")
	p("and every error found, one per line, naming the bond, the key, the bad value and what is allowed, e.g.\n\n")
	p("```\nbonds[0] (bond0): mode: invalid value \"5x\" (allowed: %s)\n", opt("mode").Allowed())
	p("dataplane.batch: 0 out of range (allowed 1..1024)\n")
	p("bonds[0] (bond0): unknown key \"miimom\" (did you mean \"miimon\"?)\n```\n")
	return w.String()
}

func (o Option) defaultDoc() string {
	switch {
	case o.DefaultDoc != "":
		return o.DefaultDoc
	case o.Flags&FlagRequired != 0:
		return "none (required)"
	case o.Default == "":
		return "empty"
	}
	return "`" + o.Default + "`"
}

// effectDocs explains each effect in the reference.
var effectDocs = map[Effect]string{
	EffectSnapshot: "the bond's forwarding snapshot is rebuilt (which slaves transmit and receive)",
	EffectMII:      "the MII link monitor (carrier, miimon poll, updelay/downdelay) is reconfigured",
	EffectLACP:     "the 802.3ad LACP system and its ports are reconfigured",
	EffectMonitor:  "the ARP/NS monitor and the peer notifier (gratuitous ARP, unsolicited NA, IGMP) are rebuilt",
	EffectALB:      "the balance-tlb/balance-alb engine is reconfigured",
	EffectPort:     "only the member concerned is reconfigured",
	EffectRestart:  "read when the bond is created or the appliance starts: re-create the bond (`bond del`, `bond add`) or, outside `bonds`, restart the appliance",
}

func (o Option) effectDoc() string {
	l := o.Effects()
	names := make([]string, len(l))
	for i, e := range l {
		names[i] = "`" + e.String() + "`"
	}
	return strings.Join(names, ", ")
}

func (o Option) changes() string {
	if !o.RuntimeChangeable() {
		return "startup only"
	}
	var c []string
	if o.Flags&FlagIfDown != 0 {
		c = append(c, "while the bond is down")
	}
	if o.Flags&FlagNoSlaves != 0 {
		c = append(c, "while the bond has no slaves")
	}
	if len(c) == 0 {
		return "at runtime"
	}
	return "at runtime, only " + strings.Join(c, " and ")
}
