package vnet

import "encoding/binary"

// MaxSuper is the longest super-frame a Coalescer builds, without its
// vnet header: an IPv4 or IPv6 packet of at most 65535 bytes (total
// length, payload length) behind Ethernet and up to two VLAN tags.
const MaxSuper = 22 + 65535

const tableSize = 256 // flow table slots (a power of two)

// Coalescer is receive coalescing (GRO) for a TAP written with vnet
// headers: it takes a batch of Ethernet frames in order ([Coalescer.Add])
// and makes of them a list of items in the same order ([Coalescer.Item]),
// each either a frame as given or a super-frame: consecutive in-order
// segments of one flow merged into one frame with a virtio_net_hdr asking
// for GSO and a partial checksum, which the host stack takes as one
// packet.
//
// TCP segments merge as Linux's tcp_gro_receive merges them: same
// Ethernet header, IP addresses, TOS/traffic class, TTL/hop limit (and
// IPv6 flow label), ports, acknowledgement number, flags (but PSH),
// window and options; the sequence number continuing the super-frame's;
// payload not longer than the first segment's (a shorter one ends the
// super-frame), no SYN, FIN, RST, URG or CWR; PSH ends it (and is set on
// it). UDP datagrams merge (when UDP is on: the TAP takes USO) when their
// addresses and ports are the same and every one but the last has the
// first one's size. Each merged segment's checksum is verified first (the
// host stack trusts a partial checksum, so a corrupted segment must not
// hide in a super-frame): a segment with a bad checksum is passed on
// alone, for the host stack to drop. A frame of a flow that cannot be
// merged ends that flow's super-frame, so the order within a flow is kept;
// frames of different flows may be reordered relative to each other.
//
// The frames given to Add must stay unchanged until the items are read;
// a merged item is copied into one of the Coalescer's buffers. Nothing is
// allocated after NewCoalescer.
type Coalescer struct {
	// UDP enables coalescing UDP datagrams (the TAP took TUN_F_USO4/6).
	UDP bool

	bufs  [][]byte
	nbuf  int // buffers in use
	items []item
	table [tableSize]int32 // flow hash → item index + 1
}

type item struct {
	frame []byte // the frame as given, while single
	buf   int    // buffer index once merged, else -1
	n     int    // frame bytes in the buffer (after HdrLen)
	lo    layout
	segs  int
	gso   int // payload of the first segment
	seq   uint32
	open  bool
	flow  bool // a TCP/UDP flow item (lo is valid)
}

// NewCoalescer makes a coalescer with nbuf super-frame buffers (each
// HdrLen+MaxSuper bytes) and room for maxItems items per batch.
func NewCoalescer(nbuf, maxItems int) *Coalescer {
	c := &Coalescer{bufs: make([][]byte, nbuf), items: make([]item, 0, maxItems)}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, HdrLen+MaxSuper)
	}
	return c
}

// Reset empties the list for the next batch.
func (c *Coalescer) Reset() {
	c.items = c.items[:0]
	c.nbuf = 0
	clear(c.table[:])
}

// Len returns the number of items.
func (c *Coalescer) Len() int { return len(c.items) }

// Item returns item i: when super is false, frame is a frame as given to
// Add (to be written behind a zero vnet header) and segs 1; when true, b
// is a vnet header followed by a super-frame of segs frames, written
// as it is.
func (c *Coalescer) Item(i int) (b []byte, super bool, segs int) {
	it := &c.items[i]
	if it.buf < 0 {
		return it.frame, false, 1
	}
	buf := c.bufs[it.buf]
	f := buf[HdrLen : HdrLen+it.n]
	lo := it.lo
	h := Hdr{Flags: FlagNeedsCsum, HdrLen: uint16(lo.hlen), GSOSize: uint16(it.gso), CsumStart: uint16(lo.l4)}
	if lo.v6 {
		binary.BigEndian.PutUint16(f[lo.l3+4:], uint16(it.n-lo.l3-ipv6Len))
	} else {
		binary.BigEndian.PutUint16(f[lo.l3+2:], uint16(it.n-lo.l3))
		ipv4Checksum(f[lo.l3:lo.l4])
	}
	l4len := it.n - lo.l4
	if lo.tcp {
		h.CsumOffset = 16
		h.GSOType = GSOTCPv4
		if lo.v6 {
			h.GSOType = GSOTCPv6
		}
		binary.BigEndian.PutUint16(f[lo.l4+16:], Fold(pseudo(f, lo, protoTCP, l4len)))
	} else {
		h.CsumOffset = 6
		h.GSOType = GSOUDPL4
		binary.BigEndian.PutUint16(f[lo.l4+4:], uint16(l4len))
		binary.BigEndian.PutUint16(f[lo.l4+6:], Fold(pseudo(f, lo, protoUDP, l4len)))
	}
	_ = h.Encode(buf)
	return buf[:HdrLen+it.n], true, it.segs
}

