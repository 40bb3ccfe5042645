// Package appliance assembles the bonding appliance: it checks the
// configuration against the machine, prepares member and host devices
// (recording every change so it can restore them), attaches the XDP
// programs, opens the AF_XDP sockets of every lane over its shared UMEM,
// runs the lanes and the control loop (link monitoring, slave selection,
// snapshot publishing) and answers the control socket.
package appliance

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
)

// Appliance is a running set of bonds.
type Appliance struct {
	cfg     *config.Config
	log     *slog.Logger
	journal netdev.Journal

	bonds   []*bond
	lanes   []*lane.Lane
	umems   []*umem.UMEM
	sockets []*xsk.Socket
	progs   []*xdpprog.Program
	attach  []*xdpprog.Attachment
	taps    []*tapDevice
	started time.Time

	events    eventBus
	cfgMu     sync.Mutex    // serialises configuration changes (set, slave, bond, reload)
	bondsMu   sync.RWMutex  // guards the bonds slice (appended by bond add)
	laneFirst []*xsk.Socket // the socket owning each lane UMEM (hot-added sockets share it)
	cfgPath   string

	ctrlStop chan struct{}
	ctrlDone chan struct{}
	server   *controlServer
}

// dpName is the appliance-side end of a bond's host veth.
func dpName(bond string) string {
	if len(bond) > 12 {
		bond = bond[:12]
	}
	return bond + "-dp"
}

// preflight checks everything that can be checked without changing the
// system, returning every problem found.
func preflight(cfg *config.Config) error {
	var errs []error
	q := cfg.Dataplane.Queues
	if q != len(cfg.Dataplane.Cores) {
		errs = append(errs, fmt.Errorf("dataplane.queues: %d must equal the number of dataplane.cores (%d): each lane serves one queue", q, len(cfg.Dataplane.Cores)))
	}
	for _, b := range cfg.Bonds {
		switch policy.Mode(b.Mode) {
		}
		if len(b.Slaves) > lane.MaxMembers {
			errs = append(errs, fmt.Errorf("bond %s: slaves: %d members, at most %d", b.Name, len(b.Slaves), lane.MaxMembers))
		}
		if _, err := netlink.LinkByName(b.Name); err == nil {
			errs = append(errs, fmt.Errorf("bond %s: name: a network interface %q already exists", b.Name, b.Name))
		}
		if cfg.Dataplane.HostDevice == "veth" {
			if _, err := netlink.LinkByName(dpName(b.Name)); err == nil {
				errs = append(errs, fmt.Errorf("bond %s: interface %q (the appliance end of the host veth) already exists", b.Name, dpName(b.Name)))
			}
		}
		for _, s := range b.Slaves {
			in, err := netdev.Get(s.Name)
			if err != nil {
				errs = append(errs, fmt.Errorf("bond %s: slaves: %w", b.Name, err))
				continue
			}
			if in.XDPProg != 0 && !b.Force {
				errs = append(errs, fmt.Errorf("bond %s: slave %s: another XDP program (id %d) is already attached (set force: true to replace it)", b.Name, s.Name, in.XDPProg))
			}
			if in.RxQueues < q || in.TxQueues < q {
				errs = append(errs, fmt.Errorf("bond %s: slave %s: has %d rx / %d tx queues, dataplane.queues needs %d", b.Name, s.Name, in.RxQueues, in.TxQueues, q))
			}
			if b.MTU > 0 && b.MTU+18 > cfg.Dataplane.FrameSize-256 {
				errs = append(errs, fmt.Errorf("bond %s: mtu %d does not fit dataplane.frame_size %d", b.Name, b.MTU, cfg.Dataplane.FrameSize))
			}
		}
	}
	return errors.Join(errs...)
}

// Start brings the configuration up. On error everything already changed is
// restored.
func Start(cfg *config.Config, log *slog.Logger) (_ *Appliance, err error) {
	if err := preflight(cfg); err != nil {
		return nil, err
	}
	a := &Appliance{cfg: cfg, log: log, started: time.Now(), ctrlStop: make(chan struct{}), ctrlDone: make(chan struct{})}
	defer func() {
		if err != nil {
			if terr := a.teardown(); terr != nil {
				log.Error("restore after failed start", "err", terr)
			}
		}
	}()
	dp := cfg.Dataplane
	for i, bc := range cfg.Bonds {
		b, err := a.prepareBond(i, bc)
		if err != nil {
			return nil, err
		}
		a.bonds = append(a.bonds, b)
	}
	if err := a.buildLanes(); err != nil {
		return nil, err
	}
	// Keep a processor free for control (LACP timers, link events) however
	// many lanes spin: a locked, spinning lane holds its P.
	if want := len(a.lanes) + 2; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
	for _, b := range a.bonds {
		if err := a.initBond(b); err != nil {
			return nil, err
		}
	}
	for _, l := range a.lanes {
		l.Prime()
		l.Start()
	}
	go a.controlLoop()
	srv, err := startControl(cfg.Control.Socket, a)
	if err != nil {
		return nil, err
	}
	a.server = srv
	log.Info("appliance started", "bonds", len(a.bonds), "lanes", len(a.lanes), "poll", dp.Poll, "host_device", dp.HostDevice)
	return a, nil
}

