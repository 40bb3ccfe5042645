// Package vnet implements the offloads of a TAP device opened with
// IFF_VNET_HDR: the virtio_net_hdr that precedes every frame ([Hdr]),
// segmentation of the super-frames the host stack hands over with GSO
// (TCP segmentation, UDP segmentation) into wire-size Ethernet frames
// ([Segment]), completion of a partial checksum ([Complete]), and the
// other direction, receive coalescing (GRO) of wire frames into
// super-frames the host stack takes in one write ([Coalescer]).
//
// It imports only the standard library, never panics on any input (a
// malformed frame is an error) and allocates nothing after setup: the
// callers own every buffer (the lane's UMEM frames and per-lane
// super-frame buffers).
package vnet

import (
	"encoding/binary"
	"errors"
)

// HdrLen is the size of struct virtio_net_hdr (without num_buffers), the
// vnet header size the TAP is set to (TUNSETVNETHDRSZ).
const HdrLen = 10

// virtio_net_hdr flags and GSO types (include/uapi/linux/virtio_net.h).
const (
	FlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum at CsumStart+CsumOffset to complete
	FlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	GSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	GSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	GSOUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP (UFO: fragmentation, not supported)
	GSOTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	GSOUDPL4 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
	GSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN: the TCP super-frame carries CWR
)

// Hdr is struct virtio_net_hdr. Its fields are little endian on the wire
// (a TAP in its default, non-legacy mode on a little-endian host).
type Hdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // headers' length (a hint: Segment parses them itself)
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // offset of the transport header from the frame's start
	CsumOffset uint16 // offset of the checksum field from CsumStart
}

// Errors of this package; every one means the frame is dropped.
var (
	ErrShort       = errors.New("vnet: buffer shorter than a virtio_net_hdr")
	ErrMalformed   = errors.New("vnet: malformed frame")
	ErrUnsupported = errors.New("vnet: unsupported GSO type")
	ErrOut         = errors.New("vnet: output buffers too few or too small")
)

// Decode reads a header from the first HdrLen bytes of b.
func (h *Hdr) Decode(b []byte) error {
	if len(b) < HdrLen {
		return ErrShort
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:])
	return nil
}

// Encode writes h into the first HdrLen bytes of b.
func (h Hdr) Encode(b []byte) error {
	if len(b) < HdrLen {
		return ErrShort
	}
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
	return nil
}

// Ethernet, IP and transport constants.
const (
	ethLen     = 14
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	etherVLAN  = 0x8100
	etherQinQ  = 0x88a8
	protoTCP   = 6
	protoUDP   = 17
	ipv6Len    = 40
	tcpMinLen  = 20
	udpLen     = 8
	maxIPTotal = 65535
)

// TCP flags (byte 13 of the header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// l3 returns the offset of the network header of Ethernet frame f (after
// up to two VLAN tags) and its ethertype.
func l3(f []byte) (off int, etype uint16, ok bool) {
	off = 12
	for i := 0; i < 3; i++ {
		if len(f) < off+2 {
			return 0, 0, false
		}
		etype = binary.BigEndian.Uint16(f[off:])
		off += 2
		if etype != etherVLAN && etype != etherQinQ {
			return off, etype, true
		}
		if i == 2 {
			break
		}
		off += 2 // the tag's TCI; the next ethertype follows
	}
	return 0, 0, false
}

// layout is a parsed super-frame: where its headers are and how long.
type layout struct {
	l3, l4, hlen int // network header, transport header, end of headers
	v6           bool
	tcp          bool
}

