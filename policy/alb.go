package policy

import (
	"fmt"
	"sync/atomic"
)

// This file is the per-frame half of balance-tlb (mode 5) and balance-alb
// (mode 6): the immutable table a lane consults for every frame the host
// sends ([ALBTable.Pick], [ALBTable.SetSource]) and receives
// ([ALBTable.Deliver]), and the byte counters it keeps ([ALBCounters]).
// The control half (rebalancing, receive load balancing, MAC moves) is
// package appliance/alb, which builds the tables; its names Table,
// Counters, Loads, MAC, Mode, ToControl, ... alias the ones here.

// MAC is an Ethernet address.
type MAC [6]byte

// String formats the address as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// IsZero reports the all-zero address (is_zero_ether_addr).
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports a group address, broadcast included
// (is_multicast_ether_addr).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsBroadcast reports ff:ff:ff:ff:ff:ff (is_broadcast_ether_addr).
func (m MAC) IsBroadcast() bool { return m == BroadcastMAC }

// Valid reports a unicast, non-zero address (is_valid_ether_addr).
func (m MAC) Valid() bool { return !m.IsZero() && !m.IsMulticast() }

var (
	// BroadcastMAC is ff:ff:ff:ff:ff:ff.
	BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// v6AllNodes is the IPv6 all-nodes multicast address, which
	// balance-alb never balances (mac_v6_allmcast).
	v6AllNodes = MAC{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

const (
	// ALBTableSize is the number of transmit hash indexes
	// (TLB_HASH_TABLE_SIZE) and of receive client slots
	// (RLB_HASH_TABLE_SIZE).
	ALBTableSize = 256
	// ALBMaxSlaves is the most slaves a tlb/alb bond can have
	// (lane.MaxMembers).
	ALBMaxSlaves = 64
	// ALBUnbalanced is the counter index of bytes sent unbalanced on the
	// active slave (the kernel's unbalanced_load).
	ALBUnbalanced = ALBTableSize
	// ALBToControl is the slave [ALBTable.Pick] returns for a frame the
	// lane must hand to control instead of sending it: an ARP frame in
	// balance-alb, which rlb_arp_xmit may rewrite.
	ALBToControl = -2
)

// ALBTable is the immutable transmit and receive state a lane needs for a
// tlb/alb bond. Control builds a new table whenever something changes and
// publishes it in the lane snapshot; nobody modifies a published table.
type ALBTable struct {
	Mode Mode // BalanceTLB or BalanceALB
	// Dynamic is tlb_dynamic_lb: Slot balances by load. Without it the
	// slave is Usable[hash % len(Usable)].
	Dynamic bool
	// RLB is set in balance-alb: ARP frames from the host go to control.
	RLB bool
	// AllSlavesActive is all_slaves_active: every slave delivers
	// everything it receives.
	AllSlavesActive bool
	// Active is the current active slave (curr_active_slave), -1 none.
	Active int
	// Slot maps a hash index to the slave that transmits it, -1 for
	// "use Active" (no slave can transmit).
	Slot [ALBTableSize]int8
	// Usable lists the slaves that can transmit, in slave order
	// (bond->usable_slaves).
	Usable []int
	// MAC is the address each slave currently has (its dev_addr): the
	// source of frames sent on a slave other than Active, and in
	// balance-alb the address it receives on.
	MAC [ALBMaxSlaves]MAC
	// Bond is the bond's address, carried by the host device and by the
	// active slave.
	Bond MAC
}

// Pick chooses the slave for a frame the host sent, as
// bond_xmit_tlb_slave_get/bond_xmit_alb_slave_get followed by
// bond_do_alb_xmit. slave is -1 when no slave can transmit (drop the
// frame) and [ALBToControl] for an ARP frame of a balance-alb bond (give it
// to control). counter is where the lane counts the frame's bytes in its
// [ALBCounters]: the hash index, or [ALBUnbalanced] for frames sent on the
// active slave, or -1 for none (tlb_dynamic_lb=0). xmitHash is
// bond_xmit_hash of the bond's xmit_hash_policy. Pick does not allocate
// and never panics.
func (t *ALBTable) Pick(frame []byte, xmitHash func([]byte) uint32) (slave, counter int) {
	if t.RLB && isARPFrame(frame) {
		return ALBToControl, -1
	}
	slave, counter = -1, -1
	if h, useActive := TLBHashIndex(frame, t.Mode, t.Dynamic, xmitHash); !useActive {
		if t.Dynamic {
			slave, counter = int(t.Slot[uint8(h)]), int(uint8(h))
		} else if n := len(t.Usable); n > 0 {
			slave = t.Usable[uint64(h)%uint64(n)]
		}
	}
	if slave < 0 {
		slave = t.Active
		if t.Dynamic {
			counter = ALBUnbalanced
		}
	}
	return slave, counter
}

// SetSource writes the slave's own address as the source of a frame sent
// on a slave other than the active one (bond_do_alb_xmit: the bond's
// address is only ever seen on the active slave's port).
func (t *ALBTable) SetSource(frame []byte, slave int) {
	if slave != t.Active && uint(slave) < ALBMaxSlaves && len(frame) >= 12 {
		copy(frame[6:12], t.MAC[slave][:])
	}
}

// Deliver reports whether a frame received on slave goes to the host
// (bond_should_deliver_exact_match): the active slave delivers
// everything; the others are "inactive" unless all_slaves_active, and
// deliver nothing in balance-tlb and only unicast in balance-alb. In
// balance-alb a frame addressed to the receiving slave's own address gets
// the bond's address as destination, because the host device carries
// only the bond's address (the kernel does the same when the bond is a
// bridge port: pkt_type PACKET_HOST on the slave, destination rewritten
// in bond_handle_frame). A frame shorter than an Ethernet header is
// delivered by the active slave only and never rewritten. Deliver does
// not allocate and never panics.
func (t *ALBTable) Deliver(slave int, frame []byte) bool {
	if uint(slave) >= ALBMaxSlaves {
		return false
	}
	if len(frame) < ethHdrLen {
		return slave == t.Active
	}
	mc := frame[0]&1 != 0
	if slave != t.Active && !t.AllSlavesActive && (t.Mode != BalanceALB || mc) {
		return false
	}
	if t.Mode == BalanceALB && !mc {
		own := &t.MAC[slave]
		if *own != t.Bond && [6]byte(frame[0:6]) == *own {
			copy(frame[0:6], t.Bond[:])
		}
	}
	return true
}

// TeachDisabled gives a unicast frame received in balance-alb and
// addressed to the MAC of one of the first n slaves other than the bond's
// the bond's address as destination: the kernel taught the switch that a
// failed slave's address lives on the active one
// (rlb_teach_disabled_mac_on_primary), so the host must see it as its
// own. It does nothing without RLB, for multicast and for a frame shorter
// than an Ethernet header; it does not allocate and never panics.
func (t *ALBTable) TeachDisabled(frame []byte, n int) {
	if !t.RLB || len(frame) < ethHdrLen || frame[0]&1 != 0 {
		return
	}
	dst := MAC(frame[:6])
	if dst == t.Bond {
		return
	}
	n = min(n, len(t.MAC))
	for i := range n {
		if dst == t.MAC[i] {
			copy(frame[:6], t.Bond[:])
			return
		}
	}
}

func isARPFrame(frame []byte) bool {
	proto, _, _, ok := NetHeader(frame)
	return ok && proto == ethPARP
}

// ALBCounters are one lane's transmit byte counters for one bond: one per
// hash index plus [ALBUnbalanced]. Only the owning lane calls Add (a
// single writer: a load and a store, no read-modify-write instruction);
// control reads them with AddTo. Each lane has its own ALBCounters.
type ALBCounters struct {
	v [ALBTableSize + 1]atomic.Uint64
}

// Add counts bytes at counter (the second result of [ALBTable.Pick]);
// counters out of range are ignored.
func (c *ALBCounters) Add(counter int, bytes uint64) {
	if uint(counter) < uint(len(c.v)) {
		p := &c.v[counter]
		p.Store(p.Load() + bytes)
	}
}

// AddTo adds the counters' totals into l.
func (c *ALBCounters) AddTo(l *ALBLoads) {
	for i := range l.Index {
		l.Index[i] += c.v[i].Load()
	}
	l.Unbalanced += c.v[ALBUnbalanced].Load()
}

// ALBLoads are transmitted byte totals per hash index, summed over lanes.
type ALBLoads struct {
	Index      [ALBTableSize]uint64
	Unbalanced uint64
}

// NetHeader returns what the kernel would see as skb->protocol and the
// offset of the network header. An outermost VLAN tag is the kernel's
// out-of-band skb->vlan_tci (the bond device has VLAN offload; received
// tags are untagged before the rx_handler), so the protocol behind it
// counts and tci is its TCI; a second tag leaves skb->protocol a VLAN
// protocol. ok is false for a frame too short for its headers. It never
// panics and does not allocate.
func NetHeader(frame []byte) (proto uint16, off int, tci uint16, ok bool) {
	if len(frame) < ethHdrLen {
		return 0, 0, 0, false
	}
	proto = be16(frame, 12)
	off = ethHdrLen
	if isVLANProto(proto) {
		if len(frame) < ethHdrLen+vlanHdrLen {
			return 0, 0, 0, false
		}
		tci = be16(frame, 14)
		proto = be16(frame, 16)
		off += vlanHdrLen
	}
	return proto, off, tci, true
}

// simpleHash is _simple_hash: the XOR of the bytes.
func simpleHash(b []byte) uint8 {
	var h uint8
	for _, c := range b {
		h ^= c
	}
	return h
}

// isND is alb_determine_nd: true when the IPv6 packet at off is a
// neighbour solicitation or advertisement, or when the headers needed to
// tell are missing.
func isND(frame []byte, off int) bool {
	if len(frame) < off+ipv6HdrLen {
		return true
	}
	if frame[off+6] != ipprotoICMPv6 {
		return false
	}
	if len(frame) < off+ipv6HdrLen+icmpHdrLen {
		return true
	}
	t := frame[off+ipv6HdrLen]
	return t == ndNS || t == ndNA
}

const (
	ndNS = 135 // NDISC_NEIGHBOUR_SOLICITATION
	ndNA = 136 // NDISC_NEIGHBOUR_ADVERTISEMENT
)

// TLBHashIndex classifies a frame the host sends, as
// bond_xmit_tlb_slave_get (mode [BalanceTLB]) and bond_xmit_alb_slave_get
// (mode [BalanceALB]) do. useActive means the frame is not balanced and
// goes on the current active slave (bond_do_alb_xmit with tx_slave NULL).
// Otherwise hash is:
//
//   - balance-tlb: bond_xmit_hash (xmitHash) for unicast IPv4 and for
//     unicast IPv6 that is not neighbour discovery; multicast and
//     broadcast destinations and every other protocol use the active
//     slave. With dynamic (tlb_dynamic_lb=1) the table index is
//     uint8(hash) (hash_index & 0xFF).
//   - balance-alb, dynamic: _simple_hash of the IPv4 or IPv6 destination
//     address (0..255). Not balanced: broadcast destination MAC, IPv4
//     limited broadcast or IGMP, IPv6 all-nodes MAC, neighbour discovery,
//     unspecified IPv6 source (DAD), ARP (rlb handles it) and everything
//     else. IPv4 multicast to a group MAC is balanced, as in the kernel.
//   - balance-alb, not dynamic: bond_xmit_hash for the same frames.
//
// Without dynamic the slave is usable[hash % count]. xmitHash is called
// at most once and only for balanced frames; it must not retain the
// frame. TLBHashIndex never allocates and never panics.
func TLBHashIndex(frame []byte, mode Mode, dynamic bool, xmitHash func([]byte) uint32) (hash uint32, useActive bool) {
	proto, off, _, ok := NetHeader(frame)
	if !ok {
		return 0, true
	}
	if mode != BalanceALB {
		// bond_xmit_tlb_slave_get
		if frame[0]&1 != 0 {
			return 0, true
		}
		switch proto {
		case ethPIPv6:
			if isND(frame, off) {
				return 0, true
			}
		case ethPIPv4:
		default:
			return 0, true
		}
		return xmitHash(frame), false
	}
	// bond_xmit_alb_slave_get
	dst := MAC(frame[:6])
	var h uint8
	switch proto {
	case ethPIPv4:
		if dst.IsBroadcast() || len(frame) < off+ipv4MinLen {
			return 0, true
		}
		daddr := frame[off+16 : off+20]
		if (daddr[0]&daddr[1]&daddr[2]&daddr[3]) == 0xff || frame[off+9] == ipprotoIGMP {
			return 0, true
		}
		h = simpleHash(daddr)
	case ethPIPv6:
		if dst.IsBroadcast() || dst == v6AllNodes || isND(frame, off) {
			return 0, true
		}
		if isZero(frame[off+8 : off+24]) { // DAD probe: unspecified source
			return 0, true
		}
		h = simpleHash(frame[off+24 : off+40])
	default:
		return 0, true
	}
	if dynamic {
		return uint32(h), false
	}
	return xmitHash(frame), false
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
