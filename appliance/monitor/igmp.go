package monitor

import (
	"encoding/binary"
	"net/netip"
)

// IGMP message types.
const (
	IGMPv2MembershipReport = 0x16
	IGMPv3MembershipReport = 0x22
	// IGMPv3ModeIsExclude is the group record type the kernel reports for
	// a group joined without sources (igmpv3_send_report: MCAST_EXCLUDE).
	IGMPv3ModeIsExclude = 2
)

const (
	ipv4HdrRALen = 24 // 20 + IP Router Alert option
	protoIGMP    = 2
	igmpLen      = 8
	igmpGrecLen  = 8 // record without sources
)

// IGMPv3Routers is 224.0.0.22, the destination of IGMPv3 reports.
var IGMPv3Routers = netip.AddrFrom4([4]byte{224, 0, 0, 22})

// multicastMAC4 is the Ethernet address of an IPv4 group (ip_eth_mc_map).
func multicastMAC4(g [4]byte) MAC {
	return MAC{0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]}
}

// putIPv4RA writes the IPv4 header igmp_send_report/igmpv3_newpack build:
// IHL 6 with a Router Alert option, TOS 0xc0, DF, TTL 1, id 0
// (ip_select_ident gives DF packets without a socket id 0), protocol IGMP.
func putIPv4RA(b []byte, total int, src, dst [4]byte) {
	b[0], b[1] = 0x46, 0xc0
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	binary.BigEndian.PutUint16(b[4:6], 0)
	binary.BigEndian.PutUint16(b[6:8], 0x4000) // IP_DF
	b[8], b[9] = 1, protoIGMP
	b[10], b[11] = 0, 0
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	b[20], b[21], b[22], b[23] = 0x94, 4, 0, 0 // IPOPT_RA
	binary.BigEndian.PutUint16(b[10:12], csumFold(csumAdd(0, b[:ipv4HdrRALen])))
}

func group4(g netip.Addr) ([4]byte, bool) {
	b, ok := ip4(g)
	return b, ok && g.IsValid() && b[0]&0xf0 == 0xe0
}

// BuildIGMPv2Report writes an IGMPv2 membership report for group (sent
// to the group itself) from srcIP (the zero Addr is 0.0.0.0).
func BuildIGMPv2Report(buf []byte, vlan uint16, src MAC, srcIP, group netip.Addr) (int, error) {
	if err := checkVLAN(vlan); err != nil {
		return 0, err
	}
	s, ok1 := ip4(srcIP)
	g, ok2 := group4(group)
	if !ok1 || !ok2 {
		return 0, ErrAddress
	}
	need := ethLen(vlan) + ipv4HdrRALen + igmpLen
	if len(buf) < frameLen(need) {
		return 0, ErrShortBuffer
	}
	n := putEth(buf, multicastMAC4(g), src, vlan, EtherTypeIPv4)
	putIPv4RA(buf[n:], ipv4HdrRALen+igmpLen, s, g)
	m := buf[n+ipv4HdrRALen : need]
	m[0], m[1], m[2], m[3] = IGMPv2MembershipReport, 0, 0, 0
	copy(m[4:8], g[:])
	binary.BigEndian.PutUint16(m[2:4], csumFold(csumAdd(0, m)))
	return pad(buf, need), nil
}

// BuildIGMPv3Report writes one IGMPv3 membership report to 224.0.0.22
// with a MODE_IS_EXCLUDE record without sources for each group (what a
// join without source filter reports).
func BuildIGMPv3Report(buf []byte, vlan uint16, src MAC, srcIP netip.Addr, groups []netip.Addr) (int, error) {
	if err := checkVLAN(vlan); err != nil {
		return 0, err
	}
	s, ok := ip4(srcIP)
	if !ok || len(groups) == 0 || len(groups) > 0xffff {
		return 0, ErrAddress
	}
	for _, g := range groups {
		if _, ok := group4(g); !ok {
			return 0, ErrAddress
		}
	}
	ilen := igmpLen + igmpGrecLen*len(groups)
	need := ethLen(vlan) + ipv4HdrRALen + ilen
	if len(buf) < frameLen(need) || ipv4HdrRALen+ilen > 0xffff {
		return 0, ErrShortBuffer
	}
	dst := IGMPv3Routers.As4()
	n := putEth(buf, multicastMAC4(dst), src, vlan, EtherTypeIPv4)
	putIPv4RA(buf[n:], ipv4HdrRALen+ilen, s, dst)
	m := buf[n+ipv4HdrRALen : need]
	m[0], m[1], m[2], m[3], m[4], m[5] = IGMPv3MembershipReport, 0, 0, 0, 0, 0
	binary.BigEndian.PutUint16(m[6:8], uint16(len(groups)))
	r := m[igmpLen:]
	for _, g := range groups {
		g4, _ := group4(g)
		r[0], r[1], r[2], r[3] = IGMPv3ModeIsExclude, 0, 0, 0
		copy(r[4:8], g4[:])
		r = r[igmpGrecLen:]
	}
	binary.BigEndian.PutUint16(m[2:4], csumFold(csumAdd(0, m)))
	return pad(buf, need), nil
}
