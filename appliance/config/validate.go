package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Validate checks the configuration and normalizes it the way the bonding
// driver does when it loads: updelay, downdelay and peer_notif_delay are
// rounded down to multiples of miimon, miimon is forced to 100 in modes
// that need it, ARP monitoring is disabled where bonding disables it,
// duplicate ARP targets are dropped. It returns the warnings bonding would
// log, in its wording, and every error, one per line. Validating an
// already validated configuration changes nothing and repeats no rounding
// warning.
//
// A bond built in Go should start from DefaultBond: options that differ
// from their defaults count as given (for the mode checks).
func (c *Config) Validate() ([]string, error) {
	v := &validator{c: c}
	v.dataplane()
	v.generic(SectionControl, "control", "control.", func(o Option) any { return o.get(c, nil, nil) })
	v.generic(SectionLog, "log", "log.", func(o Option) any { return o.get(c, nil, nil) })
	v.generic(SectionMetrics, "metrics", "metrics.", func(o Option) any { return o.get(c, nil, nil) })
	if len(c.Bonds) == 0 && !c.bad("bonds") {
		v.errorf("bonds: at least one bond is required")
	}
	v.owner = map[string]string{}
	v.bondNames = map[string]string{}
	for i := range c.Bonds {
		b := &c.Bonds[i]
		if b.Name != "" {
			if _, ok := v.bondNames[b.Name]; !ok {
				v.bondNames[b.Name] = fmt.Sprintf("bonds[%d]", i)
			}
		}
	}
	for i := range c.Bonds {
		v.bond(i)
	}
	return v.warns, errors.Join(v.errs...)
}

type validator struct {
	c         *Config
	errs      []error
	warns     []string
	owner     map[string]string // slave name -> bond name
	bondNames map[string]string // bond name -> bonds[N]
}

func (v *validator) errorf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *validator) warnf(format string, args ...any) {
	v.warns = append(v.warns, fmt.Sprintf(format, args...))
}

// bad reports whether a key failed to decode: the key itself, a key
// within it or a key containing it ("bonds[0]" for "bonds[0].mode").
func (c *Config) bad(keys ...string) bool {
	for _, k := range keys {
		for b := range c.broken {
			if b == k || strings.HasPrefix(k, b+".") || strings.HasPrefix(k, b+"[") ||
				strings.HasPrefix(b, k+".") || strings.HasPrefix(b, k+"[") {
				return true
			}
		}
	}
	return false
}

// generic checks every option of sec with the option's own rules, but
// for the keys that failed to decode (scope.name).
func (v *validator) generic(sec Section, scope, prefix string, get func(Option) any) int {
	n := 0
	for _, o := range table {
		if o.Section != sec || (sec == SectionBond && o.Name == "slaves") || v.c.bad(scope+"."+o.Name) {
			continue
		}
		if err := o.validate(get(o)); err != nil {
			v.errorf("%s%s: %v", prefix, o.Name, err)
			n++
		}
	}
	return n
}

func (v *validator) dataplane() {
	c := v.c
	dp := &c.Dataplane
	if v.generic(SectionDataplane, "dataplane", "dataplane.", func(o Option) any { return o.get(c, nil, nil) }) > 0 {
		return
	}
	if len(dp.Cores) > 0 && dp.Queues < len(dp.Cores) && !c.bad("dataplane.cores", "dataplane.queues") {
		v.errorf("dataplane.queues: %d is less than the number of dataplane.cores (%d) (allowed %d..256)",
			dp.Queues, len(dp.Cores), len(dp.Cores))
	}
	if dp.Batch > dp.RingSize && !c.bad("dataplane.batch", "dataplane.ring_size") {
		v.errorf("dataplane.batch: %d exceeds dataplane.ring_size %d (allowed 1..%d)", dp.Batch, dp.RingSize, dp.RingSize)
	}
}

// isSet reports whether o was given for b: from the file, with Apply, or
// (for bonds built in Go) by differing from its default.
func (b *Bond) isSet(o Option) bool {
	if b.explicit != nil {
		return b.explicit[o.Name]
	}
	if !o.hasStaticDefault() {
		return false
	}
	return o.Format(o.get(nil, b, nil)) != o.Format(o.defaultValue())
}

