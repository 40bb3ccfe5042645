package policy

import "testing"

// benchFrame is a 64-byte IPv4/TCP frame (54 bytes of headers, padded to
// the 60-byte minimum plus 4 bytes standing in for the FCS).
func benchFrame() []byte {
	f := frameIPv4TCP()
	return append(f, make([]byte, 64-len(f))...)
}

var sink uint32

func BenchmarkHash(b *testing.B) {
	frame := benchFrame()
	if len(frame) != 64 {
		b.Fatalf("frame is %d bytes", len(frame))
	}
	for _, p := range allPolicies {
		b.Run(p.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			var h uint32
			for i := 0; i < b.N; i++ {
				h ^= Hash(frame, p)
			}
			sink = h
		})
	}
}

// BenchmarkHashEncapGRE measures the dissector through one GRE layer.
func BenchmarkHashEncapGRE(b *testing.B) {
	frame := cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 64), u16(0), u16(0x0800), flowTCP())
	b.ReportAllocs()
	var h uint32
	for i := 0; i < b.N; i++ {
		h ^= Hash(frame, Encap34)
	}
	sink = h
}

// BenchmarkSelectXOR is the balance-xor/802.3ad decision: hash + modulo.
func BenchmarkSelectXOR(b *testing.B) {
	frame := benchFrame()
	b.ReportAllocs()
	n := 3
	var s int
	for i := 0; i < b.N; i++ {
		s += SlaveIndex(Hash(frame, Layer34), n)
	}
	sink = uint32(s)
}

func BenchmarkRoundRobin(b *testing.B) {
	for _, c := range []struct {
		name string
		pps  uint32
	}{{"pps1", 1}, {"pps3", 3}, {"random", 0}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			rr := NewRoundRobin(c.pps, 1)
			var s int
			for i := 0; i < b.N; i++ {
				s += SlaveIndex(rr.Next(), 3)
			}
			sink = uint32(s)
		})
	}
}

func BenchmarkEtherType(b *testing.B) {
	frame := cat(macs(), tag(0x8100, 7), u16(0x0800), flowTCP())
	b.ReportAllocs()
	var x int
	for i := 0; i < b.N; i++ {
		e, off, _, _ := EtherType(frame)
		x += int(e) + off
		if IsIGMP(frame) || IsSlowProtocol(frame) {
			x++
		}
	}
	sink = uint32(x)
}
