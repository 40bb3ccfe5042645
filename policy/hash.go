package policy

import "encoding/binary"

// Header sizes and protocol numbers used by the parsers.
const (
	ethHdrLen  = 14 // sizeof(struct ethhdr)
	vlanHdrLen = 4  // sizeof(struct vlan_hdr): TCI + encapsulated proto
	ipv4MinLen = 20 // sizeof(struct iphdr)
	ipv6HdrLen = 40 // sizeof(struct ipv6hdr)
	icmpHdrLen = 8  // sizeof(struct icmphdr) == sizeof(struct icmp6hdr)

	ethPIPv4      = 0x0800
	ethPARP       = 0x0806
	ethPTEB       = 0x6558 // transparent Ethernet bridging (GRE)
	ethPRARP      = 0x8035
	ethP8021Q     = 0x8100
	ethPIPv6      = 0x86dd
	ethPSlow      = 0x8809 // LACP / marker
	ethPMPLSUC    = 0x8847
	ethPMPLSMC    = 0x8848
	ethPPPPSes    = 0x8864
	ethP8021AD    = 0x88a8
	ethPTIPC      = 0x88ca
	ethP1588      = 0x88f7
	ethPPRP       = 0x88fb
	ethPCFM       = 0x8902
	ethPFCoE      = 0x8906
	ethPHSR       = 0x892f
	ethPBatman    = 0x4305
	ethPPPPMPLSUC = 0x0281 // PPP_MPLS_UC
	ethPPPPMPLSMC = 0x0283 // PPP_MPLS_MC

	ipprotoHopOpts  = 0
	ipprotoICMP     = 1
	ipprotoIGMP     = 2
	ipprotoIPIP     = 4
	ipprotoTCP      = 6
	ipprotoUDP      = 17
	ipprotoDCCP     = 33
	ipprotoIPv6     = 41
	ipprotoRouting  = 43
	ipprotoFragment = 44
	ipprotoGRE      = 47
	ipprotoESP      = 50
	ipprotoAH       = 51
	ipprotoICMPv6   = 58
	ipprotoDstOpts  = 60
	ipprotoSCTP     = 132
	ipprotoUDPLite  = 136
	ipprotoMPLS     = 137
)

// flowKeys is the part of the kernel's struct flow_keys that bond_xmit_hash
// reads, already reduced the way it reads it.
type flowKeys struct {
	src   uint32 // flow_get_u32_src(): IPv4 saddr, ipv6_addr_hash(saddr), TIPC key, or 0
	dst   uint32 // flow_get_u32_dst(): IPv4 daddr, ipv6_addr_hash(daddr), or 0
	ports uint32 // flow->ports.ports: the raw __be32 at the L4 port offset, as a host u32
	icmp  uint32 // struct flow_dissector_key_icmp as a host u32: type | code<<8 | id<<16
}

func be16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }

// le32 reads four bytes the way a little-endian CPU loads a __be32 into a u32
// (the kernel's "(__force u32)" and memcpy-to-u32 conversions).
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// has reports whether b holds n bytes at off (off >= 0 is an invariant of
// every caller; n is a small constant).
func has(b []byte, off, n int) bool { return off <= len(b)-n }

func isVLANProto(p uint16) bool { return p == ethP8021Q || p == ethP8021AD }

// ipv6AddrHash is ipv6_addr_hash(): the XOR of the address's four 32-bit
// words (on 64-bit kernels computed as two longs folded, which is the same).
func ipv6AddrHash(b []byte, off int) uint32 {
	return le32(b, off) ^ le32(b, off+4) ^ le32(b, off+8) ^ le32(b, off+12)
}

