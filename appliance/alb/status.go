package alb

import (
	"fmt"
	"io"
)

// Status describes a bond's tlb/alb state for `status` (text and JSON).
type Status struct {
	Mode      string `json:"mode"`
	DynamicLB bool   `json:"tlb_dynamic_lb"`
	Active    int    `json:"active_slave"` // -1 none
	BondMAC   string `json:"bond_mac"`
	// Rebalances counts transmit rebalances (every 10 s).
	Rebalances uint64 `json:"tlb_rebalances"`
	// UnbalancedLoad is the active slave's unbalanced bytes of the
	// current interval.
	UnbalancedBytes uint64        `json:"unbalanced_bytes"`
	LearningSent    uint64        `json:"learning_packets_sent"`
	UpdatesSent     uint64        `json:"rlb_update_arps_sent,omitempty"`
	UpdateRuns      uint64        `json:"rlb_update_runs,omitempty"`
	UpdatePending   bool          `json:"rlb_update_pending,omitempty"` // rx_ntt
	Promisc         int           `json:"promisc_slave"`                // -1 none
	Slaves          []SlaveStatus `json:"slaves"`
	Clients         []Client      `json:"rlb_clients,omitempty"`
}

// SlaveStatus is one slave's part of [Status].
type SlaveStatus struct {
	Index int    `json:"index"`
	State string `json:"state"` // up, going back (updelay), down
	Speed int    `json:"speed_mbps"`
	MAC   string `json:"mac"`      // current address (dev_addr)
	Perm  string `json:"perm_mac"` // permanent address
	// Load is the kernel's transmit load in bytes/s (the load history of
	// the hash indexes assigned to the slave); Indexes counts them.
	Load    uint64 `json:"tlb_load_bytes_per_sec"`
	Indexes int    `json:"tlb_hash_indexes"`
	Clients int    `json:"rlb_clients"`
}

// Status returns the bond's state.
func (b *Bond) Status() Status {
	sh := &b.sh
	st := Status{
		Mode: sh.mode.String(), DynamicLB: b.tlb.dynamic, Active: sh.active, BondMAC: sh.bond.String(),
		Rebalances: b.tlb.rebalances, UnbalancedBytes: b.tlb.unbalanced, LearningSent: sh.learningSent, Promisc: -1,
	}
	if b.rlb != nil {
		st.UpdatesSent, st.UpdateRuns, st.UpdatePending = b.rlb.updatesSent, b.rlb.updateRuns, b.rlb.rxNTT
		st.Promisc = b.rlb.promisc
		st.Clients = b.rlb.Clients()
	}
	for i := range sh.s {
		s := &sh.s[i]
		ss := SlaveStatus{Index: i, State: s.link.String(), Speed: s.speed, MAC: s.cur.String(), Perm: s.perm.String()}
		ss.Load, ss.Indexes = b.tlb.Load(i)
		for _, c := range st.Clients {
			if c.Slave == i {
				ss.Clients++
			}
		}
		st.Slaves = append(st.Slaves, ss)
	}
	return st
}

// WriteText writes the status as text; names are the slaves' names
// (missing ones are shown as their index). The client list follows the
// kernel's debugfs rlb_hash_table.
func (st *Status) WriteText(w io.Writer, names []string) error {
	name := func(i int) string {
		if i < 0 {
			return "none"
		}
		if i < len(names) {
			return names[i]
		}
		return fmt.Sprint(i)
	}
	ew := &errWriter{w: w}
	ew.printf("ALB mode: %s, tlb_dynamic_lb %d, active slave %s, bond MAC %s\n",
		st.Mode, b2i(st.DynamicLB), name(st.Active), st.BondMAC)
	ew.printf("TLB rebalances: %d, learning packets sent: %d\n", st.Rebalances, st.LearningSent)
	if st.Mode == ModeALB.String() {
		ew.printf("RLB update ARPs sent: %d (%d runs), update pending: %t, promiscuous slave: %s\n",
			st.UpdatesSent, st.UpdateRuns, st.UpdatePending, name(st.Promisc))
	}
	for _, s := range st.Slaves {
		ew.printf("Slave %s: %s, %d Mb/s, MAC %s (permanent %s), TLB load %d B/s over %d indexes",
			name(s.Index), s.State, s.Speed, s.MAC, s.Perm, s.Load, s.Indexes)
		if st.Mode == ModeALB.String() {
			ew.printf(", %d RLB clients", s.Clients)
		}
		ew.printf("\n")
	}
	if len(st.Clients) > 0 {
		ew.printf("%-15s %-15s %-17s %s\n", "SourceIP", "DestinationIP", "Destination MAC", "DEV")
		for _, c := range st.Clients {
			mac := c.MAC
			if mac == "" {
				mac = "00:00:00:00:00:00"
			}
			ew.printf("%-15s %-15s %-17s %s\n", c.ServerIP, c.IP, mac, name(c.Slave))
		}
	}
	return ew.err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
