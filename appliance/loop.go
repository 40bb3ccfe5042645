package appliance

import (
	"errors"
	"fmt"
	"net"
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
	hostIndex int
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
	b := &bondRT{idx: len(c.bonds), sm: sm, name: bd.setup.Config.Name, devs: bd, members: bd.members, hostIndex: bd.hostIndex}
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
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		a.log.Warn("netlink link events unavailable, polling only", "err", err)
	}
	tick := time.NewTicker(tickPeriod)
	defer tick.Stop()
	lacpTick := time.NewTicker(lacpPeriod)
	defer lacpTick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case fn := <-a.reqs:
			fn(c)
		case fn := <-a.results:
			fn(c)
		case u := <-updates:
			c.onLinkUpdate(u)
		case now := <-lacpTick.C:
			c.drainCtrl(now)
			for _, b := range c.live() {
				c.apply(b, b.sm.TickLACP(now))
			}
		case now := <-tick.C:
			c.onTick(now)
		}
	}
}

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
	for _, b := range c.live() {
		cfg := b.sm.Config()
		if mi := time.Duration(cfg.Miimon) * time.Millisecond; mi > 0 && now.Sub(b.lastPoll) >= mi {
			b.lastPoll = now
			c.pollBond(b, now, cfg.UseCarrier)
		}
		if pollAddrs {
			c.refreshHost(b, now)
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

// pollBond reads every member's carrier (netlink, or ethtool's link state
// with use_carrier 0) at the miimon period.
func (c *ctl) pollBond(b *bondRT, now time.Time, useCarrier bool) {
	for _, m := range b.sm.Members() {
		if m.Removed {
			continue
		}
		carrier := m.Carrier
		if useCarrier {
			if in, err := netdev.Get(m.Name); err == nil {
				carrier = in.Carrier
			}
		} else if ok, err := netdev.LinkDetected(m.Name); err == nil {
			carrier = ok
		}
		c.observe(b, now, m, carrier)
	}
}

// observe feeds a carrier observation to a bond, with the link's speed
// and duplex read when it comes up.
func (c *ctl) observe(b *bondRT, now time.Time, m bondsm.MemberState, carrier bool) {
	if carrier && !m.Carrier {
		speed, duplex, _ := netdev.LinkMode(m.Name)
		c.apply(b, b.sm.LinkMode(now, m.Index, speed, duplex))
	}
	c.apply(b, b.sm.Link(now, m.Index, carrier))
}

func (c *ctl) onLinkUpdate(u netlink.LinkUpdate) {
	idx := int(u.Attrs().Index)
	carrier := u.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
	now := time.Now()
	for _, b := range c.live() {
		if idx == b.hostIndex && b.hostIndex != 0 {
			c.apply(b, b.sm.HostPromisc(now, u.Attrs().RawFlags&unix.IFF_PROMISC != 0))
		}
		if !b.sm.Config().UseCarrier {
			continue // use_carrier 0: link state comes from ethtool at each miimon poll
		}
		for _, m := range b.sm.Members() {
			if m.Ifindex == idx && !m.Removed {
				c.observe(b, now, m, carrier)
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

// refreshHost reads the host device's addresses (probes and notifications)
// and multicast groups (resend_igmp).
func (c *ctl) refreshHost(b *bondRT, now time.Time) {
	l, err := netlink.LinkByName(b.name)
	if err != nil {
		return
	}
	if list, err := netlink.AddrList(l, netlink.FAMILY_ALL); err == nil {
		var addrs []monitor.Addr
		for _, a := range list {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || a.IPNet == nil {
				continue
			}
			ones, _ := a.IPNet.Mask.Size()
			addrs = append(addrs, monitor.Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
		}
		c.apply(b, b.sm.HostAddrs(now, addrs))
	}
	if data, err := os.ReadFile("/proc/net/igmp"); err == nil {
		c.apply(b, b.sm.HostGroups(now, igmpGroups(data, b.name)))
	}
}

func (c *ctl) hostUp(b *bondRT) bool {
	ifi, err := net.InterfaceByName(b.name)
	return err == nil && ifi.Flags&net.FlagUp != 0
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
