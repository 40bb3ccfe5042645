package appliance

import (
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/cilium/ebpf"
)

// fastState is what the control loop last wrote of one bond into the fast
// path's maps (so that it writes only changes).
type fastState struct {
	host bool        // the host devmap and device entries are written
	ifs  map[int]int // member index → ifindex written to the device map
	// devs: member index → the device written. A member removed and added
	// again keeps its index and ifindex but is a new device, whose entry
	// the worker deleted when it released the old one: it must be
	// written again even when no snapshot came in between.
	devs map[int]*device
	tx   []int // ifindex written at each TX devmap slot
	cfg  xdpprog.FastCfg
	set  bool // cfg written
	// offloads: what was last asked of the host end's transmit offloads
	// (offSet: asked at all)
	offloads, offSet bool
	// xdp: member index → whether its XDP program is (asked to be)
	// attached, for members with the TC program
	xdp map[int]bool
}

// fastCfg is the fast path's view of a snapshot: which members deliver to
// the host in the kernel and how the host veth picks the member. Bonds
// whose received frames need user space (tlb/alb receive rules and MAC
// rewrites, the ARP/NS monitor's copies) keep the lane for received
// frames; transmit is in the kernel for active-backup, for
// balance-xor/802.3ad with layer2, layer2+3 or layer3+4 (not with
// broadcast_neighbor), and, in the TC program only, for balance-rr.
func fastCfg(s *lane.Snapshot) xdpprog.FastCfg {
	var c xdpprog.FastCfg
	if s == nil || s.ALB != nil {
		return c
	}
	if !s.CopyARP {
		c.Flags |= xdpprog.FastRX
		c.RXMask = s.RX
	}
	if len(s.TX) == 0 || len(s.TX) > xdpprog.FastMaxMembers {
		return c
	}
	switch s.Mode {
	case policy.ActiveBackup:
		c.Kind, c.NTX = xdpprog.FastActive, 1
	case policy.BalanceXOR, policy.IEEE8023AD:
		if s.BroadcastNeighbor {
			return c
		}
		switch s.Hash {
		case policy.Layer2, policy.Layer23, policy.Layer34:
		default:
			return c
		}
		c.Kind, c.NTX, c.Policy = xdpprog.FastHash, uint32(len(s.TX)), uint32(s.Hash)
	case policy.BalanceRR:
		// the TC program only (the XDP one leaves these to the lane)
		c.Kind, c.NTX, c.PPS = xdpprog.FastRR, uint32(len(s.TX)), s.PacketsPerSlave
	default:
		return c
	}
	c.Flags |= xdpprog.FastTX
	for i := 0; i < int(c.NTX); i++ {
		c.TXMember[i] = uint8(s.TX[i])
	}
	return c
}

// publishFast writes a bond's snapshot into the fast path's maps: the
// devices (once, and for members added since), the transmit devmap slots
// that changed, then the bond's configuration. Only changes are written,
// a few map updates (bpf syscalls that never wait) per snapshot.
func (c *ctl) publishFast(b *bondRT, s *lane.Snapshot) {
	f := c.a.w.fast.Load()
	if f == nil || b.devs == nil || b.devs.hostDev == nil || b.removed {
		return
	}
	st := b.fast
	if st == nil {
		st = &fastState{ifs: map[int]int{}, devs: map[int]*device{}, xdp: map[int]bool{}}
		b.fast = st
	}
	warn := func(what string, err error) {
		if err != nil {
			c.a.log.Warn("fast path: map update failed", "bond", b.name, "what", what, "err", err)
		}
	}
	if !st.host {
		hi := b.devs.hostDev.ifindex
		warn("host devmap", f.Host.Put(uint32(b.idx), uint32(hi)))
		warn("host device", f.Ifs.Put(uint32(hi), xdpprog.FastIf{Bond: uint32(b.idx), Member: xdpprog.FastHostMember}))
		if b.devs.hostIndex != 0 {
			warn("host end", f.HostIf.Put(uint32(b.idx), uint32(b.devs.hostIndex)))
			warn("host end device", f.Ifs.Put(uint32(b.devs.hostIndex), xdpprog.FastIf{Bond: uint32(b.idx), Member: xdpprog.FastHostMember}))
		}
		st.host = true
	}
	for idx, md := range b.members {
		if idx >= xdpprog.FastMaxMembers {
			break
		}
		if md == nil || md.dev == nil {
			delete(st.ifs, idx)
			delete(st.devs, idx)
			delete(st.xdp, idx)
			continue
		}
		if st.devs[idx] == md.dev {
			continue
		}
		if md.dev.tc != nil {
			st.xdp[idx] = md.dev.xdpOn
		} else {
			delete(st.xdp, idx)
		}
		k := xdpprog.FastKey(b.idx, idx)
		if n, err := ebpf.PossibleCPU(); err == nil {
			warn("counters", f.Cnt.Put(k, make([]xdpprog.FastCounters, n)))
		}
		fi := xdpprog.FastIf{Bond: uint32(b.idx), Member: uint32(idx)}
		if md.dev.tc != nil {
			fi.Member |= xdpprog.FastIfTC
		}
		warn("member device", f.Ifs.Put(uint32(md.dev.ifindex), fi))
		st.ifs[idx] = md.dev.ifindex
		st.devs[idx] = md.dev
	}
	cfg := fastCfg(s)
	if cfg.Flags&xdpprog.FastTX != 0 {
		for slot := 0; slot < int(cfg.NTX); slot++ {
			m := int(cfg.TXMember[slot])
			ifi, ok := st.ifs[m]
			if !ok {
				cfg.Flags &^= xdpprog.FastTX // a member without a device yet: the lane
				break
			}
			if slot < len(st.tx) && st.tx[slot] == ifi {
				continue
			}
			if err := f.TX.Put(xdpprog.FastTXKey(b.idx, slot), uint32(ifi)); err != nil {
				warn("member devmap", err)
				cfg.Flags &^= xdpprog.FastTX
				break
			}
			if err := f.TXIf.Put(xdpprog.FastTXKey(b.idx, slot), uint32(ifi)); err != nil {
				warn("member ifindex", err)
				cfg.Flags &^= xdpprog.FastTX
				break
			}
			for len(st.tx) <= slot {
				st.tx = append(st.tx, 0)
			}
			st.tx[slot] = ifi
		}
	}
	c.hostOffloads(b, st, s)
	if !st.set || st.cfg != cfg {
		if err := f.Cfg.Put(uint32(b.idx), cfg); err != nil {
			warn("bond", err)
			return
		}
		st.cfg, st.set = cfg, true
	}
	c.memberXDP(b, st, cfg.Flags&xdpprog.FastRX == 0)
}

