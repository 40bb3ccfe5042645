package monitor

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv6 neighbor discovery message types (RFC 4861).
const (
	ICMPv6NeighborSolicitation  = 135
	ICMPv6NeighborAdvertisement = 136
)

const (
	ipv6HdrLen   = 40
	protoICMPv6  = 58
	ndBodyLen    = 24 // type, code, checksum, flags/reserved, target
	ndOptSLLAO   = 1  // source link-layer address option
	ndOptTLLAO   = 2  // target link-layer address option
	ndLLAOLen    = 8  // NDISC_OPT_SPACE for a 6-byte address
	ndHopLimit   = 255
	naFlagRouter = 0x80
	naFlagSolic  = 0x40
	naFlagOver   = 0x20
)

// AllNodes is ff02::1, the destination of unsolicited advertisements.
var AllNodes = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 0x01})

// ND is an IPv6 Neighbor Solicitation or Advertisement with its Ethernet
// and IPv6 headers.
type ND struct {
	Dst, Src MAC
	Tagged   bool
	VLAN     uint16

	IPSrc, IPDst netip.Addr
	HopLimit     uint8

	Type                        uint8 // ICMPv6NeighborSolicitation or ICMPv6NeighborAdvertisement
	Router, Solicited, Override bool  // NA flags
	Target                      netip.Addr
	// LinkAddr is the source (NS) or target (NA) link-layer address option,
	// valid when HasLinkAddr.
	LinkAddr    MAC
	HasLinkAddr bool
	// ChecksumOK reports whether the ICMPv6 checksum verifies.
	ChecksumOK bool
}

