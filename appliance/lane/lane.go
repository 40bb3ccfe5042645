package lane

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
	"unsafe"

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
	DropNoFrame  Counter // UMEM exhausted: a broadcast copy or a control frame not made
	DropTooLong  Counter // TAP frame longer than a UMEM frame's room (dropped, never truncated)
	DropBadVnet  Counter // TAP super-frame the lane could not segment (bad vnet header or headers)
	// DropChain counts multi-buffer frames (descriptor chains) dropped
	// whole because they could not be completed: longer than
	// [MaxFrags] descriptors, cut by a full TX ring or pending array,
	// UMEM exhausted while copying one, or given to a TAP host. Each is
	// also counted under its reason above when it has one.
	DropChain Counter
	// Frames handed to control, by class, and those lost because the
	// class's ring was full: slow protocols (LACPDU, marker) on
	// ToCtrlSlow; ARP/ND copies for the monitor and alb, and (on the host
	// port) balance-alb host ARP frames, on ToCtrlNeigh.
	SlowRx, SlowDrop   Counter
	NeighRx, NeighDrop Counter
	CtrlTx             Counter // frames control asked to send on this port (both classes)
	CtrlBad            Counter // frames from control with an impossible length (dropped)
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
	// instead of AF_XDP rings (one system call per frame, or per
	// super-frame with VnetHdr; veth is the fast host device).
	Tap bool
	// VnetHdr marks a TAP opened with IFF_VNET_HDR and offloads
	// (checksum, TSO): every frame read or written carries a
	// virtio_net_hdr; the lane segments super-frames the host sends and
	// coalesces frames for the host (tapvnet.go). TapUSO: the TAP also
	// took USO, so UDP datagrams are coalesced too.
	VnetHdr, TapUSO bool
	// TxBudget is how many descriptors the kernel sends per TX kick
	// (xsk.Socket.TxBudget: XDP_MAX_TX_SKB_BUDGET when the kernel took
	// it, else its copy-mode default of 32); 0 means 32.
	TxBudget uint32
	Stats    PortStats

	pend  []rings.Desc
	npend int
	skip  bool // dropping the rest of an over-long RX chain
}

// Bond is one bond's sockets in this lane.
type Bond struct {
	Index   int
	Host    *Port
	Members []*Port // by member index; nil where the member has no socket here

	snap atomic.Pointer[Snapshot]
	// ALBLoad counts the bytes sent per tlb/alb hash index (read by control).
	ALBLoad policy.ALBCounters
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

// Sizes of the control rings of a lane, per class and direction. The slow
// ring is large so that LACP is never starved: a LACPDU has a ring of its
// own and never queues behind neighbour traffic.
const (
	SlowRingSize  = 1024
	NeighRingSize = 512
)

// Config sets a lane's parameters.
type Config struct {
	ID       int
	CPU      int // -1: not pinned
	Batch    int
	RingSize int
	Adaptive bool
	// OnPanic, when set, is called with a panic's value and stack if
	// the loop panics (the lane then stops, as after Stop); without it
	// the panic goes on.
	OnPanic func(v any, stack []byte)
}

// Lane is one busy-polling loop.
//
// Frames between a lane and control travel by class, each class on its own
// pair of SPSC rings: slow protocols (ethertype 0x8809: LACPDU, marker) on
// ToCtrlSlow/FromCtrlSlow, neighbour traffic (ARP/ND copies for the ARP/NS
// monitor and alb, balance-alb host ARP frames for rlb, probes and
// gratuitous ARPs) on ToCtrlNeigh/FromCtrlNeigh. The lane is the only
// producer of the To rings and the only consumer of the From rings;
// control is the other end of each. The lane drains FromCtrlSlow before
// FromCtrlNeigh, each up to a batch per iteration, so a flood of ARP never
// delays or drops a LACPDU.
type Lane struct {
	cfg           Config
	U             *umem.UMEM
	Bonds         []*Bond
	ToCtrlSlow    *rings.SPSC[CtrlFrame]
	ToCtrlNeigh   *rings.SPSC[CtrlFrame]
	FromCtrlSlow  *rings.SPSC[CtrlFrame]
	FromCtrlNeigh *rings.SPSC[CtrlFrame]
	Stats         Stats

	cur     *Layout                // the layout this lane works with
	next    atomic.Pointer[Layout] // published by control
	adopted atomic.Pointer[Layout] // acknowledged by the lane
	reclaim *rings.SPSC[Reclaimed] // frames of retired sockets, freed by the lane
	rxbuf   []rings.Desc
	chain   []rings.Desc         // the frame being forwarded: its descriptors (one unless multi-buffer)
	chainN  uint32               // its length in bytes
	cp      [MaxFrags]rings.Desc // a broadcast copy's descriptors
	addrs   []uint64
	cf      CtrlFrame
	stop    atomic.Bool
	started bool
	done    chan struct{}

	tapIOV   [2]unix.Iovec // a TAP read: the UMEM frame's room, then tapSpill
	tapSpill [1]byte       // catches the first byte of a frame longer than the room
	tv       *tapVnet      // TAP offload state (VnetHdr ports), made at first use

	free atomic.Uint32 // UMEM free frames at the end of the last iteration (for Places)
	lost atomic.Uint64 // frames of retired sockets the Reclaim caller gave up on
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
		ToCtrlSlow:    rings.NewSPSC[CtrlFrame](SlowRingSize),
		ToCtrlNeigh:   rings.NewSPSC[CtrlFrame](NeighRingSize),
		FromCtrlSlow:  rings.NewSPSC[CtrlFrame](SlowRingSize),
		FromCtrlNeigh: rings.NewSPSC[CtrlFrame](NeighRingSize),
		addrs:         make([]uint64, cfg.RingSize),
		rxbuf:         make([]rings.Desc, cfg.Batch+MaxFrags+1),
		done:          make(chan struct{}),
	}
	members := make([][]*Port, len(bonds))
	for i, b := range bonds {
		members[i] = b.Members
	}
	l.reclaim = rings.NewSPSC[Reclaimed](1 << 16)
	lay := NewLayout(bonds, members)
	l.size(lay)
	l.cur = lay
	l.next.Store(lay)
	l.adopted.Store(lay)
	l.free.Store(uint32(u.Available()))
	return l
}

