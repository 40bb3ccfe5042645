package alb

import (
	"net/netip"
	"slices"
)

// Kernel constants (include/net/bond_alb.h), in monitor ticks.
const (
	rlbUpdateDelay    = 2 * ticksPerSec  // RLB_UPDATE_DELAY
	rlbARPBurst       = 2                // RLB_ARP_BURST_SIZE
	rlbUpdateRetry    = 3                // RLB_UPDATE_RETRY
	rlbPromiscTimeout = 10 * ticksPerSec // RLB_PROMISC_TIMEOUT
)

// client is struct rlb_client_info: one slot of the receive hash table,
// indexed by _simple_hash(ip_dst). A new client whose address hashes to
// an occupied slot replaces the old one.
type client struct {
	ipSrc    [4]byte // the host's (server's) address
	ipDst    [4]byte // the client's address
	macSrc   MAC     // the host's address in the ARP
	macDst   MAC     // the client's address
	assigned bool
	ntt      bool // the client needs an update
	slave    int  // -1 none
	vlan     uint16
}

// RLB is balance-alb's receive load balancing (the rx_hashtbl and the
// rlb_* state of alb_bond_info). It belongs to a [Bond]; its state
// changes through the Bond's methods.
type RLB struct {
	sh  *shared
	tbl [TableSize]client
	// used lists the assigned slots, most recent first
	// (rx_hashtbl_used_head and the used_next links).
	used         []uint8
	rxNTT        bool
	rxSlave      int // rx_slave: the last slave given a client
	promisc      int // the slave put in promiscuous mode, -1 none (primary_is_promisc)
	promiscTicks int
	updateDelay  int // rlb_update_delay_counter
	updateRetry  int // rlb_update_retry_counter
	rebalanceReq bool

	updatesSent uint64 // client update frames (rlb_update_client)
	updateRuns  uint64 // rlb_update_rx_clients runs
}

func newRLB(sh *shared) *RLB {
	r := &RLB{sh: sh, rxSlave: -1, promisc: -1}
	for i := range r.tbl {
		r.tbl[i].slave = -1
	}
	return r
}

// nextRxSlave is __rlb_next_rx_slave: round robin over the fastest slaves
// that can transmit. Among the slaves after rx_slave it takes the
// fastest; it wraps to the fastest up to rx_slave when nothing follows
// or something before is faster.
func (r *RLB) nextRxSlave() int {
	sh := r.sh
	before, rx := -1, -1
	found := false
	for i := range sh.s {
		if !sh.canTx(i) {
			continue
		}
		if !found {
			if before < 0 || sh.s[before].speed < sh.s[i].speed {
				before = i
			}
		} else if rx < 0 || sh.s[rx].speed < sh.s[i].speed {
			rx = i
		}
		if i == r.rxSlave {
			found = true
		}
	}
	if rx < 0 || (before >= 0 && sh.s[rx].speed < sh.s[before].speed) {
		rx = before
	}
	if rx >= 0 {
		r.rxSlave = rx
	}
	return rx
}

func (r *RLB) link(idx uint8) {
	r.used = slices.Insert(r.used, 0, idx)
	r.tbl[idx].assigned = true
}

// remove is rlb_delete_table_entry.
func (r *RLB) remove(idx uint8) {
	if k := slices.Index(r.used, idx); k >= 0 {
		r.used = slices.Delete(r.used, k, k+1)
	}
	c := &r.tbl[idx]
	c.assigned, c.slave, c.vlan = false, -1, 0
}

// updateClient is rlb_update_client: RLB_ARP_BURST_SIZE ARP replies that
// tell the client the address of its slave.
func (r *RLB) updateClient(c *client) {
	if c.slave < 0 || !c.macDst.Valid() {
		return
	}
	for range rlbARPBurst {
		r.sh.send(c.slave, arpReply(c, r.sh.s[c.slave].cur))
		r.updatesSent++
	}
}

// updateRxClients is rlb_update_rx_clients.
func (r *RLB) updateRxClients() {
	for _, idx := range r.used {
		c := &r.tbl[idx]
		if c.ntt {
			r.updateClient(c)
			if r.updateRetry == 0 {
				c.ntt = false
			}
		}
	}
	r.updateDelay = rlbUpdateDelay
	r.updateRuns++
}

