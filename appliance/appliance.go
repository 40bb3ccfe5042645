// Package appliance assembles the bonding appliance: it checks the
// configuration against the machine, prepares member and host devices
// (recording every change so it can restore them), attaches the XDP
// programs, opens the AF_XDP sockets of every lane over its shared UMEM,
// runs the lanes and the control loop, and answers the control socket.
//
// Who owns what:
//   - the control loop (one goroutine, loop.go) owns all bond state (one
//     bondsm.Bond per bond), the lanes' layouts and snapshots, and is the
//     only producer of every lane's control rings. The control socket,
//     SIGHUP and the metrics exporter send it requests and wait for its
//     reply;
//   - the device worker (one goroutine, worker.go) owns the change journal
//     (persisted in control.state_dir before each change), XDP programs, sockets and TAP queues, and runs the slow device work
//     the control loop hands it, reporting back;
//   - each lane (package lane) owns its UMEM and everything on its rings.
package appliance

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
)

// Appliance is a running set of bonds.
type Appliance struct {
	cfg     *config.Config // the start-up configuration, never modified
	log     *slog.Logger
	started time.Time
	lanes   []*lane.Lane // fixed at start
	umems   []*umem.UMEM
	ledger  bool // BOND_APPLIANCE_UMEM_LEDGER=1: account for every frame, check at exit

	w       *worker
	reqs    chan func(*ctl)    // requests for the control loop
	results chan func(*ctl)    // the worker's reports
	jobs    chan func(*worker) // work for the worker
	stop    chan struct{}
	loopEnd chan struct{}
	workEnd chan struct{}
	c       *ctl // the control loop's state: touched only by the loop goroutine
	server  *controlServer

	closeOnce sync.Once
	closeErr  error
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
		errs = append(errs, preflightBond(cfg.Dataplane, b))
	}
	return errors.Join(errs...)
}

func preflightBond(dp config.Dataplane, b config.Bond) error {
	var errs []error
	if len(b.Slaves) > lane.MaxMembers {
		errs = append(errs, fmt.Errorf("bond %s: slaves: %d members, at most %d", b.Name, len(b.Slaves), lane.MaxMembers))
	}
	if _, err := netlink.LinkByName(b.Name); err == nil {
		errs = append(errs, fmt.Errorf("bond %s: name: a network interface %q already exists and is not the appliance's (no state file in control.state_dir records it): remove it or choose another name", b.Name, b.Name))
	}
	if dp.HostDevice == "veth" {
		if _, err := netlink.LinkByName(dpName(b.Name)); err == nil {
			errs = append(errs, fmt.Errorf("bond %s: interface %q (the appliance end of the host veth) already exists and is not the appliance's (no state file in control.state_dir records it)", b.Name, dpName(b.Name)))
		}
	}
	if b.MTU > 0 && b.MTU+18 > dp.FrameSize-256 {
		errs = append(errs, fmt.Errorf("bond %s: mtu %d does not fit dataplane.frame_size %d", b.Name, b.MTU, dp.FrameSize))
	}
	for _, s := range b.Slaves {
		errs = append(errs, checkSlave(dp, b, s.Name))
	}
	return errors.Join(errs...)
}

// checkSlave checks a device that is to become a member of bond b.
func checkSlave(dp config.Dataplane, b config.Bond, name string) error {
	in, err := netdev.Get(name)
	if err != nil {
		return fmt.Errorf("bond %s: slaves: %w", b.Name, err)
	}
	if in.XDPProg != 0 && !b.Force {
		return fmt.Errorf("bond %s: slave %s: another XDP program (id %d) is already attached (set force: true to replace it)", b.Name, name, in.XDPProg)
	}
	if in.RxQueues < dp.Queues || in.TxQueues < dp.Queues {
		return fmt.Errorf("bond %s: slave %s: has %d rx / %d tx queues, dataplane.queues needs %d", b.Name, name, in.RxQueues, in.TxQueues, dp.Queues)
	}
	return nil
}

