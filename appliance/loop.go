package appliance

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/appliance/bondsm"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/rings"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Control loop periods.
const (
	tickPeriod     = 10 * time.Millisecond  // delays, monitors, alb, control frames, miimon polls
	lacpPeriod     = 100 * time.Millisecond // the LACP machines' tick
	addrPollPeriod = time.Second            // host device addresses and groups
	adoptWarnAfter = 2 * time.Second        // a lane slow to adopt a layout is reported
	ctrlBudget     = 1024                   // frames taken from each lane control ring per tick
)

// ctl is the control loop's state. Only the loop goroutine (run) touches
// it, and Start before the loop runs.
type ctl struct {
	a         *Appliance
	bonds     []*bondRT // by bond index; deleted bonds stay as tombstones (indices are stable in the lanes)
	cfgPath   string    // the configuration file (reload, bond add)
	env       []string  // the environment and --set overrides it was read with
	overrides []string

	subs map[chan Event]struct{}
	lost uint64 // events dropped for slow subscribers

	ops   []*op       // configuration changes, one at a time; the head runs
	waits []adoptWait // continuations waiting for every lane to adopt a layout

	lastAddrPoll time.Time
	stalls       uint64 // loop steps that took longer than stallWarn
	cf           lane.CtrlFrame
	rx           []uint64
	loads        alb.Loads
}

// bondRT is one running bond: its state machine and what the lanes and the
// worker made of it.
type bondRT struct {
	idx       int
	sm        *bondsm.Bond
	name      string // the host device, carrying the bond's name
	devs      *bondDevs
	lanes     []*lane.Bond   // per lane
	members   []*memberDev   // by member index; nil where a member was removed
	ports     [][]*lane.Port // per lane, by member index
	removed   bool
	lastPoll  time.Time
	polling   bool // a miimon poll is with the prober
	hostIndex int
	hostUp    bool       // the host device is administratively up (link events)
	fast      *fastState // what was written of the bond into the fast path's maps
}

// adoptWait runs then once every lane works with a layout published at or
// after the wait was made.
type adoptWait struct {
	layouts []*lane.Layout
	since   time.Time
	warned  bool
	then    func(c *ctl)
}

func newCtl(a *Appliance) *ctl {
	return &ctl{a: a, subs: map[chan Event]struct{}{}}
}

// addBond makes a bondRT of prepared and opened devices.
func (c *ctl) addBond(bd *bondDevs, now time.Time) (*bondRT, bondsm.Output, error) {
	sm, out, err := bondsm.New(bd.setup, now)
	if err != nil {
		return nil, out, fmt.Errorf("bond %s: %w", bd.setup.Config.Name, err)
	}
	b := &bondRT{idx: len(c.bonds), sm: sm, name: bd.setup.Config.Name, devs: bd, members: bd.members, hostIndex: bd.hostIndex,
		hostUp: bd.hostIndex != 0} // the worker set it up
	for q := range c.a.lanes {
		lb := &lane.Bond{Index: b.idx}
		if q < len(bd.hostPorts) {
			lb.Host = bd.hostPorts[q]
		}
		ps := make([]*lane.Port, len(bd.members))
		for j, md := range bd.members {
			ps[j] = md.ports[q]
		}
		b.lanes = append(b.lanes, lb)
		b.ports = append(b.ports, ps)
	}
	if s := sm.Snapshot(); s != nil {
		for _, lb := range b.lanes {
			lb.Publish(s)
		}
	}
	c.bonds = append(c.bonds, b)
	c.publishFast(b, sm.Snapshot())
	return b, out, nil
}

// publishLayouts hands every lane the bonds and member sockets as they
// stand, returning the layouts published.
func (c *ctl) publishLayouts() []*lane.Layout {
	out := make([]*lane.Layout, len(c.a.lanes))
	for q, l := range c.a.lanes {
		bonds := make([]*lane.Bond, len(c.bonds))
		members := make([][]*lane.Port, len(c.bonds))
		for i, b := range c.bonds {
			if b.removed {
				continue
			}
			bonds[i] = b.lanes[q]
			members[i] = slices.Clone(b.ports[q])
		}
		lay := lane.NewLayout(bonds, members)
		l.Publish(lay)
		out[q] = lay
	}
	return out
}