// seg is a parsed frame offered to Add.
type seg struct {
	lo    layout
	pay   int // payload bytes
	seq   uint32
	flags byte
	hash  uint32
	ok    bool // mergeable (else it only ends its flow's super-frame)
}

// Add appends frame to the batch, merged into an earlier item of its flow
// when it may be. It returns false, taking nothing, when the batch has no
// room for another item: read the items, Reset, and Add again.
func (c *Coalescer) Add(frame []byte) bool {
	s, isFlow := c.classify(frame)
	if isFlow {
		slot := s.hash & (tableSize - 1)
		if k := c.table[slot]; k > 0 {
			it := &c.items[k-1]
			if sameFlow(it, frame, s) {
				if s.ok && c.merge(it, frame, s) {
					return true
				}
				it.open = false
			}
		}
		if len(c.items) == cap(c.items) {
			return false
		}
		c.items = append(c.items, item{frame: frame, buf: -1, lo: s.lo, segs: 1, gso: s.pay,
			seq: s.seq + uint32(s.pay), open: s.ok && s.flags&tcpPSH == 0, flow: true})
		c.table[slot] = int32(len(c.items))
		return true
	}
	if len(c.items) == cap(c.items) {
		return false
	}
	c.items = append(c.items, item{frame: frame, buf: -1, segs: 1})
	return true
}

// classify parses frame: isFlow when it is TCP or UDP over IPv4 (no
// options, not a fragment) or IPv6 (no extension headers) whose lengths
// agree with the frame's; s.ok when it may also be merged.
func (c *Coalescer) classify(f []byte) (s seg, isFlow bool) {
	off, et, ok := l3(f)
	if !ok {
		return s, false
	}
	lo := layout{l3: off}
	var proto byte
	switch et {
	case etherIPv4:
		if len(f) < off+20 || f[off] != 0x45 || binary.BigEndian.Uint16(f[off+2:]) != uint16(len(f)-off) ||
			binary.BigEndian.Uint16(f[off+6:])&0x3fff != 0 {
			return s, false
		}
		proto = f[off+9]
		lo.l4 = off + 20
	case etherIPv6:
		if len(f) < off+ipv6Len || f[off]>>4 != 6 || int(binary.BigEndian.Uint16(f[off+4:])) != len(f)-off-ipv6Len {
			return s, false
		}
		lo.v6 = true
		proto = f[off+6]
		lo.l4 = off + ipv6Len
	default:
		return s, false
	}
	switch proto {
	case protoTCP:
		if len(f) < lo.l4+tcpMinLen {
			return s, false
		}
		thl := int(f[lo.l4+12]>>4) * 4
		if thl < tcpMinLen || len(f) < lo.l4+thl {
			return s, false
		}
		lo.tcp = true
		lo.hlen = lo.l4 + thl
		s.seq = binary.BigEndian.Uint32(f[lo.l4+4:])
		s.flags = f[lo.l4+13]
	case protoUDP:
		lo.hlen = lo.l4 + udpLen
		if len(f) < lo.hlen || int(binary.BigEndian.Uint16(f[lo.l4+4:])) != len(f)-lo.l4 {
			return s, false
		}
	default:
		return s, false
	}
	s.lo = lo
	s.pay = len(f) - lo.hlen
	s.hash = flowHash(f, lo)
	switch {
	case s.pay == 0:
	case lo.tcp && s.flags&(tcpSYN|tcpFIN|tcpRST|tcpURG|tcpCWR) != 0:
	case !lo.tcp && (!c.UDP || (!lo.v6 && binary.BigEndian.Uint16(f[lo.l4+6:]) == 0)):
	default:
		s.ok = true
	}
	return s, true
}

