package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/bond-appliance/bond-appliance/policy"
)

// Section is the part of the file an option belongs to.
type Section string

// Sections of the configuration file.
const (
	SectionDataplane Section = "dataplane"
	SectionControl   Section = "control"
	SectionLog       Section = "log"
	SectionMetrics   Section = "metrics"
	SectionBond      Section = "bond"  // a key of an entry of bonds:
	SectionSlave     Section = "slave" // a key of a slave object in slaves:
)

// Kind is the syntax of an option's value and the Go type Parse returns.
type Kind int

// Option kinds.
const (
	// KindEnum takes one of Values, by name or number; Parse returns int.
	KindEnum Kind = iota
	// KindInt takes an integer in Min..Max, or one of the names in
	// Values (such as bonding's "off" and "maxval"); Parse returns int.
	KindInt
	// KindBool takes one of Values (numbers 0 and 1) by name or number,
	// or true/false/on/off; Parse returns bool.
	KindBool
	// KindChoice takes one of the names in Values; Parse returns string.
	KindChoice
	// KindString takes any string; Parse returns string.
	KindString
	// KindIfName takes a Linux interface name; Parse returns string.
	KindIfName
	// KindIntList takes integers in Min..Max (a list, or comma-separated);
	// Parse returns []int.
	KindIntList
	// KindIPv4List takes IPv4 addresses; Parse returns []netip.Addr.
	KindIPv4List
	// KindIPv6List takes IPv6 addresses; Parse returns []netip.Addr.
	KindIPv6List
	// KindMAC takes an Ethernet MAC address; Parse returns
	// net.HardwareAddr (nil for an empty value where that is allowed).
	KindMAC
	// KindSlaves takes interface names (or, in the file, slave objects);
	// Parse returns []Slave.
	KindSlaves
)

