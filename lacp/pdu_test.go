package lacp

import (
	"bytes"
	"errors"
	"testing"
)

var (
	macA = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
)

// goldenLACPDU is built octet by octet from 802.1AX-2014 6.4.2.3,
// independently of the encoder.
func goldenLACPDU() []byte {
	var b []byte
	b = append(b, 0x01, 0x80, 0xc2, 0x00, 0x00, 0x02) // DA: Slow_Protocols_Multicast
	b = append(b, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55) // SA
	b = append(b, 0x88, 0x09)                         // Slow Protocols
	b = append(b, 0x01)                               // Subtype = LACP
	b = append(b, 0x01)                               // Version_Number
	b = append(b, 0x01, 0x14)                         // TLV_type = Actor Information, length 20
	b = append(b, 0x80, 0x00)                         // Actor_System_Priority 32768
	b = append(b, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee) // Actor_System
	b = append(b, 0x00, 0x0f)                         // Actor_Key 15
	b = append(b, 0x00, 0xff)                         // Actor_Port_Priority 255
	b = append(b, 0x00, 0x03)                         // Actor_Port 3
	b = append(b, 0x3f)                               // Actor_State ACT|TMO|AGG|SYN|COL|DIS
	b = append(b, 0x00, 0x00, 0x00)                   // Reserved
	b = append(b, 0x02, 0x14)                         // TLV_type = Partner Information, length 20
	b = append(b, 0xff, 0xff)                         // Partner_System_Priority 65535
	b = append(b, 0x02, 0x11, 0x11, 0x11, 0x11, 0x11) // Partner_System
	b = append(b, 0x01, 0x09)                         // Partner_Key 0x0109
	b = append(b, 0x80, 0x01)                         // Partner_Port_Priority
	b = append(b, 0x12, 0x34)                         // Partner_Port
	b = append(b, 0x45)                               // Partner_State ACT|AGG|DEF
	b = append(b, 0x00, 0x00, 0x00)                   // Reserved
	b = append(b, 0x03, 0x10)                         // TLV_type = Collector Information, length 16
	b = append(b, 0x00, 0x05)                         // CollectorMaxDelay
	b = append(b, make([]byte, 12)...)                // Reserved
	b = append(b, 0x00, 0x00)                         // TLV_type = Terminator, length 0
	b = append(b, make([]byte, 50)...)                // Reserved
	return b
}

func goldenLACPDUValue() LACPDU {
	return LACPDU{
		Version: 1,
		Actor: PortInfo{
			SystemPriority: 32768, System: [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee},
			Key: 15, PortPriority: 255, Port: 3,
			State: StateActivity | StateTimeout | StateAggregation | StateSync | StateCollecting | StateDistributing,
		},
		Partner: PortInfo{
			SystemPriority: 65535, System: [6]byte{0x02, 0x11, 0x11, 0x11, 0x11, 0x11},
			Key: 0x0109, PortPriority: 0x8001, Port: 0x1234,
			State: StateActivity | StateAggregation | StateDefaulted,
		},
		CollectorMaxDelay: 5,
	}
}

var goldenSrc = [6]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}

func goldenMarker(tlv byte) []byte {
	var b []byte
	b = append(b, 0x01, 0x80, 0xc2, 0x00, 0x00, 0x02) // DA
	b = append(b, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55) // SA
	b = append(b, 0x88, 0x09)                         // Slow Protocols
	b = append(b, 0x02, 0x01)                         // Subtype = Marker, Version 1
	b = append(b, tlv, 0x10)                          // TLV_type, Marker_Information_Length 16
	b = append(b, 0x00, 0x07)                         // Requester_Port
	b = append(b, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee) // Requester_System
	b = append(b, 0xde, 0xad, 0xbe, 0xef)             // Requester_Transaction_ID
	b = append(b, 0x00, 0x00)                         // Pad
	b = append(b, 0x00, 0x00)                         // Terminator
	b = append(b, make([]byte, 90)...)                // Reserved
	return b
}

func TestGoldenLACPDU(t *testing.T) {
	g := goldenLACPDU()
	if len(g) != FrameLen || FrameLen != 124 {
		t.Fatalf("golden frame is %d octets, FrameLen %d", len(g), FrameLen)
	}
	want := goldenLACPDUValue()
	buf := bytes.Repeat([]byte{0xa5}, 200) // dirty: reserved octets must be zeroed
	n, err := EncodeLACPDU(buf, goldenSrc, &want)
	if err != nil || n != FrameLen {
		t.Fatalf("encode: n=%d err=%v", n, err)
	}
	if !bytes.Equal(buf[:n], g) {
		t.Fatalf("encode mismatch\n got %x\nwant %x", buf[:n], g)
	}
	var got LACPDU
	if err := DecodeLACPDU(g, &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("decode: got %+v want %+v", got, want)
	}
}

