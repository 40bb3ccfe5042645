package alb

import "slices"

// Kernel constants (include/net/bond_alb.h), in monitor ticks.
const (
	ticksPerSec = 10 // ALB_TIMER_TICKS_PER_SEC
	// rebalanceInterval is BOND_TLB_REBALANCE_INTERVAL in seconds; the
	// kernel divides the bytes of an interval by it to get a load.
	rebalanceInterval = 10
	rebalanceTicks    = rebalanceInterval * ticksPerSec // BOND_TLB_REBALANCE_TICKS
)

// tlbEntry is struct tlb_client_info. The kernel assigns an entry lazily,
// on the first frame after it was cleared; the lane cannot do that, so
// every entry always points somewhere and counted tells whether the
// kernel would have assigned it yet (tx_slave != NULL: its load_history
// is part of the slave's load).
type tlbEntry struct {
	slave       int8   // -1: none can transmit
	counted     bool   // assigned: loadHistory is in load[slave]
	txBytes     uint64 // bytes of the current interval (tx_bytes)
	loadHistory uint64 // bytes/s of the previous interval (load_history)
}

// TLB is the transmit load balancer shared by balance-tlb and
// balance-alb (tx_hashtbl and the slaves' tlb_slave_info). It belongs to
// a [Bond]; its state changes through the Bond's methods.
type TLB struct {
	sh         *shared
	dynamic    bool
	ent        [TableSize]tlbEntry
	load       []uint64 // SLAVE_TLB_INFO(slave).load, bytes/s
	unbalanced uint64   // unbalanced_load
	ticks      int      // tx_rebalance_counter
	prev       Loads
	primed     bool
	table      *Table
	rebalances uint64
}

func newTLB(sh *shared, dynamic bool) *TLB {
	t := &TLB{sh: sh, dynamic: dynamic, load: make([]uint64, len(sh.s))}
	for i := range t.ent {
		t.ent[i].slave = -1
	}
	t.retarget()
	return t
}

// gap is compute_gap: the slave's speed in bits/s (Mb/s << 20) minus its
// load in bits/s. The kernel shifts a u32 speed, which wraps for speeds
// of 4096 Mb/s and more; we compute in 64 bits.
func (t *TLB) gap(i int) int64 {
	return int64(t.sh.s[i].speed)<<20 - int64(t.load[i]<<3)
}

// leastLoaded is tlb_get_least_loaded_slave: the slave that can transmit
// with the largest gap, the first one on a tie; -1 when none.
func (t *TLB) leastLoaded() int {
	best := -1
	var max int64
	for i := range t.sh.s {
		if !t.sh.canTx(i) {
			continue
		}
		if g := t.gap(i); best < 0 || g > max {
			best, max = i, g
		}
	}
	return best
}

// assign is __tlb_choose_channel for an unassigned entry: the least
// loaded slave takes it and its load_history.
func (t *TLB) assign(idx int) {
	e := &t.ent[idx]
	s := t.leastLoaded()
	e.slave, e.counted = int8(s), s >= 0
	if s >= 0 {
		t.load[s] += e.loadHistory
	}
}

// retarget points every unassigned entry at the slave a new flow would be
// given now (tlb_get_least_loaded_slave), so that the lane sends its
// first frames where the kernel would.
func (t *TLB) retarget() {
	s := int8(t.leastLoaded())
	for i := range t.ent {
		if e := &t.ent[i]; !e.counted && e.slave != s {
			e.slave = s
			t.sh.dirty = true
		}
	}
}

// clear is tlb_clear_slave: the slave's entries become unassigned (with
// save_load, load_history becomes 1 + tx_bytes/10 and tx_bytes 0) and its
// load 0. It appends to busy the entries that carry traffic, which the
// kernel would assign again at their next frame: with save_load those
// that had bytes in the interval, without it all that were assigned.
func (t *TLB) clear(slave int, saveLoad bool, busy []int) []int {
	for i := range t.ent {
		e := &t.ent[i]
		if int(e.slave) != slave || !e.counted {
			continue
		}
		active := true
		if saveLoad {
			active = e.txBytes > 0
			e.loadHistory = 1 + e.txBytes/rebalanceInterval
			e.txBytes = 0
		}
		e.counted = false
		e.slave = -1
		if active {
			busy = append(busy, i)
		}
	}
	t.load[slave] = 0
	t.sh.dirty = true
	return busy
}