var kindNames = [...]string{
	KindEnum:     "enum",
	KindInt:      "integer",
	KindBool:     "boolean",
	KindChoice:   "choice",
	KindString:   "string",
	KindIfName:   "interface name",
	KindIntList:  "list of integers",
	KindIPv4List: "list of IPv4 addresses",
	KindIPv6List: "list of IPv6 addresses",
	KindMAC:      "MAC address",
	KindSlaves:   "list of slaves",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Flags qualify when an option may be changed.
type Flags uint16

// Option flags. The first three are the bonding driver's option flags.
const (
	// FlagIfDown: may only be changed while the bond is down
	// (BOND_OPTFLAG_IFDOWN).
	FlagIfDown Flags = 1 << iota
	// FlagNoSlaves: may only be changed while the bond has no slaves
	// (BOND_OPTFLAG_NOSLAVES).
	FlagNoSlaves
	// FlagRawVal: the value is not looked up in a value table: a name
	// or an address (BOND_OPTFLAG_RAWVAL).
	FlagRawVal
	// FlagStartup: read when the appliance starts; a runtime set is
	// refused.
	FlagStartup
	// FlagRequired: the key must be given.
	FlagRequired
	// FlagExtension: an appliance key that the bonding driver does not
	// have.
	FlagExtension
)

// Effect says where a change of an option takes effect in the running
// appliance: which part of a bond's state control has to rebuild or
// reconfigure. An option may have several (Effect is a bit set); the
// control loop dispatches runtime set and reload by it.
type Effect uint8

// Effects.
const (
	// EffectSnapshot: the bond's forwarding snapshot is rebuilt
	// (mode-independent transmit and receive decisions: xmit_hash_policy,
	// packets_per_slave, all_slaves_active, primary, active slave, ...).
	EffectSnapshot Effect = 1 << iota
	// EffectMII: the MII link monitor (miimon, updelay, downdelay,
	// use_carrier).
	EffectMII
	// EffectLACP: the 802.3ad LACP system or its ports are reconfigured.
	EffectLACP
	// EffectMonitor: the ARP/NS monitor and the peer notifier are
	// rebuilt (arp_*, ns_ip6_target, num_grat_arp, resend_igmp, ...).
	EffectMonitor
	// EffectALB: the balance-tlb/alb engine is reconfigured.
	EffectALB
	// EffectPort: one member's own settings (per-slave options).
	EffectPort
	// EffectRestart: read only when the bond is created or the
	// appliance starts; a change needs the bond re-created (bond del,
	// bond add) or, outside bonds[], the appliance restarted.
	EffectRestart

	effectEnd // one past the last effect
)

var effectNames = map[Effect]string{
	EffectSnapshot: "snapshot",
	EffectMII:      "mii",
	EffectLACP:     "lacp",
	EffectMonitor:  "monitor",
	EffectALB:      "alb",
	EffectPort:     "port",
	EffectRestart:  "restart",
}

// Has reports whether every effect of x is in e.
func (e Effect) Has(x Effect) bool { return x != 0 && e&x == x }

// List returns the single effects of e, in bit order.
func (e Effect) List() []Effect {
	var l []Effect
	for x := Effect(1); x < effectEnd; x <<= 1 {
		if e&x != 0 {
			l = append(l, x)
		}
	}
	return l
}

// String names the effects of e joined by "+" ("snapshot+monitor"),
// "none" for no effect.
func (e Effect) String() string {
	if e == 0 {
		return "none"
	}
	var names []string
	for x := Effect(1); x != 0; x <<= 1 {
		if e&x == 0 {
			continue
		}
		if n, ok := effectNames[x]; ok {
			names = append(names, n)
		} else {
			names = append(names, "effect("+strconv.Itoa(int(x))+")")
		}
	}
	return strings.Join(names, "+")
}

// ModeSet is a set of bonding modes (bit N is mode N).
type ModeSet uint8

// AllModes holds every bonding mode (every valid policy.Mode; a test
// checks that they are seven).
const AllModes ModeSet = 1<<7 - 1

func modes(m ...int) ModeSet {
	var s ModeSet
	for _, x := range m {
		s |= 1 << x
	}
	return s
}

// Has reports whether mode is in s.
func (s ModeSet) Has(mode int) bool {
	return mode >= 0 && mode < 8 && policy.Mode(mode).Valid() && s&(1<<mode) != 0
}

// String lists the modes by name, or "all".
func (s ModeSet) String() string {
	if s&AllModes == AllModes {
		return "all"
	}
	var names []string
	for m := policy.Mode(0); m.Valid(); m++ {
		if s.Has(int(m)) {
			names = append(names, m.String())
		}
	}
	return strings.Join(names, ", ")
}

// ModeName returns the bonding name of a mode ("802.3ad"), or its number.
func ModeName(mode int) string {
	if mode >= 0 && mode < 256 && policy.Mode(mode).Valid() {
		return policy.Mode(mode).String()
	}
	return strconv.Itoa(mode)
}

// bondModeName is bonding's long mode name, used in its log messages
// (policy.Mode.Description).
func bondModeName(mode int) string {
	if mode < 0 || mode >= 256 {
		return "unknown"
	}
	return policy.Mode(mode).Description()
}

// Value is a named value of an option.
type Value struct {
	Name string
	Num  int
	// Default: the word "default" selects this value, as in bonding
	// (BOND_VALFLAG_DEFAULT).
	Default bool
}

// Option describes one key of the configuration file.
type Option struct {
	Section Section
	Name    string // the key, as in bonding.rst for bonding options
	Kind    Kind
	// Values are the named values: every value of an enum, bool or
	// choice; the named points (off, maxval, ...) of an integer.
	Values []Value
	// Min and Max bound a KindInt value or the elements of a
	// KindIntList.
	Min, Max int
	// PowerOfTwo: an integer must also be a power of two.
	PowerOfTwo bool
	// MaxItems bounds the length of a list (0: no bound).
	MaxItems int
	// Default is the default in the option's own syntax ("" with
	// DefaultDoc set: computed, see DefaultDoc).
	Default string
	// DefaultDoc describes a computed default for the reference.
	DefaultDoc string
	// Modes are the bonding modes in which a bond or slave option may be
	// given (AllModes when the driver puts no restriction).
	Modes ModeSet
	Flags Flags
	// Effect is where a change of the option takes effect (see
	// Effect); every option has at least one.
	Effect Effect
	Desc   string // one-line description
	// Note is appended to invalid-value errors.
	Note string

	get   func(c *Config, b *Bond, s *Slave) any
	set   func(c *Config, b *Bond, s *Slave, v any)
	check func(v any) error // extra check after the kind's own
}

// Key is the option's path in the file: "dataplane.batch", "bonds[].mode",
// "bonds[].slaves[].prio".
func (o Option) Key() string {
	switch o.Section {
	case SectionBond:
		return "bonds[]." + o.Name
	case SectionSlave:
		return "bonds[].slaves[]." + o.Name
	default:
		return string(o.Section) + "." + o.Name
	}
}

// RuntimeChangeable reports whether a runtime set may change the option
// (subject to FlagIfDown and FlagNoSlaves).
func (o Option) RuntimeChangeable() bool { return o.Flags&FlagStartup == 0 }

// Effects lists where a change of the option takes effect, one Effect
// per element, in bit order.
func (o Option) Effects() []Effect { return o.Effect.List() }

// Options returns the option table: every key of the file, in reference
// order.
func Options() []Option { return slices.Clone(table) }

// LookupOption finds a bond option by its bonding name ("miimon") or any
// option by its Key ("dataplane.batch", "bonds[].slaves[].prio").
func LookupOption(name string) (Option, bool) {
	for _, o := range table {
		if o.Section == SectionBond && o.Name == name {
			return o, true
		}
	}
	for _, o := range table {
		if o.Key() == name {
			return o, true
		}
	}
	return Option{}, false
}

func lookupIn(sec Section, name string) (Option, bool) {
	for _, o := range table {
		if o.Section == sec && o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

func sectionNames(sec Section) []string {
	var n []string
	for _, o := range table {
		if o.Section == sec {
			n = append(n, o.Name)
		}
	}
	return n
}

// Parse parses a value given as text (as in a YAML scalar or a runtime set
// command) and checks it. The result's type depends on Kind. Errors name
// the bad value and what is allowed, without the key: the caller prefixes
// where the value came from.
func (o Option) Parse(value string) (any, error) {
	s := strings.TrimSpace(value)
	var v any
	switch o.Kind {
	case KindEnum, KindInt:
		n, err := o.lookup(s)
		if err != nil {
			return nil, err
		}
		v = n
	case KindBool:
		n, err := o.lookup(s)
		if err != nil {
			return nil, err
		}
		v = n == 1
	case KindChoice:
		for _, x := range o.Values {
			if x.Name == s {
				return s, nil
			}
		}
		return nil, o.invalid(s)
	case KindString, KindIfName:
		v = s
	case KindIntList:
		var l []int
		for _, f := range splitList(s) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("invalid value %q (allowed %s)", f, o.Allowed())
			}
			l = append(l, n)
		}
		v = l
	case KindIPv4List, KindIPv6List:
		var l []netip.Addr
		for _, f := range splitList(s) {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" || (o.Kind == KindIPv4List) != a.Is4() {
				return nil, fmt.Errorf("invalid address %q (allowed: %s)", f, o.Allowed())
			}
			l = append(l, a)
		}
		v = l
	case KindMAC:
		if s == "" {
			v = net.HardwareAddr(nil)
			break
		}
		m, err := net.ParseMAC(s)
		if err != nil || len(m) != 6 {
			return nil, fmt.Errorf("invalid MAC address %q (allowed: %s)", s, o.Allowed())
		}
		v = m
	case KindSlaves:
		var l []Slave
		for _, f := range splitList(s) {
			l = append(l, defaultSlave(f))
		}
		v = l
	default:
		return nil, fmt.Errorf("option %s has unknown kind %v", o.Name, o.Kind)
	}
	if err := o.validate(v); err != nil {
		return nil, err
	}
	return v, nil
}

