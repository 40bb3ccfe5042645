package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// MAC is an Ethernet address.
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// EtherTypes the package reads or writes.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100 // IEEE 802.1Q
	EtherTypeQinQ = 0x88a8 // IEEE 802.1ad
)

const (
	ethHdrLen = 14
	vlanLen   = 4
	// MinFrameLen is ETH_ZLEN: builders pad shorter frames with zeros, as
	// the wire would.
	MinFrameLen = 60
	// MaxVLAN is the largest VLAN id a builder accepts.
	MaxVLAN = 4094
)

// Errors returned by parsers and builders. They are fixed values: returning
// one does not allocate.
var (
	ErrShort       = errors.New("monitor: frame too short")
	ErrEtherType   = errors.New("monitor: unexpected ethertype")
	ErrUnsupported = errors.New("monitor: unsupported hardware or protocol type")
	ErrMalformed   = errors.New("monitor: malformed packet")
	ErrNotNA       = errors.New("monitor: not a neighbor advertisement")
	ErrShortBuffer = errors.New("monitor: buffer too small")
	ErrAddress     = errors.New("monitor: invalid address for this packet")
	ErrVLAN        = errors.New("monitor: VLAN id out of range")
)

// ethHeader is the Ethernet header of a received frame, with at most one
// VLAN tag removed, as skb_vlan_untag leaves it before bonding's rx handler.
type ethHeader struct {
	dst, src  MAC
	tagged    bool
	vlan      uint16
	etherType uint16
	off       int // offset of the payload
}

// parseEth reads the Ethernet header and one optional 802.1Q/802.1ad tag.
func parseEth(frame []byte) (h ethHeader, ok bool) {
	if len(frame) < ethHdrLen {
		return h, false
	}
	copy(h.dst[:], frame[0:6])
	copy(h.src[:], frame[6:12])
	h.etherType = binary.BigEndian.Uint16(frame[12:14])
	h.off = ethHdrLen
	if h.etherType == EtherTypeVLAN || h.etherType == EtherTypeQinQ {
		if len(frame) < ethHdrLen+vlanLen {
			return h, false
		}
		h.tagged = true
		h.vlan = binary.BigEndian.Uint16(frame[14:16]) & 0x0fff
		h.etherType = binary.BigEndian.Uint16(frame[16:18])
		h.off += vlanLen
	}
	return h, true
}

// ethLen is the header length a builder writes for vlan (0: untagged).
func ethLen(vlan uint16) int { return ethLenTag(vlan != 0) }

func ethLenTag(tagged bool) int {
	if tagged {
		return ethHdrLen + vlanLen
	}
	return ethHdrLen
}

// putEth writes the Ethernet header (with an 802.1Q tag when vlan != 0)
// and returns its length. b must hold ethLen(vlan) bytes.
func putEth(b []byte, dst, src MAC, vlan, etherType uint16) int {
	return putEthTag(b, dst, src, vlan != 0, vlan, etherType)
}

// putEthTag is putEth with the tag forced on (a VLAN 0 priority tag).
func putEthTag(b []byte, dst, src MAC, tagged bool, vlan, etherType uint16) int {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	if tagged {
		binary.BigEndian.PutUint16(b[12:14], EtherTypeVLAN)
		binary.BigEndian.PutUint16(b[14:16], vlan)
		binary.BigEndian.PutUint16(b[16:18], etherType)
		return ethHdrLen + vlanLen
	}
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return ethHdrLen
}

// frameLen is n padded to MinFrameLen.
func frameLen(n int) int {
	if n < MinFrameLen {
		return MinFrameLen
	}
	return n
}

// pad zeroes b[n:frameLen(n)] and returns the padded length.
func pad(b []byte, n int) int {
	l := frameLen(n)
	clear(b[n:l])
	return l
}

func checkVLAN(vlan uint16) error {
	if vlan > MaxVLAN {
		return ErrVLAN
	}
	return nil
}

// csumAdd adds b to a ones'-complement running sum (RFC 1071).
func csumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// csumFold folds the running sum and complements it.
func csumFold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipv6PseudoSum is the IPv6 pseudo-header sum (RFC 8200 8.1) for an
// upper-layer packet of length n and protocol next.
func ipv6PseudoSum(src, dst *[16]byte, n int, next uint8) uint32 {
	sum := csumAdd(0, src[:])
	sum = csumAdd(sum, dst[:])
	sum += uint32(n>>16) + uint32(n&0xffff)
	sum += uint32(next)
	return sum
}

// ip4 returns the 4 bytes of an IPv4 address; the zero Addr is 0.0.0.0.
func ip4(a netip.Addr) (b [4]byte, ok bool) {
	if !a.IsValid() {
		return b, true
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if !a.Is4() {
		return b, false
	}
	return a.As4(), true
}

// ip6 returns the 16 bytes of an IPv6 address; the zero Addr is ::.
func ip6(a netip.Addr) (b [16]byte, ok bool) {
	if !a.IsValid() {
		return b, true
	}
	if !a.Is6() || a.Is4In6() {
		return b, false
	}
	return a.As16(), true
}