// SolicitedNode returns the solicited-node multicast address of a
// (ff02::1:ffXX:XXXX, addrconf_addr_solict_mult).
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// multicastMAC6 is the Ethernet address of an IPv6 multicast group
// (ipv6_eth_mc_map: 33:33 and the low 32 bits).
func multicastMAC6(b *[16]byte) MAC {
	return MAC{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// ParseND decodes an Ethernet (optionally VLAN-tagged) IPv6 Neighbor
// Solicitation or Advertisement whose ICMPv6 header follows the IPv6
// header directly. It does not allocate. Padding after the IPv6 payload is
// ignored. The checksum is reported, not enforced.
func ParseND(frame []byte) (ND, error) {
	var nd ND
	h, ok := parseEth(frame)
	if !ok {
		return nd, ErrShort
	}
	if h.etherType != EtherTypeIPv6 {
		return nd, ErrEtherType
	}
	p := frame[h.off:]
	if len(p) < ipv6HdrLen {
		return nd, ErrShort
	}
	if p[0]>>4 != 6 || p[6] != protoICMPv6 {
		return nd, ErrUnsupported
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if len(p) < ipv6HdrLen+plen {
		return nd, ErrShort
	}
	if plen < ndBodyLen {
		return nd, ErrMalformed
	}
	m := p[ipv6HdrLen : ipv6HdrLen+plen]
	if (m[0] != ICMPv6NeighborSolicitation && m[0] != ICMPv6NeighborAdvertisement) || m[1] != 0 {
		return nd, ErrUnsupported
	}
	nd.Dst, nd.Src, nd.Tagged, nd.VLAN = h.dst, h.src, h.tagged, h.vlan
	src, dst := [16]byte(p[8:24]), [16]byte(p[24:40])
	nd.IPSrc, nd.IPDst = netip.AddrFrom16(src), netip.AddrFrom16(dst)
	nd.HopLimit = p[7]
	nd.Type = m[0]
	if nd.Type == ICMPv6NeighborAdvertisement {
		nd.Router = m[4]&naFlagRouter != 0
		nd.Solicited = m[4]&naFlagSolic != 0
		nd.Override = m[4]&naFlagOver != 0
	}
	nd.Target = netip.AddrFrom16([16]byte(m[8:24]))
	want := uint8(ndOptSLLAO)
	if nd.Type == ICMPv6NeighborAdvertisement {
		want = ndOptTLLAO
	}
	for o := m[ndBodyLen:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || len(o) < int(o[1])*8 {
			return ND{}, ErrMalformed
		}
		l := int(o[1]) * 8
		if o[0] == want && l == ndLLAOLen && !nd.HasLinkAddr {
			copy(nd.LinkAddr[:], o[2:8])
			nd.HasLinkAddr = true
		}
		o = o[l:]
	}
	nd.ChecksumOK = csumFold(csumAdd(ipv6PseudoSum(&src, &dst, plen, protoICMPv6), m)) == 0
	return nd, nil
}

// ParseNA is ParseND restricted to Neighbor Advertisements.
func ParseNA(frame []byte) (ND, error) {
	nd, err := ParseND(frame)
	if err != nil {
		return nd, err
	}
	if nd.Type != ICMPv6NeighborAdvertisement {
		return ND{}, ErrNotNA
	}
	return nd, nil
}

// buildND writes Ethernet, IPv6 (hop limit 255, as the ndisc socket) and
// an NS/NA with an optional link-layer address option and the checksum.
func buildND(buf []byte, vlan uint16, ethDst, ethSrc MAC, src, dst *[16]byte,
	typ, flags uint8, target *[16]byte, opt uint8, lladdr MAC) (int, error) {
	if err := checkVLAN(vlan); err != nil {
		return 0, err
	}
	plen := ndBodyLen
	if opt != 0 {
		plen += ndLLAOLen
	}
	need := ethLen(vlan) + ipv6HdrLen + plen
	if len(buf) < frameLen(need) {
		return 0, ErrShortBuffer
	}
	n := putEth(buf, ethDst, ethSrc, vlan, EtherTypeIPv6)
	ip := buf[n : n+ipv6HdrLen]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28) // ip6_flow_hdr(hdr, 0, 0)
	binary.BigEndian.PutUint16(ip[4:6], uint16(plen))
	ip[6], ip[7] = protoICMPv6, ndHopLimit
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	m := buf[n+ipv6HdrLen : n+ipv6HdrLen+plen]
	m[0], m[1], m[2], m[3] = typ, 0, 0, 0
	m[4], m[5], m[6], m[7] = flags, 0, 0, 0
	copy(m[8:24], target[:])
	if opt != 0 {
		o := m[ndBodyLen:]
		o[0], o[1] = opt, ndLLAOLen/8
		copy(o[2:8], lladdr[:])
	}
	binary.BigEndian.PutUint16(m[2:4], csumFold(csumAdd(ipv6PseudoSum(src, dst, plen, protoICMPv6), m)))
	return pad(buf, need), nil
}

// BuildNS writes the Neighbor Solicitation bonding sends to an
// ns_ip6_target (bond_ns_send -> ndisc_ns_create, ndisc_send_skb): IPv6
// source srcIP (the zero Addr or :: when the bond has no usable address),
// destination the target's solicited-node group, Ethernet destination
// 33:33:ff:xx:xx:xx, hop limit 255, and a source link-layer address option
// with src unless the source is :: (ndisc_ns_create omits it then, as RFC
// 4861 7.2.2 requires).
func BuildNS(buf []byte, vlan uint16, src MAC, srcIP, target netip.Addr) (int, error) {
	s, ok1 := ip6(srcIP)
	t, ok2 := ip6(target)
	if !ok1 || !ok2 || !target.IsValid() {
		return 0, ErrAddress
	}
	d := SolicitedNode(target).As16()
	var opt uint8
	if s != ([16]byte{}) {
		opt = ndOptSLLAO
	}
	return buildND(buf, vlan, multicastMAC6(&d), src, &s, &d, ICMPv6NeighborSolicitation, 0, &t, opt, src)
}

// BuildUnsolicitedNA writes the unsolicited Neighbor Advertisement a peer
// notification sends for addr (ndisc_send_unsol_na -> ndisc_send_na(dev,
// ff02::1, addr, router, solicited=false, override=true, inc_opt=true)):
// IPv6 source addr, destination ff02::1 (Ethernet 33:33:00:00:00:01),
// override set, router set when the host forwards, target addr and a
// target link-layer address option with src.
func BuildUnsolicitedNA(buf []byte, vlan uint16, src MAC, addr netip.Addr, router bool) (int, error) {
	a, ok := ip6(addr)
	if !ok || !addr.IsValid() {
		return 0, ErrAddress
	}
	d := AllNodes.As16()
	flags := uint8(naFlagOver)
	if router {
		flags |= naFlagRouter
	}
	return buildND(buf, vlan, multicastMAC6(&d), src, &a, &d, ICMPv6NeighborAdvertisement, flags, &a, ndOptTLLAO, src)
}