// lookup parses a number or a value name the way bonding's
// bond_opt_parse does: a decimal number matches a table value or, for an
// integer, the range; a word matches a value name, or "default" the value
// flagged as default.
func (o Option) lookup(s string) (int, error) {
	if isNumber(s) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, o.invalid(s)
		}
		for _, x := range o.Values {
			if x.Num == n {
				return n, nil
			}
		}
		if o.Kind == KindInt {
			return n, o.checkRange(n)
		}
		return 0, o.invalid(s)
	}
	for _, x := range o.Values {
		if x.Name == s {
			return x.Num, nil
		}
	}
	if s == "default" {
		for _, x := range o.Values {
			if x.Default {
				return x.Num, nil
			}
		}
	}
	if o.Kind == KindBool {
		alias := map[string]int{"true": 1, "on": 1, "false": 0, "off": 0}
		if n, ok := alias[s]; ok && o.hasNum(n) {
			return n, nil
		}
	}
	return 0, o.invalid(s)
}

func (o Option) hasNum(n int) bool {
	for _, x := range o.Values {
		if x.Num == n {
			return true
		}
	}
	return false
}

func (o Option) checkRange(n int) error {
	if n < o.Min || n > o.Max {
		return fmt.Errorf("%d out of range (allowed %s)", n, o.Allowed())
	}
	if o.PowerOfTwo && n&(n-1) != 0 {
		return fmt.Errorf("%d is not a power of two (allowed %s)", n, o.Allowed())
	}
	return nil
}

