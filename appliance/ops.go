package appliance

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/bondsm"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/policy"
)

// Requests from other goroutines (control socket connections, SIGHUP, the
// metrics exporter) reach the control loop as functions it runs; they wait
// for its reply. Configuration changes that need device work (slave and
// bond add/del, reload) are ops: the loop runs one at a time, hands the
// slow steps to the worker and waits for the lanes between steps, and keeps
// ticking meanwhile.

var errStopped = errors.New("the appliance is shutting down")

// do runs fn on the control loop and waits until it ran.
func (a *Appliance) do(fn func(c *ctl)) error {
	done := make(chan struct{})
	select {
	case a.reqs <- func(c *ctl) { fn(c); close(done) }:
	case <-a.stop:
		return errStopped
	}
	select {
	case <-done:
		return nil
	case <-a.stop:
		return errStopped
	}
}

// op is a configuration change in progress.
type op struct {
	start func(c *ctl, k func(opResult))
	reply chan opResult
}

type opResult struct {
	value   string
	changes []string
	err     error
}

// runOp queues a configuration change on the control loop and waits for
// its result.
func (a *Appliance) runOp(start func(c *ctl, k func(opResult))) opResult {
	o := &op{start: start, reply: make(chan opResult, 1)}
	if err := a.do(func(c *ctl) { c.enqueue(o) }); err != nil {
		return opResult{err: err}
	}
	select {
	case r := <-o.reply:
		return r
	case <-a.stop:
		return opResult{err: errStopped}
	}
}

func (c *ctl) enqueue(o *op) {
	c.ops = append(c.ops, o)
	if len(c.ops) == 1 {
		c.startHead()
	}
}

func (c *ctl) startHead() {
	o := c.ops[0]
	once := false
	o.start(c, func(r opResult) {
		if once {
			return
		}
		once = true
		o.reply <- r
		c.ops = c.ops[1:]
		if len(c.ops) > 0 {
			c.startHead()
		}
	})
}

// failOps answers every queued op (the loop is ending).
func (c *ctl) failOps(err error) {
	for _, o := range c.ops {
		select {
		case o.reply <- opResult{err: err}:
		default:
		}
	}
	c.ops = nil
}

func fail(k func(opResult), err error) { k(opResult{err: err}) }

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
	r := a.runOp(func(c *ctl, k func(opResult)) {
		v, err := c.setOption(bondName, name, value)
		k(opResult{value: v, err: err})
	})
	return r.value, r.err
}

// SetActiveSlave implements the runtime active_slave option.
func (a *Appliance) SetActiveSlave(bondName, slave string) error {
	_, err := a.SetOption(bondName, "active_slave", slave)
	return err
}