// parse locates the headers of the GSO frame pkt described by h.
func parse(h Hdr, pkt []byte) (layout, error) {
	var lo layout
	switch h.GSOType &^ GSOECN {
	case GSOTCPv4, GSOTCPv6:
		lo.tcp = true
	case GSOUDPL4:
	default:
		return lo, ErrUnsupported
	}
	if h.GSOType&GSOECN != 0 && !lo.tcp {
		return lo, ErrMalformed
	}
	off, et, ok := l3(pkt)
	if !ok {
		return lo, ErrMalformed
	}
	lo.l3 = off
	lo.l4 = int(h.CsumStart)
	switch et {
	case etherIPv4:
		if len(pkt) < off+20 || pkt[off]>>4 != 4 {
			return lo, ErrMalformed
		}
		ihl := int(pkt[off]&0xf) * 4
		if ihl < 20 || lo.l4 != off+ihl {
			return lo, ErrMalformed
		}
		if h.GSOType&^GSOECN == GSOTCPv6 {
			return lo, ErrMalformed
		}
		want := byte(protoUDP)
		if lo.tcp {
			want = protoTCP
		}
		if pkt[off+9] != want {
			return lo, ErrMalformed
		}
	case etherIPv6:
		lo.v6 = true
		if len(pkt) < off+ipv6Len || pkt[off]>>4 != 6 || lo.l4 < off+ipv6Len {
			return lo, ErrMalformed
		}
		if h.GSOType&^GSOECN == GSOTCPv4 {
			return lo, ErrMalformed
		}
		if lo.l4 == off+ipv6Len {
			want := byte(protoUDP)
			if lo.tcp {
				want = protoTCP
			}
			if pkt[off+6] != want {
				return lo, ErrMalformed
			}
		}
		// with extension headers the transport header is at CsumStart and
		// the protocol the GSO type's: the kernel's own view
	default:
		return lo, ErrMalformed
	}
	if lo.tcp {
		if len(pkt) < lo.l4+tcpMinLen {
			return lo, ErrMalformed
		}
		thl := int(pkt[lo.l4+12]>>4) * 4
		if thl < tcpMinLen || len(pkt) < lo.l4+thl {
			return lo, ErrMalformed
		}
		lo.hlen = lo.l4 + thl
	} else {
		lo.hlen = lo.l4 + udpLen
		if len(pkt) < lo.hlen {
			return lo, ErrMalformed
		}
	}
	if h.GSOSize == 0 {
		return lo, ErrMalformed
	}
	return lo, nil
}

// Count returns how many frames Segment makes of pkt and the length of the
// longest, so that the caller can take buffers before segmenting.
func Count(h Hdr, pkt []byte) (n, maxLen int, err error) {
	if h.GSOType == GSONone {
		if err := checkCsum(h, pkt); err != nil {
			return 0, 0, err
		}
		return 1, len(pkt), nil
	}
	lo, err := parse(h, pkt)
	if err != nil {
		return 0, 0, err
	}
	pay := len(pkt) - lo.hlen
	gs := int(h.GSOSize)
	n = (pay + gs - 1) / gs
	if n == 0 {
		n = 1 // headers only: one frame, checksummed
	}
	seg := gs
	if pay < gs {
		seg = pay
	}
	return n, lo.hlen + seg, nil
}

func checkCsum(h Hdr, pkt []byte) error {
	if h.Flags&FlagNeedsCsum == 0 {
		return nil
	}
	s, o := int(h.CsumStart), int(h.CsumOffset)
	if s > len(pkt) || o+2 > len(pkt)-s {
		return ErrMalformed
	}
	return nil
}

// Complete finishes the partial checksum of frame pkt in place, as a
// device does for a frame with VIRTIO_NET_HDR_F_NEEDS_CSUM: the field at
// CsumStart+CsumOffset holds the pseudo-header sum; the one's complement
// of the sum of everything from CsumStart on replaces it. A frame without
// the flag is left as it is.
func Complete(h Hdr, pkt []byte) error {
	if err := checkCsum(h, pkt); err != nil {
		return err
	}
	if h.Flags&FlagNeedsCsum == 0 {
		return nil
	}
	s, o := int(h.CsumStart), int(h.CsumOffset)
	c := ^Fold(Sum(pkt[s:], 0))
	if c == 0 && h.CsumOffset == 6 {
		// UDP sends a zero sum as all ones (RFC 768); as the device does
		// not know the protocol it can only tell UDP by the field's place
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[s+o:], c)
	return nil
}

