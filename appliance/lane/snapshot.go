// Package lane is the data path: one busy-polling loop per core that owns one
// UMEM shared by all its AF_XDP sockets (queue q of every member and of the
// host device) and moves frames between them by moving descriptors.
//
// Control publishes each bond's forwarding decision as an immutable Snapshot
// through an atomic pointer; the lane loads it once per batch. Frames for
// control travel by class over SPSC rings, one pair per class: slow
// protocols (LACP, never delivered to the host) and neighbour traffic
// (ARP/ND copies, balance-alb host ARP), so that neither class can starve
// the other. Each mode's transmit choice is one pick function ([Snapshot]
// Mode indexes a table of them).
//
// The package imports only policy, rings and umem (plus the standard
// library and x/sys).
// Nothing on the per-frame path allocates, locks or makes a system call:
// system calls (TX kicks, fill wakeups) happen once per batch and only when
// the kernel asks for them (need_wakeup).
package lane

import "github.com/bond-appliance/bond-appliance/policy"

// MaxMembers is the most members one bond can have in a lane.
const MaxMembers = 64

// Snapshot is one bond's forwarding state, built by control and never
// modified after it is published.
type Snapshot struct {
	Mode policy.Mode
	Hash policy.HashPolicy
	// TX lists the member indices that may transmit, in slave order. For
	// active-backup (and tlb/alb's receive slave) it holds the active member
	// only; for 802.3ad the distributing ports of the active aggregator.
	TX []int
	// Active is the active member (active-backup, and the slave IGMP goes out
	// on in balance-rr), -1 when none.
	Active int
	// RX has bit i set when frames received on member i go to the host.
	RX uint64
	// PacketsPerSlave is balance-rr's packets_per_slave (0 = random).
	PacketsPerSlave uint32
	// CopyARP: the ARP/NS monitor runs, so ARP and IPv6 neighbour
	// discovery frames received on members are also copied to control
	// (whether or not they are delivered to the host).
	CopyARP bool
	// BroadcastNeighbor is 802.3ad's broadcast_neighbor: ARP and IPv6
	// neighbour solicitation/advertisement frames the host sends are
	// copied to every member in TX instead of hashed to one.
	BroadcastNeighbor bool
	// ALB is the transmit table of a balance-tlb or balance-alb bond
	// (built by appliance/alb, whose Table aliases policy.ALBTable).
	ALB *policy.ALBTable
	// XmitHash is bond_xmit_hash for the bond's policy, built once per
	// snapshot (no per-frame closure).
	XmitHash func([]byte) uint32
}

// CanRX reports whether frames received on member m are delivered.
func (s *Snapshot) CanRX(m int) bool { return m >= 0 && m < 64 && s.RX&(1<<uint(m)) != 0 }
