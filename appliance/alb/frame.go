package alb

import (
	"encoding/binary"
	"fmt"
)

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
func (m MAC) IsBroadcast() bool { return m == broadcast }

// Valid reports a unicast, non-zero address (is_valid_ether_addr).
func (m MAC) Valid() bool { return !m.IsZero() && !m.IsMulticast() }

var (
	broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// IPv6 all-nodes multicast, which balance-alb never balances
	// (mac_v6_allmcast).
	v6AllNodes = MAC{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

// Ethernet and ARP constants.
const (
	ethHdrLen  = 14
	vlanHdrLen = 4
	arpLen     = 28 // struct arp_pkt for Ethernet/IPv4

	ethPIPv4     = 0x0800
	ethPARP      = 0x0806
	ethPIPv6     = 0x86dd
	ethP8021Q    = 0x8100
	ethP8021AD   = 0x88a8
	ethPLoopback = 0x9000 // ETH_P_LOOPBACK, the learning packets' type

	ethZLen = 60 // ETH_ZLEN: learning packets are padded to it

	arpOpRequest = 1
	arpOpReply   = 2

	ipprotoIGMP   = 2
	ipprotoICMPv6 = 58
	ndNS          = 135 // NDISC_NEIGHBOUR_SOLICITATION
	ndNA          = 136 // NDISC_NEIGHBOUR_ADVERTISEMENT
)

func be16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }

func isVLAN(p uint16) bool { return p == ethP8021Q || p == ethP8021AD }

// netHeader returns what the kernel would see as skb->protocol and the
// offset of the network header. As in package policy, an outermost VLAN
// tag is the kernel's out-of-band skb->vlan_tci (the bond device has VLAN
// offload; received tags are untagged before the rx_handler), so the
// protocol behind it counts; a second tag leaves skb->protocol a VLAN
// protocol. ok is false for a frame too short for its headers.
func netHeader(frame []byte) (proto uint16, off int, tci uint16, ok bool) {
	if len(frame) < ethHdrLen {
		return 0, 0, 0, false
	}
	proto = be16(frame, 12)
	off = ethHdrLen
	if isVLAN(proto) {
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
	if len(frame) < off+40 {
		return true
	}
	if frame[off+6] != ipprotoICMPv6 {
		return false
	}
	if len(frame) < off+40+8 {
		return true
	}
	t := frame[off+40]
	return t == ndNS || t == ndNA
}

// TLBHashIndex classifies a frame the host sends, as
// bond_xmit_tlb_slave_get (mode [ModeTLB]) and bond_xmit_alb_slave_get
// (mode [ModeALB]) do. useActive means the frame is not balanced and goes
// on the current active slave (bond_do_alb_xmit with tx_slave NULL).
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
	proto, off, _, ok := netHeader(frame)
	if !ok {
		return 0, true
	}
	if mode != ModeALB {
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
	var dst MAC
	copy(dst[:], frame)
	var h uint8
	switch proto {
	case ethPIPv4:
		if dst.IsBroadcast() || len(frame) < off+20 {
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

// arpPkt is struct arp_pkt for Ethernet/IPv4.
type arpPkt struct {
	op  uint16
	sha MAC     // mac_src
	spa [4]byte // ip_src
	tha MAC     // mac_dst
	tpa [4]byte // ip_dst
}

// parseARP reads the Ethernet/IPv4 ARP packet of a frame (behind at most
// one VLAN tag). off is the ARP header offset, tci the tag's TCI (0
// untagged). The kernel reads struct arp_pkt without checking the
// hardware and protocol fields; we require Ethernet/IPv4 so that other
// ARP variants are never misread.
func parseARP(frame []byte) (a arpPkt, off int, tci uint16, ok bool) {
	proto, off, tci, ok := netHeader(frame)
	if !ok || proto != ethPARP || len(frame) < off+arpLen {
		return a, 0, 0, false
	}
	p := frame[off:]
	if be16(p, 0) != 1 || be16(p, 2) != ethPIPv4 || p[4] != 6 || p[5] != 4 {
		return a, 0, 0, false
	}
	a.op = be16(p, 6)
	copy(a.sha[:], p[8:14])
	copy(a.spa[:], p[14:18])
	copy(a.tha[:], p[18:24])
	copy(a.tpa[:], p[24:28])
	return a, off, tci, true
}

// appendEth appends an Ethernet header, with an 802.1Q tag when tci != 0
// (what __vlan_hwaccel_put_tag puts on the wire).
func appendEth(b []byte, dst, src MAC, tci uint16, etype uint16) []byte {
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	if tci != 0 {
		b = binary.BigEndian.AppendUint16(b, ethP8021Q)
		b = binary.BigEndian.AppendUint16(b, tci)
	}
	return binary.BigEndian.AppendUint16(b, etype)
}

// arpReply builds the client update of rlb_update_client:
// arp_create(ARPOP_REPLY, ETH_P_ARP, ip_dst, slave, ip_src, mac_dst,
// slave address, mac_dst), tagged with the client's VLAN. Like
// arp_create it is not padded (42 bytes, 46 tagged): the NIC pads.
func arpReply(c *client, slaveMAC MAC) []byte {
	b := make([]byte, 0, ethHdrLen+vlanHdrLen+arpLen)
	b = appendEth(b, c.macDst, slaveMAC, c.vlan, ethPARP)
	b = append(b, 0, 1, 0x08, 0x00, 6, 4, 0, arpOpReply)
	b = append(b, slaveMAC[:]...)
	b = append(b, c.ipSrc[:]...)
	b = append(b, c.macDst[:]...)
	b = append(b, c.ipDst[:]...)
	return b
}

// learningPacket builds one packet of alb_send_lp_vid: destination and
// source are mac, type ETH_P_LOOPBACK, zero padding up to ETH_ZLEN, and
// the VLAN tag (vid != 0) inserted as the NIC would insert the
// out-of-band tag.
func learningPacket(mac MAC, vid uint16) []byte {
	n := ethZLen
	if vid != 0 {
		n += vlanHdrLen
	}
	b := make([]byte, 0, n)
	b = appendEth(b, mac, mac, vid, ethPLoopback)
	return b[:n] // the capacity is zeroed by make
}
