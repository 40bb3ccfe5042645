package lacp

import (
	"testing"
	"time"
)

func BenchmarkDecodeLACPDU(b *testing.B) {
	f := goldenLACPDU()
	var p LACPDU
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if err := DecodeLACPDU(f, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeLACPDUInvalid(b *testing.B) {
	f := goldenLACPDU()
	f[17] = 0
	var p LACPDU
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeLACPDU(f, &p); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkEncodeLACPDU(b *testing.B) {
	p := goldenLACPDUValue()
	var buf [FrameLen]byte
	b.ReportAllocs()
	b.SetBytes(FrameLen)
	for b.Loop() {
		if _, err := EncodeLACPDU(buf[:], goldenSrc, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMarker(b *testing.B) {
	f := goldenMarker(1)
	var m Marker
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeMarker(f, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMarker(b *testing.B) {
	m := Marker{RequesterPort: 1, RequesterSystem: macA, TransactionID: 7}
	var buf [FrameLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMarker(buf[:], goldenSrc, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveSteadyState is the control-plane cost of one LACPDU on a
// converged port: decode, Receive machine, the other machines, publish.
func BenchmarkReceiveSteadyState(b *testing.B) {
	s, err := New(DefaultConfig(macA), func(int, []byte) {})
	if err != nil {
		b.Fatal(err)
	}
	for p := range 4 {
		s.AddPort(p, PortConfig{Number: uint16(p + 1)})
		s.SetLink(p, true, 10000, true)
	}
	us := s.actor(s.ports[0])
	frames := make([][]byte, 4)
	for p := range 4 {
		us.Port = uint16(p + 1)
		us.State = actAgg | synColDis
		l := LACPDU{Version: 1, Actor: PortInfo{SystemPriority: 1, System: fakeSys, Key: 9, Port: uint16(p + 1), State: actAgg | synColDis}, Partner: us}
		frames[p] = make([]byte, FrameLen)
		EncodeLACPDU(frames[p], fakeSys, &l)
	}
	now := time.Duration(0)
	for range 40 {
		now += TickInterval
		s.Tick(now)
		for p := range 4 {
			s.Receive(p, frames[p], now)
		}
	}
	if d, up := s.Distributing(); !up || len(d) != 4 {
		b.Fatalf("not converged: %v", d)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now += time.Millisecond
		s.Receive(i&3, frames[i&3], now)
		if i%100 == 0 {
			s.Tick(now)
		}
		i++
	}
}
