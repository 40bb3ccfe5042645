package appliance

import (
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/lacp"
	"github.com/bond-appliance/bond-appliance/policy"
)

// RuntimeOptions lists the bond options `set` can change (bonding's sysfs
// set, less what this version cannot change live).
func RuntimeOptions() []string {
	var out []string
	for _, o := range config.Options() {
		if o.Section == config.SectionBond && o.RuntimeChangeable() {
			out = append(out, o.Name)
		}
	}
	return out
}

// SetOption changes a bond option at runtime with bonding's restrictions:
// options that need the bond down or without slaves say so and change
// nothing; the result must validate like a configuration file. It returns
// the value as applied.
func (a *Appliance) SetOption(bondName, name, value string) (string, error) {
	if name == "active_slave" {
		return value, a.SetActiveSlave(bondName, value)
	}
	b := a.bond(bondName)
	if b == nil {
		return "", fmt.Errorf("no bond %q", bondName)
	}
	o, ok := config.LookupOption(name)
	if !ok || o.Section != config.SectionBond {
		return "", fmt.Errorf("bond %s: unknown option %q (allowed: %s)", bondName, name, strings.Join(RuntimeOptions(), ", "))
	}
	if !o.RuntimeChangeable() {
		return "", fmt.Errorf("bond %s: %s cannot be changed while the appliance runs: edit the configuration and restart", bondName, name)
	}
	v, err := o.Parse(value)
	if err != nil {
		return "", fmt.Errorf("bond %s: %s: %w", bondName, name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := a.canSet(b, o); err != nil {
		return "", err
	}
	cfg, pos := a.liveConfig()
	nb := &cfg.Bonds[pos[b]]
	if err := o.Apply(nb, v); err != nil {
		return "", fmt.Errorf("bond %s: %s: %w", bondName, name, err)
	}
	warnings, err := cfg.Validate()
	if err != nil {
		return "", err
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	old := b.cfg
	b.cfg = cfg.Bonds[pos[b]]
	if err := b.applyRuntime(old, a.lanes[0]); err != nil {
		b.cfg = old
		_ = b.applyRuntime(b.cfg, a.lanes[0])
		return "", fmt.Errorf("bond %s: %s: %w", bondName, name, err)
	}
	applied := o.Format(o.Current(&b.cfg))
	a.event("option changed", "bond", bondName, "option", name, "value", applied)
	return applied, nil
}

// canSet applies bonding's restrictions on changing o now: the mode must
// support it, then the bond must be without slaves or down where bonding
// requires it; callers hold mu.
func (a *Appliance) canSet(b *bond, o config.Option) error {
	name, bondName := o.Name, b.cfg.Name
	if !o.Modes.Has(b.cfg.Mode) {
		return fmt.Errorf("bond %s: %s is not supported in mode %s (supported in: %s)", bondName, name, b.mode, o.Modes)
	}
	if o.Flags&config.FlagNoSlaves != 0 {
		return fmt.Errorf("bond %s: %s can only be changed while the bond has no slaves (it has %d), as in bonding", bondName, name, len(b.members))
	}
	if o.Flags&config.FlagIfDown != 0 && a.hostUp(b) {
		return fmt.Errorf("bond %s: %s can only be changed while the bond is down (ip link set %s down), as in bonding", bondName, name, b.host)
	}
	return nil
}

// liveConfig is the running configuration: the start-up settings with the
// live bonds as they are now, and each bond's position in it. Callers may
// hold one bond's mu (its cfg is read without taking it again).
func (a *Appliance) liveConfig() (*config.Config, map[*bond]int) {
	cfg := a.cfg.Clone()
	cfg.Bonds = nil
	pos := map[*bond]int{}
	for _, b := range a.bonds {
		if b.removed {
			continue
		}
		pos[b] = len(cfg.Bonds)
		cfg.Bonds = append(cfg.Bonds, b.cfg.Clone())
	}
	return cfg, pos
}

func (a *Appliance) hostUp(b *bond) bool {
	ifi, err := net.InterfaceByName(b.host)
	return err == nil && ifi.Flags&net.FlagUp != 0
}

// monitorFields are the options the ARP/NS monitor and the notifier are
// built from.
func monitorFields(c config.Bond) []any {
	return []any{c.ArpInterval, c.ArpIPTargets, c.NSIP6Targets, c.ArpValidate, c.ArpAllTargets, c.ArpMissedMax,
		c.NumGratARP, c.NumUnsolNA, c.PeerNotifDelay, c.ResendIGMP, c.VLANs, c.Miimon, c.PrimaryReselect, c.Primary}
}

// applyRuntime makes a changed configuration take effect; callers hold mu.
func (b *bond) applyRuntime(old config.Bond, tx *lane.Lane) error {
	c := b.cfg
	b.hash = policy.HashPolicy(c.XmitHashPolicy)
	if b.ad != nil {
		lc := b.ad.sys.Config()
		lc.SystemPriority = uint16(c.ADActorSysPrio)
		sysID := c.ADActorSystem
		if len(sysID) == 0 || macArray(sysID) == ([6]byte{}) {
			sysID = b.mac
		}
		lc.SystemID = macArray(sysID)
		lc.FastRate = c.LACPRate == config.LACPRateFast
		lc.Active = c.LACPActive
		lc.Select = lacp.Select(c.ADSelect)
		lc.MinLinks = c.MinLinks
		lc.CoupledControl = c.CoupledControl
		if err := b.ad.sys.SetConfig(lc); err != nil {
			return err
		}
	}
	if !reflect.DeepEqual(monitorFields(old), monitorFields(c)) {
		b.mon = nil
		if err := b.setupMonitor(tx); err != nil {
			return err
		}
		if b.mon != nil && b.mon.mon != nil {
			for _, m := range b.members {
				b.mon.mon.SetLink(m.idx, m.carrier)
			}
		}
	}
	b.rebuild()
	return nil
}

// ConfigPath is the file the running configuration came from (for reload).
func (a *Appliance) SetConfigPath(p string) { a.cfgPath = p }

// Reload re-reads the configuration (path, or the file the appliance started
// from) and applies only the difference: bonds removed and added, slaves
// removed and added (by name, with default per-slave options), changed
// runtime options through the same rules as `set`. Members and bonds the
// change does not touch are not disturbed. What cannot be applied live
// (dataplane, control, log or metrics settings, start-only options,
// per-slave options of existing slaves) is refused before anything
// changes, with the reason. It returns the changes applied.
func (a *Appliance) Reload(path string) ([]string, error) {
	a.cfgMu.Lock()
	defer a.cfgMu.Unlock()
	if path == "" {
		path = a.cfgPath
	}
	if path == "" {
		return nil, fmt.Errorf("reload: no configuration file known")
	}
	nc, warnings, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("reload: %s: %w (nothing changed)", path, err)
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	var refuse []string
	if !reflect.DeepEqual(nc.Dataplane, a.cfg.Dataplane) {
		refuse = append(refuse, "dataplane settings changed")
	}
	if !reflect.DeepEqual(nc.Control, a.cfg.Control) || !reflect.DeepEqual(nc.Log, a.cfg.Log) || nc.Metrics != a.cfg.Metrics {
		refuse = append(refuse, "control, log or metrics settings changed")
	}
	type change struct {
		bond, opt, val string
	}
	var todo []change
	type slaveChange struct{ bond, slave string }
	var addSlaves, delSlaves []slaveChange
	var addBonds []config.Bond
	var delBonds []string
	live, _ := a.liveConfig()
	for _, ob := range live.Bonds {
		if !slices.ContainsFunc(nc.Bonds, func(nb config.Bond) bool { return nb.Name == ob.Name }) {
			delBonds = append(delBonds, ob.Name)
		}
	}
	for _, nb := range nc.Bonds {
		i := slices.IndexFunc(live.Bonds, func(ob config.Bond) bool { return ob.Name == nb.Name })
		if i < 0 {
			addBonds = append(addBonds, nb)
			continue
		}
		ob := live.Bonds[i]
		if !reflect.DeepEqual(nb.Slaves, ob.Slaves) {
			// members added or removed by name; other per-slave changes need a restart
			for _, s := range nb.Slaves {
				j := slices.IndexFunc(ob.Slaves, func(x config.Slave) bool { return x.Name == s.Name })
				switch {
				case j < 0 && reflect.DeepEqual(s, config.Slave{Name: s.Name, ActorPortPrio: 255}):
					addSlaves = append(addSlaves, slaveChange{nb.Name, s.Name})
				case j < 0:
					refuse = append(refuse, fmt.Sprintf("bond %s: new slave %s has per-slave options (add it with defaults, then restart to set them)", nb.Name, s.Name))
				case !reflect.DeepEqual(s, ob.Slaves[j]):
					refuse = append(refuse, fmt.Sprintf("bond %s: slave %s options changed", nb.Name, s.Name))
				}
			}
			for _, s := range ob.Slaves {
				if !slices.ContainsFunc(nb.Slaves, func(x config.Slave) bool { return x.Name == s.Name }) {
					delSlaves = append(delSlaves, slaveChange{nb.Name, s.Name})
				}
			}
		}
		for _, o := range config.Options() {
			if o.Section != config.SectionBond || o.Name == "slaves" {
				continue
			}
			nv, ov := o.Current(&nb), o.Current(&ob)
			if reflect.DeepEqual(nv, ov) {
				continue
			}
			if !o.RuntimeChangeable() {
				refuse = append(refuse, fmt.Sprintf("bond %s: %s changed (start-only)", nb.Name, o.Name))
				continue
			}
			b := a.bond(nb.Name)
			b.mu.Lock()
			err := a.canSet(b, o)
			b.mu.Unlock()
			if err != nil {
				refuse = append(refuse, err.Error())
				continue
			}
			todo = append(todo, change{nb.Name, o.Name, o.Format(nv)})
		}
	}
	if len(refuse) > 0 {
		return nil, fmt.Errorf("reload: cannot apply without a restart, nothing changed: %s", strings.Join(refuse, "; "))
	}
	var done []string
	for _, n := range delBonds {
		if err := a.DelBond(n); err != nil {
			return done, fmt.Errorf("reload: %w (applied before it: %v)", err, done)
		}
		done = append(done, "bond "+n+" removed")
	}
	for _, c := range delSlaves {
		if err := a.DelSlave(c.bond, c.slave); err != nil {
			return done, fmt.Errorf("reload: %w (applied before it: %v)", err, done)
		}
		done = append(done, fmt.Sprintf("%s slave %s removed", c.bond, c.slave))
	}
	for _, c := range addSlaves {
		if err := a.AddSlave(c.bond, c.slave); err != nil {
			return done, fmt.Errorf("reload: %w (applied before it: %v)", err, done)
		}
		done = append(done, fmt.Sprintf("%s slave %s added", c.bond, c.slave))
	}
	for _, bc := range addBonds {
		if err := a.AddBond(bc); err != nil {
			return done, fmt.Errorf("reload: %w (applied before it: %v)", err, done)
		}
		done = append(done, "bond "+bc.Name+" added")
	}
	for _, c := range todo {
		v, err := a.SetOption(c.bond, c.opt, c.val)
		if err != nil {
			return done, fmt.Errorf("reload: %w (applied before it: %v)", err, done)
		}
		done = append(done, fmt.Sprintf("%s %s=%s", c.bond, c.opt, v))
	}
	a.event("configuration reloaded", "bond", "*", "path", path, "changes", len(done))
	return done, nil
}
