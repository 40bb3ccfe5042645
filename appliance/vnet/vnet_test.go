package vnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestHdrRoundTrip(t *testing.T) {
	h := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	var b [HdrLen]byte
	if err := h.Encode(b[:]); err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 0x81, 54, 0, 0xa8, 0x05, 34, 0, 16, 0}; !bytes.Equal(b[:], want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	var g Hdr
	if err := g.Decode(b[:]); err != nil || g != h {
		t.Fatalf("decoded %+v %v, want %+v", g, err, h)
	}
	if g.Decode(b[:9]) == nil || h.Encode(b[:9]) == nil {
		t.Fatal("short buffer accepted")
	}
}

func TestSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := ^Fold(Sum(b, 0)), refSum(b, nil); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("len %d: %#04x, want %#04x", n, got, want)
		}
	}
	if Fold(Sum(bytes.Repeat([]byte{0xff}, 4096), ^uint64(0))) != 0xffff {
		t.Fatal("carry lost")
	}
}

// gsoHdr is the vnet header the kernel gives a super-frame of s.
func gsoHdr(s spec, lo layout, gso int) Hdr {
	h := Hdr{Flags: FlagNeedsCsum, HdrLen: uint16(lo.hlen), GSOSize: uint16(gso), CsumStart: uint16(lo.l4), CsumOffset: 16}
	switch {
	case s.udp:
		h.GSOType, h.CsumOffset = GSOUDPL4, 6
	case s.v6:
		h.GSOType = GSOTCPv6
	default:
		h.GSOType = GSOTCPv4
	}
	if s.flags&tcpCWR != 0 {
		h.GSOType |= GSOECN
	}
	return h
}

func outBufs(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

func TestSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    spec
		gso  int
	}{
		{"tcp4 even", spec{payload: 4 * 1448}, 1448},
		{"tcp4 last shorter, odd", spec{payload: 5001, seq: 0xfffff000}, 1448},
		{"tcp4 odd gso", spec{payload: 1000, ipID: 0xfffe}, 333},
		{"tcp4 one segment", spec{payload: 100}, 1448},
		{"tcp4 options, FIN PSH CWR", spec{payload: 3000, opts: 12, flags: tcpACK | tcpPSH | tcpFIN | tcpCWR}, 1000},
		{"tcp6", spec{v6: true, payload: 65000 - 60}, 1428},
		{"tcp6 odd", spec{v6: true, payload: 2999}, 1001},
		{"udp4", spec{udp: true, payload: 1700}, 500},
		{"udp6 odd", spec{v6: true, udp: true, payload: 4097}, 1203},
		{"tcp4 vlan", spec{vlan: true, payload: 3001}, 1448},
		{"udp6 vlan", spec{vlan: true, v6: true, udp: true, payload: 3333}, 1111},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, lo := build(tc.s)
			h := gsoHdr(tc.s, lo, tc.gso)
			want := (tc.s.payload + tc.gso - 1) / tc.gso
			n, maxLen, err := Count(h, f)
			if err != nil || n != want || maxLen != lo.hlen+min(tc.gso, tc.s.payload) {
				t.Fatalf("Count %d %d %v, want %d %d", n, maxLen, err, want, lo.hlen+min(tc.gso, tc.s.payload))
			}
			out, sizes := outBufs(n, maxLen)
			if k, err := Segment(h, f, out[:n-1], sizes); n > 1 && !errors.Is(err, ErrOut) {
				t.Fatalf("too few buffers: %d %v", k, err)
			}
			if n, err = Segment(h, f, out, sizes); err != nil || n != want {
				t.Fatalf("Segment %d %v, want %d", n, err, want)
			}
			var pay []byte
			seq := binary.BigEndian.Uint32(f[lo.l4+4:])
			for i := 0; i < n; i++ {
				g := out[i][:sizes[i]]
				checkFrame(t, g, lo)
				if !bytes.Equal(g[:lo.l3], f[:lo.l3]) {
					t.Fatalf("segment %d: Ethernet header changed", i)
				}
				if !lo.v6 {
					if id := binary.BigEndian.Uint16(g[lo.l3+4:]); id != tc.s.ipID+uint16(i) {
						t.Fatalf("segment %d: IPv4 ID %d", i, id)
					}
				}
				if lo.tcp {
					if got := binary.BigEndian.Uint32(g[lo.l4+4:]); got != seq+uint32(len(pay)) {
						t.Fatalf("segment %d: seq %d, want %d", i, got, seq+uint32(len(pay)))
					}
					fl, wf := g[lo.l4+13], f[lo.l4+13]
					if i != n-1 {
						wf &^= tcpFIN | tcpPSH
					}
					if i != 0 {
						wf &^= tcpCWR
					}
					if fl != wf {
						t.Fatalf("segment %d: flags %#x, want %#x", i, fl, wf)
					}
					if !bytes.Equal(g[lo.l4+20:lo.hlen], f[lo.l4+20:lo.hlen]) {
						t.Fatalf("segment %d: options changed", i)
					}
				}
				if i < n-1 && sizes[i]-lo.hlen != tc.gso {
					t.Fatalf("segment %d: %d payload bytes, want %d", i, sizes[i]-lo.hlen, tc.gso)
				}
				pay = append(pay, g[lo.hlen:]...)
			}
			if !bytes.Equal(pay, f[lo.hlen:]) {
				t.Fatal("payload differs")
			}
		})
	}
}

