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
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
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
	reqs    chan func(*ctl)        // requests for the control loop
	results chan func(*ctl)        // the worker's reports
	jobs    chan func(*worker)     // work for the worker
	probes  chan func() func(*ctl) // device reads for the prober
	stop    chan struct{}
	loopEnd chan struct{}
	workEnd chan struct{}
	c       *ctl // the control loop's state: touched only by the loop goroutine
	server  *controlServer

	closeOnce sync.Once
	closeErr  error

	// workMu is held while the worker runs a job, and for good by
	// EmergencyRestore: after it the worker runs nothing more.
	workMu   sync.Mutex
	restored atomic.Bool // the devices are restored (by Close or EmergencyRestore)

	crashMu  sync.Mutex
	crash    chan struct{} // closed at the first panic recovered
	crashErr error
}

// preflight checks everything that can be checked without changing the
// system, returning every problem found.
//
// Devices in ours (created by an appliance that died, which Start removes
// first) do not count as taken.
func preflight(cfg *config.Config, ours map[string]bool) error {
	var errs []error
	q := cfg.Dataplane.Queues
	if q != len(cfg.Dataplane.Cores) {
		errs = append(errs, fmt.Errorf("dataplane.queues: %d must equal the number of dataplane.cores (%d): each lane serves one queue", q, len(cfg.Dataplane.Cores)))
	}
	for _, b := range cfg.Bonds {
		errs = append(errs, preflightBond(cfg.Dataplane, b, ours))
	}
	if jumbo(cfg) {
		errs = append(errs, checkJumbo(cfg))
	} else {
		for _, b := range cfg.Bonds {
			errs = append(errs, checkNativeVeth(cfg.Dataplane, b))
		}
	}
	return errors.Join(errs...)
}

// checkNativeVeth refuses xdp_attach native for a single-buffer bond whose
// MTU is above what veth runs a single-buffer program at natively (the
// kernel would refuse the attach with a bare "numerical result out of
// range"), naming the veth devices concerned.
func checkNativeVeth(dp config.Dataplane, b config.Bond) error {
	if dp.XDPAttach != "native" || b.MTU <= vethNativeMTU() {
		return nil
	}
	var veths []string
	if dp.HostDevice == "veth" {
		veths = append(veths, dpName(b.Name))
	}
	for _, s := range b.Slaves {
		if l, err := netlink.LinkByName(s.Name); err == nil && l.Type() == "veth" {
			veths = append(veths, s.Name)
		}
	}
	if len(veths) == 0 {
		return nil
	}
	return fmt.Errorf("bond %s: mtu %d is above veth's native XDP limit %d for a single-buffer program (%s): dataplane.xdp_attach native cannot be honoured (allowed: xdp_attach auto or generic, mtu at most %d, or above %d, which runs multi-buffer)",
		b.Name, b.MTU, vethNativeMTU(), strings.Join(veths, ", "), vethNativeMTU(), config.MaxMTU(dp.FrameSize))
}

// jumbo reports whether any bond's MTU needs multi-buffer frames: the
// lanes' sockets are then bound with XDP_USE_SG and the XDP programs are
// xdp.frags (for every bond: a lane's UMEM and its sockets are shared by
// all of them). Otherwise nothing changes from single-buffer operation
// (zero-copy drivers without multi-buffer zero-copy keep zero-copy).
func jumbo(cfg *config.Config) bool {
	for _, b := range cfg.Bonds {
		if config.Jumbo(b.MTU, cfg.Dataplane.FrameSize) {
			return true
		}
	}
	return false
}

// vethNativeMTU is the largest MTU at which veth runs a native XDP
// program without xdp.frags (drivers/net/veth.c veth_xdp_set:
// SKB_WITH_OVERHEAD(PAGE_SIZE - XDP_PACKET_HEADROOM) - ETH_HLEN, with a
// 320-byte skb_shared_info): 3506 with 4 KiB pages.
func vethNativeMTU() int { return os.Getpagesize() - 256 - 320 - 14 }

// Test hooks: the kernel capability probes.
var (
	probeSG    = xsk.ProbeSG
	probeFrags = xdpprog.ProbeFrags
)

// checkJumbo checks, without changing anything, that the kernel has what
// multi-buffer frames need, naming the bonds that need it.
func checkJumbo(cfg *config.Config) error {
	var names []string
	for _, b := range cfg.Bonds {
		if config.Jumbo(b.MTU, cfg.Dataplane.FrameSize) {
			names = append(names, fmt.Sprintf("%s (mtu %d)", b.Name, b.MTU))
		}
	}
	why := fmt.Sprintf("bond %s: an MTU above %d (dataplane.frame_size %d - 274) needs multi-buffer AF_XDP", strings.Join(names, ", "),
		config.MaxMTU(cfg.Dataplane.FrameSize), cfg.Dataplane.FrameSize)
	var errs []error
	if err := probeSG(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", why, err))
	}
	if err := probeFrags(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", why, err))
	}
	return errors.Join(errs...)
}

