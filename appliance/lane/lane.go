package lane

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/rings"
	"github.com/bond-appliance/bond-appliance/umem"
	"golang.org/x/sys/unix"
)

// Counter is a single-writer counter: the lane stores, anyone loads. A store
// of load+n is a plain move on amd64/arm64, with no locked instruction.
type Counter struct{ v atomic.Uint64 }

// Add adds n; only the owning lane calls it.
func (c *Counter) Add(n uint64) { c.v.Store(c.v.Load() + n) }

// Load reads the counter from any goroutine.
func (c *Counter) Load() uint64 { return c.v.Load() }

// PortStats are one socket's counters.
type PortStats struct {
	RxPackets, RxBytes Counter
	TxPackets, TxBytes Counter
	// drops, by reason
	DropTxFull   Counter // TX ring or pending batch full
	DropNoSlave  Counter // host frame with no member able to transmit
	DropInactive Counter // received on a member that may not deliver (backup, not collecting)
	DropNoFrame  Counter // UMEM exhausted (broadcast copy, control frame)
	// slow-protocol frames handed to control, and those lost because the ring was full
	CtrlRx, CtrlDrop Counter
	CtrlTx           Counter // frames control asked to send on this port
}

// Kicker wakes the kernel for a socket (xsk.Socket implements it).
type Kicker interface {
	KickTX() error
	KickRX()
}

// Port is one AF_XDP socket of the lane.
type Port struct {
	Name string
	FD   int // for poll in adaptive mode; -1 when simulated
	RX   *rings.RX
	TX   *rings.TX
	Fill *rings.Fill
	Comp *rings.Completion
	Kick Kicker
	// Tap marks a TAP host device served with read(2)/write(2) on FD
	// instead of AF_XDP rings (one system call per frame: TAP has no
	// batched interface; veth is the fast host device).
	Tap   bool
	Stats PortStats

	pend  []rings.Desc
	npend int
}

// Bond is one bond's sockets in this lane.
type Bond struct {
	Index   int
	Host    *Port
	Members []*Port // by member index; nil where the member has no socket here

	snap atomic.Pointer[Snapshot]
	// ALBLoad counts the bytes sent per tlb/alb hash index (read by control).
	ALBLoad alb.Counters
	rr      policy.RoundRobin
	rrPPS   uint32
	rrSet   bool
}

// Publish makes s the bond's forwarding state; the lane picks it up at its
// next batch. s must not be modified afterwards.
func (b *Bond) Publish(s *Snapshot) { b.snap.Store(s) }

// Snapshot returns the published state.
func (b *Bond) Snapshot() *Snapshot { return b.snap.Load() }

// CtrlFrame carries a frame between control and a lane.
type CtrlFrame struct {
	Bond   uint16
	Member uint16
	Len    uint16
	Data   [CtrlFrameMax]byte
}

// CtrlFrameMax is the largest frame passed between control and a lane.
const CtrlFrameMax = 512

// HostMember in a CtrlFrame from a lane marks a frame the host sent (not
// one received on a member).
const HostMember = 0xffff

// Stats are the lane's own counters.
type Stats struct {
	Iterations Counter // loop iterations
	Busy       Counter // iterations that moved at least one frame
	BusyNanos  Counter // time spent in those iterations (busy share = BusyNanos / wall time)
	Sleeps     Counter // adaptive-mode polls
}

// Config sets a lane's parameters.
type Config struct {
	ID       int
	CPU      int // -1: not pinned
	Batch    int
	RingSize int
	Adaptive bool
}

// Lane is one busy-polling loop.
type Lane struct {
	cfg      Config
	U        *umem.UMEM
	Bonds    []*Bond
	ToCtrl   *rings.SPSC[CtrlFrame]
	FromCtrl *rings.SPSC[CtrlFrame]
	Stats    Stats

	cur     *Layout                // the layout this lane works with
	next    atomic.Pointer[Layout] // published by control
	adopted atomic.Pointer[Layout] // acknowledged by the lane
	reclaim *rings.SPSC[uint64]    // frames of retired sockets, freed by the lane
	rxbuf   []rings.Desc
	addrs   []uint64
	cf      CtrlFrame
	stop    atomic.Bool
	started bool
	done    chan struct{}
}