// whenAdopted runs then once every lane adopted the layouts just published:
// until then a lane may still touch the sockets they dropped.
func (c *ctl) whenAdopted(layouts []*lane.Layout, then func(c *ctl)) {
	c.waits = append(c.waits, adoptWait{layouts: layouts, since: time.Now(), then: then})
	c.checkAdopted(time.Now())
}

func (c *ctl) checkAdopted(now time.Time) {
	for i := 0; i < len(c.waits); {
		w := &c.waits[i]
		ok := true
		for q, l := range c.a.lanes {
			if !l.Adopted(w.layouts[q]) {
				ok = false
			}
		}
		if !ok {
			if !w.warned && now.Sub(w.since) > adoptWarnAfter {
				w.warned = true
				c.a.log.Warn("a lane has not adopted a new layout yet; retired sockets stay open until it does")
			}
			i++
			continue
		}
		then := w.then
		c.waits = slices.Delete(c.waits, i, i+1)
		then(c)
	}
}

// work hands a job to the worker; then runs on the loop with its result.
func (c *ctl) work(job func(w *worker) any, then func(c *ctl, v any)) {
	a := c.a
	j := func(w *worker) {
		v := job(w)
		select {
		case a.results <- func(c *ctl) { then(c, v) }:
		case <-a.stop:
		}
	}
	select {
	case a.jobs <- j:
	default:
		// the queue is full: hand it over without blocking the loop
		go func() {
			select {
			case a.jobs <- j:
			case <-a.stop:
			}
		}()
	}
}

// apply carries out what a bond's state machine asked for.
func (c *ctl) apply(b *bondRT, out bondsm.Output) {
	c.publishOut(b, out)
	for _, act := range out.Actions {
		act := act
		host, dp, tap := b.name, b.devs.dp, b.devs.tap
		c.work(func(w *worker) any { return w.apply(host, dp, tap, act) }, func(c *ctl, v any) {
			if err, _ := v.(error); err != nil {
				c.event("device change failed", "bond", host, "device", act.Device, "err", err.Error())
			}
		})
	}
}

// applyDirect is apply before the worker runs (at start).
func (c *ctl) applyDirect(b *bondRT, out bondsm.Output) {
	c.publishOut(b, out)
	for _, act := range out.Actions {
		if err := c.a.w.apply(b.name, b.devs.dp, b.devs.tap, act); err != nil {
			c.a.log.Warn("device change failed", "bond", b.name, "device", act.Device, "err", err)
		}
	}
}

func (c *ctl) publishOut(b *bondRT, out bondsm.Output) {
	if out.Snapshot != nil {
		for _, lb := range b.lanes {
			lb.Publish(out.Snapshot)
		}
		c.publishFast(b, out.Snapshot)
	}
	for _, f := range out.Frames {
		c.send(b, f)
	}
	for _, ev := range out.Events {
		c.event(ev.Msg, ev.Args...)
	}
}

// send queues a control frame on lane 0, on the ring of its class.
func (c *ctl) send(b *bondRT, f bondsm.Frame) {
	if len(c.a.lanes) == 0 || f.Member < 0 || f.Member >= lane.MaxMembers {
		b.sm.Dropped(f)
		return
	}
	l := c.a.lanes[0]
	cf := &c.cf
	cf.Bond, cf.Member = uint16(b.idx), uint16(f.Member)
	cf.Len = uint16(copy(cf.Data[:], f.Data))
	r := l.FromCtrlNeigh
	if f.Class == bondsm.ClassSlow {
		r = l.FromCtrlSlow
	}
	if !r.Push(cf) {
		b.sm.Dropped(f)
	}
}