func (s *Slave) isSet(o Option) bool {
	if s.explicit != nil {
		return s.explicit[o.Name]
	}
	if !o.hasStaticDefault() {
		return false
	}
	return o.Format(o.get(nil, nil, s)) != o.Format(o.defaultValue())
}

// show renders a value for a message, "" when it is empty.
func show(o Option, v any) string {
	if s := o.Format(v); s != "" {
		return s
	}
	return `""`
}

// modeLabel renders a mode as bonding does in "not supported in mode
// 802.3ad(4)".
func modeLabel(mode int) string { return fmt.Sprintf("%s(%d)", ModeName(mode), mode) }

func (v *validator) bond(i int) {
	c, b := v.c, &v.c.Bonds[i]
	scope := fmt.Sprintf("bonds[%d]", i)
	where := scope
	if checkIfName(b.Name) == nil {
		where = fmt.Sprintf("%s (%s)", scope, b.Name)
	}
	if c.broken[scope] {
		return
	}
	bad := func(keys ...string) bool {
		for _, k := range keys {
			if c.bad(scope + "." + k) {
				return true
			}
		}
		return false
	}
	w := b.Name // warning prefix, as bonding prefixes its messages
	if w == "" {
		w = scope
	}

	if v.generic(SectionBond, scope, where+": ", func(o Option) any { return o.get(nil, b, nil) }) > 0 {
		return
	}
	if first := v.bondNames[b.Name]; first != scope && !bad("name") {
		v.errorf("%s: name: %q is already used by %s (allowed: a name not used by another bond)", where, b.Name, first)
	}
	if !c.broken[scope+".slaves"] {
		v.slaves(scope, where, b)
	}
	if bad("mode") {
		return
	}

	// Options the mode does not support: sysfs and netlink refuse them.
	for _, o := range table {
		if o.Section != SectionBond || o.Modes.Has(b.Mode) || !b.isSet(o) || bad(o.Name) {
			continue
		}
		v.errorf("%s: %s: %s is not supported in mode %s (mode dependency failed; %s is supported in modes: %s)",
			where, o.Name, show(o, o.get(nil, b, nil)), modeLabel(b.Mode), o.Name, o.Modes)
		if o.hasStaticDefault() {
			o.set(nil, b, nil, o.defaultValue())
		}
		if o.Name == "arp_interval" && !b.isSet(opt("miimon")) {
			b.Miimon = DefaultMiimon // its default without ARP monitoring
		}
	}
	if bad("miimon", "arp_interval", "arp_ip_target", "ns_ip6_target") {
		return
	}

	// The rules of bond_check_params, in its order.
	if b.isSet(opt("xmit_hash_policy")) &&
		(b.Mode == ModeBalanceRR || b.Mode == ModeActiveBackup || b.Mode == ModeBroadcast) {
		v.warnf("%s: xmit_hash_policy param is irrelevant in mode %s", w, bondModeName(b.Mode))
	}
	if b.isSet(opt("ad_select")) && b.Mode != Mode8023AD {
		v.warnf("%s: ad_select param only affects 802.3ad mode", w)
	}
	if !arpModes.Has(b.Mode) && b.Miimon == 0 {
		v.warnf("%s: Warning: miimon must be specified, otherwise bonding will not detect link failure, speed and duplex which are essential for 802.3ad operation", w)
		v.warnf("%s: Forcing miimon to %dmsec", w, DefaultMiimon)
		b.Miimon = DefaultMiimon
	}
	if b.Mode == ModeBalanceALB {
		v.warnf("%s: In ALB mode you might experience client disconnections upon reconnection of a link if the bonding module updelay parameter (%d msec) is incompatible with the forwarding delay time of the switch", w, b.Updelay)
	}
	if b.Miimon == 0 {
		if b.Updelay != 0 || b.Downdelay != 0 {
			v.warnf("%s: Warning: miimon module parameter not set and updelay (%d) or downdelay (%d) module parameter is set; updelay and downdelay have no effect unless miimon is set", w, b.Updelay, b.Downdelay)
		}
	} else {
		if b.ArpInterval != 0 && !b.CombineMonitors {
			v.warnf("%s: Warning: miimon (%d) and arp_interval (%d) can't be used simultaneously, disabling ARP monitoring", w, b.Miimon, b.ArpInterval)
			b.ArpInterval = 0
		}
		if b.Updelay%b.Miimon != 0 {
			r := b.Updelay / b.Miimon * b.Miimon
			v.warnf("%s: Warning: updelay (%d) is not a multiple of miimon (%d), updelay rounded to %d ms", w, b.Updelay, b.Miimon, r)
			b.Updelay = r
		}
		if b.Downdelay%b.Miimon != 0 {
			r := b.Downdelay / b.Miimon * b.Miimon
			v.warnf("%s: Warning: downdelay (%d) is not a multiple of miimon (%d), downdelay rounded to %d ms", w, b.Downdelay, b.Miimon, r)
			b.Downdelay = r
		}
	}
	var targets = b.ArpIPTargets[:0:0]
	for _, a := range b.ArpIPTargets {
		if slices.Contains(targets, a) {
			v.warnf("%s: Warning: duplicate address %s in arp_ip_target, skipping", w, a)
			continue
		}
		targets = append(targets, a)
	}
	if len(targets) != len(b.ArpIPTargets) {
		b.ArpIPTargets = targets
	}
	if b.ArpInterval != 0 && len(b.ArpIPTargets) == 0 && len(b.NSIP6Targets) == 0 {
		v.warnf("%s: Warning: arp_interval module parameter (%d) specified without providing an arp_ip_target parameter, arp_interval was reset to 0", w, b.ArpInterval)
		b.ArpInterval = 0
	}
	if b.ArpValidate != ArpValidateNone && b.ArpInterval == 0 && !bad("arp_validate") {
		o := opt("arp_validate")
		v.errorf("%s: arp_validate: %s requires arp_interval (allowed without ARP monitoring: none|0)", where, o.Format(b.ArpValidate))
	}
	if b.Miimon == 0 && b.ArpInterval == 0 {
		v.warnf("%s: Warning: either miimon or arp_interval and arp_ip_target module parameters must be specified, otherwise bonding will not detect link failures! see bonding.txt for details", w)
	}
	if b.Primary != "" && !b.hasSlave(b.Primary) && !bad("slaves") {
		v.warnf("%s: Recording %s as primary, but it has not been enslaved yet (it is not in slaves)", w, b.Primary)
	}
	if b.isSet(opt("fail_over_mac")) && b.Mode != ModeActiveBackup {
		v.warnf("%s: Warning: fail_over_mac only affects active-backup mode", w)
	}

	// Rules of the sysfs/netlink-only options.
	if b.ActiveSlave != "" && !b.hasSlave(b.ActiveSlave) && !bad("slaves") {
		v.errorf("%s: active_slave: %q is not a slave of %s (allowed: %s, or empty)", where, b.ActiveSlave, b.Name, b.slaveNames())
	}
	if b.PeerNotifDelay != 0 {
		if b.Miimon == 0 {
			v.errorf("%s: peer_notif_delay: %d cannot be set as MII monitoring is disabled (allowed: 0 while miimon is 0)", where, b.PeerNotifDelay)
		} else if b.PeerNotifDelay%b.Miimon != 0 {
			r := b.PeerNotifDelay / b.Miimon * b.Miimon
			v.warnf("%s: peer notification delay (%d) is not a multiple of miimon (%d), value rounded to %d ms", w, b.PeerNotifDelay, b.Miimon, r)
			b.PeerNotifDelay = r
		}
	}
	if b.NumGratARP != b.NumUnsolNA && !bad("num_grat_arp", "num_unsol_na") {
		v.errorf("%s: num_grat_arp: %d differs from num_unsol_na %d (allowed: the same value; they are aliases of one setting)", where, b.NumGratARP, b.NumUnsolNA)
	}

	// Appliance rules.
	// Above MaxMTU frames span several UMEM frames (AF_XDP multi-buffer,
	// checked against the kernel at start); a TAP host reads and writes
	// one UMEM frame per frame, so it carries no such frames.
	if b.MTU > MaxMTU(c.Dataplane.FrameSize) && !bad("mtu") && !c.bad("dataplane.frame_size") && !c.bad("dataplane.host_device") &&
		c.Dataplane.HostDevice == "tap" {
		v.errorf("%s: mtu: %d does not fit dataplane.frame_size %d with dataplane.host_device tap: a TAP host carries single-buffer frames only (allowed: mtu at most %d = frame_size - %d XDP headroom - %d Ethernet and VLAN header, or host_device veth for up to %d)",
			where, b.MTU, c.Dataplane.FrameSize, MaxMTU(c.Dataplane.FrameSize), XDPHeadroom, MaxL2Header, MaxJumboMTU)
	}
}

