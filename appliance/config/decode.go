package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Load reads the YAML configuration file at path, applies defaults and
// validates it. It returns the warnings bonding would log (for the caller
// to log) and every error found, one per line. It reads neither the
// environment nor overrides: see LoadWith.
func Load(path string) (*Config, []string, error) {
	return LoadWith(path, nil, nil)
}

// Parse is Load for a configuration held in memory.
func Parse(data []byte) (*Config, []string, error) {
	return parse(data, nil, nil)
}

// parse decodes data, then the environment and the overrides over it (see
// LoadWith), applies defaults and validates.
//
// Viper reads the document (it reports syntax errors and duplicate keys);
// the keys are then checked on the YAML node tree, because viper folds
// keys to lower case and the file's keys are case-sensitive.
func parse(data []byte, env, overrides []string) (*Config, []string, error) {
	ls, lerrs := layers(env, overrides)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, notYAML(err)
	}
	if len(doc.Content) > 0 && resolve(doc.Content[0]).Kind == yaml.MappingNode {
		v := viper.New()
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, nil, notYAML(err)
		}
	}
	d := &decoder{cfg: Defaults(), broken: map[string]bool{}, layers: ls, errs: lerrs}
	d.document(&doc)
	if d.layers != nil { // the document ended early
		d.applyLayers(d.layers, map[string]bool{})
	}
	d.cfg.broken = d.broken
	warns, err := d.cfg.Validate()
	d.cfg.broken = nil
	if err != nil {
		d.errs = append(d.errs, err)
	}
	if len(d.errs) > 0 {
		return nil, warns, errors.Join(d.errs...)
	}
	return d.cfg, warns, nil
}

func notYAML(err error) error {
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = strings.TrimPrefix(s, "While parsing config: ")
	s = strings.TrimPrefix(s, "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors: ")
	return fmt.Errorf("config is not valid YAML: %s", s)
}

type decoder struct {
	cfg    *Config
	errs   []error
	broken map[string]bool
	layers []layered // environment and --set values, applied over the file
}

// errorf records an error; broken names the key whose value it leaves
// unset ("bonds[0].mode"; "" for none), so that Validate does not report
// follow-on errors about it.
func (d *decoder) errorf(broken, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf(format, args...))
	if broken != "" {
		d.broken[broken] = true
	}
}

var topKeys = []string{"dataplane", "control", "log", "metrics", "bonds"}

func (d *decoder) document(doc *yaml.Node) {
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.errorf("", "bonds: at least one bond is required")
		return
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		d.errorf("", "bonds: at least one bond is required")
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf("", "config: the top level must be a mapping with the keys %s, got %s",
			strings.Join(topKeys, ", "), describe(root))
		return
	}
	seen := map[string]bool{}
	dataplane := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i].Value, resolve(root.Content[i+1])
		if seen[k] {
			d.errorf("", "key %q given twice", k)
			continue
		}
		seen[k] = true
		switch k {
		case "dataplane":
			d.section("dataplane", ".", "dataplane", SectionDataplane, val, nil, nil, dataplane)
		case "control":
			d.section("control", ".", "control", SectionControl, val, nil, nil, nil)
		case "log":
			d.section("log", ".", "log", SectionLog, val, nil, nil, nil)
		case "metrics":
			d.section("metrics", ".", "metrics", SectionMetrics, val, nil, nil, nil)
		case "bonds":
			d.bonds(val)
		default:
			d.unknown("", "", k, topKeys)
		}
	}
	if !seen["bonds"] {
		d.errorf("", "bonds: at least one bond is required")
	}
	d.applyLayers(d.layers, dataplane)
	if !dataplane["queues"] {
		d.cfg.Dataplane.Queues = max(1, len(d.cfg.Dataplane.Cores))
	}
}