// Layout is the set of member sockets a lane serves, per bond (index =
// member index; nil where a member has no socket). Control builds a new
// Layout with [NewLayout] to add or retire sockets; the lane adopts it at
// its next iteration and sizes its ports' pending-transmit arrays then, on
// its own goroutine. A published Layout is never modified.
type Layout struct {
	// Bonds by bond index (nil for a bond that was deleted).
	Bonds   []*Bond
	Members [][]*Port
	ports   []*Port
	fan     []int // per port: members of its bond (sizes its pending array)
	xdp     []*Port
	pollfds []unix.PollFd
}

// NewLayout derives a Layout from bonds and their member sockets. It is a
// pure constructor: it reads the ports' FD and Tap fields and writes
// nothing but the new Layout, so control may call it while the lane runs.
func NewLayout(bonds []*Bond, members [][]*Port) *Layout {
	lay := &Layout{Bonds: bonds, Members: members}
	for i, b := range bonds {
		if b == nil {
			continue
		}
		var ms []*Port
		if i < len(members) {
			ms = members[i]
		}
		add := func(p *Port) {
			if p == nil {
				return
			}
			lay.ports = append(lay.ports, p)
			lay.fan = append(lay.fan, len(ms))
			if !p.Tap {
				lay.xdp = append(lay.xdp, p)
			}
			if p.FD >= 0 {
				lay.pollfds = append(lay.pollfds, unix.PollFd{Fd: int32(p.FD), Events: unix.POLLIN})
			}
		}
		add(b.Host)
		for _, p := range ms {
			add(p)
		}
	}
	return lay
}

// size gives every port of lay a pending-transmit array for a batch from
// each member and the host plus control, each batch possibly ending in a
// chain of up to MaxFrags descriptors: (Batch+MaxFrags)*(members+2). Only
// the lane's goroutine (or New, before it starts) calls it; it allocates
// only when a layout with more members is adopted, never per frame.
func (l *Lane) size(lay *Layout) {
	for i, p := range lay.ports {
		if need := (l.cfg.Batch + MaxFrags) * (lay.fan[i] + 2); len(p.pend) < need {
			pend := make([]rings.Desc, need)
			copy(pend, p.pend[:p.npend])
			p.pend = pend
		}
	}
}

// Publish hands a new layout to the lane. Ports added must be ready (rings
// mapped); ports dropped stay open until Adopted says the lane let go.
func (l *Lane) Publish(lay *Layout) { l.next.Store(lay) }

// Adopted reports whether the lane works with lay (or is not running, so
// nothing uses the old one).
func (l *Lane) Adopted(lay *Layout) bool {
	return l.adopted.Load() == lay || !l.started || l.stop.Load()
}