func TestSegmentNoGSO(t *testing.T) {
	for _, s := range []spec{{payload: 333, partial: true}, {udp: true, v6: true, payload: 1001, partial: true}, {vlan: true, payload: 7, partial: true}} {
		f, lo := build(s)
		co := 16
		if s.udp {
			co = 6
		}
		h := Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(lo.l4), CsumOffset: uint16(co)}
		out, sizes := outBufs(1, len(f))
		if n, err := Segment(h, f, out, sizes); n != 1 || err != nil || sizes[0] != len(f) {
			t.Fatalf("%d %v", n, err)
		}
		checkFrame(t, out[0][:sizes[0]], lo)
		if err := Complete(h, f); err != nil {
			t.Fatal(err)
		}
		checkFrame(t, f, lo)
		// no flag: copied as it is
		if n, err := Segment(Hdr{}, f[:20], out, sizes); n != 1 || err != nil || !bytes.Equal(out[0][:sizes[0]], f[:20]) {
			t.Fatalf("plain copy: %d %v", n, err)
		}
		if _, err := Segment(Hdr{}, f, [][]byte{make([]byte, len(f)-1)}, sizes); !errors.Is(err, ErrOut) {
			t.Fatalf("short buffer: %v", err)
		}
	}
}

func TestSegmentMalformed(t *testing.T) {
	f, lo := build(spec{payload: 3000})
	good := gsoHdr(spec{}, lo, 1000)
	f6, lo6 := build(spec{v6: true, payload: 3000})
	for _, tc := range []struct {
		name string
		h    Hdr
		f    []byte
	}{
		{"UFO", Hdr{GSOType: GSOUDP, GSOSize: 100, CsumStart: uint16(lo.l4)}, f},
		{"unknown type", Hdr{GSOType: 9, GSOSize: 100, CsumStart: uint16(lo.l4)}, f},
		{"gso size 0", Hdr{GSOType: GSOTCPv4, CsumStart: uint16(lo.l4)}, f},
		{"csum start not the TCP header", Hdr{GSOType: GSOTCPv4, GSOSize: 100, CsumStart: uint16(lo.l4 + 4)}, f},
		{"TCPv6 on IPv4", Hdr{GSOType: GSOTCPv6, GSOSize: 100, CsumStart: uint16(lo.l4)}, f},
		{"TCPv4 on IPv6", Hdr{GSOType: GSOTCPv4, GSOSize: 100, CsumStart: uint16(lo6.l4)}, f6},
		{"USO on TCP", Hdr{GSOType: GSOUDPL4, GSOSize: 100, CsumStart: uint16(lo.l4)}, f},
		{"ECN on UDP", Hdr{GSOType: GSOUDPL4 | GSOECN, GSOSize: 100, CsumStart: uint16(lo.l4)}, f},
		{"truncated", good, f[:lo.l4+10]},
		{"runt", good, f[:13]},
		{"not IP", good, append([]byte(nil), f[:12]...)},
		{"csum past the end", Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(len(f) - 1), CsumOffset: 0}, f},
		{"csum offset past the end", Hdr{Flags: FlagNeedsCsum, CsumStart: 10, CsumOffset: 0xffff}, f},
	} {
		out, sizes := outBufs(8, 4096)
		if n, err := Segment(tc.h, tc.f, out, sizes); err == nil || n != 0 {
			t.Errorf("%s: %d frames, err %v", tc.name, n, err)
		}
		if _, _, err := Count(tc.h, tc.f); err == nil {
			t.Errorf("%s: Count accepted it", tc.name)
		}
	}
}