func TestGoldenMarker(t *testing.T) {
	for _, resp := range []bool{false, true} {
		tlv := byte(1)
		if resp {
			tlv = 2
		}
		g := goldenMarker(tlv)
		if len(g) != FrameLen {
			t.Fatalf("golden marker is %d octets", len(g))
		}
		want := Marker{Version: 1, Response: resp, RequesterPort: 7,
			RequesterSystem: [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}, TransactionID: 0xdeadbeef}
		buf := bytes.Repeat([]byte{0x5a}, FrameLen)
		n, err := EncodeMarker(buf, goldenSrc, &want)
		if err != nil || !bytes.Equal(buf[:n], g) {
			t.Fatalf("response=%v: encode err=%v\n got %x\nwant %x", resp, err, buf[:n], g)
		}
		var got Marker
		if err := DecodeMarker(g, &got); err != nil || got != want {
			t.Fatalf("response=%v: decode %+v err=%v", resp, got, err)
		}
	}
}

func TestLACPDURoundTrip(t *testing.T) {
	cases := []LACPDU{
		{Version: 1},
		goldenLACPDUValue(),
		{Version: 1, Actor: PortInfo{SystemPriority: 1, System: macA, Key: 0xffff, PortPriority: 0, Port: 0xffff, State: 0xff},
			Partner: PortInfo{State: StateExpired | StateDefaulted}, CollectorMaxDelay: 0xffff},
	}
	for i, c := range cases {
		var buf [FrameLen]byte
		if _, err := EncodeLACPDU(buf[:], macB, &c); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[6:12], macB[:]) || !bytes.Equal(buf[:6], SlowProtocolsMulticast[:]) {
			t.Fatalf("case %d: addresses %x", i, buf[:12])
		}
		var got LACPDU
		if err := DecodeLACPDU(buf[:], &got); err != nil || got != c {
			t.Fatalf("case %d: got %+v err %v, want %+v", i, got, err, c)
		}
	}
}

func TestDecodeLACPDUErrors(t *testing.T) {
	mod := func(f func(b []byte) []byte) []byte { return f(goldenLACPDU()) }
	set := func(off int, v byte) []byte { return mod(func(b []byte) []byte { b[off] = v; return b }) }
	cases := []struct {
		name   string
		frame  []byte
		decode error // DecodeLACPDU: what a receiver may reject (6.4.12)
		check  error // CheckLACPDU: the transmission rules (6.4.2.3)
	}{
		{"empty", nil, ErrTooShort, ErrTooShort},
		{"123 octets", goldenLACPDU()[:123], ErrTooShort, ErrTooShort},
		{"60 octet runt", goldenLACPDU()[:60], ErrTooShort, ErrTooShort},
		{"vlan tagged", set(12, 0x81), ErrNotSlowProtocol, ErrNotSlowProtocol},
		{"ethertype", set(13, 0x08), ErrNotSlowProtocol, ErrNotSlowProtocol},
		{"marker subtype", set(14, 2), ErrSubtype, ErrSubtype},
		{"oam subtype", set(14, 3), ErrSubtype, ErrSubtype},
		{"actor length", set(17, 19), ErrActorLength, ErrActorLength},
		{"partner length", set(37, 21), ErrPartnerLength, ErrPartnerLength},
		{"collector length", set(57, 0), ErrCollectorLength, ErrCollectorLength},
		// A receiver shall not validate Version Number, TLV_type or
		// Reserved fields: processed, but not conformant.
		{"version 0", set(15, 0), nil, ErrVersion},
		{"actor type", set(16, 2), nil, ErrActorTLV},
		{"partner type", set(36, 1), nil, ErrPartnerTLV},
		{"collector type", set(56, 4), nil, ErrCollectorTLV},
		{"terminator type", set(72, 4), nil, ErrTerminator},
		{"terminator length", set(73, 1), nil, ErrTerminator},
		// Conformant:
		{"version 2 with TLVs after the collector", mod(func(b []byte) []byte {
			b[15] = 2
			b[72], b[73] = 0x04, 0x06 // a Port Algorithm TLV where v1 has the terminator
			return b
		}), nil, nil},
		{"version 255", set(15, 255), nil, nil},
		{"reserved octets set", mod(func(b []byte) []byte {
			for _, o := range []int{33, 34, 35, 53, 54, 55, 60, 71, 74, 123} {
				b[o] = 0xff
			}
			return b
		}), nil, nil},
		{"oversized with FCS", mod(func(b []byte) []byte { return append(b, 1, 2, 3, 4) }), nil, nil},
		{"jumbo", mod(func(b []byte) []byte { return append(b, make([]byte, 1400)...) }), nil, nil},
		{"other destination address", set(5, 0x03), nil, nil},
	}
	for _, c := range cases {
		var p LACPDU
		err := DecodeLACPDU(c.frame, &p)
		if !errors.Is(err, c.decode) {
			t.Errorf("%s: decode %v, want %v", c.name, err, c.decode)
		}
		if err == nil && (p.Actor.Port != 3 || p.Partner.Port != 0x1234 || p.CollectorMaxDelay != 5) {
			t.Errorf("%s: fields not decoded: %+v", c.name, p)
		}
		if err := CheckLACPDU(c.frame); !errors.Is(err, c.check) {
			t.Errorf("%s: check %v, want %v", c.name, err, c.check)
		}
	}
}

