package alb

import (
	"math"
	"testing"
	"time"
)

// lane simulates the lanes: per tick it sends load[i] bytes for every
// hash index i through the published table, counting as a lane does.
type lane struct {
	c   Counters
	tot Loads
	// sent per slave during the last run
	sent []uint64
}

func (l *lane) run(b *Bond, from, to time.Duration, load func(idx int) uint64) {
	l.sent = make([]uint64, len(b.sh.s))
	for now := from; now <= to; now += TickInterval {
		tab := b.Table()
		for i := range TableSize {
			n := load(i)
			if n == 0 {
				continue
			}
			s := int(tab.Slot[i])
			c := i
			if s < 0 {
				s, c = tab.Active, Unbalanced
			}
			l.c.Add(c, n)
			if s >= 0 {
				l.sent[s] += n
			}
		}
		l.tot = Loads{}
		l.c.AddTo(&l.tot)
		b.Tick(now, &l.tot)
	}
}

// capacity is a slave's speed in bytes/s as compute_gap counts it.
func capacity(mbps int) uint64 { return uint64(mbps) << 17 }

func indexesBySlave(tab *Table, n int) []int {
	out := make([]int, n)
	for _, s := range tab.Slot {
		if s >= 0 {
			out[s]++
		}
	}
	return out
}

func TestTLBSpreadsInProportionToSpeed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		speeds []int
	}{
		{"1G+1G", []int{1000, 1000}},
		{"1G+10G", []int{1000, 10000}},
		{"10G+1G", []int{10000, 1000}},
		{"1G+2G+10G", []int{1000, 2000, 10000}},
		{"25G+10G", []int{25000, 10000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBond(t, ModeTLB, tc.speeds...)
			var total uint64
			for _, s := range tc.speeds {
				total += capacity(s)
			}
			// the bond is loaded to its capacity, spread evenly over
			// every destination index
			perTick := total / ticksPerSec / TableSize
			var l lane
			l.run(b, 0, 10*time.Second, func(int) uint64 { return perTick })
			if got := b.Status().Rebalances; got != 1 {
				t.Fatalf("rebalances after 10 s = %d, want 1", got)
			}
			got := indexesBySlave(b.Table(), len(tc.speeds))
			for i, s := range tc.speeds {
				want := float64(TableSize) * float64(capacity(s)) / float64(total)
				if math.Abs(float64(got[i])-want) > 1.5 {
					t.Errorf("slave %d (%d Mb/s): %d indexes, want %.1f (all: %v)", i, s, got[i], want, got)
				}
			}
			// the next interval sends in the same proportions
			l.run(b, 10*time.Second+TickInterval, 19*time.Second, func(int) uint64 { return perTick })
			var sum uint64
			for _, n := range l.sent {
				sum += n
			}
			for i, s := range tc.speeds {
				share, want := float64(l.sent[i])/float64(sum), float64(capacity(s))/float64(total)
				if math.Abs(share-want) > 1.5/TableSize {
					t.Errorf("slave %d sent %.3f of the bytes, want %.3f", i, share, want)
				}
			}
		})
	}
}

func TestTLBNewFlowsGoToLargestGap(t *testing.T) {
	// Before any load is known every destination is new, and the kernel
	// gives each to the slave with the largest gap: the fastest.
	b := newBond(t, ModeTLB, 1000, 10000)
	if got := indexesBySlave(b.Table(), 2); got[1] != TableSize {
		t.Fatalf("indexes per slave %v, want all on the 10G slave", got)
	}
	// Below capacity the gaps are equalised, not the ratios: a 1.5 Gb/s
	// load stays on the 10G slave.
	var l lane
	perTick := capacity(1500) / ticksPerSec / TableSize
	l.run(b, 0, 10*time.Second, func(int) uint64 { return perTick })
	if got := indexesBySlave(b.Table(), 2); got[0] != 0 {
		t.Fatalf("indexes per slave %v, want none on the 1G slave at 1.5 Gb/s", got)
	}
}