func (a *Appliance) prepareBond(i int, bc config.Bond) (*bond, error) {
	dp := a.cfg.Dataplane
	b := &bond{idx: i, cfg: bc, mode: policy.Mode(bc.Mode), hash: policy.HashPolicy(bc.XmitHashPolicy), active: -1, host: bc.Name, journal: &a.journal}
	b.log = a.event
	for j, s := range bc.Slaves {
		in, err := netdev.Get(s.Name)
		if err != nil {
			return nil, err
		}
		b.members = append(b.members, &member{idx: j, cfg: s, name: s.Name, ifindex: in.Index, permMAC: in.MAC, curMAC: in.MAC, state: linkDown, duplex: "unknown"})
	}
	b.mac = bc.MAC
	if len(b.mac) == 0 {
		b.mac = b.members[0].permMAC
	}
	b.mtu = bc.MTU
	if b.mtu == 0 {
		b.mtu = 1500
	}
	switch dp.HostDevice {
	case "tap":
		t, err := openTap(bc.Name, dp.Queues, b.mac, b.mtu, &a.journal)
		if err != nil {
			return nil, fmt.Errorf("bond %s: host_device tap: %w", bc.Name, err)
		}
		a.taps = append(a.taps, t)
		b.onCarrier = func(up bool) { t.setCarrier(up) }
	default:
		b.dp = dpName(bc.Name)
		if err := a.journal.CreateVeth(bc.Name, b.dp, dp.Queues, b.mac, b.mtu); err != nil {
			return nil, fmt.Errorf("bond %s: %w", bc.Name, err)
		}
		if err := netdev.DisableTxOffloads(bc.Name); err != nil {
			a.log.Warn("could not disable offloads on host device", "bond", bc.Name, "err", err)
		}
		if err := a.journal.SetUp(b.dp, true); err != nil {
			return nil, err
		}
		if err := a.journal.SetUp(bc.Name, true); err != nil {
			return nil, err
		}
		dpn := b.dp
		b.onCarrier = func(up bool) {
			// The host end's carrier follows the appliance end's admin state.
			if l, err := netlink.LinkByName(dpn); err == nil {
				if up {
					_ = netlink.LinkSetUp(l)
				} else {
					_ = netlink.LinkSetDown(l)
				}
			}
		}
	}
	if in, err := netdev.Get(bc.Name); err == nil {
		b.hostIndex = in.Index
	}
	for _, m := range b.members {
		if err := a.journal.SetMTU(m.name, b.mtu); err != nil {
			return nil, err
		}
		if !b.usesOwnMACs() && !macEqual(m.permMAC, b.mac) {
			if err := a.journal.SetMAC(m.name, b.mac); err != nil {
				if m.idx == 0 && b.mode == policy.ActiveBackup {
					// as bonding: a first slave that cannot change its MAC
					// switches an active-backup bond to fail_over_mac active
					a.log.Warn("the first slave cannot change its MAC; setting fail_over_mac to active", "bond", bc.Name, "slave", m.name, "err", err)
					b.cfg.FailOverMAC = config.FailOverMACActive
					continue
				}
				return nil, err
			}
			m.curMAC = append(net.HardwareAddr(nil), b.mac...)
		}
		if err := a.journal.SetQueues(m.name, dp.Queues); err != nil {
			return nil, err
		}
		if err := a.journal.SetAllmulti(m.name, true); err != nil {
			return nil, err
		}
		if err := a.journal.SetUp(m.name, true); err != nil {
			return nil, err
		}
	}
	a.log.Info("bond prepared", "bond", bc.Name, "mode", b.mode.String(), "mac", b.mac.String(), "mtu", b.mtu, "slaves", len(b.members))
	return b, nil
}

