package appliance

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"github.com/bond-appliance/bond-appliance/lacp"
	"github.com/bond-appliance/bond-appliance/policy"
)

// spareSockets is how many hot-added member sockets each lane's UMEM has
// frames for beyond the start-up ones (more still work, sharing frames).
const spareSockets = 2

// AddSlave hot-adds a member to a running bond (bonding's enslave): the
// device is prepared as at start, gets its XDP program and one socket per
// lane on the lane's UMEM, and joins the forwarding state. Traffic on the
// other members is not disturbed.
func (a *Appliance) AddSlave(bondName, name string) error {
	b := a.bond(bondName)
	if b == nil {
		return fmt.Errorf("no bond %q", bondName)
	}
	for _, ob := range a.bonds {
		ob.mu.Lock()
		for _, m := range ob.members {
			if !m.removed && m.name == name {
				ob.mu.Unlock()
				return fmt.Errorf("bond %s: %s is already a slave of %s", bondName, name, ob.cfg.Name)
			}
		}
		ob.mu.Unlock()
	}
	if b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB {
		return fmt.Errorf("bond %s: adding slaves to a running %s bond is not supported (restart with the new configuration)", bondName, b.mode)
	}
	in, err := netdev.Get(name)
	if err != nil {
		return fmt.Errorf("bond %s: %w", bondName, err)
	}
	dp := a.cfg.Dataplane
	if in.XDPProg != 0 && !b.cfg.Force {
		return fmt.Errorf("bond %s: slave %s: another XDP program (id %d) is already attached (set force: true to replace it)", bondName, name, in.XDPProg)
	}
	if in.RxQueues < dp.Queues || in.TxQueues < dp.Queues {
		return fmt.Errorf("bond %s: slave %s: has %d rx / %d tx queues, dataplane.queues needs %d", bondName, name, in.RxQueues, in.TxQueues, dp.Queues)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	idx := -1
	for _, m := range b.members {
		if m.removed {
			idx = m.idx // reuse a tombstone's index
			break
		}
	}
	if idx < 0 {
		idx = len(b.members)
		if idx >= lane.MaxMembers {
			return fmt.Errorf("bond %s: at most %d slaves", bondName, lane.MaxMembers)
		}
	}
	slave := config.Slave{Name: name, ActorPortPrio: 255}
	m := &member{idx: idx, cfg: slave, name: name, ifindex: in.Index, permMAC: in.MAC, curMAC: in.MAC, state: linkDown, duplex: "unknown"}
	fail := func(err error) error {
		a.releaseMember(b, m)
		return fmt.Errorf("bond %s: add %s: %w", bondName, name, err)
	}
	j := &a.journal
	if err := j.SetMTU(name, b.mtu); err != nil {
		return fail(err)
	}
	if !b.usesOwnMACs() && !macEqual(m.permMAC, b.mac) {
		if err := j.SetMAC(name, b.mac); err != nil {
			return fail(err)
		}
		m.curMAC = append(m.curMAC[:0:0], b.mac...)
	}
	for _, f := range []func() error{
		func() error { return j.SetQueues(name, dp.Queues) },
		func() error { return j.SetAllmulti(name, true) },
		func() error { return j.SetUp(name, true) },
	} {
		if err := f(); err != nil {
			return fail(err)
		}
	}
	d, err := a.attachDevice(name, b.cfg.Force)
	if err != nil {
		return fail(err)
	}
	m.dev = d
	for q, l := range a.lanes {
		first := a.laneFirst[q]
		p, s, err := a.openSocket(q, l.U, &first, d)
		if err != nil {
			return fail(err)
		}
		m.socks = append(m.socks, s)
		lb := b.lanes[q]
		ms := slices.Clone(lb.Members)
		for len(ms) <= idx {
			ms = append(ms, nil)
		}
		ms[idx] = p
		lb.Members = ms
		a.publishLayout(q)
	}
	if idx == len(b.members) {
		b.members = append(b.members, m)
	} else {
		b.members[idx] = m
	}
	m.carrier = in.Carrier
	if m.carrier {
		m.state = linkUp
	}
	m.since = time.Now()
	m.speed, m.duplex, _ = netdev.LinkMode(name)
	if b.ad != nil {
		pc := lacp.PortConfig{Number: uint16(idx + 1), Priority: uint16(slave.ActorPortPrio), UserKey: uint16(b.cfg.ADUserPortKey), MAC: macArray(m.permMAC)}
		if err := b.ad.sys.AddPort(idx, pc); err != nil {
			return fail(err)
		}
		b.adLink(m)
	}
	b.cfg.Slaves = append(b.cfg.Slaves, slave)
	if err := a.rebuildMonitor(b); err != nil {
		a.log.Warn("ARP/NS monitor not rebuilt after adding a slave", "bond", bondName, "err", err)
	}
	b.rebuild()
	a.event("slave added", "bond", bondName, "slave", name, "index", idx)
	return nil
}

// DelSlave hot-removes a member (bonding's release): it leaves the
// forwarding state first, then its sockets are retired once every lane let
// go of them (their frames return to the lanes' UMEMs), its XDP program is
// detached and the device is restored as it was found.
func (a *Appliance) DelSlave(bondName, name string) error {
	b := a.bond(bondName)
	if b == nil {
		return fmt.Errorf("no bond %q", bondName)
	}
	if b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB {
		return fmt.Errorf("bond %s: removing slaves from a running %s bond is not supported (restart with the new configuration)", bondName, b.mode)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
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
		return fmt.Errorf("bond %s: %s is not a slave of this bond", bondName, name)
	}
	if live == 1 {
		return fmt.Errorf("bond %s: %s is the last slave; a bond keeps at least one (stop the appliance to release it)", bondName, name)
	}
	m.removed = true
	m.state = linkDown
	if b.ad != nil {
		b.ad.sys.RemovePort(m.idx)
	}
	b.rebuild()
	for q, lb := range b.lanes {
		ms := slices.Clone(lb.Members)
		if m.idx < len(ms) {
			ms[m.idx] = nil
		}
		lb.Members = ms
		a.publishLayout(q)
	}
	err := a.releaseMember(b, m)
	b.cfg.Slaves = slices.DeleteFunc(b.cfg.Slaves, func(s config.Slave) bool { return s.Name == name })
	if err := a.rebuildMonitor(b); err != nil {
		a.log.Warn("ARP/NS monitor not rebuilt after removing a slave", "bond", bondName, "err", err)
	}
	b.rebuild()
	a.event("slave removed", "bond", bondName, "slave", name)
	return err
}

// publishLayout hands lane q the members of every bond as they stand.
func (a *Appliance) publishLayout(q int) {
	l := a.lanes[q]
	bonds := make([]*lane.Bond, len(a.bonds))
	members := make([][]*lane.Port, len(a.bonds))
	for i, b := range a.bonds {
		if b.removed || q >= len(b.lanes) {
			continue
		}
		bonds[i] = b.lanes[q]
		members[i] = b.lanes[q].Members
	}
	l.Publish(l.NewLayout(bonds, members))
}

// releaseMember waits until no lane uses the member's sockets, returns
// their frames to the lanes, closes them, detaches the XDP program and
// restores the device; callers hold b.mu.
func (a *Appliance) releaseMember(b *bond, m *member) error {
	var errs []error
	deadline := time.Now().Add(2 * time.Second)
	for _, l := range a.lanes {
		for !l.Adopted(l.Published()) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	if m.dev != nil {
		for q := range m.socks {
			_ = m.dev.prog.ClearSocket(q)
		}
		errs = append(errs, m.dev.attach.Detach())
	}
	time.Sleep(5 * time.Millisecond) // frames the kernel is copying land before the rings are read
	for q, s := range m.socks {
		a.reclaimSocket(q, s, deadline)
	}
	m.socks = nil
	if m.dev != nil {
		errs = append(errs, m.dev.prog.Close())
		a.dropDevice(m.dev)
		m.dev = nil
	}
	if m.promisc {
		m.promisc = false
	}
	errs = append(errs, a.journal.RestoreDevice(m.name))
	return errors.Join(errs...)
}

// dropDevice forgets a retired device's program and attachment.
func (a *Appliance) dropDevice(d *device) {
	a.progs = slices.DeleteFunc(a.progs, func(x *xdpprog.Program) bool { return x == d.prog })
	a.attach = slices.DeleteFunc(a.attach, func(x *xdpprog.Attachment) bool { return x == d.attach })
}

// rebuildMonitor recreates the ARP/NS monitor for a changed slave list.
func (a *Appliance) rebuildMonitor(b *bond) error {
	if b.mon == nil {
		return nil
	}
	b.mon = nil
	if err := b.setupMonitor(a.lanes[0]); err != nil {
		return err
	}
	if b.mon != nil && b.mon.mon != nil {
		for _, m := range b.members {
			b.mon.mon.SetLink(m.idx, m.carrier && !m.removed)
		}
	}
	return nil
}
