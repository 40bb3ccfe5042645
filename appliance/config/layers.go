package config

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/viper"
)

// Layered settings. The dataplane, control, log and metrics keys come from
// four layers, each overriding the one before:
//
//	defaults < file < environment BOND_APPLIANCE_<SECTION>_<KEY> < --set SECTION.KEY=VALUE
//
// Bond options (bonds[]) come from the file only.
const (
	// EnvPrefix starts the environment variables that set a key:
	// BOND_APPLIANCE_DATAPLANE_POLL=busy sets dataplane.poll.
	EnvPrefix = "BOND_APPLIANCE_"
	// OverrideFlag is the command-line flag whose values LoadWith takes
	// as overrides ("--set dataplane.poll=busy", repeated); errors name
	// it.
	OverrideFlag = "--set"
)

// layeredSections are the sections the environment and --set may set, in
// the order their keys are listed.
var layeredSections = []Section{SectionDataplane, SectionControl, SectionLog, SectionMetrics}

// IsLayered reports whether the option may also be given in the
// environment and with --set (the dataplane, control, log and metrics
// keys).
func (o Option) IsLayered() bool { return slices.Contains(layeredSections, o.Section) }

// EnvVar is the environment variable that sets a layered option
// ("BOND_APPLIANCE_DATAPLANE_POLL"), "" for a bond or slave option.
func (o Option) EnvVar() string {
	if !o.IsLayered() {
		return ""
	}
	return EnvPrefix + strings.ToUpper(string(o.Section)+"_"+o.Name)
}

// LoadWith is Load with the environment and command-line overrides layered
// over the file for the dataplane, control, log and metrics keys: defaults
// < file < env < overrides. env holds "NAME=VALUE" entries as os.Environ
// returns them (the last of a repeated name counts); only names starting
// with EnvPrefix are read. A name BOND_APPLIANCE_<SECTION>_<KEY> whose
// section is dataplane, control, log or metrics must name a key of it
// (an unknown key is an error that suggests the nearest); one for bonds
// is refused (bond options are file-only); other BOND_APPLIANCE_ names
// (BOND_APPLIANCE_PRIVILEGED, used by the tests) are ignored. overrides
// are the values of OverrideFlag, "SECTION.KEY=VALUE". Values of both go
// through the option's parser; errors name the variable or the flag, the
// key and what is allowed. Load(path) is LoadWith(path, nil, nil).
func LoadWith(path string, env, overrides []string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return ParseWith(data, env, overrides)
}

// ParseWith is LoadWith for a configuration held in memory.
func ParseWith(data []byte, env, overrides []string) (*Config, []string, error) {
	return parse(data, env, overrides)
}

// layered is the value of one key from the environment or a flag.
type layered struct {
	o      Option
	value  string
	source string // BOND_APPLIANCE_DATAPLANE_POLL, or --set "dataplane.poll=busy"
}

