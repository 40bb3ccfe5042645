package monitor

import (
	"encoding/binary"
	"net/netip"
)

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

const arpLen = 28 // Ethernet/IPv4 ARP body: arp_hdr_len() of an Ethernet device

// ARP is an Ethernet/IPv4 ARP packet with its Ethernet header.
type ARP struct {
	Dst, Src MAC    // Ethernet addresses
	Tagged   bool   // the frame carried an 802.1Q/802.1ad tag
	VLAN     uint16 // VLAN id of the tag (builders tag when Tagged or VLAN != 0)

	Op        uint16 // ARPRequest, ARPReply, or anything else on parse
	SenderMAC MAC
	SenderIP  netip.Addr // IPv4
	TargetMAC MAC
	TargetIP  netip.Addr // IPv4
}

// ParseARP decodes an Ethernet (optionally VLAN-tagged) ARP frame. It
// accepts only hardware type Ethernet, protocol IPv4, hlen 6 and plen 4,
// the checks bond_arp_rcv makes. It does not allocate.
func ParseARP(frame []byte) (ARP, error) {
	var a ARP
	h, ok := parseEth(frame)
	if !ok {
		return a, ErrShort
	}
	if h.etherType != EtherTypeARP {
		return a, ErrEtherType
	}
	p := frame[h.off:]
	if len(p) < arpLen {
		return a, ErrShort
	}
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != EtherTypeIPv4 ||
		p[4] != 6 || p[5] != 4 {
		return a, ErrUnsupported
	}
	a.Dst, a.Src, a.Tagged, a.VLAN = h.dst, h.src, h.tagged, h.vlan
	a.Op = binary.BigEndian.Uint16(p[6:8])
	copy(a.SenderMAC[:], p[8:14])
	a.SenderIP = netip.AddrFrom4([4]byte(p[14:18]))
	copy(a.TargetMAC[:], p[18:24])
	a.TargetIP = netip.AddrFrom4([4]byte(p[24:28]))
	return a, nil
}

// BuildARP writes a into buf (Ethernet header, 802.1Q tag when a.Tagged or
// a.VLAN != 0, ARP body, zero padding to MinFrameLen) and returns the frame length. The
// zero SenderIP or TargetIP is 0.0.0.0.
func BuildARP(buf []byte, a *ARP) (int, error) {
	if err := checkVLAN(a.VLAN); err != nil {
		return 0, err
	}
	sip, ok1 := ip4(a.SenderIP)
	tip, ok2 := ip4(a.TargetIP)
	if !ok1 || !ok2 {
		return 0, ErrAddress
	}
	tagged := a.Tagged || a.VLAN != 0
	need := ethLenTag(tagged) + arpLen
	if len(buf) < frameLen(need) {
		return 0, ErrShortBuffer
	}
	n := putEthTag(buf, a.Dst, a.Src, tagged, a.VLAN, EtherTypeARP)
	p := buf[n : n+arpLen]
	binary.BigEndian.PutUint16(p[0:2], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(p[2:4], EtherTypeIPv4)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], a.Op)
	copy(p[8:14], a.SenderMAC[:])
	copy(p[14:18], sip[:])
	copy(p[18:24], a.TargetMAC[:])
	copy(p[24:28], tip[:])
	return pad(buf, n+arpLen), nil
}

// BuildARPProbe writes the ARP request bonding sends to an arp_ip_target
// (bond_arp_send -> arp_create(ARPOP_REQUEST, ..., dest_hw NULL, src_hw
// slave address, target_hw NULL)): broadcast destination, sender = the
// slave's MAC and srcIP (0.0.0.0 when the bond has no address towards the
// target), target hardware address zero.
func BuildARPProbe(buf []byte, vlan uint16, src MAC, srcIP, target netip.Addr) (int, error) {
	if !target.IsValid() {
		return 0, ErrAddress
	}
	a := ARP{Dst: BroadcastMAC, Src: src, VLAN: vlan, Op: ARPRequest,
		SenderMAC: src, SenderIP: srcIP, TargetIP: target}
	return BuildARP(buf, &a)
}

// BuildGratuitousARP writes the gratuitous ARP a peer notification sends
// for ip (inetdev_send_gratuitous_arp: arp_send(ARPOP_REQUEST, ETH_P_ARP,
// ip, dev, ip, NULL, dev_addr, NULL)): a broadcast request with sender IP =
// target IP = ip and a zero target hardware address.
func BuildGratuitousARP(buf []byte, vlan uint16, src MAC, ip netip.Addr) (int, error) {
	if !ip.IsValid() {
		return 0, ErrAddress
	}
	a := ARP{Dst: BroadcastMAC, Src: src, VLAN: vlan, Op: ARPRequest,
		SenderMAC: src, SenderIP: ip, TargetIP: ip}
	return BuildARP(buf, &a)
}