// maxMTU reads a device's largest MTU (IFLA_MAX_MTU; 0 when the kernel
// does not report it).
func maxMTU(ifindex int) (int, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_MAX_MTU && len(a.Value) >= 4 {
				return int(nl.NativeEndian().Uint32(a.Value)), nil
			}
		}
	}
	return 0, nil
}

func preflightBond(dp config.Dataplane, b config.Bond, ours map[string]bool) error {
	var errs []error
	if len(b.Slaves) > lane.MaxMembers {
		errs = append(errs, fmt.Errorf("bond %s: slaves: %d members, at most %d", b.Name, len(b.Slaves), lane.MaxMembers))
	}
	if _, err := netlink.LinkByName(b.Name); err == nil && !ours[b.Name] {
		errs = append(errs, fmt.Errorf("bond %s: name: a network interface %q already exists and is not the appliance's (no state file in control.state_dir records it): remove it or choose another name", b.Name, b.Name))
	}
	if dp.HostDevice == "veth" {
		if _, err := netlink.LinkByName(dpName(b.Name)); err == nil && !ours[dpName(b.Name)] {
			errs = append(errs, fmt.Errorf("bond %s: interface %q (the appliance end of the host veth) already exists and is not the appliance's (no state file in control.state_dir records it)", b.Name, dpName(b.Name)))
		}
	}
	if config.Jumbo(b.MTU, dp.FrameSize) && dp.HostDevice == "tap" {
		errs = append(errs, fmt.Errorf("bond %s: mtu %d needs multi-buffer frames, which dataplane.host_device tap does not carry (at most %d; use host_device veth)", b.Name, b.MTU, config.MaxMTU(dp.FrameSize)))
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
	// a member whose frames the kernel delivers carries no XDP program,
	// only the fast path's TC program: another appliance's member
	if id, err := xdpprog.TCOwned(in.Index); err == nil && id != 0 {
		return fmt.Errorf("bond %s: slave %s: another appliance's fast-path TC program (id %d) is attached: the device is a member of a running appliance", b.Name, name, id)
	}
	if in.RxQueues < dp.Queues || in.TxQueues < dp.Queues {
		return fmt.Errorf("bond %s: slave %s: has %d rx / %d tx queues, dataplane.queues needs %d", b.Name, name, in.RxQueues, in.TxQueues, dp.Queues)
	}
	if mtu := b.MTU; mtu > in.MTU {
		if max, err := maxMTU(in.Index); err == nil && max > 0 && mtu > max {
			return fmt.Errorf("bond %s: slave %s: mtu %d cannot be set: the device's largest MTU is %d", b.Name, name, mtu, max)
		}
	}
	return nil
}

// Check checks, without changing anything, what Start would refuse: the
// configuration against the machine (members that do not exist or hold
// another XDP program, too few queues, an MTU a member cannot take, a
// host device name that is taken, an appliance already answering on the
// control socket), after what a crashed appliance's state file would
// restore. It is `bond-appliance --check`.
func Check(cfg *config.Config) error {
	var errs []error
	ours := map[string]bool{}
	if cfg.Control.StateDir != "" {
		// a state file left by a crashed appliance is restored at start
		created, _, err := netdev.Leftover(cfg.Control.StateDir, cfg.Control.Socket)
		if err != nil {
			errs = append(errs, fmt.Errorf("control.state_dir: %w", err))
		}
		for _, d := range created {
			ours[d] = true
		}
	}
	if c, err := net.DialTimeout("unix", cfg.Control.Socket, 200*time.Millisecond); err == nil {
		c.Close()
		errs = append(errs, fmt.Errorf("control.socket: %s is in use by a running appliance", cfg.Control.Socket))
	}
	errs = append(errs, preflight(cfg, ours))
	return errors.Join(errs...)
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
		reqs: make(chan func(*ctl)), results: make(chan func(*ctl), 64), jobs: make(chan func(*worker), 256), probes: make(chan func() func(*ctl), 16),
		stop: make(chan struct{}), loopEnd: make(chan struct{}), workEnd: make(chan struct{}),
	}
	a.w = &worker{dp: dp, log: log, laneFirst: make([]*xsk.Socket, dp.Queues), sg: jumbo(cfg)}
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
	if err := preflight(cfg, nil); err != nil {
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
		l := lane.New(lane.Config{ID: q, CPU: cpu, Batch: dp.Batch, RingSize: dp.RingSize, Adaptive: dp.Poll == "adaptive",
			OnPanic: a.panicked(fmt.Sprintf("lane %d", q))}, u, nil)
		a.lanes = append(a.lanes, l)
		log.Info("lane ready", "lane", q, "cpu", cpu, "umem_frames", frames, "hugepages", u.HugePages(), "ledger", a.ledger)
	}
	a.w.lanes = a.lanes
	for _, bd := range devs {
		if err := a.w.openBond(bd); err != nil {
			return nil, err
		}
	}
	// Collect garbage less often (the lanes allocate nothing; the control
	// plane a little): every collection stops the world, which waits for
	// each lane thread to reach a safe point, and a lane whose core is
	// contended makes that wait long (seen: 1 s under a chaos soak with
	// other processes on the lane's core). GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
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
	srv, err := startControl(cfg.Control, a)
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
	go func() {
		defer a.recoverPanic("device worker")
		a.runWorker()
	}()
	go func() {
		defer a.recoverPanic("control loop")
		c.run()
	}()
	go func() {
		defer a.recoverPanic("prober")
		a.runProber()
	}()
}