func (o Option) invalid(s string) error {
	sep := ": "
	if o.Kind == KindInt || o.Kind == KindIntList {
		sep = " "
	}
	msg := fmt.Sprintf("invalid value %q (allowed%s%s", s, sep, o.Allowed())
	if o.Note != "" {
		msg += "; " + o.Note
	}
	return errors.New(msg + ")")
}

// validate checks a typed value (from Parse, or from a Config built in
// Go) against the option.
func (o Option) validate(v any) error {
	switch o.Kind {
	case KindEnum, KindInt:
		n, ok := v.(int)
		if !ok {
			return o.typeErr(v)
		}
		if !o.hasNum(n) {
			if o.Kind == KindEnum {
				return o.invalid(strconv.Itoa(n))
			}
			if err := o.checkRange(n); err != nil {
				return err
			}
		}
	case KindBool:
		b, ok := v.(bool)
		if !ok {
			return o.typeErr(v)
		}
		if !o.hasNum(btoi(b)) {
			return o.invalid(strconv.Itoa(btoi(b)))
		}
	case KindChoice:
		s, ok := v.(string)
		if !ok {
			return o.typeErr(v)
		}
		if !slices.ContainsFunc(o.Values, func(x Value) bool { return x.Name == s }) {
			return o.invalid(s)
		}
	case KindString:
		if _, ok := v.(string); !ok {
			return o.typeErr(v)
		}
	case KindIfName:
		s, ok := v.(string)
		if !ok {
			return o.typeErr(v)
		}
		if s == "" && o.Flags&FlagRequired == 0 {
			break
		}
		if err := checkIfName(s); err != nil {
			return err
		}
	case KindIntList:
		l, ok := v.([]int)
		if !ok {
			return o.typeErr(v)
		}
		if err := o.checkLen(len(l), "values"); err != nil {
			return err
		}
		for _, n := range l {
			if err := o.checkRange(n); err != nil {
				return err
			}
		}
	case KindIPv4List, KindIPv6List:
		l, ok := v.([]netip.Addr)
		if !ok {
			return o.typeErr(v)
		}
		if err := o.checkLen(len(l), "addresses"); err != nil {
			return err
		}
		for _, a := range l {
			if err := o.checkTarget(a); err != nil {
				return err
			}
		}
	case KindMAC:
		m, ok := v.(net.HardwareAddr)
		if !ok {
			return o.typeErr(v)
		}
		if m == nil && o.Default == "" {
			break
		}
		if len(m) != 6 {
			return fmt.Errorf("invalid MAC address %q (allowed: %s)", m.String(), o.Allowed())
		}
		if m[0]&1 != 0 {
			return fmt.Errorf("%s is a multicast address (allowed: %s)", m, o.Allowed())
		}
	case KindSlaves:
		l, ok := v.([]Slave)
		if !ok {
			return o.typeErr(v)
		}
		for _, s := range l {
			if err := checkIfName(s.Name); err != nil {
				return err
			}
		}
	}
	if o.check != nil {
		return o.check(v)
	}
	return nil
}

