package appliance

import (
	"net"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/vishvananda/netlink"
)

// albState runs balance-tlb / balance-alb (appliance/alb, the kernel's
// bond_alb) on the control goroutine: transmit-table rebalancing from the
// lanes' per-index byte counters, receive balancing by ARP (rlb), MAC
// moves on failover and learning packets.
type albState struct {
	b      *alb.Bond
	start  time.Time
	tx     *lane.Lane
	table  *alb.Table // last published
	sent   uint64
	drops  uint64
	hostTx uint64
}

func (as *albState) now() time.Duration { return time.Since(as.start) }

func albMAC(m net.HardwareAddr) (a alb.MAC) {
	copy(a[:], m)
	return a
}

// setupALB creates the tlb/alb state of a mode 5/6 bond.
func (b *bond) setupALB(tx *lane.Lane) error {
	c := b.cfg
	cfg := alb.Config{
		Mode: alb.Mode(b.mode), BondMAC: albMAC(b.mac), DynamicLB: c.TLBDynamicLB,
		LPInterval: time.Duration(c.LPInterval) * time.Second, AllSlavesActive: c.AllSlavesActive, VLANs: vlanIDs(c.VLANs),
	}
	for _, m := range b.members {
		cfg.Slaves = append(cfg.Slaves, alb.Slave{Speed: m.speed, MAC: albMAC(m.permMAC), Up: false})
	}
	ab, err := alb.New(cfg)
	if err != nil {
		return err
	}
	b.alb = &albState{b: ab, start: time.Now(), tx: tx}
	// MAC collisions on attach may have given slaves other addresses
	b.albApply(ab.MACs())
	return nil
}

// albApply programs the slave addresses balance-alb asks for.
func (b *bond) albApply(changes []alb.MACChange) {
	for _, ch := range changes {
		m := b.members[ch.Slave]
		mac := net.HardwareAddr(append([]byte(nil), ch.MAC[:]...))
		if ch.Hardware && b.journal != nil && !macEqual(m.curMAC, mac) {
			if err := b.journal.SetMAC(m.name, mac); err != nil {
				b.log("alb: could not set a slave MAC", "bond", b.cfg.Name, "slave", m.name, "mac", mac.String(), "err", err.Error())
				continue
			}
		}
		m.curMAC = mac
	}
}

// albLink tells tlb/alb about a member's MII state; callers hold mu.
func (b *bond) albLink(m *member) {
	if b.alb == nil {
		return
	}
	b.alb.b.SetSpeed(m.idx, m.speed)
	if b.ok(m) {
		b.alb.b.SlaveUp(m.idx, b.alb.now())
	} else {
		b.alb.b.SlaveDown(m.idx, b.alb.now())
	}
}

// albActive moves MACs when the active slave changed (bond_alb_handle_active_change).
func (b *bond) albActive(old, cur int) {
	b.albApply(b.alb.b.ActiveChange(old, cur))
	b.albFlush(b.alb.b.Drain())
}

// albSnapshot fills the forwarding state of a tlb/alb bond; callers hold mu.
func (b *bond) albSnapshot(s *lane.Snapshot, prevActive int) {
	b.selectActive()
	if b.active != prevActive {
		b.albActive(prevActive, b.active)
	}
	t := b.alb.b.Table()
	b.alb.table = t
	s.ALB = t
	hp := b.hash
	s.XmitHash = func(f []byte) uint32 { return policy.Hash(f, hp) }
	s.Active = b.active
	for _, m := range b.members {
		if b.ok(m) {
			s.TX = append(s.TX, m.idx)
		}
	}
	// receive: tlb on the active slave only; alb on every slave (clients
	// are spread over them); all_slaves_active delivers everything
	for _, m := range b.members {
		if b.mode == policy.BalanceALB || m.idx == b.active || b.cfg.AllSlavesActive {
			s.RX |= 1 << uint(m.idx)
		}
	}
	if b.mode == policy.BalanceALB {
		s.CopyARP = true
	}
}

// albTick runs bond_alb_monitor and publishes a new table when it changed;
// callers hold mu.
func (b *bond) albTick() {
	var totals alb.Loads
	for _, lb := range b.lanes {
		lb.ALBLoad.AddTo(&totals)
	}
	out := b.alb.b.Tick(b.alb.now(), &totals)
	b.albFlush(out)
	if b.alb.b.Table() != b.alb.table {
		b.rebuild()
	}
}

// albFlush sends what tlb/alb asked for: learning packets, ARP updates,
// promiscuity changes.
func (b *bond) albFlush(out alb.Output) {
	for _, f := range out.Frames {
		if f.Slave < 0 || f.Slave >= len(b.members) {
			continue
		}
		if b.sendCtrl(b.alb.tx, f.Slave, f.Data) {
			b.alb.sent++
		} else {
			b.alb.drops++
		}
	}
	for _, p := range out.Promisc {
		if p.Slave < 0 || p.Slave >= len(b.members) {
			continue
		}
		m := b.members[p.Slave]
		if l, err := netlink.LinkByName(m.name); err == nil {
			if p.On {
				_ = netlink.SetPromiscOn(l)
			} else {
				_ = netlink.SetPromiscOff(l)
			}
		}
	}
}

// albHostARP sends an ARP frame the host sent, as rlb rewrites it.
func (b *bond) albHostARP(frame []byte) {
	out, slave, ok := b.alb.b.HostTx(frame)
	if !ok {
		b.alb.drops++
		return
	}
	if b.sendCtrl(b.alb.tx, slave, out) {
		b.alb.hostTx++
	} else {
		b.alb.drops++
	}
	if b.alb.b.Table() != b.alb.table {
		b.rebuild()
	}
}