func FuzzSegment(f *testing.F) {
	for _, s := range []spec{{payload: 3000, partial: true}, {v6: true, udp: true, payload: 2000, vlan: true, partial: true}, {v6: true, payload: 10, partial: true}} {
		fr, lo := build(s)
		var hb [HdrLen]byte
		_ = gsoHdr(s, lo, 700).Encode(hb[:])
		f.Add(append(hb[:], fr...))
	}
	out, sizes := outBufs(64, 2048)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Hdr
		if h.Decode(b) != nil {
			return
		}
		pkt := b[HdrLen:]
		cn, maxLen, cerr := Count(h, pkt)
		n, err := Segment(h, pkt, out, sizes)
		if (cerr == nil) != (err == nil || errors.Is(err, ErrOut)) {
			t.Fatalf("Count %v, Segment %v", cerr, err)
		}
		if err != nil {
			return
		}
		if n != cn {
			t.Fatalf("Segment %d frames, Count %d", n, cn)
		}
		for i := 0; i < n; i++ {
			if sizes[i] > maxLen || sizes[i] > len(out[i]) {
				t.Fatalf("frame %d: %d bytes, max %d", i, sizes[i], maxLen)
			}
		}
		if h.GSOType != GSONone {
			lo, _ := parse(h, pkt)
			for i := 0; i < n; i++ {
				g := out[i][:sizes[i]]
				// every checksum the segments carry is right
				if !lo.v6 && refSum(g[lo.l3:lo.l4], nil) != 0 {
					t.Fatalf("frame %d: IPv4 header checksum", i)
				}
				if !verify(g, lo) && !(lo.v6 && lo.l4 != lo.l3+ipv6Len) {
					t.Fatalf("frame %d: transport checksum", i)
				}
			}
		}
	})
}

// segmentsOf builds a super-frame of s and cuts it with Segment.
func segmentsOf(t testing.TB, s spec, gso int) [][]byte {
	s.partial = true
	f, lo := build(s)
	h := gsoHdr(s, lo, gso)
	n, maxLen, err := Count(h, f)
	if err != nil {
		t.Fatal(err)
	}
	out, sizes := outBufs(n, maxLen)
	if _, err := Segment(h, f, out, sizes); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		out[i] = out[i][:sizes[i]]
	}
	return out
}

// resegment cuts the coalescer's items back into frames.
func resegment(t *testing.T, c *Coalescer) [][]byte {
	var got [][]byte
	for i := 0; i < c.Len(); i++ {
		b, super, segs := c.Item(i)
		if !super {
			if segs != 1 {
				t.Fatalf("single item with %d segs", segs)
			}
			got = append(got, append([]byte(nil), b...))
			continue
		}
		var h Hdr
		if err := h.Decode(b); err != nil {
			t.Fatal(err)
		}
		if h.Flags != FlagNeedsCsum || h.GSOSize == 0 {
			t.Fatalf("item %d: header %+v", i, h)
		}
		n, maxLen, err := Count(h, b[HdrLen:])
		if err != nil || n != segs {
			t.Fatalf("item %d: Count %d %v, want %d", i, n, err, segs)
		}
		out, sizes := outBufs(n, maxLen)
		if _, err := Segment(h, b[HdrLen:], out, sizes); err != nil {
			t.Fatal(err)
		}
		for j := range out {
			got = append(got, out[j][:sizes[j]])
		}
	}
	return got
}

func TestCoalescerRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    spec
		gso  int
	}{
		{"tcp4", spec{payload: 44 * 1448}, 1448},
		{"tcp4 odd last", spec{payload: 5001, opts: 12}, 1448},
		{"tcp6 vlan", spec{v6: true, vlan: true, payload: 9999}, 1428},
		{"tcp4 PSH on last", spec{payload: 4000, flags: tcpACK | tcpPSH}, 1000},
		{"udp4", spec{udp: true, payload: 3 * 1472}, 1472},
		{"udp6 odd", spec{udp: true, v6: true, payload: 4097}, 1203},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs := segmentsOf(t, tc.s, tc.gso)
			c := NewCoalescer(4, 256)
			c.UDP = true
			for _, g := range segs {
				if !c.Add(g) {
					t.Fatal("Add refused")
				}
			}
			if c.Len() != 1 {
				t.Fatalf("%d items, want 1", c.Len())
			}
			got := resegment(t, c)
			if len(got) != len(segs) {
				t.Fatalf("%d frames back, want %d", len(got), len(segs))
			}
			for i := range got {
				if !bytes.Equal(got[i], segs[i]) {
					t.Fatalf("frame %d differs after coalescing and segmenting again", i)
				}
			}
		})
	}
}

func TestCoalescerRules(t *testing.T) {
	a := segmentsOf(t, spec{payload: 4 * 1000}, 1000)                           // flow A, seq 0
	b := segmentsOf(t, spec{payload: 3 * 1000, srcPort: 40001, v6: true}, 1000) // flow B
	next := func(s spec, seq uint32) []byte {
		s.seq = seq
		f, _ := build(s)
		return f
	}
	psh := next(spec{payload: 1000, flags: tcpACK | tcpPSH}, 1000)
	for _, tc := range []struct {
		name  string
		in    [][]byte
		items []int // segments per item, in order
		udp   bool
		nbuf  int
	}{
		{"interleaved flows", [][]byte{a[0], b[0], a[1], b[1], a[2], b[2], a[3]}, []int{4, 3}, false, 4},
		{"gap in sequence", [][]byte{a[0], a[2], a[3]}, []int{1, 2}, false, 4},
		{"reordered", [][]byte{a[1], a[0]}, []int{1, 1}, false, 4},
		{"PSH ends the merge", [][]byte{a[0], psh, a[2]}, []int{2, 1}, false, 4},
		{"SYN not merged", [][]byte{a[0], next(spec{payload: 1000, flags: tcpSYN}, 1000)}, []int{1, 1}, false, 4},
		{"FIN not merged, ends the flow", [][]byte{a[0], next(spec{payload: 1000, flags: tcpFIN | tcpACK}, 1000), a[2]}, []int{1, 1, 1}, false, 4},
		{"other ACK", [][]byte{a[0], next(spec{payload: 1000, ack: 7}, 1000)}, []int{1, 1}, false, 4},
		{"other TTL", [][]byte{a[0], next(spec{payload: 1000, ttl: 3}, 1000)}, []int{1, 1}, false, 4},
		{"other options", [][]byte{a[0], next(spec{payload: 1000, opts: 4}, 1000)}, []int{1, 1}, false, 4},
		{"bad checksum passed alone", [][]byte{a[0], next(spec{payload: 1000, badCsum: true}, 1000), a[2]}, []int{1, 1, 1}, false, 4},
		{"bigger than the first", [][]byte{next(spec{payload: 500}, 0), next(spec{payload: 1000}, 500)}, []int{1, 1}, false, 4},
		{"shorter ends it", [][]byte{next(spec{payload: 1000}, 0), next(spec{payload: 500}, 1000), next(spec{payload: 500}, 1500)}, []int{2, 1}, false, 4},
		{"pure ACK passes, ends the flow", [][]byte{a[0], a[1], next(spec{}, 2000), a[2]}, []int{2, 1, 1}, false, 4},
		{"no buffer left", [][]byte{a[0], a[1], b[0], b[1]}, []int{2, 1, 1}, false, 1},
		{"UDP off", segmentsOf(t, spec{udp: true, payload: 2000}, 1000), []int{1, 1}, false, 4},
		{"UDP on", segmentsOf(t, spec{udp: true, payload: 2000}, 1000), []int{2}, true, 4},
		{"not IP", [][]byte{macs, macs}, []int{1, 1}, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCoalescer(tc.nbuf, 64)
			c.UDP = tc.udp
			for _, g := range tc.in {
				if !c.Add(g) {
					t.Fatal("Add refused")
				}
			}
			var got []int
			for i := 0; i < c.Len(); i++ {
				_, _, n := c.Item(i)
				got = append(got, n)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.items) {
				t.Fatalf("items %v, want %v", got, tc.items)
			}
			// the frames come back in order within each flow, whole
			if n := len(resegment(t, c)); n != len(tc.in) {
				t.Fatalf("%d frames back, want %d", n, len(tc.in))
			}
		})
	}
}