// spareSockets is how many hot-added member sockets each lane's UMEM has
// frames for beyond the start-up ones (more still work, sharing frames).
const spareSockets = 2

// Start brings the configuration up. On error everything already changed is
// restored.
//
// With control.state_dir set, the change journal is persisted there first
// (recoverJournal): what an appliance that died left changed is restored
// before the checks, so a restart after a crash comes up.
func Start(cfg *config.Config, log *slog.Logger) (_ *Appliance, err error) {
	dp := cfg.Dataplane
	a := &Appliance{
		cfg: cfg, log: log, started: time.Now(), ledger: os.Getenv("BOND_APPLIANCE_UMEM_LEDGER") == "1",
		reqs: make(chan func(*ctl)), results: make(chan func(*ctl), 64), jobs: make(chan func(*worker), 256),
		stop: make(chan struct{}), loopEnd: make(chan struct{}), workEnd: make(chan struct{}),
	}
	a.w = &worker{dp: dp, log: log, laneFirst: make([]*xsk.Socket, dp.Queues)}
	if err := recoverJournal(&a.w.journal, cfg.Control, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if terr := a.w.teardown(); terr != nil {
				log.Error("restore after failed start", "err", terr)
			}
			for _, u := range a.umems {
				_ = u.Close()
			}
		}
	}()
	if err := preflight(cfg); err != nil {
		return nil, err
	}
	var devs []*bondDevs
	nsock := 0
	for _, bc := range cfg.Bonds {
		bd, err := a.w.prepareBond(bc)
		if err != nil {
			return nil, err
		}
		devs = append(devs, bd)
		nsock += len(bc.Slaves) + 1
	}
	// room for the start-up sockets plus spareSockets hot-added members
	nsock += spareSockets
	ring := uint32(dp.RingSize)
	frames := uint32(nsock)*ring*2 + uint32(dp.Batch*nsock*2)
	for q := 0; q < dp.Queues; q++ {
		u, err := umem.New(umem.Config{NumFrames: frames, FrameSize: uint32(dp.FrameSize), HugePages: dp.HugePages})
		if err != nil {
			return nil, fmt.Errorf("lane %d: UMEM: %w", q, err)
		}
		if a.ledger {
			u.EnableLedger()
		}
		a.umems = append(a.umems, u)
		cpu := dp.Cores[q%len(dp.Cores)]
		l := lane.New(lane.Config{ID: q, CPU: cpu, Batch: dp.Batch, RingSize: dp.RingSize, Adaptive: dp.Poll == "adaptive"}, u, nil)
		a.lanes = append(a.lanes, l)
		log.Info("lane ready", "lane", q, "cpu", cpu, "umem_frames", frames, "hugepages", u.HugePages(), "ledger", a.ledger)
	}
	a.w.lanes = a.lanes
	for _, bd := range devs {
		if err := a.w.openBond(bd); err != nil {
			return nil, err
		}
	}
	// Keep a processor free for control (LACP timers, link events) however
	// many lanes spin: a locked, spinning lane holds its P.
	if want := len(a.lanes) + 2; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
	c := newCtl(a)
	now := time.Now()
	for _, bd := range devs {
		b, out, err := c.addBond(bd, now)
		if err != nil {
			return nil, err
		}
		// the worker is not running yet: carry out device actions here
		c.applyDirect(b, out)
	}
	c.publishLayouts()
	for _, l := range a.lanes {
		l.Prime()
		l.Start()
	}
	a.startLoops(c)
	srv, err := startControl(cfg.Control.Socket, a)
	if err != nil {
		a.stopLoops()
		for _, l := range a.lanes {
			l.Stop()
		}
		return nil, err
	}
	a.server = srv
	log.Info("appliance started", "bonds", len(cfg.Bonds), "lanes", len(a.lanes), "poll", dp.Poll, "host_device", dp.HostDevice)
	return a, nil
}