// unknown reports an unknown key in where, suggesting the nearest of
// valid.
func (d *decoder) unknown(scope, where, key string, valid []string) {
	prefix := ""
	if where != "" {
		prefix = where + ": "
	}
	if why, ok := notPerBond[key]; ok {
		d.errorf("", "%s%s: rejected: %s", prefix, key, why)
		return
	}
	msg := fmt.Sprintf("%sunknown key %q", prefix, key)
	if s := suggest(key, valid); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if where == "" {
		if _, ok := lookupIn(SectionBond, key); ok {
			msg += " (it is a bond option: give it in an entry under bonds:)"
		} else if _, ok := lookupIn(SectionDataplane, key); ok {
			msg += " (it belongs under dataplane:)"
		}
	}
	d.errorf("", "%s", msg)
}

// section decodes the keys of a mapping into the options of sec. label
// names a key for errors: where+sep+key ("dataplane.batch",
// "bonds[0] (bond0): mode").
func (d *decoder) section(scope, sep, where string, sec Section, m *yaml.Node, b *Bond, s *Slave, explicit map[string]bool) {
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return
	}
	if m.Kind != yaml.MappingNode {
		d.errorf(scope, "%s: must be a mapping of keys, got %s", where, describe(m))
		return
	}
	valid := sectionNames(sec)
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, resolve(m.Content[i+1])
		if seen[key] {
			d.errorf("", "%s: key %q given twice", where, key)
			continue
		}
		seen[key] = true
		o, ok := lookupIn(sec, key)
		if !ok {
			d.unknown(scope, where, key, valid)
			continue
		}
		if sec == SectionBond && key == "slaves" {
			d.slaves(scope+".slaves", where, val, b)
			explicit[key] = true
			continue
		}
		v, err := parseNode(o, val)
		if err != nil {
			d.errorf(scope+"."+key, "%s%s%s: %v", where, sep, key, err)
			continue
		}
		o.set(d.cfg, b, s, v)
		if explicit != nil {
			explicit[key] = true
		}
	}
}

func (d *decoder) bonds(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		d.errorf("", "bonds: must be a list of bonds, got %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		d.errorf("", "bonds: at least one bond is required")
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		scope := fmt.Sprintf("bonds[%d]", i)
		b := DefaultBond("")
		b.explicit = map[string]bool{}
		where := scope
		if e.Kind == yaml.MappingNode {
			if nm := mapValue(e, "name"); nm != nil && nm.Kind == yaml.ScalarNode && checkIfName(nm.Value) == nil {
				where = fmt.Sprintf("%s (%s)", scope, nm.Value)
			}
		}
		if e.Kind == yaml.ScalarNode && e.Tag == "!!null" {
			d.errorf(scope, "%s: empty entry (allowed: a bond with at least name and slaves)", scope)
			d.broken[scope] = true
			continue
		}
		d.section(scope, ": ", where, SectionBond, e, &b, nil, b.explicit)
		if e.Kind != yaml.MappingNode {
			d.broken[scope] = true
		}
		if e.Kind == yaml.MappingNode {
			if !b.explicit["name"] && !d.broken[scope+".name"] {
				d.errorf(scope+".name", "%s: name: required (the bond's interface name)", where)
			}
			if !b.explicit["slaves"] {
				d.errorf(scope+".slaves", "%s: slaves: required (at least one member interface)", where)
			}
		}
		// miimon defaults to 100 unless ARP monitoring is configured.
		if !b.explicit["miimon"] {
			if b.ArpInterval > 0 {
				b.Miimon = 0
			} else {
				b.Miimon = DefaultMiimon
			}
		}
		// num_grat_arp and num_unsol_na are one setting.
		switch g, u := b.explicit["num_grat_arp"], b.explicit["num_unsol_na"]; {
		case g && !u:
			b.NumUnsolNA = b.NumGratARP
		case u && !g:
			b.NumGratARP = b.NumUnsolNA
		}
		d.cfg.Bonds = append(d.cfg.Bonds, b)
	}
}

