package alb

import (
	"encoding/binary"

	"github.com/bond-appliance/bond-appliance/policy"
)

var broadcast = policy.BroadcastMAC

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

// netHeader is [policy.NetHeader]: skb->protocol, the network header's
// offset and the out-of-band VLAN tag.
func netHeader(frame []byte) (proto uint16, off int, tci uint16, ok bool) {
	return policy.NetHeader(frame)
}

// simpleHash is _simple_hash: the XOR of the bytes.
func simpleHash(b []byte) uint8 {
	var h uint8
	for _, c := range b {
		h ^= c
	}
	return h
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
