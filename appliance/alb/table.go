package alb

import "sync/atomic"

// Mode is the bonding mode number.
type Mode uint8

const (
	ModeTLB Mode = 5 // balance-tlb
	ModeALB Mode = 6 // balance-alb
)

func (m Mode) String() string {
	switch m {
	case ModeTLB:
		return "balance-tlb"
	case ModeALB:
		return "balance-alb"
	}
	return "invalid"
}

const (
	// TableSize is the number of transmit hash indexes
	// (TLB_HASH_TABLE_SIZE) and of receive client slots
	// (RLB_HASH_TABLE_SIZE).
	TableSize = 256
	// MaxSlaves is the most slaves a bond can have (lane.MaxMembers).
	MaxSlaves = 64
	// Unbalanced is the counter index of bytes sent unbalanced on the
	// active slave (the kernel's unbalanced_load).
	Unbalanced = TableSize
	// ToControl is the slave [Table.Pick] returns for a frame the lane
	// must hand to control instead of sending it: an ARP frame in
	// balance-alb, which rlb_arp_xmit may rewrite ([Bond.HostTx]).
	ToControl = -2
)

// Table is the immutable transmit and receive state a lane needs for a
// tlb/alb bond. Control builds a new Table whenever something changes
// ([Bond.Table]) and publishes it in the lane snapshot; nobody modifies a
// published Table.
type Table struct {
	Mode Mode
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
	Slot [TableSize]int8
	// Usable lists the slaves that can transmit, in slave order
	// (bond->usable_slaves).
	Usable []int
	// MAC is the address each slave currently has (its dev_addr): the
	// source of frames sent on a slave other than Active, and in
	// balance-alb the address it receives on.
	MAC [MaxSlaves]MAC
	// Bond is the bond's address, carried by the host device and by the
	// active slave.
	Bond MAC
}

// Pick chooses the slave for a frame the host sent, as
// bond_xmit_tlb_slave_get/bond_xmit_alb_slave_get followed by
// bond_do_alb_xmit. slave is -1 when no slave can transmit (drop the
// frame) and [ToControl] for an ARP frame of a balance-alb bond (give it
// to control, which calls [Bond.HostTx]). counter is where the lane
// counts the frame's bytes in its [Counters]: the hash index, or
// [Unbalanced] for frames sent on the active slave, or -1 for none
// (tlb_dynamic_lb=0). xmitHash is bond_xmit_hash of the bond's
// xmit_hash_policy. Pick does not allocate and never panics.
func (t *Table) Pick(frame []byte, xmitHash func([]byte) uint32) (slave, counter int) {
	if t.RLB && isARPFrame(frame) {
		return ToControl, -1
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
			counter = Unbalanced
		}
	}
	return slave, counter
}

// SetSource writes the slave's own address as the source of a frame sent
// on a slave other than the active one (bond_do_alb_xmit: the bond's
// address is only ever seen on the active slave's port).
func (t *Table) SetSource(frame []byte, slave int) {
	if slave != t.Active && uint(slave) < MaxSlaves && len(frame) >= 12 {
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
// in bond_handle_frame). Deliver does not allocate and never panics.
func (t *Table) Deliver(slave int, frame []byte) bool {
	if uint(slave) >= MaxSlaves {
		return false
	}
	if len(frame) < ethHdrLen {
		return slave == t.Active
	}
	mc := frame[0]&1 != 0
	if slave != t.Active && !t.AllSlavesActive && (t.Mode != ModeALB || mc) {
		return false
	}
	if t.Mode == ModeALB && !mc {
		own := &t.MAC[slave]
		if *own != t.Bond && [6]byte(frame[0:6]) == *own {
			copy(frame[0:6], t.Bond[:])
		}
	}
	return true
}

func isARPFrame(frame []byte) bool {
	proto, _, _, ok := netHeader(frame)
	return ok && proto == ethPARP
}

// Counters are one lane's transmit byte counters for one bond: one per
// hash index plus [Unbalanced]. Only the owning lane calls Add (a single
// writer: a load and a store, no read-modify-write instruction); control
// reads them with AddTo. Each lane has its own Counters.
type Counters struct {
	v [TableSize + 1]atomic.Uint64
}

// Add counts bytes at counter (the second result of [Table.Pick]);
// counters out of range are ignored.
func (c *Counters) Add(counter int, bytes uint64) {
	if uint(counter) < uint(len(c.v)) {
		p := &c.v[counter]
		p.Store(p.Load() + bytes)
	}
}

// AddTo adds the counters' totals into l.
func (c *Counters) AddTo(l *Loads) {
	for i := range l.Index {
		l.Index[i] += c.v[i].Load()
	}
	l.Unbalanced += c.v[Unbalanced].Load()
}

// Loads are transmitted byte totals per hash index, summed over lanes.
type Loads struct {
	Index      [TableSize]uint64
	Unbalanced uint64
}