// reqUpdateSlaveClients is rlb_req_update_slave_clients: the slave's
// address changed, its clients must learn it.
func (r *RLB) reqUpdateSlaveClients(slave int) {
	ntt := false
	for _, idx := range r.used {
		if c := &r.tbl[idx]; c.slave == slave && c.macDst.Valid() {
			c.ntt, ntt = true, true
		}
	}
	if ntt {
		r.rxNTT = true
		r.updateRetry = rlbUpdateRetry
	}
}

// reqUpdateSubnetClients is rlb_req_update_subnet_clients: the host
// broadcast an ARP request from src, which taught every peer the bond's
// address; the clients of src that are not on the bond's address get
// their own again.
func (r *RLB) reqUpdateSubnetClients(src [4]byte) {
	for _, idx := range r.used {
		c := &r.tbl[idx]
		if c.slave < 0 {
			continue
		}
		if c.ipSrc == src && r.sh.s[c.slave].cur != r.sh.bond && c.macDst.Valid() {
			c.ntt = true
			r.rxNTT = true
		}
	}
}

// chooseChannel is rlb_choose_channel: find or make the client's slot and
// return its slave.
func (r *RLB) chooseChannel(a *arpPkt, tci uint16) int {
	idx := simpleHash(a.tpa[:])
	c := &r.tbl[idx]
	if c.assigned {
		if c.ipSrc == a.spa && c.ipDst == a.tpa {
			// the slot is already this client's
			if !a.tha.IsBroadcast() {
				c.macDst = a.tha
			}
			c.macSrc = a.sha
			if c.slave >= 0 {
				return c.slave
			}
		} else if act := r.sh.active; act >= 0 && c.slave != act {
			// another client holds the slot: move the old one to the
			// active slave (the bond's address) before replacing it
			c.slave = act
			r.updateClient(c)
		}
	}
	s := r.nextRxSlave()
	if s < 0 {
		return -1
	}
	c.ipSrc, c.ipDst = a.spa, a.tpa
	// arp->mac_dst is zero or broadcast in requests; the reply fills it in
	c.macDst, c.macSrc = a.tha, a.sha
	c.slave = s
	c.ntt = c.macDst.Valid()
	if c.ntt {
		r.rxNTT = true
	}
	c.vlan = tci
	if !c.assigned {
		r.link(idx)
	}
	return s
}

// arpXmit is rlb_arp_xmit: choose the slave for an ARP frame the host
// sends, rewriting the sender address of replies to the slave's. It
// returns -1 to leave the frame to the active slave.
func (r *RLB) arpXmit(frame []byte) int {
	a, off, tci, ok := parseARP(frame)
	if !ok || r.sh.slaveWithMAC(a.sha) < 0 {
		// only ARPs from the bond itself (or a VLAN on it) are balanced
		return -1
	}
	switch a.op {
	case arpOpReply:
		s := r.chooseChannel(&a, tci)
		if s >= 0 {
			copy(frame[off+8:off+14], r.sh.s[s].cur[:])
		}
		return s
	case arpOpRequest:
		s := r.chooseChannel(&a, tci)
		// the updates must come after the request's effect
		r.updateDelay = rlbUpdateDelay
		r.reqUpdateSubnetClients(a.spa)
		return s
	}
	return -1
}

// purgeSrcIP is rlb_purge_src_ip: another host now uses the ARP's sender
// address; drop the slots that would send updates from it with the old
// MAC.
func (r *RLB) purgeSrcIP(a *arpPkt) {
	var drop []uint8
	for _, idx := range r.used {
		if c := &r.tbl[idx]; c.ipSrc == a.spa && c.macSrc != a.sha {
			drop = append(drop, idx)
		}
	}
	for _, idx := range drop {
		r.remove(idx)
	}
}

// updateEntryFromARP is rlb_update_entry_from_arp: a client answered;
// record its MAC and schedule its update.
func (r *RLB) updateEntryFromARP(a *arpPkt) bool {
	c := &r.tbl[simpleHash(a.spa[:])]
	if c.assigned && c.ipSrc == a.tpa && c.ipDst == a.spa && c.macDst != a.sha {
		c.macDst = a.sha
		c.ntt = true
		r.rxNTT = true
		return true
	}
	return false
}