// runWorker runs the worker's jobs in order until the appliance stops.
func (a *Appliance) runWorker() {
	defer close(a.workEnd)
	for {
		select {
		case <-a.stop:
			return
		case job := <-a.jobs:
			a.runJob(job)
		}
	}
}

func (a *Appliance) runJob(job func(*worker)) {
	a.workMu.Lock()
	defer a.workMu.Unlock()
	if a.restored.Load() {
		return // the devices are restored: the process is exiting
	}
	job(a.w)
}

// Crashed is closed when a lane, the control loop or the device worker
// panicked. The panic is logged with its stack; the appliance no longer
// works as it should: the caller should Close it (bounded, with
// EmergencyRestore when Close does not return) and exit non-zero.
func (a *Appliance) Crashed() <-chan struct{} {
	a.crashMu.Lock()
	defer a.crashMu.Unlock()
	return a.crashCh()
}

// crashCh makes the crash channel on first use (under crashMu).
func (a *Appliance) crashCh() chan struct{} {
	if a.crash == nil {
		a.crash = make(chan struct{})
	}
	return a.crash
}

// CrashErr describes the first panic (nil when none).
func (a *Appliance) CrashErr() error {
	a.crashMu.Lock()
	defer a.crashMu.Unlock()
	return a.crashErr
}

// panicked returns the panic report of the goroutine named where.
func (a *Appliance) panicked(where string) func(v any, stack []byte) {
	return func(v any, stack []byte) {
		a.log.Error("panic: "+where+" stopped; the appliance must restore the devices and exit",
			"panic", fmt.Sprint(v), "stack", string(stack))
		a.crashMu.Lock()
		defer a.crashMu.Unlock()
		if a.crashErr == nil {
			a.crashErr = fmt.Errorf("%s panicked: %v", where, v)
			close(a.crashCh())
		}
	}
}

// recoverPanic, deferred by a goroutine, reports its panic.
func (a *Appliance) recoverPanic(where string) {
	if v := recover(); v != nil {
		a.panicked(where)(v, debug.Stack())
	}
}

// EmergencyRestore undoes the device changes now, for a process that
// exits right after and cannot wait for Close (stuck, or a second signal):
// it detaches the XDP programs and replays the change journal. It waits up
// to wait for the device worker to finish its job, then goes ahead anyway;
// the worker runs no job after it. Sockets, TAP queues and memory are left
// to the process exit. After Close has restored, it does nothing.
func (a *Appliance) EmergencyRestore(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	locked := a.workMu.TryLock()
	for !locked && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		locked = a.workMu.TryLock()
	}
	if !locked {
		a.log.Error("the device worker is stuck in a job; restoring the devices without it", "waited", wait)
	}
	if a.restored.Swap(true) {
		if locked {
			a.workMu.Unlock()
		}
		return nil
	}
	var errs []error
	for _, at := range a.w.attach {
		errs = append(errs, at.Detach())
	}
	a.w.attach = nil
	errs = append(errs, a.w.journal.Restore())
	err := errors.Join(errs...)
	a.log.Info("devices restored (emergency)", "restore_errors", err)
	if locked {
		a.workMu.Unlock()
	}
	return err
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
	a.workMu.Lock() // the worker has ended: this only orders with EmergencyRestore
	if !a.restored.Swap(true) {
		errs = append(errs, a.w.teardown())
	}
	a.workMu.Unlock()
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
