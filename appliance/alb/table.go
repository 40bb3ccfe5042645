package alb

import "github.com/bond-appliance/bond-appliance/policy"

// The per-frame half of tlb/alb (the table a lane reads, its byte
// counters, the frame classification) lives in package policy, so that
// the data path does not import this package; these names keep the
// control half and its users unchanged.

// Mode is the bonding mode ([ModeTLB] or [ModeALB]).
type Mode = policy.Mode

const (
	ModeTLB = policy.BalanceTLB // balance-tlb
	ModeALB = policy.BalanceALB // balance-alb
)

// MAC is an Ethernet address.
type MAC = policy.MAC

const (
	// TableSize is the number of transmit hash indexes
	// (TLB_HASH_TABLE_SIZE) and of receive client slots
	// (RLB_HASH_TABLE_SIZE).
	TableSize = policy.ALBTableSize
	// MaxSlaves is the most slaves a bond can have (lane.MaxMembers).
	MaxSlaves = policy.ALBMaxSlaves
	// Unbalanced is the counter index of bytes sent unbalanced on the
	// active slave (the kernel's unbalanced_load).
	Unbalanced = policy.ALBUnbalanced
	// ToControl is the slave [Table.Pick] returns for a frame the lane
	// must hand to control instead of sending it: an ARP frame in
	// balance-alb, which rlb_arp_xmit may rewrite ([Bond.HostTx]).
	ToControl = policy.ALBToControl
)

// Table is the immutable transmit and receive state a lane needs for a
// tlb/alb bond ([policy.ALBTable]). Control builds a new Table whenever
// something changes ([Bond.Table]) and publishes it in the lane snapshot;
// nobody modifies a published Table.
type Table = policy.ALBTable

// Counters are one lane's transmit byte counters for one bond
// ([policy.ALBCounters]).
type Counters = policy.ALBCounters

// Loads are transmitted byte totals per hash index, summed over lanes.
type Loads = policy.ALBLoads

// TLBHashIndex classifies a frame the host sends ([policy.TLBHashIndex]).
func TLBHashIndex(frame []byte, mode Mode, dynamic bool, xmitHash func([]byte) uint32) (hash uint32, useActive bool) {
	return policy.TLBHashIndex(frame, mode, dynamic, xmitHash)
}