func (v *validator) slaves(scope, where string, b *Bond) {
	c := v.c
	if len(b.Slaves) == 0 {
		v.errorf("%s: slaves: at least one slave is required", where)
		return
	}
	for j := range b.Slaves {
		s := &b.Slaves[j]
		sw := fmt.Sprintf("%s: slaves[%d]", where, j)
		if checkIfName(s.Name) == nil {
			sw = fmt.Sprintf("%s (%s)", sw, s.Name)
		}
		sscope := fmt.Sprintf("%s.slaves[%d]", scope, j)
		if c.broken[sscope] || c.broken[sscope+".name"] {
			continue
		}
		if v.generic(SectionSlave, sscope, sw+": ", func(o Option) any { return o.get(nil, nil, s) }) > 0 {
			continue
		}
		switch {
		case slices.ContainsFunc(b.Slaves[:j], func(p Slave) bool { return p.Name == s.Name }):
			v.errorf("%s: slaves: duplicate slave %q (allowed: each interface once)", where, s.Name)
		case v.owner[s.Name] != "" && v.owner[s.Name] != b.Name:
			v.errorf("%s: slaves: %q is already a slave of %s (allowed: an interface in one bond only)", where, s.Name, v.owner[s.Name])
		case v.bondNames[s.Name] != "":
			v.errorf("%s: slaves: %q is the name of a bond (allowed: member interfaces only)", where, s.Name)
		default:
			v.owner[s.Name] = b.Name
		}
		if s.QueueID > c.Dataplane.Queues && !c.bad("dataplane.queues", "dataplane.cores", sscope+".queue_id") {
			v.errorf("%s: queue_id: %d out of range (allowed 0..%d, the number of dataplane.queues)", sw, s.QueueID, c.Dataplane.Queues)
		}
		if s.QueueID != 0 {
			for _, p := range b.Slaves[:j] {
				if p.QueueID == s.QueueID {
					v.errorf("%s: queue_id: %d is already used by slave %s (allowed: a queue id used by no other slave of the bond, or 0)", sw, s.QueueID, p.Name)
					break
				}
			}
		}
		for _, o := range table {
			if o.Section != SectionSlave || o.Modes.Has(b.Mode) || !s.isSet(o) || c.bad(scope+".mode", sscope+"."+o.Name) {
				continue
			}
			v.errorf("%s: %s: %s is not supported in mode %s (mode dependency failed; %s is supported in modes: %s)",
				sw, o.Name, show(o, o.get(nil, nil, s)), modeLabel(b.Mode), o.Name, o.Modes)
		}
	}
}

func (b *Bond) hasSlave(name string) bool {
	return slices.ContainsFunc(b.Slaves, func(s Slave) bool { return s.Name == name })
}

func (b *Bond) slaveNames() string {
	l := make([]string, len(b.Slaves))
	for i, s := range b.Slaves {
		l[i] = s.Name
	}
	return strings.Join(l, ", ")
}

// opt returns the bond option name; it panics on a name not in the table.
func opt(name string) Option {
	o, ok := lookupIn(SectionBond, name)
	if !ok {
		panic("config: no bond option " + name)
	}
	return o
}