func (o Option) typeErr(v any) error {
	return fmt.Errorf("value of type %T is not a %v", v, o.Kind)
}

func (o Option) checkLen(n int, what string) error {
	if o.MaxItems > 0 && n > o.MaxItems {
		return fmt.Errorf("%d %s given (allowed at most %d)", n, what, o.MaxItems)
	}
	return nil
}

// checkTarget applies bonding's bond_is_ip_target_ok and
// bond_is_ip6_target_ok.
func (o Option) checkTarget(a netip.Addr) error {
	if o.Kind == KindIPv4List {
		if !a.Is4() {
			return fmt.Errorf("invalid address %q (allowed: %s)", a, o.Allowed())
		}
		if a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.As4()[0] == 0 {
			return fmt.Errorf("invalid ARP target %s (allowed: %s)", a, o.Allowed())
		}
		return nil
	}
	if !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return fmt.Errorf("invalid address %q (allowed: %s)", a, o.Allowed())
	}
	if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return fmt.Errorf("invalid NS target %s (allowed: %s)", a, o.Allowed())
	}
	return nil
}

// checkIfName applies the kernel's dev_valid_name.
func checkIfName(s string) error {
	switch {
	case s == "":
		return errors.New("an interface name is required (1..15 characters, no '/', ':' or whitespace)")
	case len(s) > 15:
		return fmt.Errorf("invalid interface name %q: longer than 15 characters", s)
	case s == "." || s == "..":
		return fmt.Errorf("invalid interface name %q", s)
	case strings.ContainsAny(s, "/:"):
		return fmt.Errorf("invalid interface name %q: contains '/' or ':'", s)
	case strings.ContainsFunc(s, unicode.IsSpace):
		return fmt.Errorf("invalid interface name %q: contains whitespace", s)
	}
	return nil
}

// Allowed describes the allowed values, as the reference and the errors
// show them: "balance-rr|0, active-backup|1, ..." or "1..1024".
func (o Option) Allowed() string {
	switch o.Kind {
	case KindEnum, KindBool:
		l := make([]string, len(o.Values))
		for i, x := range o.Values {
			l[i] = x.Name
			if x.Name != strconv.Itoa(x.Num) {
				l[i] += "|" + strconv.Itoa(x.Num)
			}
		}
		return strings.Join(l, ", ")
	case KindChoice:
		l := make([]string, len(o.Values))
		for i, x := range o.Values {
			l[i] = x.Name
		}
		return strings.Join(l, ", ")
	case KindInt, KindIntList:
		r := fmt.Sprintf("%d..%d", o.Min, o.Max)
		if o.PowerOfTwo {
			r = "powers of two " + r
		}
		if len(o.Values) > 0 {
			l := make([]string, len(o.Values))
			for i, x := range o.Values {
				l[i] = x.Name
			}
			r += " or " + strings.Join(l, ", ")
		}
		return r
	case KindString:
		if o.Name == "socket" {
			return fmt.Sprintf("an absolute path of at most %d bytes", MaxSocketPath)
		}
		return "any string"
	case KindIfName:
		s := "an interface name (1..15 characters, no '/', ':' or whitespace)"
		if o.Flags&FlagRequired == 0 {
			s += ", or empty"
		}
		return s
	case KindIPv4List:
		return fmt.Sprintf("at most %d IPv4 addresses, not 0.0.0.0/8 or 255.255.255.255, as a list or comma-separated", o.MaxItems)
	case KindIPv6List:
		return fmt.Sprintf("at most %d IPv6 addresses, not ::, loopback or multicast, as a list or comma-separated", o.MaxItems)
	case KindMAC:
		if o.Default == "" {
			return "a unicast MAC address such as 02:00:00:00:00:01, or empty"
		}
		return "a non-multicast MAC address such as 02:00:00:00:00:01"
	case KindSlaves:
		return "interface names, or objects {name, prio, queue_id, actor_port_prio}"
	}
	return ""
}

