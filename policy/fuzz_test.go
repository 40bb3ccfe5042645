package policy

import "testing"

// FuzzHash: no policy may panic on any input, and the same input must give
// the same output. It also checks properties that hold for every frame:
// frames shorter than an Ethernet header hash to 0; layer2 is the eth hash
// of the (possibly untagged) header; the results never depend on bytes
// past the frame (the slice is re-sliced with spare capacity holding junk).
func FuzzHash(f *testing.F) {
	f.Add(frameIPv4TCP())
	f.Add(cat(macs(), tag(0x88a8, 10), tag(0x8100, 100), u16(0x0800), flowTCP()))
	f.Add(cat(eth(0x0800), ipv4(47, "10.0.0.1", "10.0.0.2", 0, 64), u16(0xb000), u16(0x6558), u32(0), u32(1), u32(2), eth(0x0800), flowTCP()))
	f.Add(cat(eth(0x86dd), ipv6(0, "2001:db8::1", "2001:db8::2", 28), []byte{44, 0, 0, 0, 0, 0, 0, 0}, []byte{6, 0, 0, 1, 0, 0, 0, 1}, tcp(1, 2)))
	f.Add(cat(eth(0x0800), ipv4(1, "192.168.1.1", ipA, 0, 36), icmp(3, 3, 0, 0), ipv4(17, ipA, "8.8.8.8", 0, 8), udp(5353, 53, 0)))
	f.Add(cat(eth(0x8864), []byte{0x11, 0, 0, 1}, u16(42), u16(0x0021), flowTCP()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		// Junk after the end of the frame must not be read.
		padded := make([]byte, len(frame), len(frame)+64)
		copy(padded, frame)
		junk := padded[len(frame):cap(padded)]
		for i := range junk {
			junk[i] = 0xa5
		}
		for _, p := range []HashPolicy{Layer2, Layer34, Layer23, Encap23, Encap34, VlanSrcMac, HashPolicy(99)} {
			h := Hash(frame, p)
			if h2 := Hash(padded, p); h2 != h {
				t.Fatalf("%s: %#x with trailing capacity, %#x without", p, h2, h)
			}
			if len(frame) < ethHdrLen && h != 0 {
				t.Fatalf("%s: short frame hashed to %#x", p, h)
			}
			for _, n := range []int{1, 2, 3, 4, 8} {
				if s := SlaveIndex(h, n); s < 0 || s >= n {
					t.Fatalf("SlaveIndex(%#x, %d) = %d", h, n, s)
				}
			}
		}
		if len(frame) >= ethHdrLen {
			proto := uint16(frame[12])<<8 | uint16(frame[13])
			if isVLANProto(proto) && len(frame) >= 18 {
				proto = uint16(frame[16])<<8 | uint16(frame[17])
			}
			if want := uint32(frame[5]^frame[11]) ^ uint32(proto); Hash(frame, Layer2) != want {
				t.Fatalf("layer2 %#x, want %#x", Hash(frame, Layer2), want)
			}
		}
	})
}

// FuzzEtherType: EtherType, IsSlowProtocol and IsIGMP never panic, and the
// results are consistent with each other and within the frame.
func FuzzEtherType(f *testing.F) {
	f.Add(frameIPv4TCP())
	f.Add(cat(macs(), tag(0x88a8, 10), tag(0x8100, 100), u16(0x0800), flowTCP()))
	f.Add(cat(eth(0x8809), []byte{1, 1}))
	f.Add(cat(macs(), tag(0x8100, 1), u16(0x0800), ipv4(2, "1.1.1.1", "224.0.0.1", 0, 0)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		etype, off, tci, tagged := EtherType(frame)
		if off == 0 && (etype != 0 || tci != 0 || tagged) {
			t.Fatalf("unclassified frame with results %#x %#x %v", etype, tci, tagged)
		}
		if off == 0 && len(frame) >= 22 {
			t.Fatalf("%d-byte frame not classified", len(frame))
		}
		if off > len(frame) {
			t.Fatalf("l3off %d beyond frame of %d", off, len(frame))
		}
		if off != 0 && off != 14 && off != 18 && off != 22 {
			t.Fatalf("l3off %d", off)
		}
		if tagged != (off > 14) {
			t.Fatalf("tagged %v with l3off %d", tagged, off)
		}
		if IsSlowProtocol(frame) && (etype != 0x8809 || tagged) {
			t.Fatalf("slow protocol but EtherType = %#x, tagged %v", etype, tagged)
		}
		if IsIGMP(frame) {
			if len(frame) < 34 {
				t.Fatalf("IGMP in %d bytes", len(frame))
			}
		}
	})
}