func TestTLBRebalanceAfterLoadShift(t *testing.T) {
	b := newBond(t, ModeTLB, 1000, 1000)
	const heavy = 1_000_000
	var l lane
	// interval 1: 16 busy destinations
	l.run(b, 0, 10*time.Second, func(i int) uint64 {
		if i < 16 {
			return heavy
		}
		return 0
	})
	tab := b.Table()
	var on0 []int
	perSlave := [2]int{}
	for i := range 16 {
		perSlave[tab.Slot[i]]++
		if tab.Slot[i] == 0 {
			on0 = append(on0, i)
		}
	}
	if perSlave != [2]int{8, 8} {
		t.Fatalf("busy indexes per slave after the first rebalance: %v, want [8 8]", perSlave)
	}
	// interval 2: the flows on slave 0 stop, those on slave 1 double,
	// eight new ones start
	stopped := map[int]bool{}
	for _, i := range on0 {
		stopped[i] = true
	}
	load := func(i int) uint64 {
		switch {
		case i < 16 && stopped[i]:
			return 0
		case i < 16:
			return 2 * heavy
		case i >= 100 && i < 108:
			return heavy
		}
		return 0
	}
	l.run(b, 10*time.Second+TickInterval, 19900*time.Millisecond, load)
	if got := b.Status().Rebalances; got != 1 {
		t.Fatalf("rebalances at 19.9 s = %d, want 1", got)
	}
	// until the rebalance the old assignment holds: slave 1 carries more
	if l.sent[1] <= l.sent[0] {
		t.Fatalf("before the second rebalance sent %v, want slave 1 loaded", l.sent)
	}
	l.run(b, 20*time.Second, 20*time.Second, load)
	if got := b.Status().Rebalances; got != 2 {
		t.Fatalf("rebalances at 20 s = %d, want 2", got)
	}
	l.run(b, 20*time.Second+TickInterval, 29*time.Second, load)
	diff := math.Abs(float64(l.sent[0]) - float64(l.sent[1]))
	// 8 flows of 2 units and 8 of 1 unit split evenly, heaviest first
	if diff > heavy {
		t.Fatalf("after the second rebalance sent %v, want an even split", l.sent)
	}
	st := b.Status()
	if st.Slaves[0].Load == 0 || st.Slaves[1].Load == 0 {
		t.Fatalf("status loads %d/%d, want both loaded", st.Slaves[0].Load, st.Slaves[1].Load)
	}
}

func TestTLBSlaveFailureMovesIndexes(t *testing.T) {
	b := newBond(t, ModeTLB, 1000, 1000, 1000)
	var l lane
	l.run(b, 0, 10*time.Second, func(i int) uint64 { return uint64(1000 + i) })
	before := indexesBySlave(b.Table(), 3)
	if before[0] == 0 || before[1] == 0 || before[2] == 0 {
		t.Fatalf("indexes per slave %v, want all slaves used", before)
	}
	old := b.Table()
	b.SlaveDown(1, 10*time.Second+ms(50))
	tab := b.Table()
	if tab == old {
		t.Fatal("the table pointer did not change")
	}
	got := indexesBySlave(tab, 3)
	if got[1] != 0 || got[0]+got[2] != TableSize {
		t.Fatalf("after slave 1 failed: %v, want none on slave 1", got)
	}
	if d := got[0] - got[2]; d < -2 || d > 2 {
		t.Fatalf("after slave 1 failed: %v, want its indexes split", got)
	}
	if len(tab.Usable) != 2 || tab.Usable[0] != 0 || tab.Usable[1] != 2 {
		t.Fatalf("usable %v, want [0 2]", tab.Usable)
	}
	// back up: the kernel rebalances at the next tick
	b.SlaveUp(1, 10*time.Second+ms(60))
	l.run(b, 10*time.Second+TickInterval, 10*time.Second+TickInterval, func(i int) uint64 { return uint64(1000 + i) })
	if got := b.Status().Rebalances; got != 2 {
		t.Fatalf("rebalances after the slave came back = %d, want 2", got)
	}
	if got := indexesBySlave(b.Table(), 3); got[1] < 80 {
		t.Fatalf("after slave 1 came back: %v, want it to carry a third", got)
	}
	// every slave down: everything goes to the active slave (none)
	for i := range 3 {
		b.SlaveDown(i, 11*time.Second)
	}
	b.ActiveChange(0, -1)
	tab = b.Table()
	if got := indexesBySlave(tab, 3); got[0]+got[1]+got[2] != 0 || tab.Active != -1 {
		t.Fatalf("with no slave: %v active %d", got, tab.Active)
	}
	f := ipv4(mac(99), mac(1), "10.0.0.1", "10.0.0.2", 6, 20)
	if s, _ := tab.Pick(f, fnvHash); s != -1 {
		t.Fatalf("Pick with no slave = %d, want -1", s)
	}
}

func TestTLBNotDynamic(t *testing.T) {
	cfg := Config{Mode: ModeTLB, BondMAC: mac(1), Slaves: []Slave{
		{Speed: 1000, MAC: mac(1), Up: true}, {Speed: 1000, MAC: mac(2), Up: true}, {Speed: 1000, MAC: mac(3), Up: true},
	}}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.ActiveChange(-1, 0)
	count := make([]int, 3)
	for i := range 300 {
		f := ipv4(mac(99), mac(1), "10.0.0.1", "10.0.0.2", 6, 20)
		f[len(f)-1] = byte(i)
		f[len(f)-2] = byte(i >> 8)
		s, c := b.Table().Pick(f, fnvHash)
		if c != -1 {
			t.Fatalf("counter %d, want -1 without tlb_dynamic_lb", c)
		}
		if want := b.Table().Usable[fnvHash(f)%3]; s != want {
			t.Fatalf("slave %d, want usable[hash %% 3] = %d", s, want)
		}
		count[s]++
	}
	if count[0] == 0 || count[1] == 0 || count[2] == 0 {
		t.Fatalf("spread %v", count)
	}
	b.SlaveDown(1, 0)
	if u := b.Table().Usable; len(u) != 2 || u[1] != 2 {
		t.Fatalf("usable after slave 1 failed: %v", u)
	}
}
