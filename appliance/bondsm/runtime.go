package bondsm

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/lacp"
	"github.com/bond-appliance/bond-appliance/policy"
)

// AddMember hot-adds a member (bonding's enslave), reusing a removed
// member's index or appending one (at most lane.MaxMembers). The caller has
// prepared the device (MAC, MTU, queues) as at start; m.Slave with an empty
// or other name means the default slave options. balance-tlb and
// balance-alb refuse, as before.
func (b *Bond) AddMember(now time.Time, m Member) (int, Output, error) {
	b.begin(now)
	name := b.cfg.Name
	if b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB {
		return -1, Output{}, fmt.Errorf("bond %s: adding slaves to a running %s bond is not supported (restart with the new configuration)", name, b.mode)
	}
	if m.Name == "" {
		return -1, Output{}, fmt.Errorf("bond %s: a slave needs a name", name)
	}
	for _, x := range b.members {
		if !x.removed && x.name == m.Name {
			return -1, Output{}, fmt.Errorf("bond %s: %s is already a slave of %s", name, m.Name, name)
		}
	}
	idx := -1
	for _, x := range b.members {
		if x.removed {
			idx = x.idx // reuse a tombstone's index
			break
		}
	}
	if idx < 0 {
		idx = len(b.members)
		if idx >= lane.MaxMembers {
			return -1, Output{}, fmt.Errorf("bond %s: at most %d slaves", name, lane.MaxMembers)
		}
	}
	if m.Slave.Name != m.Name {
		m.Slave = config.Slave{Name: m.Name, ActorPortPrio: 255}
	}
	nm := newMember(idx, m, nil, b.now)
	if b.ad != nil {
		if err := b.ad.sys.AddPort(idx, b.portConfig(nm, b.cfg.ADUserPortKey)); err != nil {
			return -1, Output{}, fmt.Errorf("bond %s: add %s: %w", name, m.Name, err)
		}
	}
	if idx == len(b.members) {
		b.members = append(b.members, nm)
	} else {
		b.members[idx] = nm
	}
	b.adLink(nm)
	b.cfg.Slaves = append(b.cfg.Slaves, nm.cfg)
	if b.mon != nil {
		if err := b.rebuildMonitor(b.cfg); err != nil {
			b.log("ARP/NS monitor not rebuilt after adding a slave", "bond", name, "err", err.Error())
		}
	}
	b.syncPromisc()
	b.rebuild()
	b.log("slave added", "bond", name, "slave", m.Name, "index", idx)
	return idx, b.finish(), nil
}

// RemoveMember hot-removes a member (bonding's release): it becomes a
// tombstone keeping the indices stable, leaves LACP (a last LACPDU tells the
// partner) and the monitor; the promiscuity the bond gave it is taken back.
// The last member and balance-tlb/alb members are refused, as before. It
// returns the removed member's index.
func (b *Bond) RemoveMember(now time.Time, name string) (int, Output, error) {
	b.begin(now)
	bn := b.cfg.Name
	if b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB {
		return -1, Output{}, fmt.Errorf("bond %s: removing slaves from a running %s bond is not supported (restart with the new configuration)", bn, b.mode)
	}
	var m *member
	live := 0
	for _, x := range b.members {
		if !x.removed {
			live++
			if x.name == name {
				m = x
			}
		}
	}
	if m == nil {
		return -1, Output{}, fmt.Errorf("bond %s: %s is not a slave of this bond", bn, name)
	}
	if live == 1 {
		return -1, Output{}, fmt.Errorf("bond %s: %s is the last slave; a bond keeps at least one (stop the appliance to release it)", bn, name)
	}
	if b.ad != nil {
		b.ad.sys.RemovePort(m.idx)
	}
	m.removed = true
	m.state = linkDown
	m.hostPromisc, m.albPromisc = false, false
	b.syncDevPromisc(m)
	b.cfg.Slaves = slices.DeleteFunc(b.cfg.Slaves, func(s config.Slave) bool { return s.Name == name })
	if b.cfg.ActiveSlave == name {
		// the requested active slave left the bond (primary, a name that
		// may come back, stays, as in bonding)
		b.cfg.ActiveSlave = ""
	}
	if b.mon != nil {
		if err := b.rebuildMonitor(b.cfg); err != nil {
			b.log("ARP/NS monitor not rebuilt after removing a slave", "bond", bn, "err", err.Error())
		}
	}
	b.adMaybeRebuild()
	b.rebuild()
	b.log("slave removed", "bond", bn, "slave", name)
	return m.idx, b.finish(), nil
}