// Hash returns bond_xmit_hash() for an Ethernet frame that starts at the
// destination MAC, under policy p. It never panics: truncated or malformed
// frames get the value the kernel computes for them, which is usually its
// layer2 fallback (bond_eth_hash), and 0 when even the 14-byte Ethernet
// header is missing. An outermost VLAN tag is treated as the kernel's
// out-of-band skb->vlan_tci (see the package documentation). An invalid
// policy value hashes like Layer2, the kernel's default policy.
//
// Hash does not allocate and reads only frame.
func Hash(frame []byte, p HashPolicy) uint32 {
	if len(frame) < ethHdrLen {
		return 0
	}
	proto := be16(frame, 12)
	l3 := frame[ethHdrLen:]
	var tci uint16
	hwTag := false
	if isVLANProto(proto) && len(frame) >= ethHdrLen+vlanHdrLen {
		// The outermost tag would be in skb->vlan_tci, and the Ethernet header
		// reordered so that h_proto is the encapsulated protocol.
		hwTag = true
		tci = be16(frame, 14)
		proto = be16(frame, 16)
		l3 = frame[ethHdrLen+vlanHdrLen:]
	}

	var fk flowKeys
	switch p {
	case VlanSrcMac:
		return vlanSrcMacHash(frame, tci)
	case Layer23, Layer34:
		if !bondFlowDissect(l3, proto, p == Layer34, &fk) {
			return ethHash(frame, proto)
		}
	case Encap23, Encap34:
		if !flowDissect(l3, proto, hwTag, &fk) {
			return ethHash(frame, proto)
		}
	default: // Layer2, and any invalid value
		return ethHash(frame, proto)
	}

	// __bond_xmit_hash: the L2 part or the L4 part, then bond_ip_hash.
	var h uint32
	if p == Layer23 || p == Encap23 {
		h = ethHash(frame, proto)
	} else if fk.icmp>>16 != 0 { // flow.icmp.id
		h = fk.icmp
	} else {
		h = fk.ports
	}
	return ipHash(h, &fk, p)
}

// SlaveIndex maps a hash to one of n slaves the way bonding does
// (slaves->arr[hash % count], an unsigned modulo). It returns 0 when n <= 0,
// a case the kernel never reaches because it drops the frame when no slave
// is usable; callers must not index an empty slave set with the result.
func SlaveIndex(hash uint32, n int) int {
	if n <= 0 {
		return 0
	}
	return int(uint64(hash) % uint64(n))
}

// ethHash is bond_eth_hash(): h_dest[5] ^ h_source[5] ^ be16_to_cpu(h_proto).
// proto is the h_proto the kernel sees (the inner one for an out-of-band tag).
func ethHash(frame []byte, proto uint16) uint32 {
	return uint32(frame[5]) ^ uint32(frame[11]) ^ uint32(proto)
}

// vlanSrcMacHash is bond_vlan_srcmac_hash(): the TCI (0 when untagged)
// XORed with the source MAC's vendor half and device half, each read as a
// 24-bit big-endian number.
func vlanSrcMacHash(frame []byte, tci uint16) uint32 {
	vendor := uint32(frame[6])<<16 | uint32(frame[7])<<8 | uint32(frame[8])
	dev := uint32(frame[9])<<16 | uint32(frame[10])<<8 | uint32(frame[11])
	return uint32(tci) ^ vendor ^ dev
}

// ipHash is bond_ip_hash().
func ipHash(h uint32, fk *flowKeys, p HashPolicy) uint32 {
	h ^= fk.dst ^ fk.src
	h ^= h >> 16
	h ^= h >> 8
	// Discard the lowest bit "to deal with the common even ports pattern".
	if p == Layer34 || p == Encap34 {
		return h >> 1
	}
	return h
}

// protoPortsOffset is proto_ports_offset() (include/linux/in.h): where the
// 32 bits that stand for the ports live in the transport header, or -1.
func protoPortsOffset(proto uint8) int {
	switch proto {
	case ipprotoTCP, ipprotoUDP, ipprotoDCCP, ipprotoESP, ipprotoSCTP, ipprotoUDPLite:
		return 0
	case ipprotoAH:
		return 4 // SPI
	}
	return -1
}

// flowGetPorts is skb_flow_get_ports(): 0 when the protocol has no ports or
// the four bytes are not in the packet.
func flowGetPorts(b []byte, thoff int, proto uint8) uint32 {
	poff := protoPortsOffset(proto)
	if poff < 0 || !has(b, thoff+poff, 4) {
		return 0
	}
	return le32(b, thoff+poff)
}