// Format renders a value (as Parse returns it) in the option's syntax:
// enum and bool values by name, lists comma-separated.
func (o Option) Format(v any) string {
	switch x := v.(type) {
	case int:
		if o.Kind == KindEnum {
			for _, y := range o.Values {
				if y.Num == x {
					return y.Name
				}
			}
		}
		return strconv.Itoa(x)
	case bool:
		for _, y := range o.Values {
			if y.Num == btoi(x) {
				return y.Name
			}
		}
		return strconv.Itoa(btoi(x))
	case string:
		return x
	case []int:
		l := make([]string, len(x))
		for i, n := range x {
			l[i] = strconv.Itoa(n)
		}
		return strings.Join(l, ",")
	case []netip.Addr:
		l := make([]string, len(x))
		for i, a := range x {
			l[i] = a.String()
		}
		return strings.Join(l, ",")
	case net.HardwareAddr:
		return x.String()
	case []Slave:
		l := make([]string, len(x))
		for i, s := range x {
			l[i] = s.Name
		}
		return strings.Join(l, ",")
	}
	return fmt.Sprint(v)
}

// Current returns the value of a bond option in b, typed as Parse returns
// it. It returns nil for options of other sections.
func (o Option) Current(b *Bond) any {
	if o.Section != SectionBond {
		return nil
	}
	return o.get(nil, b, nil)
}

// Apply stores v (as Parse returns it) in b and records the option as
// given; num_grat_arp and num_unsol_na, one setting, both take v. It does
// not check cross-option rules: validate the configuration
// (Config.Validate) after applying, and check Flags against the bond's
// state first.
func (o Option) Apply(b *Bond, v any) error {
	if o.Section != SectionBond {
		return fmt.Errorf("%s is not a bond option", o.Key())
	}
	if err := o.validate(v); err != nil {
		return fmt.Errorf("%s: %w", o.Name, err)
	}
	o.set(nil, b, nil, v)
	if a, ok := lookupIn(SectionBond, aliasOf[o.Name]); ok {
		a.set(nil, b, nil, v) // one setting under two names
	}
	if b.explicit != nil {
		b.explicit[o.Name] = true
	}
	return nil
}

// aliasOf names the other key of a bond setting that has two names, as
// bonding's sysfs (setting one sets both).
var aliasOf = map[string]string{"num_grat_arp": "num_unsol_na", "num_unsol_na": "num_grat_arp"}

// hasStaticDefault reports whether Default holds the default (rather than
// the option being required or its default computed).
func (o Option) hasStaticDefault() bool {
	return o.Flags&FlagRequired == 0 && o.DefaultDoc == ""
}

func (o Option) defaultValue() any {
	v, err := o.Parse(o.Default)
	if err != nil {
		panic(fmt.Sprintf("config: bad default %q for %s: %v", o.Default, o.Key(), err))
	}
	return v
}

func isNumber(s string) bool {
	t := strings.TrimPrefix(s, "-")
	if t == "" {
		return false
	}
	for _, r := range t {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func splitList(s string) []string {
	var l []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			l = append(l, f)
		}
	}
	return l
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
