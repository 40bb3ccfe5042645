package lacp

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// fuzzSeedsLACPDU are the frames the codec fuzzers start from.
func fuzzSeedsLACPDU() [][]byte {
	g := goldenLACPDU()
	v2 := bytes.Clone(g)
	v2[15], v2[72], v2[73] = 2, 4, 6
	return [][]byte{g, v2, append(bytes.Clone(g), 0xde, 0xad, 0xbe, 0xef), g[:60], goldenMarker(1), goldenMarker(2), {}}
}

func FuzzDecodeLACPDU(f *testing.F) {
	for _, s := range fuzzSeedsLACPDU() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p LACPDU
		err := DecodeLACPDU(frame, &p)
		if err != nil {
			if _, ok := err.(DecodeError); !ok || err.Error() == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(frame) < FrameLen {
			t.Fatalf("accepted %d octets", len(frame))
		}
		if cerr := CheckLACPDU(frame); cerr != nil {
			if _, ok := cerr.(DecodeError); !ok {
				t.Fatalf("untyped check error %v", cerr)
			}
		}
		var src [6]byte
		copy(src[:], frame[6:12])
		var buf [FrameLen]byte
		if _, err := EncodeLACPDU(buf[:], src, &p); err != nil {
			t.Fatal(err)
		}
		var q LACPDU
		if err := DecodeLACPDU(buf[:], &q); err != nil {
			t.Fatalf("re-encoded PDU does not decode: %v", err)
		}
		p.Version = VersionLACP
		if p != q {
			t.Fatalf("round trip: %+v != %+v", p, q)
		}
		// The information octets are copied verbatim.
		if CheckLACPDU(buf[:]) != nil {
			t.Fatal("own encoding is not conformant")
		}
		if !bytes.Equal(buf[6:15], frame[6:15]) || !bytes.Equal(buf[17:33], frame[17:33]) ||
			!bytes.Equal(buf[37:53], frame[37:53]) || !bytes.Equal(buf[57:60], frame[57:60]) {
			t.Fatalf("fields changed:\n%x\n%x", buf[:60], frame[:60])
		}
	})
}

func FuzzDecodeMarker(f *testing.F) {
	for _, s := range fuzzSeedsLACPDU() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m Marker
		if err := DecodeMarker(frame, &m); err != nil {
			if _, ok := err.(DecodeError); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var src [6]byte
		copy(src[:], frame[6:12])
		var buf [FrameLen]byte
		if _, err := EncodeMarker(buf[:], src, &m); err != nil {
			t.Fatal(err)
		}
		var q Marker
		if err := DecodeMarker(buf[:], &q); err != nil {
			t.Fatal(err)
		}
		m.Version = VersionMarker
		if m != q || !bytes.Equal(buf[16:30], frame[16:30]) {
			t.Fatalf("round trip: %+v != %+v", m, q)
		}
	})
}

// fuzzRecord encodes one step of FuzzSystemReceive's input: a port, a time
// step in 10 ms units, and a frame.
func fuzzRecord(port, dt byte, frame []byte) []byte {
	b := []byte{port, dt, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(frame)))
	return append(b, frame...)
}

// fuzzSeedsSystem are LACPDU conversations of a scripted partner.
func fuzzSeedsSystem() [][]byte {
	partner := PortInfo{SystemPriority: 32768, System: fakeSys, Key: 77, PortPriority: 32768, Port: 100}
	us := PortInfo{SystemPriority: 65535, System: sysMAC(0), Key: 15, PortPriority: 255, Port: 1}
	pdu := func(st State, usSt State, port uint16) []byte {
		l := LACPDU{Version: 1, Actor: partner, Partner: us}
		l.Actor.State, l.Actor.Port = st, port
		l.Partner.State = usSt
		b := make([]byte, FrameLen)
		EncodeLACPDU(b, fakeSys, &l)
		return b
	}
	m := make([]byte, FrameLen)
	EncodeMarker(m, fakeSys, &Marker{RequesterPort: 3, RequesterSystem: fakeSys, TransactionID: 9})
	var seeds [][]byte
	var conv []byte
	conv = append(conv, fuzzRecord(0, 0, pdu(actAgg, StateActivity|StateAggregation, 100))...)
	conv = append(conv, fuzzRecord(0, 250, pdu(actAgg|StateSync, actAgg|StateSync, 100))...)
	conv = append(conv, fuzzRecord(1, 10, pdu(actAgg|synColDis, actAgg|synColDis, 101))...)
	conv = append(conv, fuzzRecord(0, 10, m)...)
	seeds = append(seeds, conv)
	seeds = append(seeds, fuzzRecord(2, 1, goldenLACPDU()))
	seeds = append(seeds, fuzzRecord(0, 200, pdu(StateAggregation|StateSync, 0, 100)))
	seeds = append(seeds, append(fuzzRecord(1, 0, pdu(actAgg, 0, 5)), fuzzRecord(1, 0, goldenMarker(2))...))
	return seeds
}

func FuzzSystemReceive(f *testing.F) {
	for _, s := range fuzzSeedsSystem() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n := newNet(t)
		cfg := DefaultConfig([6]byte{})
		cfg.MinLinks = 2
		n.add(cfg)
		n.add(DefaultConfig([6]byte{}))
		n.addPorts(0, 3, 10000)
		n.addPorts(1, 2, 10000)
		n.connect(ep{0, 0}, ep{1, 0})
		n.connect(ep{0, 1}, ep{1, 1})
		// Port 2 of System 0 is the fuzzer's: frames sent there vanish,
		// fuzzed frames arrive on any port.
		n.run(3 * time.Second)
		for records := 0; len(in) >= 4 && records < 64; records++ {
			port, dt := int(in[0])%4, time.Duration(in[1])*10*time.Millisecond
			l := int(binary.BigEndian.Uint16(in[2:]))
			in = in[4:]
			if l > len(in) {
				l = len(in)
			}
			frame := in[:l]
			in = in[l:]
			for end := n.now + dt; n.now+TickInterval <= end; {
				n.step()
			}
			n.sys[0].Receive(port, frame, n.now) // port 3 does not exist
			n.deliver()
			checkInvariants(t, n.sys[0])
			checkInvariants(t, n.sys[1])
		}
		n.run(5 * time.Second)
		checkInvariants(t, n.sys[0])
		st := n.sys[0].Status()
		if err := st.WriteProcBond(io.Discard, "bond0"); err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Ports {
			if err := st.WriteProcPort(io.Discard, p.ID); err != nil {
				t.Fatal(err)
			}
		}
		// Whatever happened, the real partner still aggregates ports 0
		// and 1 once the fuzzer stops talking (at most a long timeout
		// plus the aggregate wait later).
		if _, ok := n.until(LongTimeoutTime+10*time.Second, func() bool { return n.aggregated(0, 0, 1) }); !ok {
			d, up := n.sys[0].Distributing()
			t.Fatalf("no recovery: %v %v %+v", d, up, st)
		}
	})
}