// run is the control loop.
func (c *ctl) run() {
	a := c.a
	defer close(a.loopEnd)
	defer c.failOps(errors.New("the appliance is shutting down"))
	updates, done := c.subscribeLinks()
	defer func() { close(done) }()
	resubscribe := time.NewTimer(time.Hour)
	resubscribe.Stop()
	tick := time.NewTicker(tickPeriod)
	defer tick.Stop()
	lacpTick := time.NewTicker(lacpPeriod)
	defer lacpTick.Stop()
	for {
		var what string
		var t0 time.Time
		select {
		case <-a.stop:
			return
		case fn := <-a.reqs:
			what, t0 = "request", time.Now()
			fn(c)
		case fn := <-a.results:
			what, t0 = "worker or prober result", time.Now()
			fn(c)
		case u, ok := <-updates:
			what, t0 = "link event", time.Now()
			if !ok {
				// the kernel dropped events (its socket buffer overflowed
				// in an event storm) and the subscription ended: poll
				// every member now, and subscribe again shortly
				a.log.Warn("netlink link events lost; polling every member and subscribing again")
				updates = nil
				c.pollAll()
				resubscribe.Reset(100 * time.Millisecond)
				continue
			}
			c.onLinkUpdate(u)
		case <-resubscribe.C:
			what, t0 = "link events subscription", time.Now()
			close(done)
			updates, done = c.subscribeLinks()
			c.pollAll() // what changed while no events came
		case now := <-lacpTick.C:
			what, t0 = "LACP tick", now
			c.drainCtrl(now)
			for _, b := range c.bonds {
				if !b.removed {
					c.apply(b, b.sm.TickLACP(now))
				}
			}
		case now := <-tick.C:
			what, t0 = "tick", now
			c.onTick(now)
		}
		// Nothing the loop does may take long: say so when something did
		// (the LACP and monitor timers were late by as much).
		if d := time.Since(t0); d > stallWarn {
			c.stalls++
			a.log.Warn("control loop stalled", "in", what, "for", d.Round(time.Millisecond))
		}
	}
}

// stallWarn is how long one step of the control loop may take before it
// is logged.
const stallWarn = 50 * time.Millisecond

// live returns the bonds that are not deleted.
func (c *ctl) live() []*bondRT {
	out := make([]*bondRT, 0, len(c.bonds))
	for _, b := range c.bonds {
		if !b.removed {
			out = append(out, b)
		}
	}
	return out
}

func (c *ctl) bond(name string) *bondRT {
	for _, b := range c.bonds {
		if !b.removed && b.name == name {
			return b
		}
	}
	return nil
}

func (c *ctl) onTick(now time.Time) {
	c.drainCtrl(now)
	c.checkAdopted(now)
	pollAddrs := now.Sub(c.lastAddrPoll) >= addrPollPeriod
	if pollAddrs {
		c.lastAddrPoll = now
	}
	for _, b := range c.bonds {
		if b.removed {
			continue
		}
		if mi := time.Duration(b.sm.Miimon()) * time.Millisecond; mi > 0 && now.Sub(b.lastPoll) >= mi {
			b.lastPoll = now
			c.pollBond(b, b.sm.UseCarrier())
		}
		if pollAddrs {
			c.refreshHost(b)
		}
		c.apply(b, b.sm.Tick(now, c.tickInput(b)))
	}
}

// tickInput sums the lanes' counters a bond's monitors need.
func (c *ctl) tickInput(b *bondRT) bondsm.TickInput {
	n := 0
	for _, ps := range b.ports {
		n = max(n, len(ps))
	}
	c.rx = slices.Grow(c.rx[:0], n)[:n]
	clear(c.rx)
	for _, ps := range b.ports {
		for i, p := range ps {
			if p != nil {
				c.rx[i] += p.Stats.RxPackets.Load()
			}
		}
	}
	in := bondsm.TickInput{RxPackets: c.rx}
	if s := b.sm.Snapshot(); s != nil && s.ALB != nil {
		c.loads = alb.Loads{}
		for _, lb := range b.lanes {
			lb.ALBLoad.AddTo(&c.loads)
		}
		in.ALBLoads = &c.loads
	}
	return in
}

// The control loop never reads device state itself: netlink and ethtool
// requests can wait on the kernel's rtnl lock for as long as another
// process (or our own worker) changes devices, and the loop must keep its
// LACP and monitor timers. The prober goroutine makes those reads and
// reports back; a bond has at most one poll in flight, and a poll that
// finds the prober busy is skipped (the next period polls again).

// memberProbe is what the prober reads of one member.
type memberProbe struct {
	idx     int
	name    string
	carrier bool
	ok      bool // carrier read
	speed   int
	duplex  string
	mode    bool // speed and duplex read
}

