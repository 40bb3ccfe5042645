// Package alb implements the balancing logic of Linux bonding's
// balance-tlb (mode 5) and balance-alb (mode 6) for the appliance:
// transmit load balancing (tlb_*), receive load balancing by ARP
// negotiation (rlb_*), the MAC address moves on failover
// (alb_swap_mac_addr, bond_alb_handle_active_change) and the periodic
// learning packets (bond_alb_monitor), after
// drivers/net/bonding/bond_alb.c and Documentation/networking/bonding.rst.
//
// The package is pure and deterministic: it opens no sockets, starts no
// goroutines and never reads the clock. The caller passes the time
// (a monotonic time.Duration) and sends the frames it returns.
//
// # Who calls what
//
// Control (the goroutine that owns the bond) owns a [Bond]. It calls
// [Bond.SlaveUp], [Bond.SlaveDown] and [Bond.ActiveChange] on link and
// active-slave changes, [Bond.HostTx] for every ARP frame the host sends
// (balance-alb), [Bond.PeerRx] for every ARP frame received on a slave
// (balance-alb), and [Bond.Tick] every [TickInterval] (the kernel's
// ALB_TIMER_TICKS_PER_SEC). It publishes [Bond.Table] in the lane
// snapshot whenever the pointer changes.
//
// A lane uses only the published, immutable [Table] ([Table.Pick],
// [Table.SetSource], [Table.Deliver]) and its own [Counters]; nothing on
// that path allocates, locks or panics.
//
// # Kernel timing
//
// The kernel runs bond_alb_monitor every 100 ms and counts everything in
// those ticks: the transmit rebalance every 10 s
// (BOND_TLB_REBALANCE_INTERVAL), learning packets every lp_interval
// seconds, client updates RLB_UPDATE_DELAY (2 s) apart, promiscuous mode
// for RLB_PROMISC_TIMEOUT (10 s). [Bond.Tick] runs every whole tick that
// has elapsed, so the results do not depend on how often it is called.
package alb