// reassign gives the busy entries a slave again, heaviest first (the
// kernel does it in the order frames arrive, which we cannot know), then
// retargets the idle ones.
func (t *TLB) reassign(busy []int) {
	slices.SortStableFunc(busy, func(a, b int) int {
		la, lb := t.ent[a].loadHistory, t.ent[b].loadHistory
		switch {
		case la > lb:
			return -1
		case la < lb:
			return 1
		}
		return a - b
	})
	for _, i := range busy {
		t.assign(i)
	}
	t.retarget()
}

// account adds the bytes the lanes sent since the last call (totals are
// cumulative). An unassigned entry that carried traffic is now assigned
// to the slave it pointed at (__tlb_choose_channel at its first frame).
func (t *TLB) account(totals *Loads) {
	if !t.primed {
		t.prev, t.primed = *totals, true
		return
	}
	changed := false
	for i := range t.ent {
		d := totals.Index[i] - t.prev.Index[i]
		if totals.Index[i] < t.prev.Index[i] { // counters restarted
			d = totals.Index[i]
		}
		if d == 0 {
			continue
		}
		e := &t.ent[i]
		if !e.counted && e.slave >= 0 {
			e.counted = true
			t.load[e.slave] += e.loadHistory
			changed = true
		}
		if e.counted {
			e.txBytes += d
		}
	}
	d := totals.Unbalanced - t.prev.Unbalanced
	if totals.Unbalanced < t.prev.Unbalanced {
		d = totals.Unbalanced
	}
	t.unbalanced += d
	t.prev = *totals
	if changed {
		t.retarget()
	}
}

// rebalance is the transmit part of bond_alb_monitor at
// BOND_TLB_REBALANCE_TICKS: every slave is cleared with save_load, the
// active slave's load becomes the unbalanced load per second, and the
// entries are assigned again.
func (t *TLB) rebalance() {
	var busy []int
	for i := range t.sh.s {
		busy = t.clear(i, true, busy)
		if i == t.sh.active {
			t.load[i] = t.unbalanced / rebalanceInterval
		}
	}
	t.unbalanced = 0
	t.reassign(busy)
	t.rebalances++
}

// slaveDown is bond_alb_handle_link_change(BOND_LINK_DOWN) for tlb:
// tlb_clear_slave without saving the load; the entries move to the least
// loaded slaves.
func (t *TLB) slaveDown(i int) {
	t.reassign(t.clear(i, false, nil))
}

// slaveUp is bond_alb_handle_link_change(BOND_LINK_UP) for tlb: a
// rebalance at the next monitor tick. New flows may use the slave at
// once.
func (t *TLB) slaveUp() {
	t.ticks = rebalanceTicks
	t.retarget()
	t.sh.dirty = true
}

// activeChange is the tlb part of bond_alb_handle_active_change: the old
// and the new active slave are cleared with save_load.
func (t *TLB) activeChange(swap, new int) {
	var busy []int
	if swap >= 0 && swap != new {
		busy = t.clear(swap, true, busy)
	}
	busy = t.clear(new, true, busy)
	t.reassign(busy)
}

// tick is the tlb part of one bond_alb_monitor run.
func (t *TLB) tick() {
	t.ticks++
	if t.ticks >= rebalanceTicks {
		if t.dynamic {
			t.rebalance()
		}
		t.ticks = 0
	}
}

// Table returns the data-path table; the pointer changes only when the
// state does. The result must not be modified.
func (t *TLB) Table() *Table {
	if t.table != nil && !t.sh.dirty {
		return t.table
	}
	sh := t.sh
	n := &Table{
		Mode: sh.mode, Dynamic: t.dynamic, RLB: sh.mode == ModeALB,
		AllSlavesActive: sh.allActive, Active: sh.active, Bond: sh.bond,
	}
	for i := range t.ent {
		n.Slot[i] = t.ent[i].slave
	}
	for i := range sh.s {
		n.MAC[i] = sh.s[i].cur
		if sh.canTx(i) {
			n.Usable = append(n.Usable, i)
		}
	}
	t.table, sh.dirty = n, false
	return n
}

// Load returns slave i's current load in bytes/s as the kernel computes
// it (the load histories of the hash indexes assigned to it), and how
// many indexes are assigned to it.
func (t *TLB) Load(i int) (bytesPerSec uint64, indexes int) {
	if i < 0 || i >= len(t.load) {
		return 0, 0
	}
	for k := range t.ent {
		if t.ent[k].counted && int(t.ent[k].slave) == i {
			indexes++
		}
	}
	return t.load[i], indexes
}