// Segment writes the frames of super-frame pkt (an Ethernet frame read
// from a TAP with vnet header h) into out, one frame per buffer, and their
// lengths into sizes; it returns how many it wrote. A frame without GSO is
// copied whole into out[0], its partial checksum completed when h says so.
// A GSO frame (TCP over IPv4/IPv6, UDP with USO) is cut into frames of
// h.GSOSize payload bytes, each with the headers copied and fixed: IPv4
// total length, ID (+1 per frame) and header checksum, IPv6 payload
// length, TCP sequence number (FIN and PSH on the last frame only, CWR on
// the first only), UDP length, and the transport checksum computed in
// full. out and sizes must have room for the frames ([Count]), else
// ErrOut and nothing is written.
func Segment(h Hdr, pkt []byte, out [][]byte, sizes []int) (int, error) {
	if h.GSOType == GSONone {
		if err := checkCsum(h, pkt); err != nil {
			return 0, err
		}
		if len(out) < 1 || len(sizes) < 1 || len(out[0]) < len(pkt) {
			return 0, ErrOut
		}
		copy(out[0], pkt)
		_ = Complete(h, out[0][:len(pkt)])
		sizes[0] = len(pkt)
		return 1, nil
	}
	lo, err := parse(h, pkt)
	if err != nil {
		return 0, err
	}
	hdrs, pay := pkt[:lo.hlen], pkt[lo.hlen:]
	gs := int(h.GSOSize)
	n := (len(pay) + gs - 1) / gs
	if n == 0 {
		n = 1
	}
	if len(out) < n || len(sizes) < n {
		return 0, ErrOut
	}
	for i := 0; i < n; i++ {
		seg := min(gs, len(pay)-i*gs)
		if len(out[i]) < lo.hlen+seg {
			return 0, ErrOut
		}
	}
	var id uint16
	var seq uint32
	if !lo.v6 {
		id = binary.BigEndian.Uint16(pkt[lo.l3+4:])
	}
	if lo.tcp {
		seq = binary.BigEndian.Uint32(pkt[lo.l4+4:])
	}
	for i := 0; i < n; i++ {
		start := i * gs
		seg := min(gs, len(pay)-start)
		o := out[i][:lo.hlen+seg]
		copy(o, hdrs)
		copy(o[lo.hlen:], pay[start:start+seg])
		l4len := len(o) - lo.l4
		if lo.v6 {
			binary.BigEndian.PutUint16(o[lo.l3+4:], uint16(len(o)-lo.l3-ipv6Len))
		} else {
			binary.BigEndian.PutUint16(o[lo.l3+2:], uint16(len(o)-lo.l3))
			binary.BigEndian.PutUint16(o[lo.l3+4:], id+uint16(i))
			ipv4Checksum(o[lo.l3:lo.l4])
		}
		var psum uint64
		if lo.tcp {
			t := o[lo.l4:]
			binary.BigEndian.PutUint32(t[4:], seq+uint32(start))
			if i != n-1 {
				t[13] &^= tcpFIN | tcpPSH
			}
			if i != 0 {
				t[13] &^= tcpCWR
			}
			t[16], t[17] = 0, 0
			psum = pseudo(o, lo, protoTCP, l4len)
			binary.BigEndian.PutUint16(t[16:], ^Fold(Sum(t, psum)))
		} else {
			t := o[lo.l4:]
			binary.BigEndian.PutUint16(t[4:], uint16(l4len))
			t[6], t[7] = 0, 0
			psum = pseudo(o, lo, protoUDP, l4len)
			c := ^Fold(Sum(t, psum))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(t[6:], c)
		}
		sizes[i] = len(o)
	}
	return n, nil
}

// pseudo returns the unfolded sum of the pseudo header of the transport
// header at lo.l4 in frame f, for protocol proto and l4len bytes.
func pseudo(f []byte, lo layout, proto byte, l4len int) uint64 {
	var s uint64
	if lo.v6 {
		s = Sum(f[lo.l3+8:lo.l3+40], 0)
	} else {
		s = Sum(f[lo.l3+12:lo.l3+20], 0)
	}
	return add(add(s, uint64(proto)), uint64(l4len))
}

// ipv4Checksum recomputes the checksum of IPv4 header h.
func ipv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^Fold(Sum(h, 0)))
}
