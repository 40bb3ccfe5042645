package importer

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/bond-appliance/bond-appliance/appliance/config"
)

// YAML returns the imported configuration as a bond-appliance
// configuration file: a header comment (sources, what was not carried
// over, notes, the warnings bonding gives), the dataplane, control and log
// sections at their defaults, and one entry per bond with the options
// taken from the input. It fails when the input has no bond, or when a
// value could not be left out to make the configuration valid (such as an
// interface that is a member of two bonds).
func (r *Result) YAML() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	out := r.render(true)
	if _, _, err := config.Parse(out); err != nil {
		return nil, fmt.Errorf("importer: the generated configuration does not parse (a bug): %w", err)
	}
	return out, nil
}

func (r *Result) render(header bool) []byte {
	var buf bytes.Buffer
	if header {
		r.header(&buf)
	}
	root := &yaml.Node{Kind: yaml.MappingNode}

	dp := mapping()
	for _, o := range config.Options() {
		if o.Section != config.SectionDataplane || o.DefaultDoc != "" {
			continue
		}
		v := o.Default
		if o.Name == "frame_size" && r.frameSize != 0 {
			v = strconv.Itoa(r.frameSize)
		}
		add(dp, o.Name, scalar(v))
	}
	k := add(root, "dataplane", dp)
	if header {
		k.HeadComment = "Data plane at its defaults (docs/config-reference.md). cores (default: the\n" +
			"last CPU) and queues (default: one per core) are left out: set cores to\n" +
			"the CPUs of the target machine that run the busy-polling lanes."
	}
	for _, sec := range []config.Section{config.SectionControl, config.SectionLog} {
		m := mapping()
		for _, o := range config.Options() {
			if o.Section == sec && o.DefaultDoc == "" {
				add(m, o.Name, scalar(o.Default))
			}
		}
		add(root, string(sec), m)
	}

	bonds := &yaml.Node{Kind: yaml.SequenceNode}
	for i := range r.Bonds {
		b := &r.Bonds[i]
		m := mapping()
		add(m, "name", str(b.Name))
		if header && b.Source != "" {
			m.HeadComment = "from " + b.Source
		}
		sl := r.slavesNode(i, b)
		if header && len(b.Slaves) == 0 {
			sl.LineComment = "TODO: the input names no slaves: replace the placeholder with the members"
		}
		add(m, "slaves", sl)
		for _, name := range b.Given {
			o, _ := config.LookupOption(name)
			add(m, name, valueNode(o, o.Current(&b.Bond)))
		}
		bonds.Content = append(bonds.Content, m)
	}
	add(root, "bonds", bonds)

	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		// The tree is built from strings; encoding cannot fail.
		panic("importer: encoding YAML: " + err.Error())
	}
	_ = enc.Close()
	return buf.Bytes()
}

func (r *Result) header(w *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# bond-appliance configuration imported from Linux bonding configuration by\n")
	p("# `bond-appliance import`")
	if len(r.Sources) > 0 {
		p(" from:\n")
		for _, s := range r.Sources {
			p("#   %s\n", s)
		}
	} else {
		p(".\n")
	}
	p("#\n")
	p("# Check it with `bond-appliance -c FILE --check`. Before starting the\n")
	p("# appliance, take these bonds out of the kernel and out of the files above\n")
	p("# (remove the bond and its slaves' bonding settings, unload or blacklist\n")
	p("# the bonding module): a kernel bond and the appliance cannot both drive the\n")
	p("# members. The appliance creates a host device with each bond's name; its IP\n")
	p("# configuration stays in the host's network configuration.\n")
	list := func(title string, l []string) {
		if len(l) == 0 {
			return
		}
		p("#\n# %s (%d):\n", title, len(l))
		for _, s := range l {
			p("#   - %s\n", strings.ReplaceAll(s, "\n", " "))
		}
	}
	list("Not carried over", r.Skipped)
	list("Notes", r.Notes)
	list("Warnings bonding gives for this configuration (logged at start)", r.Warnings)
	p("\n")
}

// slavesNode renders the members: a flow list of names, or of mappings
// when a slave has options other than its name.
func (r *Result) slavesNode(i int, b *Bond) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	if len(b.Slaves) == 0 {
		seq.Content = append(seq.Content, str(placeholder(i, b.Name)))
		return seq
	}
	objects := false
	rows := make([]*yaml.Node, len(b.Slaves))
	for j, s := range b.Slaves {
		m := mapping()
		m.Style = yaml.FlowStyle
		add(m, "name", str(s.Name))
		for _, o := range config.Options() {
			if o.Section != config.SectionSlave || o.Name == "name" {
				continue
			}
			var v int
			switch o.Name {
			case "prio":
				v = s.Prio
			case "queue_id":
				v = s.QueueID
			case "actor_port_prio":
				v = s.ActorPortPrio
			default:
				continue
			}
			if strconv.Itoa(v) != o.Default {
				add(m, o.Name, scalar(strconv.Itoa(v)))
				objects = true
			}
		}
		rows[j] = m
	}
	if objects {
		seq.Style = 0
		seq.Content = rows
		return seq
	}
	for _, s := range b.Slaves {
		seq.Content = append(seq.Content, str(s.Name))
	}
	return seq
}

func valueNode(o config.Option, v any) *yaml.Node {
	switch x := v.(type) {
	case []int:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, n := range x {
			seq.Content = append(seq.Content, scalar(strconv.Itoa(n)))
		}
		return seq
	case []netip.Addr:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, a := range x {
			seq.Content = append(seq.Content, str(a.String()))
		}
		return seq
	case net.HardwareAddr:
		n := str(x.String())
		n.Style = yaml.DoubleQuotedStyle
		return n
	}
	return scalar(o.Format(v))
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

// add appends key: value to mapping m and returns the key node.
func add(m *yaml.Node, key string, value *yaml.Node) *yaml.Node {
	k := str(key)
	m.Content = append(m.Content, k, value)
	return k
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// scalar renders a value in an option's own syntax: integers and YAML
// booleans as such, everything else as a string (quoted where YAML would
// read it otherwise).
func scalar(s string) *yaml.Node {
	if _, err := strconv.Atoi(s); err == nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: s}
	}
	if s == "true" || s == "false" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: s}
	}
	return str(s)
}
