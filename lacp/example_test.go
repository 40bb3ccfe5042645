package lacp_test

import (
	"fmt"
	"time"

	"github.com/bond-appliance/bond-appliance/lacp"
)

// Two bonds cabled back to back over two links: after the aggregate wait
// both links distribute.
func Example() {
	type frame struct {
		to   *lacp.System
		port int
		data []byte
	}
	var queue []frame
	var a, b *lacp.System
	link := func(peer **lacp.System) lacp.TxFunc {
		return func(port int, f []byte) {
			queue = append(queue, frame{*peer, port, append([]byte(nil), f...)})
		}
	}
	a, _ = lacp.New(lacp.DefaultConfig([6]byte{0x02, 0, 0, 0, 0, 1}), link(&b))
	b, _ = lacp.New(lacp.DefaultConfig([6]byte{0x02, 0, 0, 0, 0, 2}), link(&a))
	for _, s := range []*lacp.System{a, b} {
		for p := range 2 {
			s.AddPort(p, lacp.PortConfig{Number: uint16(p + 1)})
			s.SetLink(p, true, 10000, true)
		}
	}
	var published uint64
	for now := time.Duration(0); now <= 3*time.Second; now += lacp.TickInterval {
		a.Tick(now)
		b.Tick(now)
		for len(queue) > 0 {
			f := queue[0]
			queue = queue[1:]
			f.to.Receive(f.port, f.data, now)
		}
		if v := a.Version(); v != published {
			published = v
			ports, up := a.Distributing()
			fmt.Printf("%v: aggregator %d, distributing %v, up %v\n", now, a.ActiveAggregator(), ports, up)
		}
	}
	// Output:
	// 0s: aggregator 1, distributing [], up false
	// 2s: aggregator 1, distributing [0 1], up true
}