// initBond sets up a prepared bond's control state (802.3ad, tlb/alb,
// ARP/NS monitor), reads its members' links and publishes its first
// snapshot.
func (a *Appliance) initBond(b *bond) error {
	if b.mode == policy.IEEE8023AD {
		if err := b.setupAD(a.lanes[0]); err != nil {
			return fmt.Errorf("bond %s: 802.3ad: %w", b.cfg.Name, err)
		}
	}
	if b.mode == policy.BalanceTLB || b.mode == policy.BalanceALB {
		if err := b.setupALB(a.lanes[0]); err != nil {
			return fmt.Errorf("bond %s: %s: %w", b.cfg.Name, b.mode, err)
		}
	}
	if err := b.setupMonitor(a.lanes[0]); err != nil {
		return fmt.Errorf("bond %s: ARP/NS monitor: %w", b.cfg.Name, err)
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.members {
		if in, err := netdev.Get(m.name); err == nil {
			m.carrier = in.Carrier
			if in.Carrier {
				m.state = linkUp
			} else {
				m.state = linkDown
			}
			m.since = now
		}
		m.speed, m.duplex, _ = netdev.LinkMode(m.name)
		b.adLink(m)
		b.albLink(m)
		if b.mon != nil && b.mon.mon != nil {
			b.mon.mon.SetLink(m.idx, m.carrier)
		}
	}
	if b.cfg.ActiveSlave != "" {
		b.setActive(b.cfg.ActiveSlave)
	}
	b.rebuild()
	return nil
}

// device is one AF_XDP-served device: a member or the host veth's appliance end.
type device struct {
	name    string
	ifindex int
	prog    *xdpprog.Program
	attach  *xdpprog.Attachment
}

func (a *Appliance) attachDevice(name string, force bool) (*device, error) {
	dp := a.cfg.Dataplane
	in, err := netdev.Get(name)
	if err != nil {
		return nil, err
	}
	p, err := xdpprog.New(dp.Queues)
	if err != nil {
		return nil, err
	}
	a.progs = append(a.progs, p)
	at, err := p.Attach(in.Index, xdpprog.AttachMode(dp.XDPAttach), force)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	a.attach = append(a.attach, at)
	a.log.Info("XDP program attached", "dev", name, "mode", string(at.Mode))
	return &device{name: name, ifindex: in.Index, prog: p, attach: at}, nil
}

// openSocket opens the AF_XDP socket of device d's queue q on lane q's UMEM
// (sharing it with *first, or registering it when *first is nil).
func (a *Appliance) openSocket(q int, u *umem.UMEM, first **xsk.Socket, d *device) (*lane.Port, *xsk.Socket, error) {
	dp := a.cfg.Dataplane
	opt := xsk.Options{RingSize: uint32(dp.RingSize), Bind: xsk.BindMode(dp.XDPBind)}
	s, err := xsk.Open(u, d.ifindex, q, opt, *first)
	if err != nil {
		return nil, nil, fmt.Errorf("%s queue %d: %w", d.name, q, err)
	}
	a.sockets = append(a.sockets, s)
	if *first == nil {
		*first = s
	}
	if err := d.prog.SetSocket(q, s.FD); err != nil {
		return nil, nil, err
	}
	mode := "copy"
	if s.ZeroCopy {
		mode = "zero-copy"
	}
	a.log.Info("AF_XDP socket bound", "dev", d.name, "queue", q, "bind", mode, "lane", q)
	return &lane.Port{Name: d.name, FD: s.FD, RX: s.RX, TX: s.TX, Fill: s.Fill, Comp: s.Comp, Kick: s}, s, nil
}

func (a *Appliance) buildLanes() error {
	dp := a.cfg.Dataplane
	type bondDevs struct {
		host    *device
		members []*device
	}
	devs := make([]bondDevs, len(a.bonds))
	nsock := 0
	for i, b := range a.bonds {
		if b.dp != "" {
			d, err := a.attachDevice(b.dp, false)
			if err != nil {
				return err
			}
			devs[i].host = d
			nsock++
		}
		for _, m := range b.members {
			d, err := a.attachDevice(m.name, b.cfg.Force)
			if err != nil {
				return err
			}
			m.dev = d
			devs[i].members = append(devs[i].members, d)
			nsock++
		}
	}
	ring := uint32(dp.RingSize)
	// room for the start-up sockets plus spareSockets hot-added members
	nsock += spareSockets
	frames := uint32(nsock)*ring*2 + uint32(dp.Batch*nsock*2)
	for q := 0; q < dp.Queues; q++ {
		u, err := umem.New(umem.Config{NumFrames: frames, FrameSize: uint32(dp.FrameSize), HugePages: dp.HugePages})
		if err != nil {
			return fmt.Errorf("lane %d: UMEM: %w", q, err)
		}
		a.umems = append(a.umems, u)
		var first *xsk.Socket
		var lbs []*lane.Bond
		for i, b := range a.bonds {
			lb := &lane.Bond{Index: i}
			if devs[i].host != nil {
				p, s, err := a.openSocket(q, u, &first, devs[i].host)
				if err != nil {
					return err
				}
				lb.Host = p
				b.hostDev = devs[i].host
				b.hostSocks = append(b.hostSocks, s)
			} else if t := a.tapFor(b); t != nil {
				lb.Host = t.port(q, u)
			}
			for j, d := range devs[i].members {
				p, s, err := a.openSocket(q, u, &first, d)
				if err != nil {
					return err
				}
				lb.Members = append(lb.Members, p)
				b.members[j].socks = append(b.members[j].socks, s)
			}
			b.lanes = append(b.lanes, lb)
			lbs = append(lbs, lb)
		}
		a.laneFirst = append(a.laneFirst, first)
		cpu := dp.Cores[q%len(dp.Cores)]
		l := lane.New(lane.Config{ID: q, CPU: cpu, Batch: dp.Batch, RingSize: dp.RingSize, Adaptive: dp.Poll == "adaptive"}, u, lbs)
		a.lanes = append(a.lanes, l)
		a.log.Info("lane ready", "lane", q, "cpu", cpu, "sockets", len(l.Ports()), "umem_frames", frames, "hugepages", u.HugePages())
	}
	return nil
}

func (a *Appliance) tapFor(b *bond) *tapDevice {
	for _, t := range a.taps {
		if t.name == b.host {
			return t
		}
	}
	return nil
}

// controlLoop watches links (netlink events, plus a miimon-period poll that
// also runs updelay/downdelay) and republishes snapshots on change.
func (a *Appliance) controlLoop() {
	defer close(a.ctrlDone)
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		a.log.Warn("netlink link events unavailable, polling only", "err", err)
	}
	period := 100 * time.Millisecond
	for _, b := range a.bondList() {
		if b.cfg.Miimon > 0 && time.Duration(b.cfg.Miimon)*time.Millisecond < period {
			period = time.Duration(b.cfg.Miimon) * time.Millisecond
		}
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	adTick := time.NewTicker(adTickPeriod)
	defer adTick.Stop()
	monTick := time.NewTicker(monTickPeriod)
	defer monTick.Stop()
	lastPoll := map[*bond]time.Time{}
	for {
		select {
		case <-a.ctrlStop:
			return
		case u := <-updates:
			a.onLinkUpdate(u)
		case now := <-monTick.C:
			a.drainCtrl()
			for _, b := range a.bondList() {
				b.mu.Lock()
				if b.mon != nil {
					b.monTick(now, func(i int) uint64 { return b.memberRx(i) })
				}
				if b.alb != nil {
					b.albTick()
				}
				b.mu.Unlock()
			}
		case now := <-adTick.C:
			a.drainCtrl()
			for _, b := range a.bondList() {
				b.mu.Lock()
				if b.ad != nil {
					b.adTick(now)
				}
				b.mu.Unlock()
			}
		case now := <-tick.C:
			for _, b := range a.bondList() {
				mi := time.Duration(b.cfg.Miimon) * time.Millisecond
				if mi == 0 || now.Sub(lastPoll[b]) < mi {
					a.runDelays(b, now)
					continue
				}
				lastPoll[b] = now
				a.pollBond(b, now)
			}
			a.drainCtrl()
		}
	}
}

func (a *Appliance) onLinkUpdate(u netlink.LinkUpdate) {
	idx := int(u.Attrs().Index)
	carrier := u.Attrs().RawFlags&0x10000 != 0 // IFF_LOWER_UP
	now := time.Now()
	for _, b := range a.bondList() {
		b.mu.Lock()
		if idx == b.hostIndex && b.hostIndex != 0 {
			b.setHostPromisc(u.Attrs().RawFlags&iffPromisc != 0)
		}
		if !b.cfg.UseCarrier {
			// use_carrier 0: link state comes from ethtool at each miimon poll
			b.mu.Unlock()
			continue
		}
		changed := false
		for _, m := range b.members {
			if m.ifindex == idx && !m.removed {
				changed = b.updateLink(m, carrier, now) || changed
			}
		}
		if changed {
			b.rebuild()
		}
		b.mu.Unlock()
	}
}

func (a *Appliance) pollBond(b *bond, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := false
	for _, m := range b.members {
		if m.removed {
			continue
		}
		carrier := m.carrier
		if b.cfg.UseCarrier {
			if in, err := netdev.Get(m.name); err == nil {
				carrier = in.Carrier
			}
		} else if ok, err := netdev.LinkDetected(m.name); err == nil {
			carrier = ok
		}
		if b.updateLink(m, carrier, now) {
			changed = true
			if m.state == linkUp {
				m.speed, m.duplex, _ = netdev.LinkMode(m.name)
			}
		}
	}
	if changed {
		b.rebuild()
	}
}

func (a *Appliance) runDelays(b *bond, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := false
	for _, m := range b.members {
		if m.state == linkFail || m.state == linkBack {
			changed = b.updateLink(m, m.carrier, now) || changed
		}
	}
	if changed {
		b.rebuild()
	}
}

// drainCtrl hands the slow-protocol frames the lanes passed up to the
// bond's LACP; bonds not in 802.3ad discard them (they are counted by the
// lanes).
func (a *Appliance) drainCtrl() {
	var f lane.CtrlFrame
	for _, l := range a.lanes {
		for l.ToCtrl.Pop(&f) {
			bonds := a.bondList()
			if int(f.Bond) >= len(bonds) {
				continue
			}
			b := bonds[f.Bond]
			data := f.Data[:f.Len]
			b.mu.Lock()
			switch {
			case f.Member == lane.HostMember:
				if b.alb != nil {
					b.albHostARP(data)
				}
			case isSlowProtocol(data):
				if b.ad != nil {
					b.adReceive(int(f.Member), data)
				}
			default:
				b.monRx(int(f.Member), data)
				if b.alb != nil {
					b.alb.b.PeerRx(int(f.Member), data)
				}
			}
			b.mu.Unlock()
		}
	}
}

func isSlowProtocol(f []byte) bool { return len(f) >= 14 && f[12] == 0x88 && f[13] == 0x09 }

// monTickPeriod is how often control looks at the ARP/NS monitor and the
// notifier (each runs on its own interval).
const monTickPeriod = 10 * time.Millisecond

// memberRx sums a member's received frames over the lanes.
func (b *bond) memberRx(i int) uint64 {
	var n uint64
	for _, lb := range b.lanes {
		if i < len(lb.Members) && lb.Members[i] != nil {
			n += lb.Members[i].Stats.RxPackets.Load()
		}
	}
	return n
}

// SetActiveSlave implements the runtime active_slave option.
func (a *Appliance) SetActiveSlave(bondName, slave string) error {
	b := a.bond(bondName)
	if b == nil {
		return fmt.Errorf("no bond %q", bondName)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mode != policy.ActiveBackup {
		return fmt.Errorf("bond %s: active_slave: only in active-backup mode (mode is %s)", bondName, b.mode)
	}
	if slave == "" {
		b.active = -1
		b.rebuild()
		return nil
	}
	if !b.setActive(slave) {
		return fmt.Errorf("bond %s: active_slave: %q is not an up slave of this bond", bondName, slave)
	}
	b.rebuild()
	return nil
}

// bondList is a snapshot of the bonds slice, safe against bond add.
func (a *Appliance) bondList() []*bond {
	a.bondsMu.RLock()
	defer a.bondsMu.RUnlock()
	return a.bonds
}

func (a *Appliance) bond(name string) *bond {
	for _, b := range a.bondList() {
		if b.cfg.Name == name && !b.removed {
			return b
		}
	}
	return nil
}

// Close stops everything and restores the devices.
func (a *Appliance) Close() error {
	close(a.ctrlStop)
	<-a.ctrlDone
	if a.server != nil {
		a.server.close()
	}
	err := a.teardown()
	a.log.Info("appliance stopped", "restore_errors", err)
	return err
}

func (a *Appliance) teardown() error {
	for _, l := range a.lanes {
		l.Stop()
	}
	var errs []error
	for _, b := range a.bonds {
		b.mu.Lock()
		errs = append(errs, b.undoPromisc())
		b.mu.Unlock()
	}
	for _, at := range a.attach {
		errs = append(errs, at.Detach())
	}
	for _, s := range a.sockets {
		errs = append(errs, s.Close())
	}
	for _, p := range a.progs {
		errs = append(errs, p.Close())
	}
	for _, t := range a.taps {
		errs = append(errs, t.close())
	}
	for _, u := range a.umems {
		errs = append(errs, u.Close())
	}
	errs = append(errs, a.journal.Restore())
	a.lanes, a.attach, a.sockets, a.progs, a.taps, a.umems = nil, nil, nil, nil, nil, nil
	return errors.Join(errs...)
}