// New builds a lane over u with the given bonds. Every port must have its
// rings set up over u.
func New(cfg Config, u *umem.UMEM, bonds []*Bond) *Lane {
	if cfg.Batch < 1 {
		cfg.Batch = 64
	}
	if cfg.RingSize < cfg.Batch {
		cfg.RingSize = cfg.Batch
	}
	l := &Lane{
		cfg: cfg, U: u, Bonds: bonds,
		ToCtrl:   rings.NewSPSC[CtrlFrame](256),
		FromCtrl: rings.NewSPSC[CtrlFrame](256),
		addrs:    make([]uint64, cfg.RingSize),
		rxbuf:    make([]rings.Desc, cfg.Batch),
		done:     make(chan struct{}),
	}
	members := make([][]*Port, len(bonds))
	for i, b := range bonds {
		members[i] = b.Members
	}
	l.reclaim = rings.NewSPSC[uint64](1 << 16)
	l.cur = l.NewLayout(bonds, members)
	l.next.Store(l.cur)
	l.adopted.Store(l.cur)
	return l
}

// Layout is the set of member sockets a lane serves, per bond (index =
// member index; nil where a member has no socket). Control builds a new
// Layout to add or retire sockets; the lane adopts it at its next
// iteration. A published Layout is never modified.
type Layout struct {
	// Bonds by bond index (nil for a bond that was deleted).
	Bonds   []*Bond
	Members [][]*Port
	ports   []*Port
	xdp     []*Port
	pollfds []unix.PollFd
}

// NewLayout derives a Layout (allocating the pending-transmit arrays of
// ports that do not have them yet).
func (l *Lane) NewLayout(bonds []*Bond, members [][]*Port) *Layout {
	lay := &Layout{Bonds: bonds, Members: members}
	for i, b := range bonds {
		if b == nil {
			continue
		}
		var ms []*Port
		if i < len(members) {
			ms = members[i]
		}
		pendCap := l.cfg.Batch * (len(ms) + 2)
		for _, p := range append([]*Port{b.Host}, ms...) {
			if p == nil {
				continue
			}
			if len(p.pend) < pendCap {
				p.pend = make([]rings.Desc, pendCap)
			}
			lay.ports = append(lay.ports, p)
			if !p.Tap {
				lay.xdp = append(lay.xdp, p)
			}
			if p.FD >= 0 {
				lay.pollfds = append(lay.pollfds, unix.PollFd{Fd: int32(p.FD), Events: unix.POLLIN})
			}
		}
	}
	return lay
}

// Publish hands a new layout to the lane. Ports added must be ready (rings
// mapped); ports dropped stay open until Adopted says the lane let go.
func (l *Lane) Publish(lay *Layout) { l.next.Store(lay) }

// Adopted reports whether the lane works with lay (or is not running, so
// nothing uses the old one).
func (l *Lane) Adopted(lay *Layout) bool {
	return l.adopted.Load() == lay || !l.started || l.stop.Load()
}

// Reclaim hands frames of a retired socket back to the lane's allocator;
// false when the queue is full (try again).
func (l *Lane) Reclaim(addr uint64) bool { return l.reclaim.Push(&addr) }

// Published returns the layout last handed to the lane.
func (l *Lane) Published() *Layout { return l.next.Load() }

// Ports returns every port of the lane's current layout.
func (l *Lane) Ports() []*Port { return l.next.Load().ports }

// adopt switches to the published layout and frees reclaimed frames.
func (l *Lane) adopt() {
	if n := l.next.Load(); n != l.cur {
		l.cur = n
		l.adopted.Store(n)
	}
	var a uint64
	for l.reclaim.Pop(&a) {
		l.U.Free(a)
	}
}

// Config returns the lane's configuration.
func (l *Lane) Config() Config { return l.cfg }

// Prime fills every fill ring before the loop starts.
func (l *Lane) Prime() { l.refill() }

// Step runs one iteration: receive on every port, forward, transmit,
// reap completions, refill. It returns the number of frames received.
func (l *Lane) Step() int {
	l.adopt()
	work := 0
	for i, b := range l.cur.Bonds {
		if b == nil {
			continue
		}
		s := b.snap.Load()
		ms := l.cur.Members[i]
		if b.Host != nil {
			work += l.hostRX(b, s, ms)
		}
		for m, p := range ms {
			if p != nil {
				work += l.memberRX(b, s, m, p, ms)
			}
		}
	}
	work += l.ctrlTX()
	l.flush()
	l.complete()
	l.refill()
	return work
}

func (l *Lane) drop(addr uint64, c *Counter) {
	l.U.Free(addr)
	c.Add(1)
}

func (l *Lane) enqueue(p *Port, d rings.Desc, from *Port) {
	if p.npend == len(p.pend) {
		l.drop(d.Addr, &from.Stats.DropTxFull)
		return
	}
	p.pend[p.npend] = d
	p.npend++
}