// probe hands a read to the prober; false when it is busy.
func (c *ctl) probe(job func() func(*ctl)) bool {
	select {
	case c.a.probes <- job:
		return true
	default:
		return false
	}
}

// runProber reads device state for the control loop until the appliance
// stops.
func (a *Appliance) runProber() {
	for {
		select {
		case <-a.stop:
			return
		case job := <-a.probes:
			then := job()
			select {
			case a.results <- then:
			case <-a.stop:
				return
			}
		}
	}
}

// pollBond reads every member's carrier (netlink, or ethtool's link state
// with use_carrier 0) at the miimon period, and the speed and duplex of
// members that have a carrier.
func (c *ctl) pollBond(b *bondRT, useCarrier bool) {
	if b.polling {
		return
	}
	var ms []memberProbe
	for _, m := range b.sm.Members() {
		if !m.Removed {
			ms = append(ms, memberProbe{idx: m.Index, name: m.Name})
		}
	}
	b.polling = c.probe(func() func(*ctl) {
		for i := range ms {
			m := &ms[i]
			if useCarrier {
				if c, err := netdev.CarrierNow(m.name); err == nil {
					m.carrier, m.ok = c, true
				}
			} else if up, err := netdev.LinkDetected(m.name); err == nil {
				m.carrier, m.ok = up, true
			}
			if m.ok && m.carrier {
				var err error
				m.speed, m.duplex, err = netdev.LinkMode(m.name)
				m.mode = err == nil
			}
		}
		return func(c *ctl) {
			b.polling = false
			c.observe(b, time.Now(), ms)
		}
	})
}

// observe feeds what the prober read to a bond: speed and duplex first
// (802.3ad port keys), then the carrier. Members replaced or removed since
// the read are skipped.
func (c *ctl) observe(b *bondRT, now time.Time, ms []memberProbe) {
	if b.removed {
		return
	}
	cur := b.sm.Members()
	for _, m := range ms {
		if m.idx >= len(cur) || cur[m.idx].Removed || cur[m.idx].Name != m.name {
			continue
		}
		if m.mode {
			c.apply(b, b.sm.LinkMode(now, m.idx, m.speed, m.duplex))
		}
		if m.ok {
			c.apply(b, b.sm.Link(now, m.idx, m.carrier))
		}
	}
}

// subscribeLinks subscribes to the kernel's link events (with a large
// socket buffer: carrier storms come in bursts). A nil channel (polling
// only) when the kernel refuses.
func (c *ctl) subscribeLinks() (chan netlink.LinkUpdate, chan struct{}) {
	updates := make(chan netlink.LinkUpdate, 1024)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ReceiveBufferSize: 4 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			select {
			case <-done: // closing the subscription at shutdown wakes its reader with an error
			default:
				c.a.log.Warn("netlink link events", "err", err)
			}
		},
	})
	if err != nil {
		c.a.log.Warn("netlink link events unavailable, polling only", "err", err)
		return nil, done
	}
	return updates, done
}

// pollAll has every bond's members polled at the next tick.
func (c *ctl) pollAll() {
	for _, b := range c.bonds {
		b.lastPoll = time.Time{}
		if b.sm.Miimon() == 0 && !b.removed {
			c.pollBond(b, b.sm.UseCarrier()) // no periodic poll: once now
		}
	}
}

