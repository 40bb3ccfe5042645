package appliance

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
)

// AddBond brings up a whole new bond while the others keep forwarding: it
// must validate together with the running configuration; its host device,
// members, XDP programs and one socket per lane (on the lanes' UMEMs) are
// set up as at start.
func (a *Appliance) AddBond(bc config.Bond) (err error) {
	if a.bond(bc.Name) != nil {
		return fmt.Errorf("bond %s: already running", bc.Name)
	}
	cfg, _ := a.liveConfig()
	cfg.Bonds = append(cfg.Bonds, bc)
	warnings, err := cfg.Validate()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	bc = cfg.Bonds[len(cfg.Bonds)-1]
	if err := preflight(&config.Config{Dataplane: a.cfg.Dataplane, Bonds: []config.Bond{bc}}); err != nil {
		return err
	}
	b, err := a.prepareBond(len(a.bonds), bc)
	if err != nil {
		return err
	}
	a.bondsMu.Lock()
	a.bonds = append(a.bonds, b)
	a.bondsMu.Unlock()
	defer func() {
		if err != nil {
			_ = a.DelBond(bc.Name)
		}
	}()
	var host *device
	if b.dp != "" {
		if host, err = a.attachDevice(b.dp, false); err != nil {
			return err
		}
		b.hostDev = host
	}
	for _, m := range b.members {
		if m.dev, err = a.attachDevice(m.name, bc.Force); err != nil {
			return err
		}
	}
	for q, l := range a.lanes {
		first := a.laneFirst[q]
		lb := &lane.Bond{Index: b.idx}
		if host != nil {
			p, s, err := a.openSocket(q, l.U, &first, host)
			if err != nil {
				return err
			}
			lb.Host = p
			b.hostSocks = append(b.hostSocks, s)
		} else if t := a.tapFor(b); t != nil {
			lb.Host = t.port(q, l.U)
		}
		for _, m := range b.members {
			p, s, err := a.openSocket(q, l.U, &first, m.dev)
			if err != nil {
				return err
			}
			lb.Members = append(lb.Members, p)
			m.socks = append(m.socks, s)
		}
		b.lanes = append(b.lanes, lb)
	}
	if err = a.initBond(b); err != nil {
		return err
	}
	for q := range a.lanes {
		a.publishLayout(q)
	}
	a.event("bond added", "bond", bc.Name, "mode", b.mode.String(), "slaves", len(b.members))
	return nil
}

// DelBond takes a whole bond down while the others keep forwarding: it
// leaves the lanes first, then its sockets are retired (frames back to the
// lanes' UMEMs), its XDP programs detached, its members restored and its
// host device deleted.
func (a *Appliance) DelBond(name string) error {
	b := a.bond(name)
	if b == nil {
		return fmt.Errorf("no bond %q", name)
	}
	live := 0
	for _, x := range a.bonds {
		if !x.removed {
			live++
		}
	}
	if live == 1 {
		return fmt.Errorf("bond %s is the last bond; stop the appliance instead", name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removed = true
	for q := range a.lanes {
		a.publishLayout(q)
	}
	var errs []error
	for _, m := range b.members {
		if !m.removed {
			m.removed = true
			errs = append(errs, a.releaseMember(b, m))
		}
	}
	// the host device's sockets and program
	deadline := time.Now().Add(2 * time.Second)
	if b.hostDev != nil {
		for q := range b.hostSocks {
			_ = b.hostDev.prog.ClearSocket(q)
		}
		errs = append(errs, b.hostDev.attach.Detach())
	}
	for q, s := range b.hostSocks {
		a.reclaimSocket(q, s, deadline)
	}
	b.hostSocks = nil
	if b.hostDev != nil {
		errs = append(errs, b.hostDev.prog.Close())
		a.dropDevice(b.hostDev)
		b.hostDev = nil
	}
	if t := a.tapFor(b); t != nil {
		errs = append(errs, t.close())
		a.taps = slices.DeleteFunc(a.taps, func(x *tapDevice) bool { return x == t })
	}
	if b.dp != "" {
		errs = append(errs, a.journal.RestoreDevice(b.dp))
	}
	errs = append(errs, a.journal.RestoreDevice(b.host))
	b.ad, b.mon, b.alb = nil, nil, nil
	a.event("bond removed", "bond", name)
	return errors.Join(errs...)
}

// reclaimSocket returns a retired socket's frames to lane q and closes it.
func (a *Appliance) reclaimSocket(q int, s *xsk.Socket, deadline time.Time) {
	if s == nil || q >= len(a.lanes) {
		return
	}
	var addrs []uint64
	addrs = s.Fill.Unconsumed(addrs)
	addrs = s.RX.Pending(addrs)
	addrs = s.TX.Unconsumed(addrs)
	addrs = s.Comp.Pending(addrs)
	for _, ad := range addrs {
		for !a.lanes[q].Reclaim(ad) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	_ = s.Close()
	a.sockets = slices.DeleteFunc(a.sockets, func(x *xsk.Socket) bool { return x == s })
}

// addBondFromFile adds the bond named name as the configuration file
// (path, or the file the appliance started from) defines it.
func (a *Appliance) addBondFromFile(path, name string) error {
	if path == "" {
		path = a.cfgPath
	}
	if path == "" {
		return fmt.Errorf("bond add: no configuration file known")
	}
	nc, _, err := config.Load(path)
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