// hostRX forwards frames the host sent to the members chosen by the mode.
func (l *Lane) hostRX(b *Bond, s *Snapshot, members []*Port) int {
	h := b.Host
	var descs []rings.Desc
	if h.Tap {
		descs = l.tapRead(h)
	} else {
		idx, n := h.RX.Peek(uint32(l.cfg.Batch))
		for i := uint32(0); i < n; i++ {
			l.rxbuf[i] = h.RX.Get(idx + i)
			l.U.Move(l.rxbuf[i].Addr, umem.Fill, umem.InFlight)
		}
		h.RX.Release(n)
		descs = l.rxbuf[:n]
	}
	n := len(descs)
	if n == 0 {
		return 0
	}
	var bytes uint64
	for _, d := range descs {
		bytes += uint64(d.Len)
		if s == nil || len(s.TX) == 0 {
			l.drop(d.Addr, &h.Stats.DropNoSlave)
			continue
		}
		frame := l.U.Frame(d.Addr, d.Len)
		var m int
		switch s.Mode {
		case policy.BalanceRR:
			if s.Active >= 0 && policy.IsIGMP(frame) {
				m = s.Active
				break
			}
			if !b.rrSet || b.rrPPS != s.PacketsPerSlave {
				b.rr = policy.NewRoundRobin(s.PacketsPerSlave, uint64(l.cfg.ID+1)*0x9e3779b97f4a7c15)
				b.rrPPS, b.rrSet = s.PacketsPerSlave, true
			}
			m = s.TX[b.rr.Next()%uint32(len(s.TX))]
		case policy.Broadcast:
			last := len(s.TX) - 1
			for j := 0; j < last; j++ {
				addr, ok := l.U.Alloc()
				if !ok {
					h.Stats.DropNoFrame.Add(1)
					continue
				}
				copy(l.U.Frame(addr, d.Len), frame)
				if p := memberAt(members, s.TX[j]); p != nil {
					l.enqueue(p, rings.Desc{Addr: addr, Len: d.Len}, h)
				} else {
					l.drop(addr, &h.Stats.DropNoSlave)
				}
			}
			m = s.TX[last]
		case policy.BalanceXOR, policy.IEEE8023AD:
			m = s.TX[policy.SlaveIndex(policy.Hash(frame, s.Hash), len(s.TX))]
		case policy.BalanceTLB, policy.BalanceALB:
			t := s.ALB
			if t == nil {
				l.drop(d.Addr, &h.Stats.DropNoSlave)
				continue
			}
			slave, counter := t.Pick(frame, s.XmitHash)
			if slave == alb.ToControl {
				// an ARP frame rlb may rewrite: control sends it (HostTx)
				l.toCtrl(b.Index, HostMember, frame, h)
				l.U.Free(d.Addr)
				continue
			}
			if slave < 0 || slave >= len(members) {
				l.drop(d.Addr, &h.Stats.DropNoSlave)
				continue
			}
			b.ALBLoad.Add(counter, uint64(d.Len))
			if slave != t.Active {
				// bond_do_alb_xmit: frames on another slave carry its MAC
				copy(frame[6:12], t.MAC[slave][:])
			}
			m = slave
		default: // active-backup; tlb/alb transmit on the active slave until they have their own balancer
			m = s.TX[0]
		}
		p := memberAt(members, m)
		if p == nil {
			l.drop(d.Addr, &h.Stats.DropNoSlave)
			continue
		}
		l.enqueue(p, rings.Desc{Addr: d.Addr, Len: d.Len}, h)
	}
	h.Stats.RxPackets.Add(uint64(n))
	h.Stats.RxBytes.Add(bytes)
	return n
}

// tapRead reads up to a batch of frames from a TAP device into UMEM frames.
func (l *Lane) tapRead(h *Port) []rings.Desc {
	n := 0
	fs := l.U.FrameSize()
	for n < l.cfg.Batch {
		addr, ok := l.U.Alloc()
		if !ok {
			h.Stats.DropNoFrame.Add(1)
			break
		}
		addr += headroom
		r, err := unix.Read(h.FD, l.U.Frame(addr, fs-headroom))
		if err != nil || r <= 0 {
			l.U.Free(addr)
			break
		}
		l.rxbuf[n] = rings.Desc{Addr: addr, Len: uint32(r)}
		n++
	}
	return l.rxbuf[:n]
}