func (c *ctl) onLinkUpdate(u netlink.LinkUpdate) {
	if u.Link == nil || u.Attrs() == nil {
		return
	}
	idx := int(u.Attrs().Index)
	carrier := u.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
	now := time.Now()
	for _, b := range c.live() {
		if idx == b.hostIndex && b.hostIndex != 0 {
			b.hostUp = u.Attrs().RawFlags&unix.IFF_UP != 0
			c.apply(b, b.sm.HostPromisc(now, u.Attrs().RawFlags&unix.IFF_PROMISC != 0))
		}
		if !b.sm.UseCarrier() {
			continue // use_carrier 0: link state comes from ethtool at each miimon poll
		}
		for _, m := range b.sm.Members() {
			if m.Ifindex != idx || m.Removed {
				continue
			}
			if !carrier || m.Carrier {
				// a lost carrier is acted on at once
				c.apply(b, b.sm.Link(now, m.Index, carrier))
				continue
			}
			// a carrier coming up: its speed and duplex first (802.3ad
			// keys), read by the prober; if it is busy, at once without
			// them (the next miimon poll reads them)
			mp := []memberProbe{{idx: m.Index, name: m.Name, carrier: true, ok: true}}
			if !c.probe(func() func(*ctl) {
				var err error
				mp[0].speed, mp[0].duplex, err = netdev.LinkMode(mp[0].name)
				mp[0].mode = err == nil
				return func(c *ctl) { c.observe(b, time.Now(), mp) }
			}) {
				c.apply(b, b.sm.Link(now, m.Index, carrier))
			}
		}
	}
}

// drainCtrl hands the frames the lanes and the members' slow-protocol
// sockets passed up to their bonds: slow protocols first, each source with
// a budget per tick.
func (c *ctl) drainCtrl(now time.Time) {
	c.readSlow(now)
	f := &c.cf
	for _, l := range c.a.lanes {
		for _, r := range [...]*rings.SPSC[lane.CtrlFrame]{l.ToCtrlSlow, l.ToCtrlNeigh} {
			for n := 0; n < ctrlBudget && r.Pop(f); n++ {
				if int(f.Bond) >= len(c.bonds) || c.bonds[f.Bond].removed {
					continue
				}
				b := c.bonds[f.Bond]
				m := int(f.Member)
				if f.Member == lane.HostMember {
					m = bondsm.HostMember
				}
				c.apply(b, b.sm.Receive(now, m, f.Data[:f.Len]))
			}
		}
	}
}

// readSlow reads the slow-protocol frames (LACPDUs, markers) each member's
// packet socket received since the last tick.
func (c *ctl) readSlow(now time.Time) {
	buf := c.cf.Data[:]
	for _, b := range c.bonds {
		if b.removed {
			continue
		}
		for idx, md := range b.members {
			if md == nil || md.slowFD < 0 {
				continue
			}
			for n := 0; n < ctrlBudget; n++ {
				k, _, err := unix.Recvfrom(md.slowFD, buf, unix.MSG_DONTWAIT)
				if err != nil || k <= 0 {
					break
				}
				md.slowRx++
				c.apply(b, b.sm.Receive(now, idx, buf[:min(k, len(buf))]))
			}
		}
	}
}

// refreshHost has the prober read the host device's addresses (probes and
// notifications) and multicast groups (resend_igmp).
func (c *ctl) refreshHost(b *bondRT) {
	name := b.name
	c.probe(func() func(*ctl) {
		var addrs []monitor.Addr
		addrsOK := false
		if l, err := netlink.LinkByName(name); err == nil {
			if list, err := netlink.AddrList(l, netlink.FAMILY_ALL); err == nil {
				addrsOK = true
				for _, a := range list {
					ip, ok := netip.AddrFromSlice(a.IP)
					if !ok || a.IPNet == nil {
						continue
					}
					ones, _ := a.IPNet.Mask.Size()
					addrs = append(addrs, monitor.Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
				}
			}
		}
		data, gerr := os.ReadFile("/proc/net/igmp")
		return func(c *ctl) {
			if b.removed {
				return
			}
			now := time.Now()
			if addrsOK {
				c.apply(b, b.sm.HostAddrs(now, addrs))
			}
			if gerr == nil {
				c.apply(b, b.sm.HostGroups(now, igmpGroups(data, name)))
			}
		}
	})
}

// igmpGroups parses /proc/net/igmp for the IPv4 groups dev has joined.
func igmpGroups(data []byte, dev string) []monitor.Group {
	var out []monitor.Group
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "Idx") {
			continue
		}
		if line[0] != '\t' && line[0] != ' ' {
			f := strings.Fields(line)
			in = len(f) >= 2 && f[1] == dev
			continue
		}
		if !in {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || len(f[0]) != 8 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 16, 32)
		if err != nil {
			continue
		}
		// stored in network order, printed as a host-order (little-endian) word
		a := netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
		out = append(out, monitor.Group{Addr: a})
	}
	return out
}