// Reclaimed is a frame of a retired socket and the ring it was found on.
type Reclaimed struct {
	Addr uint64
	From umem.Place // umem.Fill, RX, TX or Completion
}

// Reclaim hands a frame of a retired socket, found on ring from, back to
// the lane's allocator; false when the queue is full (try again). Only one
// goroutine (the appliance's device worker) may call it.
func (l *Lane) Reclaim(addr uint64, from umem.Place) bool {
	r := Reclaimed{Addr: addr, From: from}
	return l.reclaim.Push(&r)
}

// ReclaimLost records n frames of retired sockets that the caller of
// Reclaim could not hand back (the queue stayed full past its deadline):
// they are in no place of the lane any more. Only the Reclaim caller
// writes it; LostToReclaim reads it from any goroutine.
func (l *Lane) ReclaimLost(n uint64) { l.lost.Store(l.lost.Load() + n) }

// LostToReclaim returns the frames recorded by ReclaimLost.
func (l *Lane) LostToReclaim() uint64 { return l.lost.Load() }

// Places says where a lane's UMEM frames are, read without stopping the
// lane: Free is the free stack as the lane left it at the end of its last
// iteration, Fill, RX, TX and Completion the entries between the consumer
// and producer indices of the rings of the published layout's sockets
// (kernel-shared counters). What is in none of them is in flight: held by
// the lane within an iteration, inside the kernel between two rings,
// queued for reclaim or on a retired socket, or lost. An idle lane's
// places are exact; under traffic they are a moment's sample that need
// not add up.
type Places struct {
	Frames, Free, Fill, RX, TX, Completion uint64
}

// Places reads where the lane's frames are. Any goroutine may call it (the
// appliance's control loop does, when it builds the status); it reads a
// few counters per socket and never stops the lane.
func (l *Lane) Places() Places {
	pl := Places{Frames: uint64(l.U.NumFrames()), Free: uint64(l.free.Load())}
	for _, p := range l.Ports() {
		if p.Tap {
			continue
		}
		if p.Fill != nil {
			pl.Fill += uint64(p.Fill.Queued())
		}
		if p.RX != nil {
			pl.RX += uint64(p.RX.Queued())
		}
		if p.TX != nil {
			pl.TX += uint64(p.TX.Queued())
		}
		if p.Comp != nil {
			pl.Completion += uint64(p.Comp.Queued())
		}
	}
	return pl
}

// DrainReclaimed frees the frames queued by Reclaim; the lane does it at
// every iteration, the owner once more after Stop.
func (l *Lane) DrainReclaimed() {
	var r Reclaimed
	for l.reclaim.Pop(&r) {
		if r.From != umem.InFlight {
			l.U.Move(r.Addr, r.From, umem.InFlight)
		}
		l.U.Free(r.Addr)
	}
}

// Published returns the layout last handed to the lane.
func (l *Lane) Published() *Layout { return l.next.Load() }

// Ports returns every port of the lane's current layout.
func (l *Lane) Ports() []*Port { return l.next.Load().ports }

// adopt switches to the published layout and frees reclaimed frames.
func (l *Lane) adopt() {
	if n := l.next.Load(); n != l.cur {
		l.size(n)
		l.cur = n
		l.adopted.Store(n)
	}
	l.DrainReclaimed()
}

// Config returns the lane's configuration.
func (l *Lane) Config() Config { return l.cfg }

// Prime fills every fill ring before the loop starts.
func (l *Lane) Prime() {
	l.refill()
	l.free.Store(uint32(l.U.Available()))
}

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
	l.free.Store(uint32(l.U.Available()))
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

// enqueueChain queues frame ch (one descriptor, or a chain whose
// descriptors but the last carry rings.Contd) for p, whole or not at all.
func (l *Lane) enqueueChain(p *Port, ch []rings.Desc, from *Port) {
	if len(ch) == 1 {
		l.enqueue(p, rings.Desc{Addr: ch[0].Addr, Len: ch[0].Len}, from)
		return
	}
	if p.npend+len(ch) > len(p.pend) {
		l.dropChain(ch, &from.Stats.DropTxFull, from)
		return
	}
	for i, d := range ch {
		o := uint32(rings.Contd)
		if i == len(ch)-1 {
			o = 0
		}
		p.pend[p.npend] = rings.Desc{Addr: d.Addr, Len: d.Len, Options: o}
		p.npend++
	}
}

// freeChain frees every frame of ch.
func (l *Lane) freeChain(ch []rings.Desc) {
	for _, d := range ch {
		l.U.Free(d.Addr)
	}
}