// flowHash mixes a flow's addresses and ports.
func flowHash(f []byte, lo layout) uint32 {
	var a []byte
	if lo.v6 {
		a = f[lo.l3+8 : lo.l3+40]
	} else {
		a = f[lo.l3+12 : lo.l3+20]
	}
	h := binary.BigEndian.Uint32(f[lo.l4:]) * 0x9e3779b1
	for len(a) >= 4 {
		h = (h ^ binary.BigEndian.Uint32(a)) * 0x85ebca6b
		h ^= h >> 15
		a = a[4:]
	}
	return h ^ h>>16
}

// sameFlow reports whether frame (parsed as s) is of item it's flow:
// same layout, Ethernet header, addresses, protocol and ports.
func sameFlow(it *item, f []byte, s seg) bool {
	if !it.flow || it.lo != s.lo {
		return false
	}
	g := it.first()
	lo := s.lo
	if string(g[:lo.l3]) != string(f[:lo.l3]) || string(g[lo.l4:lo.l4+4]) != string(f[lo.l4:lo.l4+4]) {
		return false
	}
	if lo.v6 {
		return string(g[lo.l3+8:lo.l3+40]) == string(f[lo.l3+8:lo.l3+40])
	}
	return string(g[lo.l3+12:lo.l3+20]) == string(f[lo.l3+12:lo.l3+20]) && g[lo.l3+9] == f[lo.l3+9]
}

// first returns the item's first frame (its headers are the super-frame's).
func (it *item) first() []byte {
	return it.frame
}

// merge appends frame (parsed as s, of it's flow) to item it when the
// rules allow and a buffer is there; false leaves it unchanged.
func (c *Coalescer) merge(it *item, f []byte, s seg) bool {
	if !it.open || s.pay > it.gso {
		return false
	}
	g, lo := it.first(), s.lo
	if lo.v6 {
		// version, traffic class, flow label; hop limit
		if string(g[lo.l3:lo.l3+4]) != string(f[lo.l3:lo.l3+4]) || g[lo.l3+7] != f[lo.l3+7] {
			return false
		}
	} else if g[lo.l3+1] != f[lo.l3+1] || g[lo.l3+8] != f[lo.l3+8] || g[lo.l3+6]&0x40 != f[lo.l3+6]&0x40 {
		// TOS, TTL, DF
		return false
	}
	if lo.tcp {
		t, u := g[lo.l4:lo.hlen], f[lo.l4:lo.hlen]
		if s.seq != it.seq || string(t[8:12]) != string(u[8:12]) || t[12] != u[12] ||
			t[13]&^tcpPSH != u[13]&^tcpPSH || string(t[14:16]) != string(u[14:16]) || string(t[20:]) != string(u[20:]) {
			return false
		}
	}
	n := it.n
	if it.buf < 0 {
		n = len(g)
	}
	if n+s.pay > MaxSuper || n+s.pay-lo.l3 > maxIPTotal {
		return false
	}
	// the segment's own checksum, before it hides in a partial one
	if !verify(f, lo) {
		return false
	}
	if it.buf < 0 {
		if !verify(g, lo) || c.nbuf == len(c.bufs) {
			return false
		}
		it.buf = c.nbuf
		c.nbuf++
		it.n = copy(c.bufs[it.buf][HdrLen:], g)
	}
	buf := c.bufs[it.buf]
	it.n += copy(buf[HdrLen+it.n:], f[lo.hlen:])
	it.segs++
	it.seq += uint32(s.pay)
	if s.pay < it.gso {
		it.open = false
	}
	if lo.tcp && s.flags&tcpPSH != 0 {
		buf[HdrLen+lo.l4+13] |= tcpPSH
		it.open = false
	}
	return true
}

// protoOff is the offset of the protocol (next header) byte in the IP
// header.
func protoOff(lo layout) int {
	if lo.v6 {
		return 6
	}
	return 9
}

// verify checks the transport checksum of frame f.
func verify(f []byte, lo layout) bool {
	if !lo.tcp && !lo.v6 && binary.BigEndian.Uint16(f[lo.l4+6:]) == 0 {
		return false
	}
	l4len := len(f) - lo.l4
	return Fold(Sum(f[lo.l4:], pseudo(f, lo, f[lo.l3+protoOff(lo)], l4len))) == 0xffff
}