// arpRecv is rlb_arp_recv.
func (r *RLB) arpRecv(frame []byte) bool {
	a, _, _, ok := parseARP(frame)
	if !ok {
		return false
	}
	r.purgeSrcIP(&a)
	if a.op == arpOpReply {
		return r.updateEntryFromARP(&a)
	}
	return false
}

// clearSlave is rlb_clear_slave: the slave's clients move to other
// slaves and are updated (with retries); a disabled slave's address is
// taught to the switch on the active slave.
func (r *RLB) clearSlave(slave int) {
	for _, idx := range r.used {
		c := &r.tbl[idx]
		if c.slave != slave {
			continue
		}
		if s := r.nextRxSlave(); s >= 0 {
			c.slave = s
			if c.macDst.Valid() {
				c.ntt = true
				r.rxNTT = true
				r.updateRetry = rlbUpdateRetry
			}
		} else {
			c.slave = -1
		}
	}
	if slave != r.sh.active {
		r.teachDisabledMAC(r.sh.s[slave].cur)
	}
}

// teachDisabledMAC is rlb_teach_disabled_mac_on_primary: the active slave
// goes promiscuous (for RLB_PROMISC_TIMEOUT) and sends learning packets
// with the disabled address, so that frames still sent to it arrive.
func (r *RLB) teachDisabledMAC(mac MAC) {
	act := r.sh.active
	if act < 0 {
		return
	}
	if r.promisc < 0 {
		r.sh.setPromisc(act, true)
		r.promisc = act
	}
	r.promiscTicks = 0
	r.sh.learning(act, mac)
}

// unpromisc ends the promiscuous mode set by teachDisabledMAC.
func (r *RLB) unpromisc() {
	if r.promisc >= 0 {
		r.sh.setPromisc(r.promisc, false)
		r.promisc = -1
		r.promiscTicks = 0
	}
}

// rebalance is rlb_rebalance: every client is given the next slave round
// robin; those that moved are updated.
func (r *RLB) rebalance() {
	ntt := false
	for _, idx := range r.used {
		c := &r.tbl[idx]
		if s := r.nextRxSlave(); s >= 0 && c.slave != s {
			c.slave = s
			if !c.macDst.IsZero() {
				c.ntt, ntt = true, true
			}
		}
	}
	if ntt {
		r.rxNTT = true
	}
}

// tick is the rlb part of one bond_alb_monitor run.
func (r *RLB) tick() {
	if r.promisc >= 0 {
		r.promiscTicks++
		if r.promiscTicks >= rlbPromiscTimeout {
			r.unpromisc()
		}
	}
	if r.rebalanceReq {
		r.rebalanceReq = false
		r.rebalance()
	}
	if r.rxNTT {
		if r.updateDelay > 0 {
			r.updateDelay--
		} else {
			r.updateRxClients()
			if r.updateRetry > 0 {
				r.updateRetry--
			} else {
				r.rxNTT = false
			}
		}
	}
}

// Client describes one receive client.
type Client struct {
	IP       netip.Addr `json:"ip"`        // the client (ip_dst)
	MAC      string     `json:"mac"`       // its MAC (mac_dst), "" until it answered
	ServerIP netip.Addr `json:"server_ip"` // the host address it talks to (ip_src)
	Slave    int        `json:"slave"`     // the slave it sends to, -1 none
	VLAN     uint16     `json:"vlan,omitempty"`
	Pending  bool       `json:"update_pending,omitempty"` // ntt
}

// Clients lists the receive clients, most recent first.
func (r *RLB) Clients() []Client {
	out := make([]Client, 0, len(r.used))
	for _, idx := range r.used {
		c := &r.tbl[idx]
		cl := Client{
			IP: netip.AddrFrom4(c.ipDst), ServerIP: netip.AddrFrom4(c.ipSrc),
			Slave: c.slave, VLAN: c.vlan & 0x0fff, Pending: c.ntt,
		}
		if c.macDst.Valid() {
			cl.MAC = c.macDst.String()
		}
		out = append(out, cl)
	}
	return out
}