// recoverJournal opens the journal's state file in ctl.StateDir (nothing
// with an empty StateDir: the journal stays in memory). A file that a dead
// appliance left is restored first, each step logged, so the journal then
// records the true originals, not the leftovers.
func recoverJournal(j *netdev.Journal, ctl config.Control, log *slog.Logger) error {
	if ctl.StateDir == "" {
		return nil
	}
	path, err := netdev.StatePath(ctl.StateDir, ctl.Socket)
	if err != nil {
		return fmt.Errorf("control.state_dir: %w", err)
	}
	t0 := time.Now()
	leftover, err := j.Open(path, func(s netdev.Step) {
		args := []any{"dev", s.Device, "what", s.What}
		switch {
		case s.Err != nil:
			log.Error("restore left by a crashed appliance failed", append(args, "err", s.Err)...)
		case s.Note != "":
			log.Warn("restore left by a crashed appliance", append(args, "note", s.Note)...)
		default:
			log.Info("restored what a crashed appliance left changed", append(args, "from", s.From, "to", s.To)...)
		}
	})
	if err != nil {
		return fmt.Errorf("control.state_dir: %w", err)
	}
	if leftover {
		log.Warn("an appliance did not stop cleanly; its device changes are undone", "state_file", path, "took", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// startLoops hands the control state to the control loop and starts it and
// the worker.
func (a *Appliance) startLoops(c *ctl) {
	a.c = c
	go a.runWorker()
	go c.run()
}

// runWorker runs the worker's jobs in order until the appliance stops.
func (a *Appliance) runWorker() {
	defer close(a.workEnd)
	for {
		select {
		case <-a.stop:
			return
		case job := <-a.jobs:
			job(a.w)
		}
	}
}

// stopLoops ends the control loop and the worker and waits for both.
func (a *Appliance) stopLoops() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.loopEnd
	<-a.workEnd
}

// Close stops everything and restores the devices. Calling it again
// returns the first call's result.
func (a *Appliance) Close() error {
	a.closeOnce.Do(func() { a.closeErr = a.close() })
	return a.closeErr
}

func (a *Appliance) close() error {
	a.stopLoops()
	if a.server != nil {
		a.server.close()
	}
	for _, l := range a.lanes {
		l.Stop()
	}
	var errs []error
	if a.ledger {
		errs = append(errs, a.checkLedger())
	}
	errs = append(errs, a.w.teardown())
	for _, u := range a.umems {
		errs = append(errs, u.Close())
	}
	err := errors.Join(errs...)
	a.log.Info("appliance stopped", "restore_errors", err)
	return err
}

// checkLedger, with the lanes stopped, takes back every frame still on a
// socket's rings and checks that every frame of every lane is accounted
// for: in the right place by the ledger, and back on the free stack.
func (a *Appliance) checkLedger() error {
	for _, at := range a.w.attach {
		_ = at.Detach() // nothing more arrives
	}
	time.Sleep(5 * time.Millisecond)
	var addrs []uint64
	for _, s := range a.w.sockets {
		q := s.Queue
		if q < 0 || q >= len(a.lanes) {
			continue
		}
		u := a.lanes[q].U
		for _, r := range socketRings(s) {
			addrs = r.get(addrs[:0])
			for _, ad := range addrs {
				u.Move(ad, r.place, umem.InFlight)
				u.Free(ad)
			}
		}
	}
	var errs []error
	for q, l := range a.lanes {
		l.DrainReclaimed()
		u := l.U
		lost := int(u.NumFrames()) - u.Count(umem.Free)
		if err := u.CheckLedger(); err != nil {
			errs = append(errs, fmt.Errorf("lane %d: %w", q, err))
		} else if lost != 0 {
			errs = append(errs, fmt.Errorf("lane %d: %d of %d frames not accounted for", q, lost, u.NumFrames()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Error("umem ledger violation", "err", err)
		return err
	}
	a.log.Info("umem ledger ok", "lanes", len(a.lanes), "lost_to_reclaim_deadlines", a.w.lostReclaim)
	return nil
}