// headroom is where frame data starts in a UMEM frame (XDP_PACKET_HEADROOM),
// as for frames the kernel receives into the UMEM.
const headroom = 256

// toCtrl copies a frame to control; p counts it (or its loss).
func (l *Lane) toCtrl(bond int, member uint16, frame []byte, p *Port) {
	cf := &l.cf
	cf.Bond, cf.Member = uint16(bond), member
	cf.Len = uint16(copy(cf.Data[:], frame))
	if l.ToCtrl.Push(cf) {
		p.Stats.CtrlRx.Add(1)
	} else {
		p.Stats.CtrlDrop.Add(1)
	}
}

// isNeighbour reports ARP and IPv6 neighbour solicitation/advertisement
// frames, untagged or behind one VLAN tag.
func isNeighbour(f []byte) bool {
	et, off, _, _ := policy.EtherType(f)
	switch et {
	case 0x0806:
		return true
	case 0x86dd:
		// next header ICMPv6 (58), type 135 or 136, no extension headers
		// (neighbour discovery is sent without them)
		return len(f) >= off+41 && f[off+6] == 58 && (f[off+40] == 135 || f[off+40] == 136)
	}
	return false
}

func isSlow(f []byte) bool {
	return len(f) >= 14 && f[12] == 0x88 && f[13] == 0x09
}

// memberRX delivers frames received on member m to the host, slow-protocol
// frames to control.
func (l *Lane) memberRX(b *Bond, s *Snapshot, m int, p *Port, members []*Port) int {
	idx, n := p.RX.Peek(uint32(l.cfg.Batch))
	if n == 0 {
		return 0
	}
	var bytes uint64
	for i := uint32(0); i < n; i++ {
		d := p.RX.Get(idx + i)
		l.U.Move(d.Addr, umem.Fill, umem.InFlight)
		bytes += uint64(d.Len)
		frame := l.U.Frame(d.Addr, d.Len)
		if isSlow(frame) {
			l.toCtrl(b.Index, uint16(m), frame, p)
			l.U.Free(d.Addr)
			continue
		}
		if s != nil && s.CopyARP && isNeighbour(frame) {
			l.toCtrl(b.Index, uint16(m), frame, p)
		}
		if s == nil || b.Host == nil {
			l.drop(d.Addr, &p.Stats.DropInactive)
			continue
		}
		if t := s.ALB; t != nil {
			// tlb/alb delivery rules (bond_should_deliver_exact_match);
			// in alb a frame to the slave's own MAC gets the bond's
			if !t.Deliver(m, frame) {
				l.drop(d.Addr, &p.Stats.DropInactive)
				continue
			}
			if t.RLB && frame[0]&1 == 0 {
				// also a frame to the MAC of a failed slave, taught to the
				// switch on the active one (rlb_teach_disabled_mac_on_primary)
				dst := [6]byte(frame[:6])
				for i := range len(members) {
					if i < len(t.MAC) && dst == t.MAC[i] && dst != t.Bond {
						copy(frame[:6], t.Bond[:])
						break
					}
				}
			}
		} else if !s.CanRX(m) {
			l.drop(d.Addr, &p.Stats.DropInactive)
			continue
		}
		l.enqueue(b.Host, rings.Desc{Addr: d.Addr, Len: d.Len}, p)
	}
	p.RX.Release(n)
	p.Stats.RxPackets.Add(uint64(n))
	p.Stats.RxBytes.Add(bytes)
	return int(n)
}

// ctrlTX sends the frames control queued.
func (l *Lane) ctrlTX() int {
	n := 0
	cf := &l.cf
	for n < l.cfg.Batch && l.FromCtrl.Pop(cf) {
		n++
		if int(cf.Bond) >= len(l.cur.Bonds) || l.cur.Bonds[cf.Bond] == nil {
			continue
		}
		p := memberAt(l.cur.Members[cf.Bond], int(cf.Member))
		if p == nil {
			continue
		}
		addr, ok := l.U.Alloc()
		if !ok {
			p.Stats.DropNoFrame.Add(1)
			continue
		}
		ln := copy(l.U.Frame(addr, uint32(cf.Len)), cf.Data[:cf.Len])
		p.Stats.CtrlTx.Add(1)
		l.enqueue(p, rings.Desc{Addr: addr, Len: uint32(ln)}, p)
	}
	return n
}

const copyModeTxBatch = 32 // descriptors the kernel sends per sendto in copy mode

func memberAt(ms []*Port, i int) *Port {
	if i < 0 || i >= len(ms) {
		return nil
	}
	return ms[i]
}