// dropChain frees frame ch and counts it once under c (and under the
// port's DropChain when it is a chain).
func (l *Lane) dropChain(ch []rings.Desc, c *Counter, p *Port) {
	l.freeChain(ch)
	c.Add(1)
	if len(ch) > 1 {
		p.Stats.DropChain.Add(1)
	}
}

// MaxFrags is the most descriptors one frame may span (AF_XDP
// multi-buffer): a 9000-byte MTU frame takes 3 with 4096-byte UMEM
// frames, 6 with 2048-byte ones. A longer chain is dropped whole.
const MaxFrags = 16

// rxRead takes up to a batch of descriptors from p's RX ring into
// l.rxbuf and returns them, each frame whole: a chain whose last
// fragment is not on the ring yet is left there (Unpeek) for the next
// iteration, a chain longer than MaxFrags is dropped whole (DropChain).
// Every descriptor returned is InFlight.
//
// Headers never straddle fragments: the kernel fills every fragment but
// the last to the UMEM frame's size less the headroom (frame_size - 256:
// 1792 or 3840 bytes, __xsk_rcv), and every header the lane reads
// (Ethernet, VLAN, IPv4/IPv6 with options, TCP/UDP ports: at most 18 +
// 60 + 60 bytes) lies in the first one.
func (l *Lane) rxRead(p *Port) []rings.Desc {
	idx, n := p.RX.Peek(uint32(l.cfg.Batch))
	if n == 0 {
		return nil
	}
	buf := l.rxbuf
	for i := uint32(0); i < n; i++ {
		buf[i] = p.RX.Get(idx + i)
	}
	if buf[n-1].Options&rings.Contd != 0 {
		n = l.rxTail(p, idx, n)
	}
	for i := uint32(0); i < n; i++ {
		l.U.Move(buf[i].Addr, umem.Fill, umem.InFlight)
	}
	p.RX.Release(n)
	out := buf[:n]
	if p.skip {
		out = l.rxSkip(p, out)
	}
	return out
}

// rxTail completes the chain that ends buf[:n] from the ring; it returns
// how many descriptors to take: the incomplete chain is given back
// (Unpeek), or, when it is already longer than MaxFrags, taken to be
// dropped with the rest of it (p.skip).
func (l *Lane) rxTail(p *Port, idx, n uint32) uint32 {
	buf := l.rxbuf
	j := n - 1 // first descriptor of the open chain
	for j > 0 && buf[j-1].Options&rings.Contd != 0 {
		j--
	}
	for buf[n-1].Options&rings.Contd != 0 && n-j <= MaxFrags {
		if _, got := p.RX.Peek(1); got == 0 {
			break
		}
		buf[n] = p.RX.Get(idx + n)
		n++
	}
	if buf[n-1].Options&rings.Contd == 0 {
		return n
	}
	if n-j <= MaxFrags {
		p.RX.Unpeek(n - j)
		return j
	}
	// over-long: its descriptors are dropped from here on (rxSkip)
	for i := j; i < n; i++ {
		buf[i].Options |= rings.Contd
	}
	return n
}

// rxSkip drops the descriptors of an over-long chain at the start of out
// (up to and including its last) and returns the rest.
func (l *Lane) rxSkip(p *Port, out []rings.Desc) []rings.Desc {
	k := 0
	for k < len(out) {
		d := out[k]
		k++
		l.U.Free(d.Addr)
		if d.Options&rings.Contd == 0 {
			p.skip = false
			break
		}
	}
	return out[k:]
}

// frameAt returns the frame starting at descs[i]: its descriptors and
// length in bytes. A chain longer than MaxFrags is returned with ok
// false, to be dropped; when it runs to the end of descs (the start of an
// over-long chain, see rxTail) the port skips the rest of it.
// nextFrame returns the frame starting at descs[i] (one descriptor, or a
// chain) and its length. A chain that cannot be completed (longer than
// MaxFrags, or cut by the end of the batch) is freed and counted on p, and
// ok is false; when its rest is still to come, p skips it.
func (l *Lane) nextFrame(descs []rings.Desc, i int, p *Port) (ch []rings.Desc, n uint32, ok bool) {
	if descs[i].Options&rings.Contd == 0 {
		return descs[i : i+1], descs[i].Len, true
	}
	ch, n, ok = frameAt(descs, i)
	if !ok {
		l.freeChain(ch)
		p.Stats.DropChain.Add(1)
		p.skip = ch[len(ch)-1].Options&rings.Contd != 0 // the rest is still to come
	}
	return ch, n, ok
}

