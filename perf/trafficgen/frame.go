// Package trafficgen is the measurement tooling's traffic generator and sink,
// without kernel pktgen: the generator is an XDP program run in the
// BPF_PROG_RUN "live frames" mode (BPF_F_TEST_XDP_LIVE_FRAMES, Linux ≥ 5.18),
// which builds frames from a template in a page pool and sends every frame
// the program returns XDP_REDIRECT for through the ordinary XDP redirect path,
// as xdp-trafficgen does; the sink is an XDP program that counts and drops.
// Both are assembled in Go (cilium/ebpf/asm), so nothing here needs clang.
//
// Generated frames are Ethernet/IPv4/UDP with a 16-byte tag right after the
// UDP header:
//
//	offset 42  u32  magic "BAGN" (0x4e474142, host order)
//	offset 46  u16  CPU the generator ran on (host order)
//	offset 48  u16  flow number, 0..Flows-1 (host order)
//	offset 50  u64  sequence number (per generator CPU, from 0, host order)
//
// The generator rewrites, per frame, the UDP source port and the low 16 bits
// of the IPv4 source address (scrambled, with an incremental header checksum update)
// from the sequence number, so the frames belong to Flows distinct flows
// that every layer2+3 / layer3+4 hash policy can spread.
package trafficgen

import (
	"encoding/binary"
	"fmt"
	"net"
)

// Frame layout (offsets from the start of the Ethernet header).
const (
	offIPCsum   = 14 + 10 // IPv4 header checksum
	offIPSrcLo  = 14 + 14 // low 16 bits of the IPv4 source address
	offUDPSport = 34
	offMagic    = 42
	offCPU      = 46
	offFlow     = 48
	offSeq      = 50
	// TagEnd is the first byte after the tag: the shortest frame that carries it.
	TagEnd = 58

	// ipMul scatters the flow number over the source address's low 16 bits
	// (odd, so flow → address is one-to-one): with plain flow+1 the address
	// and the port change in step and the layer3+4 hash only uses half of
	// the members of a 4-member bond.
	ipMul = 40503

	// Magic marks generated frames ("BAGN" read as a little-endian u32).
	Magic = 0x4e474142

	// MinSize and MaxJumboSize bound Spec.Size (frame size on the wire,
	// with FCS); the live-frames generator takes at most MaxSize.
	MinSize      = 64
	MaxSize      = 3504 // a live-frames page holds at most ~3.5 KB of packet data
	MaxJumboSize = 9018 // an MTU 9000 frame: 9000 + Ethernet header + FCS (the AF_XDP generator sends it as a multi-buffer chain)
	fcsLen       = 4
)

// Spec describes the generated frames.
type Spec struct {
	Size   int // frame size on the wire including the 4-byte FCS (pktgen's pkt_size); the buffer is Size-4 bytes
	Flows  int // distinct flows, 1..65536
	SrcMAC net.HardwareAddr
	DstMAC net.HardwareAddr
	SrcIP  net.IP // the low 16 bits are replaced per flow (flow*40503+1, a bijection)
	DstIP  net.IP
	Sport  uint16 // first UDP source port; flow f uses Sport+f (mod 65536)
	Dport  uint16
}

// DefaultSpec returns the defaults: 64-byte frames, 1024 flows, 198.19.0.0/16
// to 198.18.0.1 (the RFC 2544 benchmarking range), UDP 1024+ → 9 (discard).
func DefaultSpec() Spec {
	return Spec{
		Size:   64,
		Flows:  1024,
		SrcMAC: net.HardwareAddr{0x02, 0x42, 0xb0, 0, 0, 1},
		DstMAC: net.HardwareAddr{0x02, 0x42, 0xa0, 0, 0, 1},
		SrcIP:  net.IPv4(198, 19, 0, 0).To4(),
		DstIP:  net.IPv4(198, 18, 0, 1).To4(),
		Sport:  1024,
		Dport:  9,
	}
}

// Validate checks the spec.
func (s *Spec) Validate() error {
	if s.Size < MinSize || s.Size > MaxJumboSize {
		return fmt.Errorf("size %d: must be %d..%d (frame size with FCS; live frames up to %d)", s.Size, MinSize, MaxJumboSize, MaxSize)
	}
	if s.Flows < 1 || s.Flows > 65536 {
		return fmt.Errorf("flows %d: must be 1..65536", s.Flows)
	}
	if len(s.SrcMAC) != 6 || len(s.DstMAC) != 6 {
		return fmt.Errorf("MAC addresses must be 6 bytes")
	}
	if s.SrcIP.To4() == nil || s.DstIP.To4() == nil {
		return fmt.Errorf("addresses must be IPv4")
	}
	return nil
}