// memberXDP asks the worker to attach the members' XDP programs while the
// bond needs received frames in the lane (lane true) and to detach them
// while the members' TC programs deliver (after the configuration above
// says so: a frame arriving between the two goes the old way).
func (c *ctl) memberXDP(b *bondRT, st *fastState, lane bool) {
	for idx, on := range st.xdp {
		if on == lane || idx >= len(b.members) || b.members[idx] == nil {
			continue
		}
		st.xdp[idx] = lane
		d := b.members[idx].dev
		c.work(func(w *worker) any { return w.setMemberXDP(d, lane) }, func(c *ctl, v any) {
			if err, _ := v.(error); err != nil {
				c.event("device change failed", "bond", b.name, "device", d.name, "err", err.Error())
			}
		})
	}
}

// kernelTX reports a snapshot whose every frame from the host the fast
// path's TC program can decide (active-backup; balance-xor and 802.3ad
// with layer2, layer2+3 or layer3+4 and without broadcast_neighbor;
// balance-rr), whatever the members' state. Broadcast stays in the lane:
// a prototype cloning the skb to every member in TC broke the host's TCP
// receive in the lab (not understood yet).
func kernelTX(s *lane.Snapshot) bool {
	if s == nil || s.ALB != nil {
		return false
	}
	switch s.Mode {
	case policy.ActiveBackup:
		return true
	case policy.BalanceXOR, policy.IEEE8023AD:
		return !s.BroadcastNeighbor && (s.Hash == policy.Layer2 || s.Hash == policy.Layer23 || s.Hash == policy.Layer34)
	case policy.BalanceRR:
		return true
	}
	return false
}

// hostOffloads asks the worker to turn the host end's transmit offloads
// on when the TC program on its egress decides every frame (the host
// stack then hands over 64 KB TSO super-frames with partial checksums,
// which the members' drivers or the kernel's GSO finish), and off when
// frames go through the lane, which copies bytes and cannot finish them.
func (c *ctl) hostOffloads(b *bondRT, st *fastState, s *lane.Snapshot) {
	want := b.devs.hostTC != nil && kernelTX(s)
	if st.offSet && st.offloads == want {
		return
	}
	st.offloads, st.offSet = want, true
	if !want && b.devs.hostTC == nil {
		return // off since the host end was made
	}
	host := b.name
	c.work(func(w *worker) any { return w.setHostOffloads(host, want) }, func(c *ctl, v any) {
		if err, _ := v.(error); err != nil {
			c.a.log.Warn("fast path: host device offloads not changed", "bond", host, "on", want, "err", err)
		}
	})
}

// addFastCounters adds what the kernel forwarded for a bond's members to
// their status counters (and to the host's: what members delivered is
// what the host received, what the host sent is what members sent).
func (c *ctl) addFastCounters(b *bondRT, host *Counters, idx int, m *Counters) {
	f := c.a.w.fast.Load()
	if f == nil || b.fast == nil {
		return
	}
	if _, ok := b.fast.ifs[idx]; !ok {
		return
	}
	k := f.Counters(xdpprog.FastKey(b.idx, idx))
	m.RxPackets += k.RxPackets
	m.RxBytes += k.RxBytes
	m.DropInactive += k.DropInactive
	m.TxPackets += k.TxPackets
	m.TxBytes += k.TxBytes
	host.TxPackets += k.RxPackets
	host.TxBytes += k.RxBytes
	host.RxPackets += k.TxPackets
	host.RxBytes += k.TxBytes
}