func frameAt(descs []rings.Desc, i int) (ch []rings.Desc, n uint32, ok bool) {
	j := i
	n = descs[i].Len
	for descs[j].Options&rings.Contd != 0 {
		j++
		if j == len(descs) {
			return descs[i:j], n, false
		}
		n += descs[j].Len
	}
	return descs[i : j+1], n, j-i < MaxFrags
}

// pickFunc chooses the member a frame the host sent leaves on, for one
// mode: a member index, or pickDrop (no member can send it: the frame is
// dropped and counted), or pickDone (the pick function disposed of the
// frame itself). s is non-nil with at least one member in s.TX. Every
// pickFunc is a plain function (no closure), allocates nothing and never
// panics on any frame.
type pickFunc func(l *Lane, b *Bond, s *Snapshot, members []*Port, d rings.Desc, frame []byte) int

const (
	pickDrop = -1
	pickDone = -2
)

// picks holds one pickFunc per mode, indexed by policy.Mode.
var picks = [...]pickFunc{
	policy.BalanceRR:    pickRR,
	policy.ActiveBackup: pickActive,
	policy.BalanceXOR:   pickHash,
	policy.Broadcast:    pickBroadcast,
	policy.IEEE8023AD:   pickAD,
	policy.BalanceTLB:   pickALB,
	policy.BalanceALB:   pickALB,
}

// pickFor returns the pick function of mode (active-backup's for an
// invalid mode).
func pickFor(m policy.Mode) pickFunc {
	if int(m) < len(picks) {
		return picks[m]
	}
	return pickActive
}

// pickActive sends on the first transmitting member (active-backup: the
// active one).
func pickActive(_ *Lane, _ *Bond, s *Snapshot, _ []*Port, _ rings.Desc, _ []byte) int {
	return s.TX[0]
}

// pickRR is balance-rr: IGMP on the active member, the rest round robin
// with packets_per_slave.
func pickRR(l *Lane, b *Bond, s *Snapshot, _ []*Port, _ rings.Desc, frame []byte) int {
	if s.Active >= 0 && policy.IsIGMP(frame) {
		return s.Active
	}
	if !b.rrSet || b.rrPPS != s.PacketsPerSlave {
		b.rr = policy.NewRoundRobin(s.PacketsPerSlave, uint64(l.cfg.ID+1)*0x9e3779b97f4a7c15)
		b.rrPPS, b.rrSet = s.PacketsPerSlave, true
	}
	return s.TX[b.rr.Next()%uint32(len(s.TX))]
}

// pickHash is balance-xor and 802.3ad: xmit_hash_policy over the
// transmitting members.
func pickHash(_ *Lane, _ *Bond, s *Snapshot, _ []*Port, _ rings.Desc, frame []byte) int {
	return s.TX[policy.SlaveIndex(policy.Hash(frame, s.Hash), len(s.TX))]
}

// pickAD is 802.3ad: pickHash, but with broadcast_neighbor the ARP and
// IPv6 neighbour solicitation/advertisement frames the host sends go out
// on every transmitting member, as in broadcast mode (bonding's
// bond_should_broadcast_neighbor).
func pickAD(l *Lane, b *Bond, s *Snapshot, members []*Port, d rings.Desc, frame []byte) int {
	if s.BroadcastNeighbor && isNeighbour(frame) {
		return pickBroadcast(l, b, s, members, d, frame)
	}
	return pickHash(l, b, s, members, d, frame)
}