func (d *decoder) slaves(scope, where string, n *yaml.Node, b *Bond) {
	o, _ := lookupIn(SectionBond, "slaves")
	if n.Kind != yaml.SequenceNode {
		v, err := parseNode(o, n)
		if err != nil {
			d.errorf(scope, "%s: slaves: %v", where, err)
			return
		}
		b.Slaves = v.([]Slave)
		return
	}
	b.Slaves = nil
	for j, e := range n.Content {
		e = resolve(e)
		sw := fmt.Sprintf("%s: slaves[%d]", where, j)
		sscope := fmt.Sprintf("%s[%d]", scope, j)
		switch e.Kind {
		case yaml.ScalarNode:
			if err := checkIfName(e.Value); err != nil {
				d.errorf(sscope, "%s: %v", sw, err)
			}
			b.Slaves = append(b.Slaves, defaultSlave(e.Value))
		case yaml.MappingNode:
			s := defaultSlave("")
			s.explicit = map[string]bool{}
			if nm := mapValue(e, "name"); nm != nil && nm.Kind == yaml.ScalarNode && checkIfName(nm.Value) == nil {
				sw = fmt.Sprintf("%s (%s)", sw, nm.Value)
			}
			d.section(sscope, ": ", sw, SectionSlave, e, nil, &s, s.explicit)
			if !s.explicit["name"] && !d.broken[sscope+".name"] {
				d.errorf(sscope+".name", "%s: name: required (the member's interface name)", sw)
			}
			b.Slaves = append(b.Slaves, s)
		default:
			d.errorf(sscope, "%s: must be an interface name or a mapping, got %s", sw, describe(e))
			b.Slaves = append(b.Slaves, defaultSlave(""))
		}
	}
}

// parseNode parses a YAML value for o: scalars through Option.Parse,
// sequences element by element for list options.
func parseNode(o Option, n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return o.Parse(scalarText(n))
	case yaml.SequenceNode:
		var acc any
		switch o.Kind {
		case KindIntList:
			acc = []int{}
		case KindIPv4List, KindIPv6List:
			acc = []netip.Addr{}
		case KindSlaves:
			acc = []Slave{}
		default:
			return nil, fmt.Errorf("expected a single value, got a list (allowed: %s)", o.Allowed())
		}
		for _, e := range n.Content {
			e = resolve(e)
			if e.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("list elements must be single values, got %s (allowed: %s)", describe(e), o.Allowed())
			}
			lo := o
			lo.MaxItems = 0 // counted on the whole list below
			v, err := lo.Parse(scalarText(e))
			if err != nil {
				return nil, err
			}
			switch a := acc.(type) {
			case []int:
				acc = append(a, v.([]int)...)
			case []netip.Addr:
				acc = append(a, v.([]netip.Addr)...)
			case []Slave:
				acc = append(a, v.([]Slave)...)
			}
		}
		if err := o.validate(acc); err != nil {
			return nil, err
		}
		return acc, nil
	default:
		return nil, fmt.Errorf("expected a value, got %s (allowed: %s)", describe(n), o.Allowed())
	}
}

// scalarText returns a scalar as Option.Parse takes it: YAML null is
// empty, integers in decimal, booleans as true or false.
func scalarText(n *yaml.Node) string {
	switch n.Tag {
	case "!!null":
		return ""
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if strings.HasPrefix(n.Value, "0o") {
			if i, err := strconv.ParseInt(n.Value[2:], 8, 64); err == nil {
				return strconv.FormatInt(i, 10)
			}
		}
	case "!!bool":
		return strings.ToLower(n.Value)
	}
	return n.Value
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// suggest returns the candidate nearest to key, if it is near enough to
// be a likely typo.
func suggest(key string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if strings.EqualFold(c, key) {
			return c
		}
		d := editDistance(strings.ToLower(key), c)
		limit := 2
		if len(c) >= 10 {
			limit = 3
		}
		if len(key) >= 4 && (strings.HasPrefix(c, key) || strings.HasPrefix(key, c)) {
			d = min(d, limit)
		}
		if d <= limit && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