func (c *ctl) setOption(bondName, name, value string) (string, error) {
	b := c.bond(bondName)
	if b == nil {
		return "", fmt.Errorf("no bond %q", bondName)
	}
	now := time.Now()
	if name == "active_slave" {
		out, err := b.sm.SetActiveSlave(now, value)
		if err != nil {
			return "", err
		}
		c.apply(b, out)
		c.event("option changed", "bond", bondName, "option", name, "value", value)
		return value, nil
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
	if err := c.canSet(b, o); err != nil {
		return "", err
	}
	cfg, pos := c.liveConfig()
	nb := &cfg.Bonds[pos[b]]
	if err := o.Apply(nb, v); err != nil {
		return "", fmt.Errorf("bond %s: %s: %w", bondName, name, err)
	}
	monitorSwitch(nb, name, c.a.log)
	warnings, err := cfg.Validate()
	if err != nil {
		return "", err
	}
	for _, w := range warnings {
		c.a.log.Warn(w)
	}
	out, err := b.sm.Reconfigure(now, cfg.Bonds[pos[b]])
	if err != nil {
		return "", fmt.Errorf("bond %s: %s: %w", bondName, name, err)
	}
	c.apply(b, out)
	nc := b.sm.Config()
	applied := o.Format(o.Current(&nc))
	c.event("option changed", "bond", bondName, "option", name, "value", applied)
	return applied, nil
}

// canSet applies bonding's restrictions on changing o now: the mode must
// support it, then the bond must be without slaves or down where bonding
// requires it.
func (c *ctl) canSet(b *bondRT, o config.Option) error {
	cfg := b.sm.Config()
	name, bondName := o.Name, b.name
	if !o.Modes.Has(cfg.Mode) {
		return fmt.Errorf("bond %s: %s is not supported in mode %s (supported in: %s)", bondName, name, policy.Mode(cfg.Mode), o.Modes)
	}
	if o.Flags&config.FlagNoSlaves != 0 {
		return fmt.Errorf("bond %s: %s can only be changed while the bond has no slaves (it has %d), as in bonding", bondName, name, len(cfg.Slaves))
	}
	if o.Flags&config.FlagIfDown != 0 && b.hostUp {
		return fmt.Errorf("bond %s: %s can only be changed while the bond is down (ip link set %s down), as in bonding", bondName, name, b.name)
	}
	return nil
}

// liveConfig is the running configuration: the start-up settings with the
// live bonds as they are now, and each bond's position in it.
func (c *ctl) liveConfig() (*config.Config, map[*bondRT]int) {
	cfg := c.a.cfg.Clone()
	cfg.Bonds = nil
	pos := map[*bondRT]int{}
	for _, b := range c.live() {
		pos[b] = len(cfg.Bonds)
		cfg.Bonds = append(cfg.Bonds, b.sm.Config())
	}
	return cfg, pos
}

// AddSlave hot-adds a member to a running bond (bonding's enslave): the
// worker prepares the device as at start, attaches its XDP program and
// opens one socket per lane on the lane's UMEM; then it joins the layouts
// and the forwarding state. Traffic on the other members is not disturbed
// and the control loop keeps its timers meanwhile.
func (a *Appliance) AddSlave(bondName, name string) error {
	return a.runOp(func(c *ctl, k func(opResult)) { c.slaveAdd(bondName, name, k) }).err
}

// DelSlave hot-removes a member (bonding's release): it leaves the
// forwarding state and the layouts first; once every lane let go of its
// sockets, the worker returns their frames to the lanes, closes them,
// detaches the XDP program and restores the device as it was found.
func (a *Appliance) DelSlave(bondName, name string) error {
	return a.runOp(func(c *ctl, k func(opResult)) { c.slaveDel(bondName, name, k) }).err
}

type slaveAdded struct {
	m   bondsm.Member
	md  *memberDev
	err error
}

func (c *ctl) slaveAdd(bondName, name string, k func(opResult)) {
	b := c.bond(bondName)
	if b == nil {
		fail(k, fmt.Errorf("no bond %q", bondName))
		return
	}
	for _, ob := range c.live() {
		for _, m := range ob.sm.Members() {
			if !m.Removed && m.Name == name {
				fail(k, fmt.Errorf("bond %s: %s is already a slave of %s", bondName, name, ob.name))
				return
			}
		}
	}
	cfg := b.sm.Config()
	if m := policy.Mode(cfg.Mode); m == policy.BalanceTLB || m == policy.BalanceALB {
		fail(k, fmt.Errorf("bond %s: adding slaves to a running %s bond is not supported (restart with the new configuration)", bondName, m))
		return
	}
	if n := len(b.sm.Members()); n >= lane.MaxMembers && !slices.ContainsFunc(b.sm.Members(), func(m bondsm.MemberState) bool { return m.Removed }) {
		fail(k, fmt.Errorf("bond %s: at most %d slaves", bondName, lane.MaxMembers))
		return
	}
	dp := c.a.cfg.Dataplane
	mac := b.sm.MAC()
	mtu := b.sm.Status().MTU
	slave := config.Slave{Name: name, ActorPortPrio: 255}
	c.work(func(w *worker) any {
		if err := checkSlave(dp, cfg, name); err != nil {
			return slaveAdded{err: err}
		}
		m, err := w.prepareMember(&cfg, mac, mtu, slave, false)
		if err != nil {
			_ = w.journal.RestoreDevice(name)
			return slaveAdded{err: fmt.Errorf("bond %s: add %s: %w", bondName, name, err)}
		}
		md, err := w.openMember(name, cfg.Force, fastRXConfig(&cfg))
		if err != nil {
			_ = w.releaseMember(md)
			_ = w.journal.RestoreDevice(name)
			return slaveAdded{err: fmt.Errorf("bond %s: add %s: %w", bondName, name, err)}
		}
		return slaveAdded{m: m, md: md}
	}, func(c *ctl, v any) {
		r := v.(slaveAdded)
		if r.err != nil {
			fail(k, r.err)
			return
		}
		idx, out, err := b.sm.AddMember(time.Now(), r.m)
		if err != nil {
			c.work(func(w *worker) any { return w.releaseMember(r.md) }, func(*ctl, any) {})
			fail(k, fmt.Errorf("bond %s: add %s: %w", bondName, name, err))
			return
		}
		for len(b.members) <= idx {
			b.members = append(b.members, nil)
		}
		b.members[idx] = r.md
		for q := range b.ports {
			for len(b.ports[q]) <= idx {
				b.ports[q] = append(b.ports[q], nil)
			}
			b.ports[q][idx] = r.md.ports[q]
		}
		// the layout first: a lane reads its layout before the snapshot
		c.publishLayouts()
		c.apply(b, out) // the state machine's output says "slave added"
		k(opResult{})
	})
}

func (c *ctl) slaveDel(bondName, name string, k func(opResult)) {
	b := c.bond(bondName)
	if b == nil {
		fail(k, fmt.Errorf("no bond %q", bondName))
		return
	}
	idx, out, err := b.sm.RemoveMember(time.Now(), name)
	if err != nil {
		fail(k, err)
		return
	}
	// the snapshot without the member first, then the layout
	c.apply(b, out)
	var md *memberDev
	if idx < len(b.members) {
		md, b.members[idx] = b.members[idx], nil
	}
	for q := range b.ports {
		if idx < len(b.ports[q]) {
			b.ports[q][idx] = nil
		}
	}
	lays := c.publishLayouts()
	c.whenAdopted(lays, func(c *ctl) {
		c.work(func(w *worker) any { return w.releaseMember(md) }, func(c *ctl, v any) {
			err, _ := v.(error)
			if err != nil {
				c.event("slave release incomplete", "bond", bondName, "slave", name, "err", err.Error())
			}
			k(opResult{err: err})
		})
	})
}

// AddBond brings up a whole new bond while the others keep forwarding: it
// must validate together with the running configuration; its host device,
// members, XDP programs and one socket per lane (on the lanes' UMEMs) are
// set up as at start.
func (a *Appliance) AddBond(bc config.Bond) error {
	return a.runOp(func(c *ctl, k func(opResult)) { c.bondAdd(bc, k) }).err
}

// DelBond takes a whole bond down while the others keep forwarding.
func (a *Appliance) DelBond(name string) error {
	return a.runOp(func(c *ctl, k func(opResult)) { c.bondDel(name, k) }).err
}

type bondAdded struct {
	bd  *bondDevs
	err error
}

func (c *ctl) bondAdd(bc config.Bond, k func(opResult)) {
	if c.bond(bc.Name) != nil {
		fail(k, fmt.Errorf("bond %s: already running", bc.Name))
		return
	}
	cfg, _ := c.liveConfig()
	cfg.Bonds = append(cfg.Bonds, bc)
	warnings, err := cfg.Validate()
	if err != nil {
		fail(k, err)
		return
	}
	for _, w := range warnings {
		c.a.log.Warn(w)
	}
	bc = cfg.Bonds[len(cfg.Bonds)-1]
	dp := c.a.cfg.Dataplane
	c.work(func(w *worker) any {
		if err := preflightBond(dp, bc, nil); err != nil {
			return bondAdded{err: err} // refused before any device was touched
		}
		bd, err := w.prepareBond(bc)
		if err == nil {
			err = w.openBond(bd)
		}
		if err != nil {
			if bd != nil {
				_ = w.releaseBond(bc.Name, bd, bd.members)
			} else {
				for _, s := range bc.Slaves {
					_ = w.journal.RestoreDevice(s.Name)
				}
				_ = w.journal.RestoreDevice(dpName(bc.Name))
				_ = w.journal.RestoreDevice(bc.Name)
			}
			return bondAdded{err: err}
		}
		return bondAdded{bd: bd}
	}, func(c *ctl, v any) {
		r := v.(bondAdded)
		if r.err != nil {
			fail(k, r.err)
			return
		}
		b, out, err := c.addBond(r.bd, time.Now())
		if err != nil {
			bd := r.bd
			c.work(func(w *worker) any { return w.releaseBond(bc.Name, bd, bd.members) }, func(*ctl, any) {})
			fail(k, err)
			return
		}
		c.publishLayouts()
		c.apply(b, out)
		c.event("bond added", "bond", bc.Name, "mode", policy.Mode(bc.Mode).String(), "slaves", len(bc.Slaves))
		k(opResult{})
	})
}

func (c *ctl) bondDel(name string, k func(opResult)) {
	b := c.bond(name)
	if b == nil {
		fail(k, fmt.Errorf("no bond %q", name))
		return
	}
	if len(c.live()) == 1 {
		fail(k, fmt.Errorf("bond %s is the last bond; stop the appliance instead", name))
		return
	}
	b.removed = true
	c.apply(b, b.sm.Release())
	lays := c.publishLayouts()
	members := slices.Clone(b.members)
	bd := b.devs
	c.whenAdopted(lays, func(c *ctl) {
		c.work(func(w *worker) any { return w.releaseBond(name, bd, members) }, func(c *ctl, v any) {
			err, _ := v.(error)
			c.event("bond removed", "bond", name)
			k(opResult{err: err})
		})
	})
}

// addBondFromFile adds the bond named name as the configuration file
// (path, or the file the appliance started from) defines it.
func (a *Appliance) addBondFromFile(path, name string) error {
	p, env, overrides := a.configSource()
	if path == "" {
		path = p
	}
	if path == "" {
		return fmt.Errorf("bond add: no configuration file known")
	}
	nc, _, err := config.LoadWith(path, env, overrides)
	if err != nil {
		return fmt.Errorf("bond add: %s: %w", path, err)
	}
	for _, bc := range nc.Bonds {
		if bc.Name == name {
			return a.AddBond(bc)
		}
	}
	return fmt.Errorf("bond add: %s defines no bond %q", path, name)
}

// SetConfigPath records the file the running configuration came from (for
// reload and bond add).
func (a *Appliance) SetConfigPath(p string) { a.SetConfigSource(p, nil, nil) }

// SetConfigSource records the file, environment and --set overrides the
// running configuration came from: reload and bond add read the file with
// the same layers on top, so only a change of the file counts.
func (a *Appliance) SetConfigSource(path string, env, overrides []string) {
	_ = a.do(func(c *ctl) { c.cfgPath, c.env, c.overrides = path, env, overrides })
}

// configSource returns what SetConfigSource recorded.
func (a *Appliance) configSource() (path string, env, overrides []string) {
	_ = a.do(func(c *ctl) { path, env, overrides = c.cfgPath, c.env, c.overrides })
	return
}

// Reload re-reads the configuration (path, or the file the appliance started
// from) and applies only the difference: bonds removed and added, slaves
// removed and added (by name, with default per-slave options), changed
// runtime options through the same rules as `set`. Members and bonds the
// change does not touch are not disturbed. What cannot be applied live
// (dataplane, control, log or metrics settings, start-only options,
// per-slave options of existing slaves) is refused before anything
// changes, with the reason. It returns the changes applied.
func (a *Appliance) Reload(path string) ([]string, error) {
	p, env, overrides := a.configSource()
	if path == "" {
		path = p
	}
	if path == "" {
		return nil, fmt.Errorf("reload: no configuration file known")
	}
	nc, warnings, err := config.LoadWith(path, env, overrides)
	if err != nil {
		return nil, fmt.Errorf("reload: %s: %w (nothing changed)", path, err)
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	r := a.runOp(func(c *ctl, k func(opResult)) { c.reload(path, nc, k) })
	return r.changes, r.err
}

// step is one change of a reload.
type step struct {
	desc string
	run  func(c *ctl, k func(opResult))
}

func (c *ctl) reload(path string, nc *config.Config, k func(opResult)) {
	steps, err := c.plan(nc)
	if err != nil {
		fail(k, err)
		return
	}
	var done []string
	var next func(i int)
	next = func(i int) {
		if i == len(steps) {
			c.event("configuration reloaded", "bond", "*", "path", path, "changes", len(done))
			k(opResult{changes: done})
			return
		}
		s := steps[i]
		s.run(c, func(r opResult) {
			if r.err != nil {
				k(opResult{changes: done, err: fmt.Errorf("reload: %w (applied before it: %v)", r.err, done)})
				return
			}
			d := s.desc
			if r.value != "" {
				d += "=" + r.value
			}
			done = append(done, d)
			next(i + 1)
		})
	}
	next(0)
}

// plan compares a new configuration with the running one and returns the
// steps that apply it, or why it cannot be applied without a restart.
func (c *ctl) plan(nc *config.Config) ([]step, error) {
	a := c.a
	var refuse []string
	if !reflect.DeepEqual(nc.Dataplane, a.cfg.Dataplane) {
		refuse = append(refuse, "dataplane settings changed")
	}
	if !reflect.DeepEqual(nc.Control, a.cfg.Control) || !reflect.DeepEqual(nc.Log, a.cfg.Log) || nc.Metrics != a.cfg.Metrics {
		refuse = append(refuse, "control, log or metrics settings changed")
	}
	var delBonds, delSlaves, addSlaves, addBonds, sets []step
	live, _ := c.liveConfig()
	for _, ob := range live.Bonds {
		if !slices.ContainsFunc(nc.Bonds, func(nb config.Bond) bool { return nb.Name == ob.Name }) {
			name := ob.Name
			delBonds = append(delBonds, step{"bond " + name + " removed", func(c *ctl, k func(opResult)) { c.bondDel(name, k) }})
		}
	}
	for _, nb := range nc.Bonds {
		i := slices.IndexFunc(live.Bonds, func(ob config.Bond) bool { return ob.Name == nb.Name })
		if i < 0 {
			bc := nb
			addBonds = append(addBonds, step{"bond " + bc.Name + " added", func(c *ctl, k func(opResult)) { c.bondAdd(bc, k) }})
			continue
		}
		ob := live.Bonds[i]
		bn := nb.Name
		if !reflect.DeepEqual(nb.Slaves, ob.Slaves) {
			// members added or removed by name; other per-slave changes need a restart
			for _, s := range nb.Slaves {
				j := slices.IndexFunc(ob.Slaves, func(x config.Slave) bool { return x.Name == s.Name })
				sn := s.Name
				switch {
				case j < 0 && reflect.DeepEqual(s, config.Slave{Name: s.Name, ActorPortPrio: 255}):
					addSlaves = append(addSlaves, step{fmt.Sprintf("%s slave %s added", bn, sn), func(c *ctl, k func(opResult)) { c.slaveAdd(bn, sn, k) }})
				case j < 0:
					refuse = append(refuse, fmt.Sprintf("bond %s: new slave %s has per-slave options (add it with defaults, then restart to set them)", bn, sn))
				case !reflect.DeepEqual(s, ob.Slaves[j]):
					refuse = append(refuse, fmt.Sprintf("bond %s: slave %s options changed", bn, sn))
				}
			}
			for _, s := range ob.Slaves {
				if !slices.ContainsFunc(nb.Slaves, func(x config.Slave) bool { return x.Name == s.Name }) {
					sn := s.Name
					delSlaves = append(delSlaves, step{fmt.Sprintf("%s slave %s removed", bn, sn), func(c *ctl, k func(opResult)) { c.slaveDel(bn, sn, k) }})
				}
			}
		}
		b := c.bond(nb.Name)
		for _, o := range config.Options() {
			if o.Section != config.SectionBond || o.Name == "slaves" {
				continue
			}
			nv, ov := o.Current(&nb), o.Current(&ob)
			if reflect.DeepEqual(nv, ov) {
				continue
			}
			if !o.RuntimeChangeable() {
				refuse = append(refuse, fmt.Sprintf("bond %s: %s changed (start-only)", bn, o.Name))
				continue
			}
			if err := c.canSet(b, o); err != nil {
				refuse = append(refuse, err.Error())
				continue
			}
			on, val := o.Name, o.Format(nv)
			sets = append(sets, step{fmt.Sprintf("%s %s", bn, on), func(c *ctl, k func(opResult)) {
				v, err := c.setOption(bn, on, val)
				k(opResult{value: v, err: err})
			}})
		}
	}
	if len(refuse) > 0 {
		return nil, fmt.Errorf("reload: cannot apply without a restart, nothing changed: %s", strings.Join(refuse, "; "))
	}
	return slices.Concat(delBonds, delSlaves, addSlaves, addBonds, sets), nil
}

// monitorSwitch applies bonding's runtime rule for the two link monitors
// (bond_option_miimon_set, bond_option_arp_interval_set): the one set
// last wins. Setting arp_interval above 0 turns MII monitoring off;
// setting miimon above 0 turns ARP monitoring off (and arp_validate back
// to none). Without it a running bond could not move from one monitor to
// the other one option at a time: the configuration rule (both given:
// ARP off) would undo arp_interval at once. combine_monitors keeps both.
func monitorSwitch(b *config.Bond, name string, log interface{ Info(string, ...any) }) {
	if b.CombineMonitors {
		return
	}
	switch name {
	case "arp_interval":
		if b.ArpInterval > 0 && b.Miimon > 0 {
			log.Info("ARP monitoring cannot be used with MII monitoring: disabling MII monitoring", "bond", b.Name)
			b.Miimon = 0
		}
	case "miimon":
		if b.Miimon > 0 && b.ArpInterval > 0 {
			log.Info("MII monitoring cannot be used with ARP monitoring: disabling ARP monitoring", "bond", b.Name)
			b.ArpInterval = 0
			b.ArpValidate = config.ArpValidateNone
		}
	}
}