// Reconfigure applies new validated options (the same members: per-slave
// options and the member list only change through AddMember and
// RemoveMember, and c.Slaves is ignored). It dispatches from the option
// table (config.Options): the changed bond options are those whose
// Current value differs, and each takes effect where its Effect says:
//   - EffectSnapshot: the forwarding snapshot is rebuilt (xmit_hash_policy,
//     packets_per_slave, all_slaves_active, broadcast_neighbor, primary,
//     primary_reselect: the active slave is selected again; active_slave
//     as SetActiveSlave applies it);
//   - EffectMII: nothing is rebuilt: updelay and downdelay are read at the
//     next Link and Tick; the caller polls at the new miimon and reads the
//     carrier as use_carrier says (Config);
//   - EffectLACP: the System's SetConfig (lacp_rate, ad_select,
//     ad_actor_sys_prio, ad_actor_system, lacp_active, min_links,
//     coupled_control); ad_user_port_key, which lacp cannot change on a
//     port, by removing and adding every port again (each tells its
//     partner with a last LACPDU and negotiates again with the new key);
//   - EffectMonitor: the ARP/NS monitor and the peer notifier are rebuilt
//     (counters kept);
//   - EffectALB: tlb/alb's state is rebuilt with the new options and the
//     links and the active slave applied again (rlb clients are learnt
//     again);
//   - EffectRestart (name, mode, mac, mtu, vlans, force, fail_over_mac):
//     refused; the bond has to be re-created.
//
// On error nothing changes.
func (b *Bond) Reconfigure(now time.Time, c config.Bond) (Output, error) {
	b.begin(now)
	bn := b.cfg.Name
	nc := c.Clone()
	nc.Slaves = slices.Clone(b.cfg.Slaves)
	old := b.cfg
	eff, changed := changedOptions(&old, &nc)
	if eff.Has(config.EffectRestart) {
		var names []string
		for _, o := range changed {
			if o.Effect.Has(config.EffectRestart) {
				names = append(names, o.Name)
			}
		}
		return Output{}, fmt.Errorf("bond %s: %s cannot change on a running bond (re-create it: bond del, bond add); nothing changed",
			bn, strings.Join(names, ", "))
	}
	if nc.XmitHashPolicy < 0 || nc.PrimaryReselect < 0 || nc.ADUserPortKey < 0 || nc.ADUserPortKey > lacp.MaxUserKey {
		return Output{}, fmt.Errorf("bond %s: options out of range", bn)
	}
	activeChanged := nc.ActiveSlave != old.ActiveSlave
	if activeChanged {
		if err := b.canSetActive(nc.ActiveSlave); err != nil {
			return Output{}, err
		}
	}
	// Build everything that can fail first.
	var ms *monState
	if eff.Has(config.EffectMonitor) {
		var err error
		if ms, err = b.newMonitor(nc, false); err != nil {
			return Output{}, fmt.Errorf("bond %s: ARP/NS monitor: %w", bn, err)
		}
	}
	var nalb *alb.Bond
	if eff.Has(config.EffectALB) && b.alb != nil {
		var err error
		if nalb, err = b.newALB(nc); err != nil {
			return Output{}, fmt.Errorf("bond %s: %s: %w", bn, b.mode, err)
		}
	}
	var lc lacp.Config
	lcChanged := false
	if eff.Has(config.EffectLACP) && b.ad != nil {
		lc = b.lacpConfig(nc)
		if lc != b.lacpConfig(old) {
			if _, err := lacp.New(lc, nil); err != nil {
				return Output{}, fmt.Errorf("bond %s: 802.3ad: %w", bn, err)
			}
			lcChanged = true
		}
	}
	// Commit.
	if lcChanged {
		if err := b.ad.sys.SetConfig(lc); err != nil {
			return Output{}, fmt.Errorf("bond %s: 802.3ad: %w", bn, err)
		}
	}
	b.cfg = nc
	b.hash = policy.HashPolicy(nc.XmitHashPolicy)
	if eff.Has(config.EffectLACP) && b.ad != nil && nc.ADUserPortKey != old.ADUserPortKey {
		b.rekeyPorts(nc.ADUserPortKey)
	}
	if eff.Has(config.EffectMonitor) {
		b.swapMonitor(ms)
	}
	if nalb != nil {
		b.replaceALB(nalb)
	}
	if activeChanged {
		b.applyActive(nc.ActiveSlave)
	}
	if eff.Has(config.EffectLACP) {
		b.adMaybeRebuild()
	}
	if eff&(config.EffectSnapshot|config.EffectMonitor|config.EffectALB) != 0 {
		b.rebuild()
	}
	return b.finish(), nil
}

// changedOptions returns the bond options (of the option table) whose
// values differ between a and z, and the union of their effects. slaves is
// left out: members change through AddMember and RemoveMember.
func changedOptions(a, z *config.Bond) (config.Effect, []config.Option) {
	var eff config.Effect
	var changed []config.Option
	for _, o := range config.Options() {
		if o.Section != config.SectionBond || o.Name == "slaves" {
			continue
		}
		if !reflect.DeepEqual(o.Current(a), o.Current(z)) {
			eff |= o.Effect
			changed = append(changed, o)
		}
	}
	return eff, changed
}

// rekeyPorts gives every LACP port the new ad_user_port_key: lacp cannot
// change a port's key, so each is removed (a last LACPDU tells the
// partner) and added again.
func (b *Bond) rekeyPorts(key int) {
	for _, m := range b.members {
		if m.removed {
			continue
		}
		b.ad.sys.RemovePort(m.idx)
		if err := b.ad.sys.AddPort(m.idx, b.portConfig(m, key)); err != nil {
			// cannot happen: the key was range-checked and the number is free again
			b.log("802.3ad: port not added back", "bond", b.cfg.Name, "slave", m.name, "err", err.Error())
			continue
		}
		b.adLink(m)
	}
}