func TestCoalescerFull(t *testing.T) {
	c := NewCoalescer(1, 2)
	for i, want := range []bool{true, true, false} {
		if c.Add(macs) != want {
			t.Fatalf("Add %d: %v, want %v (room for two items)", i, !want, want)
		}
	}
	c.Reset()
	if c.Len() != 0 || !c.Add(macs) {
		t.Fatal("Reset")
	}
	// the 64 KiB limit: 46 segments of 1448 do not fit one IPv4 packet
	segs := segmentsOf(t, spec{payload: 46 * 1448}, 1448)
	c = NewCoalescer(2, 64)
	for _, g := range segs {
		c.Add(g)
	}
	if c.Len() != 2 {
		t.Fatalf("%d items, want 2", c.Len())
	}
	b, _, n := c.Item(0)
	if n != 45 || len(b)-HdrLen-14 > 65535 {
		t.Fatalf("first item %d segments, %d bytes", n, len(b))
	}
}

func TestNoAllocs(t *testing.T) {
	s := spec{payload: 44 * 1448, partial: true}
	f, lo := build(s)
	h := gsoHdr(s, lo, 1448)
	out, sizes := outBufs(64, 2048)
	if a := testing.AllocsPerRun(50, func() { _, _ = Segment(h, f, out, sizes) }); a != 0 {
		t.Fatalf("Segment: %v allocs", a)
	}
	segs := segmentsOf(t, spec{payload: 44 * 1448}, 1448)
	c := NewCoalescer(4, 256)
	if a := testing.AllocsPerRun(50, func() {
		c.Reset()
		for _, g := range segs {
			c.Add(g)
		}
		c.Item(0)
	}); a != 0 {
		t.Fatalf("Coalescer: %v allocs", a)
	}
}

func BenchmarkSegment(b *testing.B) {
	s := spec{payload: 44 * 1448, partial: true}
	f, lo := build(s)
	h := gsoHdr(s, lo, 1448)
	out, sizes := outBufs(64, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if _, err := Segment(h, f, out, sizes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCoalescer(b *testing.B) {
	segs := segmentsOf(b, spec{payload: 44 * 1448}, 1448)
	c := NewCoalescer(4, 256)
	b.ReportAllocs()
	b.SetBytes(44 * 1448)
	for b.Loop() {
		c.Reset()
		for _, g := range segs {
			c.Add(g)
		}
		for i := 0; i < c.Len(); i++ {
			c.Item(i)
		}
	}
}

// FuzzCoalescer: any frames, cut from the input at the lengths it gives:
// Add never panics, every super-frame made segments again (Count and
// Segment accept it) into as many frames as were merged.
func FuzzCoalescer(f *testing.F) {
	var seed []byte
	for _, g := range segmentsOf(f, spec{payload: 3000}, 1000) {
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(g)))
		seed = append(seed, g...)
	}
	f.Add(seed, true)
	c := NewCoalescer(2, 8)
	out, sizes := outBufs(64, 2048)
	f.Fuzz(func(t *testing.T, b []byte, udp bool) {
		c.Reset()
		c.UDP = udp
		for len(b) >= 2 {
			n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
			if !c.Add(b[2 : 2+n]) {
				break
			}
			b = b[2+n:]
		}
		for i := 0; i < c.Len(); i++ {
			fr, super, segs := c.Item(i)
			if !super {
				continue
			}
			var h Hdr
			_ = h.Decode(fr)
			n, _, err := Count(h, fr[HdrLen:])
			if err != nil || n != segs {
				t.Fatalf("item %d: Count %d %v, merged %d", i, n, err, segs)
			}
			if n <= len(out) {
				if _, err := Segment(h, fr[HdrLen:], out[:n], sizes); err != nil {
					t.Fatalf("item %d: %v", i, err)
				}
			}
		}
	})
}