// Template builds the frame the kernel copies into every live frame: the
// flow fields hold flow -1 (source port Sport-1, address low 16 bits 0) and
// the checksum matches them; the program rewrites them per frame.
func (s *Spec) Template() []byte {
	n := s.Size - fcsLen
	f := make([]byte, n)
	copy(f[0:6], s.DstMAC)
	copy(f[6:12], s.SrcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], s.SrcIP.To4())
	ip[14], ip[15] = 0, 0
	copy(ip[16:20], s.DstIP.To4())
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	binary.BigEndian.PutUint16(f[34:], s.Sport-1)
	binary.BigEndian.PutUint16(f[36:], s.Dport)
	binary.BigEndian.PutUint16(f[38:], uint16(n-34))
	// UDP checksum 0: none (allowed for IPv4)
	binary.LittleEndian.PutUint32(f[offMagic:], Magic)
	return f
}

// ipChecksum is the IPv4 header checksum of h (with its checksum field zero).
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// csumK is the constant the program adds the new address word to: the
// one's complement of the template checksum (RFC 1624 with old word 0).
func (s *Spec) csumK() int32 {
	t := s.Template()
	return int32(^binary.BigEndian.Uint16(t[offIPCsum:]))
}

// Apply rewrites a template copy the way the generator program does for
// sequence number seq on CPU cpu (used by tests to check the program).
func (s *Spec) Apply(f []byte, seq uint64, cpu uint32) {
	st := s.Stamper()
	st.Stamp(f, seq, cpu)
}

// Stamper writes the per-frame fields into copies of the template, exactly
// as the generator program does, without recomputing anything per frame:
// the user-space generators (AF_XDP, when live frames are not available)
// use it on every frame they send.
type Stamper struct {
	flows uint64
	sport uint64
	k     uint32 // one's complement of the template's IPv4 checksum (RFC 1624)
}

// Stamper precomputes what Stamp needs for this spec.
func (s *Spec) Stamper() Stamper {
	return Stamper{flows: uint64(s.Flows), sport: uint64(s.Sport), k: uint32(s.csumK())}
}

// Stamp rewrites f, a copy of the template, for sequence number seq on
// generator CPU cpu: tag (CPU, flow, sequence number), UDP source port,
// IPv4 source address low 16 bits and header checksum. It returns the flow.
func (st *Stamper) Stamp(f []byte, seq uint64, cpu uint32) uint64 {
	_ = f[TagEnd-1]
	flow := seq % st.flows
	binary.LittleEndian.PutUint16(f[offCPU:], uint16(cpu))
	binary.LittleEndian.PutUint16(f[offFlow:], uint16(flow))
	binary.LittleEndian.PutUint64(f[offSeq:], seq)
	binary.BigEndian.PutUint16(f[offUDPSport:], uint16(st.sport+flow))
	lo := uint32(flow*ipMul+1) & 0xffff
	sum := lo + st.k
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(f[offIPSrcLo:], uint16(lo))
	binary.BigEndian.PutUint16(f[offIPCsum:], uint16(sum^0xffff))
	return flow
}

// Plan splits the next frames of a generator over its n = len(avail)
// devices, where frame seq goes to device (seq % flows) % n (flow f to
// device f mod n, as the XDP generator redirects): starting at seq, it
// takes consecutive frames while the device of the next frame can still
// take one (device d at most avail[d] frames), at most max frames in all.
// It writes how many frames each device gets into counts (len(avail)) and
// returns the total. Frames are never skipped, so every flow's frames keep
// their order.
func Plan(seq, flows, max uint64, avail, counts []uint32) uint64 {
	n := uint64(len(avail))
	clear(counts)
	if n == 1 {
		t := min(max, uint64(avail[0]))
		counts[0] = uint32(t)
		return t
	}
	var t uint64
	for ; t < max; t++ {
		d := ((seq + t) % flows) % n
		if counts[d] == avail[d] {
			break
		}
		counts[d]++
	}
	return t
}

// Tag returns the generator tag of frame f, ok false when f is not a
// generated frame.
func Tag(f []byte) (cpu uint32, flow uint16, seq uint64, ok bool) {
	if len(f) < TagEnd || binary.BigEndian.Uint16(f[12:]) != 0x0800 || binary.LittleEndian.Uint32(f[offMagic:]) != Magic {
		return 0, 0, 0, false
	}
	return uint32(binary.LittleEndian.Uint16(f[offCPU:])), binary.LittleEndian.Uint16(f[offFlow:]), binary.LittleEndian.Uint64(f[offSeq:]), true
}