// pickBroadcast queues a copy on every transmitting member but the last
// and sends the frame itself on the last. A chain is copied whole (as
// many new frames as it has fragments) or, when the UMEM runs out in
// the middle, not at all.
func pickBroadcast(l *Lane, b *Bond, s *Snapshot, members []*Port, d rings.Desc, frame []byte) int {
	h := b.Host
	last := len(s.TX) - 1
	for j := 0; j < last; j++ {
		if len(l.chain) > 1 {
			l.broadcastChain(h, memberAt(members, s.TX[j]))
			continue
		}
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
	return s.TX[last]
}

// broadcastChain queues a copy of the chain l.chain on p.
func (l *Lane) broadcastChain(h, p *Port) {
	cp := l.cp[:len(l.chain)]
	for i, d := range l.chain {
		addr, ok := l.U.Alloc()
		if !ok {
			l.freeChain(cp[:i])
			h.Stats.DropNoFrame.Add(1)
			h.Stats.DropChain.Add(1)
			return
		}
		copy(l.U.Frame(addr, d.Len), l.U.Frame(d.Addr, d.Len))
		cp[i] = rings.Desc{Addr: addr, Len: d.Len}
	}
	if p == nil {
		l.dropChain(cp, &h.Stats.DropNoSlave, h)
		return
	}
	l.enqueueChain(p, cp, h)
}

// pickALB is balance-tlb and balance-alb: the published table's slave,
// ARP to control in balance-alb (rlb), bytes counted per hash index, and
// the slave's own source address on a slave other than the active one.
func pickALB(l *Lane, b *Bond, s *Snapshot, members []*Port, d rings.Desc, frame []byte) int {
	t := s.ALB
	if t == nil {
		return pickDrop
	}
	slave, counter := t.Pick(frame, s.XmitHash)
	if slave == policy.ALBToControl {
		// an ARP frame rlb may rewrite: control sends it (HostTx)
		l.toCtrl(l.ToCtrlNeigh, b.Index, HostMember, frame, &b.Host.Stats.NeighRx, &b.Host.Stats.NeighDrop)
		l.freeChain(l.chain)
		return pickDone
	}
	if slave < 0 || slave >= len(members) {
		return pickDrop
	}
	b.ALBLoad.Add(counter, uint64(l.chainN))
	// bond_do_alb_xmit: frames on another slave carry its MAC
	t.SetSource(frame, slave)
	return slave
}

// hostRX forwards frames the host sent to the members chosen by the mode.
// A frame is one descriptor or a chain of them (multi-buffer); the mode
// reads and rewrites headers in the first fragment only (see rxRead).
func (l *Lane) hostRX(b *Bond, s *Snapshot, members []*Port) int {
	h := b.Host
	var descs []rings.Desc
	switch {
	case h.Tap && h.VnetHdr:
		descs = l.tapReadVnet(h)
	case h.Tap:
		descs = l.tapRead(h)
	default:
		descs = l.rxRead(h)
	}
	n := len(descs)
	if n == 0 {
		return 0
	}
	var bytes, frames uint64
	var pick pickFunc
	if s != nil && len(s.TX) > 0 {
		pick = pickFor(s.Mode)
	}
	for i := 0; i < n; {
		d := descs[i]
		ch, ln, ok := l.nextFrame(descs, i, h)
		i += len(ch)
		frames++
		bytes += uint64(ln)
		if !ok {
			continue
		}
		if pick == nil {
			l.dropChain(ch, &h.Stats.DropNoSlave, h)
			continue
		}
		l.chain, l.chainN = ch, ln
		frame := l.U.Frame(d.Addr, d.Len)
		m := pick(l, b, s, members, d, frame)
		if m == pickDone {
			continue
		}
		p := memberAt(members, m)
		if p == nil {
			l.dropChain(ch, &h.Stats.DropNoSlave, h)
			continue
		}
		l.enqueueChain(p, ch, h)
	}
	h.Stats.RxPackets.Add(frames)
	h.Stats.RxBytes.Add(bytes)
	return n
}

// tapRead reads up to a batch of frames from a TAP device into UMEM frames.
// With no free frame it stops reading: the frames wait in the TAP queue
// (nothing is lost by the lane; the kernel counts its own drops, as the
// TAP device's TX drops, should that queue overflow), so DropNoFrame never
// counts here. The TAP driver truncates a frame longer than the buffer and
// returns the truncated length (Linux 6.18, IFF_TAP|IFF_NO_PI), so a frame
// of exactly the room would look like a frame cut to it: the lane reads
// with readv into the frame's room and one spill byte past it, and a read
// that reaches the spill byte is a frame too long for a UMEM frame,
// dropped and counted in DropTooLong, never passed on truncated.
func (l *Lane) tapRead(h *Port) []rings.Desc {
	n := 0
	room := l.U.FrameSize() - headroom
	for i := 0; i < l.cfg.Batch; i++ {
		addr, ok := l.U.Alloc()
		if !ok {
			break
		}
		addr += headroom
		r, err := tapReadFn(h.FD, l.U.Frame(addr, room), l.tapSpill[:], &l.tapIOV)
		if err != nil || r <= 0 {
			l.U.Free(addr)
			break
		}
		if uint32(r) > room {
			l.drop(addr, &h.Stats.DropTooLong)
			continue
		}
		l.rxbuf[n] = rings.Desc{Addr: addr, Len: uint32(r)}
		n++
	}
	return l.rxbuf[:n]
}

// tapReadFn reads one frame from a TAP queue (a test hook).
var tapReadFn = readTap

// readTap reads one frame from TAP queue fd into p, and what does not fit
// into spill, with one readv(2) over iov (the caller's, so nothing is
// allocated). It returns the bytes read.
func readTap(fd int, p, spill []byte, iov *[2]unix.Iovec) (int, error) {
	iov[0].Base = unsafe.SliceData(p)
	iov[0].SetLen(len(p))
	iov[1].Base = unsafe.SliceData(spill)
	iov[1].SetLen(len(spill))
	n, _, e := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// headroom is where frame data starts in a UMEM frame (XDP_PACKET_HEADROOM),
// as for frames the kernel receives into the UMEM.
const headroom = 256

// toCtrl copies a frame to control on ring q; rx counts it, drop its
// loss when the ring is full.
func (l *Lane) toCtrl(q *rings.SPSC[CtrlFrame], bond int, member uint16, frame []byte, rx, drop *Counter) {
	cf := &l.cf
	cf.Bond, cf.Member = uint16(bond), member
	cf.Len = uint16(copy(cf.Data[:], frame))
	if q.Push(cf) {
		rx.Add(1)
	} else {
		drop.Add(1)
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
// frames to control. Slow-protocol and neighbour frames are small: their
// first fragment is all control needs.
func (l *Lane) memberRX(b *Bond, s *Snapshot, m int, p *Port, members []*Port) int {
	descs := l.rxRead(p)
	n := len(descs)
	if n == 0 {
		return 0
	}
	var bytes, frames uint64
	for i := 0; i < n; {
		d := descs[i]
		ch, ln, ok := l.nextFrame(descs, i, p)
		i += len(ch)
		frames++
		bytes += uint64(ln)
		if !ok {
			continue
		}
		frame := l.U.Frame(d.Addr, d.Len)
		if isSlow(frame) {
			l.toCtrl(l.ToCtrlSlow, b.Index, uint16(m), frame, &p.Stats.SlowRx, &p.Stats.SlowDrop)
			l.freeChain(ch)
			continue
		}
		if s != nil && s.CopyARP && isNeighbour(frame) {
			l.toCtrl(l.ToCtrlNeigh, b.Index, uint16(m), frame, &p.Stats.NeighRx, &p.Stats.NeighDrop)
		}
		if s == nil || b.Host == nil {
			l.dropChain(ch, &p.Stats.DropInactive, p)
			continue
		}
		if t := s.ALB; t != nil {
			// tlb/alb delivery rules (bond_should_deliver_exact_match);
			// in alb a frame to the slave's own MAC gets the bond's
			if !t.Deliver(m, frame) {
				l.dropChain(ch, &p.Stats.DropInactive, p)
				continue
			}
			// also a frame to the MAC of a failed slave, taught to the
			// switch on the active one (rlb_teach_disabled_mac_on_primary);
			// runts are left alone
			t.TeachDisabled(frame, len(members))
		} else if !s.CanRX(m) {
			l.dropChain(ch, &p.Stats.DropInactive, p)
			continue
		}
		l.enqueueChain(b.Host, ch, p)
	}
	p.Stats.RxPackets.Add(frames)
	p.Stats.RxBytes.Add(bytes)
	return n
}

// ctrlTX sends the frames control queued: slow protocols first, then
// neighbour traffic, each up to a batch per iteration.
func (l *Lane) ctrlTX() int {
	return l.ctrlTXFrom(l.FromCtrlSlow) + l.ctrlTXFrom(l.FromCtrlNeigh)
}

func (l *Lane) ctrlTXFrom(q *rings.SPSC[CtrlFrame]) int {
	n := 0
	cf := &l.cf
	for n < l.cfg.Batch && q.Pop(cf) {
		n++
		if int(cf.Bond) >= len(l.cur.Bonds) || l.cur.Bonds[cf.Bond] == nil {
			continue
		}
		p := memberAt(l.cur.Members[cf.Bond], int(cf.Member))
		if p == nil {
			continue
		}
		if cf.Len > CtrlFrameMax || uint32(cf.Len) > l.U.FrameSize() {
			p.Stats.CtrlBad.Add(1)
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

// defaultTxBudget is what the kernel sends per sendto in copy mode when
// XDP_MAX_TX_SKB_BUDGET is not set (TX_BATCH_SIZE).
const defaultTxBudget = 32

func memberAt(ms []*Port, i int) *Port {
	if i < 0 || i >= len(ms) {
		return nil
	}
	return ms[i]
}

func (l *Lane) flush() {
	for _, p := range l.cur.ports {
		if p.Tap {
			if p.VnetHdr {
				l.tapWriteVnet(p)
			} else {
				l.tapWrite(p)
			}
			continue
		}
		k := uint32(p.npend)
		if k > 0 {
			idx, got := p.TX.Reserve(k)
			if got < k && got > 0 && p.pend[got-1].Options&rings.Contd != 0 {
				// the ring would cut a chain: none of it goes on the ring
				c := got - 1
				for c > 0 && p.pend[c-1].Options&rings.Contd != 0 {
					c--
				}
				p.TX.Cancel(got - c)
				got = c
			}
			var bytes, frames uint64
			for i := uint32(0); i < got; i++ {
				d := p.pend[i]
				l.U.Move(d.Addr, umem.InFlight, umem.TX)
				p.TX.Set(idx+i, d)
				bytes += uint64(d.Len)
				if d.Options&rings.Contd == 0 {
					frames++
				}
			}
			p.TX.Submit(got)
			for i := got; i < k; i++ {
				d := p.pend[i]
				l.U.Free(d.Addr)
				if d.Options&rings.Contd == 0 {
					p.Stats.DropTxFull.Add(1)
					if i > got && p.pend[i-1].Options&rings.Contd != 0 {
						p.Stats.DropChain.Add(1)
					}
				}
			}
			p.npend = 0
			p.Stats.TxPackets.Add(frames)
			p.Stats.TxBytes.Add(bytes)
		}
		if out := p.TX.Outstanding(); out > 0 && p.TX.NeedWakeup() {
			budget := p.TxBudget
			if budget == 0 {
				budget = defaultTxBudget
			}
			for i := uint32(0); i < (out+budget-1)/budget; i++ {
				if p.Kick.KickTX() != nil {
					break
				}
			}
		}
	}
}

// tapChainDrop frees pending frame i of TAP port p when it belongs to a
// multi-buffer chain (a TAP host carries none), counting the chain once
// at its last fragment, and reports whether it did.
func (l *Lane) tapChainDrop(p *Port, i int) bool {
	d := p.pend[i]
	if d.Options&rings.Contd == 0 && (i == 0 || p.pend[i-1].Options&rings.Contd == 0) {
		return false
	}
	l.U.Free(d.Addr)
	if d.Options&rings.Contd == 0 {
		p.Stats.DropChain.Add(1)
	}
	return true
}

// tapWrite writes the pending frames to a TAP device and frees them. A
// TAP host carries no multi-buffer frames (jumbo needs host_device veth):
// a chain is dropped whole.
func (l *Lane) tapWrite(p *Port) {
	var bytes uint64
	sent := 0
	for i := 0; i < p.npend; i++ {
		d := p.pend[i]
		if l.tapChainDrop(p, i) {
			continue
		}
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

// Run pins the calling goroutine's thread to the lane's CPU and loops until
// Stop. In adaptive mode an idle lane follows defaultIdle: it spins on for
// a while after the last frame, then sleeps in ppoll(2) on its sockets (a
// frame wakes it) with timeouts growing to 1 ms, so an idle box does not
// burn its cores. The thread's timer slack is set to 1 µs while it runs, so
// those short timeouts are not stretched by the default 50 µs.
func (l *Lane) Run() {
	defer close(l.done)
	defer func() {
		if l.cfg.OnPanic == nil {
			return
		}
		if v := recover(); v != nil {
			l.cfg.OnPanic(v, debug.Stack())
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if l.cfg.CPU >= 0 {
		var set unix.CPUSet
		set.Set(l.cfg.CPU)
		_ = unix.SchedSetaffinity(0, &set)
	}
	pol := defaultIdle
	if l.cfg.Adaptive {
		if old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0); err == nil {
			_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(time.Microsecond), 0, 0, 0)
			defer func() { _ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0) }()
		}
	}
	last := time.Now()
	var ts unix.Timespec
	for !l.stop.Load() {
		t0 := time.Now()
		w := l.Step()
		l.Stats.Iterations.Add(1)
		if w > 0 {
			l.Stats.Busy.Add(1)
			l.Stats.BusyNanos.Add(uint64(time.Since(t0)))
			last = t0
			continue
		}
		if !l.cfg.Adaptive {
			continue
		}
		if d := pol.sleepFor(t0.Sub(last)); d > 0 {
			l.Stats.Sleeps.Add(1)
			if fds := l.cur.pollfds; len(fds) > 0 {
				ts = unix.NsecToTimespec(int64(d))
				_, _ = unix.Ppoll(fds, &ts, nil)
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