// icmpHasID is icmp_has_id() (net/core/flow_dissector.c). It tests ICMP and
// ICMPv6 type numbers together, whatever the protocol.
func icmpHasID(t uint8) bool {
	switch t {
	case 0, 8, 13, 14: // ICMP_ECHOREPLY, ICMP_ECHO, ICMP_TIMESTAMP, ICMP_TIMESTAMPREPLY
		return true
	case 128, 129: // ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY
		return true
	}
	return false
}

// icmpIsErr is icmp_is_err() (include/linux/icmp.h).
func icmpIsErr(t uint8) bool {
	switch t {
	case 3, 4, 5, 11, 12: // DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAMETERPROB
		return true
	}
	return false
}

// icmpv6IsErr is icmpv6_is_err() (include/linux/icmpv6.h).
func icmpv6IsErr(t uint8) bool {
	return t >= 1 && t <= 4 // DEST_UNREACH, PKT_TOOBIG, TIME_EXCEED, PARAMPROB
}

// flowGetICMP is skb_flow_get_icmp_tci(): it leaves the key untouched when
// the 8-byte header is not in the packet. The identifier is stored in host
// order, and an identifier of 0 is stored as 1 so that 0 keeps meaning "no
// identifier".
func flowGetICMP(b []byte, thoff int, fk *flowKeys) {
	if !has(b, thoff, icmpHdrLen) {
		return
	}
	t := b[thoff]
	var id uint16
	if icmpHasID(t) {
		id = be16(b, thoff+4)
		if id == 0 {
			id = 1
		}
	}
	fk.icmp = uint32(t) | uint32(b[thoff+1])<<8 | uint32(id)<<16
}

// bondFlowIP is bond_flow_ip(): the minimal IPv4/IPv6 parser of the
// layer2+3 and layer3+4 policies. b starts at the network header of the
// emulated skb. It returns the updated transport offset and L4 protocol
// (-1 while unknown), and false when the L3 header is missing or proto is
// neither IPv4 nor IPv6.
//
// Like the kernel it checks neither the IP version nor a minimum IHL, and it
// does not walk IPv6 extension headers.
func bondFlowIP(b []byte, proto uint16, nhoff, ipProto int, l34 bool, fk *flowKeys) (int, int, bool) {
	switch proto {
	case ethPIPv4:
		if !has(b, nhoff, ipv4MinLen) {
			return nhoff, ipProto, false
		}
		fk.src = le32(b, nhoff+12)
		fk.dst = le32(b, nhoff+16)
		fragOff := be16(b, nhoff+6)
		protocol := b[nhoff+9]
		nhoff += int(b[nhoff]&0x0f) << 2
		if fragOff&0x3fff == 0 { // !ip_is_fragment(): IP_MF | IP_OFFSET
			ipProto = int(protocol)
		}
	case ethPIPv6:
		if !has(b, nhoff, ipv6HdrLen) {
			return nhoff, ipProto, false
		}
		fk.src = ipv6AddrHash(b, nhoff+8)
		fk.dst = ipv6AddrHash(b, nhoff+24)
		ipProto = int(b[nhoff+6])
		nhoff += ipv6HdrLen
	default:
		return nhoff, ipProto, false
	}
	if l34 && ipProto >= 0 {
		fk.ports = flowGetPorts(b, nhoff, uint8(ipProto))
	}
	return nhoff, ipProto, true
}

// bondFlowDissect is the non-encap branch of bond_flow_dissect().
func bondFlowDissect(b []byte, proto uint16, l34 bool, fk *flowKeys) bool {
	fk.ports = 0
	fk.icmp = 0
	nhoff, ipProto, ok := bondFlowIP(b, proto, 0, -1, l34, fk)
	if !ok {
		return false
	}
	// ICMP errors carry at least 8 bytes of the packet that caused them:
	// hash them with that packet's flow.
	switch ipProto {
	case ipprotoICMP:
		flowGetICMP(b, nhoff, fk)
		if !icmpIsErr(uint8(fk.icmp)) {
			return true
		}
	case ipprotoICMPv6:
		flowGetICMP(b, nhoff, fk)
		if !icmpv6IsErr(uint8(fk.icmp)) {
			return true
		}
	default:
		return true
	}
	_, _, ok = bondFlowIP(b, proto, nhoff+icmpHdrLen, ipProto, l34, fk)
	return ok
}