// layers resolves the environment and the overrides: viper holds the
// environment's values below the flags' (its flag layer, BindFlagValue),
// so that a key given both ways takes the flag's value. The file and the
// defaults are below both; the YAML decoder applies them, with its own
// errors. Viper takes the environment from the process only, so the
// variables given in env are merged in as viper's configuration layer,
// which is free here (the file is not read into this instance).
func layers(env, overrides []string) ([]layered, []error) {
	var errs []error
	v := viper.New()
	envSource := map[string]string{} // key -> variable name
	envTree := map[string]any{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		o, known, err := envOption(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !known {
			continue
		}
		sec, _ := envTree[string(o.Section)].(map[string]any)
		if sec == nil {
			sec = map[string]any{}
			envTree[string(o.Section)] = sec
		}
		sec[o.Name] = value
		envSource[o.Key()] = name
	}
	if err := v.MergeConfigMap(envTree); err != nil {
		errs = append(errs, fmt.Errorf("environment: %w", err))
	}
	flagSource := map[string]string{}
	for _, s := range overrides {
		o, value, err := overrideOption(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		flagSource[o.Key()] = fmt.Sprintf("%s %q", OverrideFlag, s)
		if err := v.BindFlagValue(o.Key(), setFlag{name: o.Key(), value: value}); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", OverrideFlag, s, err))
		}
	}
	var out []layered
	for _, o := range table {
		if !o.IsLayered() || !v.IsSet(o.Key()) {
			continue
		}
		src, ok := flagSource[o.Key()]
		if !ok {
			src = envSource[o.Key()]
		}
		out = append(out, layered{o: o, value: v.GetString(o.Key()), source: src})
	}
	return out, errs
}

// envOption finds the option a BOND_APPLIANCE_ variable names. known is
// false for a name outside the layered sections, which is not ours to
// judge.
func envOption(name string) (o Option, known bool, err error) {
	rest := strings.TrimPrefix(name, EnvPrefix)
	for _, bonds := range []string{"BONDS_", "BOND_", "SLAVES_"} {
		if strings.HasPrefix(rest, bonds) {
			return Option{}, false, fmt.Errorf("%s: bond options are read from the configuration file only (the environment sets %s)",
				name, layeredKeysDoc())
		}
	}
	for _, sec := range layeredSections {
		p := strings.ToUpper(string(sec)) + "_"
		if !strings.HasPrefix(rest, p) {
			continue
		}
		key := strings.TrimPrefix(rest, p)
		if key == strings.ToUpper(key) {
			if o, ok := lookupIn(sec, strings.ToLower(key)); ok {
				return o, true, nil
			}
		}
		msg := fmt.Sprintf("%s: unknown key %q in %s", name, key, sec)
		if s := suggest(strings.ToLower(key), sectionNames(sec)); s != "" {
			o, _ := lookupIn(sec, s)
			msg += fmt.Sprintf(" (did you mean %s?)", o.EnvVar())
		} else {
			msg += fmt.Sprintf(" (allowed: %s)", envNames(sec))
		}
		return Option{}, false, fmt.Errorf("%s", msg)
	}
	return Option{}, false, nil
}

// overrideOption parses one --set value, "SECTION.KEY=VALUE".
func overrideOption(s string) (Option, string, error) {
	key, value, ok := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return Option{}, "", fmt.Errorf("%s %q: want SECTION.KEY=VALUE, for example dataplane.poll=busy (keys: %s)",
			OverrideFlag, s, layeredKeysDoc())
	}
	if strings.HasPrefix(key, "bonds") {
		return Option{}, "", fmt.Errorf("%s %q: bond options are read from the configuration file only (%s sets %s)",
			OverrideFlag, s, OverrideFlag, layeredKeysDoc())
	}
	for _, o := range table {
		if o.IsLayered() && o.Key() == key {
			return o, value, nil
		}
	}
	msg := fmt.Sprintf("%s %q: unknown key %q", OverrideFlag, s, key)
	var keys []string
	for _, o := range table {
		if o.IsLayered() {
			keys = append(keys, o.Key())
		}
	}
	if sg := suggest(key, keys); sg != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sg)
	} else {
		msg += fmt.Sprintf(" (allowed: %s)", strings.Join(keys, ", "))
	}
	return Option{}, "", fmt.Errorf("%s", msg)
}

// layeredKeysDoc names the keys the environment and --set may set.
func layeredKeysDoc() string {
	l := make([]string, len(layeredSections))
	for i, s := range layeredSections {
		l[i] = string(s) + ".*"
	}
	return strings.Join(l, ", ")
}

func envNames(sec Section) string {
	var l []string
	for _, o := range table {
		if o.Section == sec {
			l = append(l, o.EnvVar())
		}
	}
	return strings.Join(l, ", ")
}

// setFlag is one --set value as viper's flag layer takes it.
type setFlag struct{ name, value string }

func (f setFlag) HasChanged() bool    { return true }
func (f setFlag) Name() string        { return f.name }
func (f setFlag) ValueString() string { return f.value }
func (f setFlag) ValueType() string   { return "string" }

// applyLayers parses the environment's and the flags' values over the
// file's; explicit records the dataplane keys given (for the queues
// default).
func (d *decoder) applyLayers(ls []layered, explicit map[string]bool) {
	d.layers = nil
	for _, l := range ls {
		v, err := l.o.Parse(l.value)
		if err != nil {
			d.errorf(l.o.Key(), "%s (%s): %v", l.source, l.o.Key(), err)
			continue
		}
		l.o.set(d.cfg, nil, nil, v)
		if l.o.Section == SectionDataplane {
			explicit[l.o.Name] = true
		}
	}
}