func (l *Lane) flush() {
	for _, p := range l.cur.ports {
		if p.Tap {
			l.tapWrite(p)
			continue
		}
		k := uint32(p.npend)
		if k > 0 {
			idx, got := p.TX.Reserve(k)
			var bytes uint64
			for i := uint32(0); i < got; i++ {
				d := p.pend[i]
				l.U.Move(d.Addr, umem.InFlight, umem.TX)
				p.TX.Set(idx+i, d)
				bytes += uint64(d.Len)
			}
			p.TX.Submit(got)
			for i := got; i < k; i++ {
				l.drop(p.pend[i].Addr, &p.Stats.DropTxFull)
			}
			p.npend = 0
			p.Stats.TxPackets.Add(uint64(got))
			p.Stats.TxBytes.Add(bytes)
		}
		if out := p.TX.Outstanding(); out > 0 && p.TX.NeedWakeup() {
			for i := uint32(0); i < (out+copyModeTxBatch-1)/copyModeTxBatch; i++ {
				if p.Kick.KickTX() != nil {
					break
				}
			}
		}
	}
}

// tapWrite writes the pending frames to a TAP device and frees them.
func (l *Lane) tapWrite(p *Port) {
	var bytes uint64
	sent := 0
	for i := 0; i < p.npend; i++ {
		d := p.pend[i]
		if _, err := unix.Write(p.FD, l.U.Frame(d.Addr, d.Len)); err != nil {
			p.Stats.DropTxFull.Add(1)
		} else {
			sent++
			bytes += uint64(d.Len)
		}
		l.U.Free(d.Addr)
	}
	p.npend = 0
	p.Stats.TxPackets.Add(uint64(sent))
	p.Stats.TxBytes.Add(bytes)
}

func (l *Lane) complete() {
	for _, p := range l.cur.xdp {
		idx, n := p.Comp.Peek(uint32(len(l.addrs)))
		if n == 0 {
			continue
		}
		for i := uint32(0); i < n; i++ {
			a := p.Comp.Get(idx + i)
			l.U.Move(a, umem.TX, umem.Completion)
			l.addrs[i] = a
		}
		l.U.FreeBatch(l.addrs[:n])
		p.Comp.Release(n)
	}
}

func (l *Lane) refill() {
	for _, p := range l.cur.xdp {
		free := p.Fill.Free()
		if free == 0 {
			continue
		}
		if int(free) > len(l.addrs) {
			free = uint32(len(l.addrs))
		}
		got := l.U.AllocBatch(l.addrs[:free])
		if got == 0 {
			continue
		}
		idx, r := p.Fill.Reserve(uint32(got))
		for i := uint32(0); i < r; i++ {
			l.U.Move(l.addrs[i], umem.InFlight, umem.Fill)
			p.Fill.Set(idx+i, l.addrs[i])
		}
		p.Fill.Submit(r)
		if int(r) < got {
			l.U.FreeBatch(l.addrs[r:got])
		}
		if p.Fill.NeedWakeup() {
			p.Kick.KickRX()
		}
	}
}

// spinsBeforeSleep is how many empty iterations adaptive polling spins
// before it sleeps in poll(2).
const spinsBeforeSleep = 2000

// Run pins the calling goroutine's thread to the lane's CPU and loops until
// Stop. In adaptive mode an idle lane sleeps in poll(2) for up to 1 ms at a
// time, so an idle box does not burn its cores.
func (l *Lane) Run() {
	defer close(l.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if l.cfg.CPU >= 0 {
		var set unix.CPUSet
		set.Set(l.cfg.CPU)
		_ = unix.SchedSetaffinity(0, &set)
	}
	idle := 0
	for !l.stop.Load() {
		t0 := time.Now()
		w := l.Step()
		l.Stats.Iterations.Add(1)
		if w > 0 {
			l.Stats.Busy.Add(1)
			l.Stats.BusyNanos.Add(uint64(time.Since(t0)))
			idle = 0
			continue
		}
		idle++
		if l.cfg.Adaptive && idle > spinsBeforeSleep {
			l.Stats.Sleeps.Add(1)
			if fds := l.cur.pollfds; len(fds) > 0 {
				_, _ = unix.Poll(fds, 1)
			}
		}
	}
}

// Start runs the loop on its own goroutine.
func (l *Lane) Start() {
	l.started = true
	go l.Run()
}

// Stop ends the loop started by Start and waits for it; without Start it
// does nothing.
func (l *Lane) Stop() {
	if !l.started {
		return
	}
	l.stop.Store(true)
	<-l.done
}
