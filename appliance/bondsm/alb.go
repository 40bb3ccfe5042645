package bondsm

import (
	"net"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/policy"
)

// albState runs balance-tlb / balance-alb (appliance/alb, the kernel's
// bond_alb): transmit-table rebalancing from the lanes' per-index byte
// counters, receive balancing by ARP (rlb), MAC moves on failover and
// learning packets.
type albState struct {
	b      *alb.Bond
	table  *alb.Table // last published
	sent   uint64
	drops  uint64
	hostTx uint64
}

func albMAC(m net.HardwareAddr) (a alb.MAC) {
	copy(a[:], m)
	return a
}

func (b *Bond) newALB(c config.Bond) (*alb.Bond, error) {
	cfg := alb.Config{
		Mode: alb.Mode(b.mode), BondMAC: albMAC(b.mac), DynamicLB: c.TLBDynamicLB,
		LPInterval: time.Duration(c.LPInterval) * time.Second, AllSlavesActive: c.AllSlavesActive, VLANs: vlanIDs(c.VLANs),
	}
	for _, m := range b.members {
		cfg.Slaves = append(cfg.Slaves, alb.Slave{Speed: m.speed, MAC: albMAC(m.permMAC), Up: false})
	}
	return alb.New(cfg)
}

// setupALB creates the tlb/alb state of a mode 5/6 bond.
func (b *Bond) setupALB() error {
	ab, err := b.newALB(b.cfg)
	if err != nil {
		return err
	}
	b.alb = &albState{b: ab}
	// MAC collisions on attach may have given slaves other addresses
	b.albApply(ab.MACs())
	return nil
}

// replaceALB swaps in a tlb/alb state built from new options (tlb_dynamic_lb,
// lp_interval, all_slaves_active take effect): the links and the active
// slave are applied again, and only the members whose address ends up
// different from what they carry get a MAC action.
func (b *Bond) replaceALB(nb *alb.Bond) {
	final := make([]net.HardwareAddr, len(b.members))
	hw := make([]bool, len(b.members))
	apply := func(chs []alb.MACChange) {
		for _, ch := range chs {
			if ch.Slave >= 0 && ch.Slave < len(final) {
				final[ch.Slave] = net.HardwareAddr(append([]byte(nil), ch.MAC[:]...))
				hw[ch.Slave] = hw[ch.Slave] || ch.Hardware
			}
		}
	}
	apply(nb.MACs())
	for _, m := range b.members {
		nb.SetSpeed(m.idx, m.speed)
		if b.ok(m) {
			nb.SlaveUp(m.idx, b.t)
		}
	}
	if b.active >= 0 {
		apply(nb.ActiveChange(-1, b.active))
	}
	for i, m := range b.members {
		if final[i] == nil || macEqual(final[i], m.curMAC) {
			continue
		}
		if hw[i] {
			b.action(Action{Kind: SetMemberMAC, Member: m.idx, Device: m.name, MAC: final[i]})
		}
		m.curMAC = final[i]
	}
	old := b.alb
	b.alb = &albState{b: nb, sent: old.sent, drops: old.drops, hostTx: old.hostTx}
	// what the old state had asked for promiscuously ends with it
	for _, m := range b.members {
		m.albPromisc = false
		b.syncDevPromisc(m)
	}
	b.albFlush(nb.Drain())
}

// albApply programs the slave addresses balance-alb asks for.
func (b *Bond) albApply(changes []alb.MACChange) {
	for _, ch := range changes {
		m := b.member(ch.Slave)
		if m == nil {
			continue
		}
		mac := net.HardwareAddr(append([]byte(nil), ch.MAC[:]...))
		if ch.Hardware && !macEqual(m.curMAC, mac) {
			b.action(Action{Kind: SetMemberMAC, Member: m.idx, Device: m.name, MAC: mac})
		}
		m.curMAC = mac
	}
}

// albLink tells tlb/alb about a member's MII state.
func (b *Bond) albLink(m *member) {
	if b.alb == nil {
		return
	}
	b.alb.b.SetSpeed(m.idx, m.speed)
	if b.ok(m) {
		b.alb.b.SlaveUp(m.idx, b.t)
	} else {
		b.alb.b.SlaveDown(m.idx, b.t)
	}
}

// albSnapshot fills the forwarding state of a tlb/alb bond.
func (b *Bond) albSnapshot(s *lane.Snapshot, prevActive int) {
	b.selectActive()
	if b.active != prevActive {
		b.activeChanged(prevActive)
		b.albApply(b.alb.b.ActiveChange(prevActive, b.active))
		b.albFlush(b.alb.b.Drain())
		b.syncPromisc()
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

// albTick runs bond_alb_monitor and publishes a new table when it changed.
func (b *Bond) albTick(loads *alb.Loads) {
	b.albFlush(b.alb.b.Tick(b.t, loads))
	if b.alb.b.Table() != b.alb.table {
		b.rebuild()
	}
}

// albFlush queues what tlb/alb asked for: learning packets, ARP updates,
// promiscuity changes.
func (b *Bond) albFlush(out alb.Output) {
	for _, f := range out.Frames {
		if b.member(f.Slave) == nil {
			continue
		}
		b.emit(f.Slave, ClassNeigh, originALB, f.Data)
		b.alb.sent++
	}
	for _, p := range out.Promisc {
		m := b.member(p.Slave)
		if m == nil {
			continue
		}
		m.albPromisc = p.On
		b.syncDevPromisc(m)
	}
}

// albHostARP sends an ARP frame the host sent, as rlb rewrites it.
func (b *Bond) albHostARP(frame []byte) {
	out, slave, ok := b.alb.b.HostTx(frame)
	if !ok || b.member(slave) == nil {
		b.alb.drops++
		return
	}
	b.emit(slave, ClassNeigh, originALB, out)
	b.alb.hostTx++
	if b.alb.b.Table() != b.alb.table {
		b.rebuild()
	}
}