func TestDecodeMarkerErrors(t *testing.T) {
	set := func(off int, v byte) []byte { b := goldenMarker(1); b[off] = v; return b }
	cases := []struct {
		name          string
		frame         []byte
		decode, check error
	}{
		{"short", goldenMarker(1)[:100], ErrTooShort, ErrTooShort},
		{"ethertype", set(12, 0x08), ErrNotSlowProtocol, ErrNotSlowProtocol},
		{"lacp subtype", set(14, 1), ErrSubtype, ErrSubtype},
		{"tlv 0", set(16, 0), ErrMarkerTLV, ErrMarkerTLV},
		{"tlv 3", set(16, 3), ErrMarkerTLV, ErrMarkerTLV},
		{"length", set(17, 20), ErrMarkerLength, ErrMarkerLength},
		{"version 0", set(15, 0), nil, ErrVersion},
		{"terminator", set(32, 1), nil, ErrTerminator},
		{"pad set", set(30, 0xff), nil, nil},
		{"version 2 no terminator", func() []byte { b := set(15, 2); b[32] = 9; return b }(), nil, nil},
		{"oversized", append(goldenMarker(2), 0, 0, 0, 0), nil, nil},
	}
	for _, c := range cases {
		var m Marker
		if err := DecodeMarker(c.frame, &m); !errors.Is(err, c.decode) {
			t.Errorf("%s: decode %v, want %v", c.name, err, c.decode)
		}
		if err := CheckMarker(c.frame); !errors.Is(err, c.check) {
			t.Errorf("%s: check %v, want %v", c.name, err, c.check)
		}
	}
}

func TestEncodeShortBuffer(t *testing.T) {
	var p LACPDU
	var m Marker
	if _, err := EncodeLACPDU(make([]byte, 123), macA, &p); err != ErrShortBuffer {
		t.Fatalf("lacpdu: %v", err)
	}
	if _, err := EncodeMarker(make([]byte, 123), macA, &m); err != ErrShortBuffer {
		t.Fatalf("marker: %v", err)
	}
}

func TestStateString(t *testing.T) {
	cases := map[State]string{
		0:                                   "-",
		0x3d:                                "ACT|AGG|SYN|COL|DIS",
		StateDefaulted | StateExpired:       "DEF|EXP",
		0xff:                                "ACT|TMO|AGG|SYN|COL|DIS|DEF|EXP",
		StateActivity | StateTimeout | 0x04: "ACT|TMO|AGG",
	}
	for s, want := range cases {
		if s.String() != want {
			t.Errorf("%#x: %q, want %q", uint8(s), s.String(), want)
		}
	}
	if !State(0x3f).Has(StateSync|StateCollecting) || State(0x3f).Has(StateDefaulted) {
		t.Error("Has")
	}
}

func TestDecodeErrorText(t *testing.T) {
	for _, e := range []DecodeError{ErrTooShort, ErrNotSlowProtocol, ErrSubtype, ErrActorLength, ErrPartnerLength,
		ErrCollectorLength, ErrMarkerTLV, ErrMarkerLength, ErrVersion, ErrActorTLV, ErrPartnerTLV, ErrCollectorTLV, ErrTerminator} {
		if e.Error() == "lacp: invalid PDU" {
			t.Errorf("%d has no text", e)
		}
	}
	if DecodeError(200).Error() != "lacp: invalid PDU" {
		t.Error("unknown error text")
	}
}

func TestPortKey(t *testing.T) {
	cases := []struct {
		speed  int
		full   bool
		user   uint16
		key    uint16
		enable bool
	}{
		{1000, true, 0, 9, true},      // bonding "Actor Key: 9" on 1G
		{10000, true, 0, 15, true},    // "Actor Key: 15" on 10G
		{25000, true, 0, 21, true},    // code 10
		{100000, true, 0, 29, true},   // code 14
		{1600000, true, 0, 37, true},  // code 18
		{100, false, 0, 6, false},     // half duplex: LACP disabled
		{1000, true, 1, 64 | 9, true}, // user key in bits 6-15
		{1000, true, 1023, 0xffc0 | 9, true},
		{1000, true, 1024, 9, true}, // truncated to ten bits
		{12345, true, 0, 1, true},   // unknown speed: code 0
		{0, false, 5, 5 << 6, false},
	}
	for _, c := range cases {
		k, en := PortKey(c.speed, c.full, c.user)
		if k != c.key || en != c.enable {
			t.Errorf("PortKey(%d,%v,%d) = %d,%v want %d,%v", c.speed, c.full, c.user, k, en, c.key, c.enable)
		}
	}
	if SpeedCode(2500) != 5 || SpeedCode(5000) != 6 || SpeedCode(800000) != 17 {
		t.Error("speed codes")
	}
}
