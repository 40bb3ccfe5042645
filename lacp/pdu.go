package lacp

import (
	"encoding/binary"
	"errors"
	"strings"
)

// Slow Protocols framing (IEEE Std 802.3 Annex 57A; IEEE Std 802.1AX-2014
// 6.4.2.2 and 6.5.3).
const (
	// EtherTypeSlowProtocols is the Slow_Protocols_Type Length/Type value.
	EtherTypeSlowProtocols = 0x8809

	// SubtypeLACP and SubtypeMarker are the Slow Protocols subtypes of
	// LACPDUs (6.4.2.3) and Marker/Marker Response PDUs (6.5.3).
	SubtypeLACP   = 0x01
	SubtypeMarker = 0x02

	// VersionLACP is the Version_Number this implementation transmits
	// (6.4.2.3); VersionMarker the Marker protocol version (6.5.3).
	VersionLACP   = 0x01
	VersionMarker = 0x01

	// EthernetHeaderLen is the untagged Ethernet header in front of a PDU.
	EthernetHeaderLen = 14
	// PDULen is the length of an LACPDU and of a Marker PDU after the
	// Ethernet header: both are 110 octets.
	PDULen = 110
	// FrameLen is the length of an encoded frame without FCS (124).
	FrameLen = EthernetHeaderLen + PDULen
)

// SlowProtocolsMulticast is the Slow_Protocols_Multicast group address
// every LACPDU and Marker PDU is sent to (6.4.2.2).
var SlowProtocolsMulticast = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x02}

// TLV types and lengths (6.4.2.3, 6.5.3).
const (
	tlvTerminator     = 0x00
	tlvActor          = 0x01
	tlvPartner        = 0x02
	tlvCollector      = 0x03
	tlvMarkerInfo     = 0x01
	tlvMarkerResponse = 0x02

	lenActor     = 20
	lenPartner   = 20
	lenCollector = 16
	lenMarker    = 16
)

// Offsets in a frame (Ethernet header included).
const (
	offType    = 12
	offSubtype = 14
	offVersion = 15

	offActor     = 16 // TLV_type, length, 18 octets of information
	offPartner   = 36
	offCollector = 56
	offTerm      = 72 // terminator, then 50 reserved octets to 124

	offMarkerTLV  = 16 // TLV_type, length, port, system, transaction, pad
	offMarkerTerm = 32 // terminator, then 90 reserved octets to 124
)

// State is an Actor_State or Partner_State octet (6.4.2.3).
type State uint8

// State bits, least significant first.
const (
	StateActivity     State = 1 << iota // LACP_Activity: 1 = Active, 0 = Passive
	StateTimeout                        // LACP_Timeout: 1 = Short, 0 = Long
	StateAggregation                    // 1 = Aggregatable, 0 = Individual
	StateSync                           // Synchronization: 1 = IN_SYNC
	StateCollecting                     // collection is enabled
	StateDistributing                   // distribution is enabled
	StateDefaulted                      // Receive machine uses defaulted partner info
	StateExpired                        // Receive machine is in EXPIRED
)

var stateNames = [8]string{"ACT", "TMO", "AGG", "SYN", "COL", "DIS", "DEF", "EXP"}

// Has reports whether all bits of f are set.
func (s State) Has(f State) bool { return s&f == f }

// String lists the set bits, e.g. "ACT|AGG|SYN|COL|DIS", or "-" for none.
func (s State) String() string {
	if s == 0 {
		return "-"
	}
	var b strings.Builder
	for i, n := range stateNames {
		if s&(1<<uint(i)) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// PortInfo is the content of an Actor or Partner Information TLV
// (6.4.2.3): a System, Key and Port identifier and a state.
type PortInfo struct {
	SystemPriority uint16
	System         [6]byte
	Key            uint16
	PortPriority   uint16
	Port           uint16
	State          State
}

// LACPDU is a decoded LACPDU (6.4.2.3). Reserved octets are not kept: they
// are transmitted as zero and ignored on receipt.
type LACPDU struct {
	// Version is the received Version_Number. The encoder always
	// transmits VersionLACP.
	Version           uint8
	Actor             PortInfo
	Partner           PortInfo
	CollectorMaxDelay uint16 // in tens of microseconds (6.4.2.3)
}

// Marker is a decoded Marker or Marker Response PDU (6.5.3).
type Marker struct {
	// Version is the received Version_Number. The encoder always
	// transmits VersionMarker.
	Version uint8
	// Response selects TLV_type Marker Response (2) instead of Marker
	// Information (1).
	Response        bool
	RequesterPort   uint16
	RequesterSystem [6]byte
	TransactionID   uint32
}

// DecodeError says why a frame is not a valid LACPDU or Marker PDU, or (from
// CheckLACPDU and CheckMarker) which transmission rule it breaks. It is a
// small integer so that returning it does not allocate.
type DecodeError uint8

// Errors of DecodeLACPDU and DecodeMarker, which reject the frame.
const (
	ErrTooShort        DecodeError = iota + 1 // shorter than the 124-octet frame
	ErrNotSlowProtocol                        // Length/Type is not 0x8809
	ErrSubtype                                // wrong Slow Protocols subtype
	ErrActorLength                            // Actor_Information_Length is not 20
	ErrPartnerLength                          // Partner_Information_Length is not 20
	ErrCollectorLength                        // Collector_Information_Length is not 16
	ErrMarkerTLV                              // Marker TLV_type is neither 1 nor 2
	ErrMarkerLength                           // Marker_Information_Length is not 16
)

// Further errors of CheckLACPDU and CheckMarker: fields a receiver must
// not validate (802.1AX-2014 6.4.12), so DecodeLACPDU accepts them.
const (
	ErrVersion      DecodeError = iota + 64 // Version_Number 0
	ErrActorTLV                             // TLV_type of the Actor Information is not 1
	ErrPartnerTLV                           // TLV_type of the Partner Information is not 2
	ErrCollectorTLV                         // TLV_type of the Collector Information is not 3
	ErrTerminator                           // version 1 PDU without the Terminator TLV 0/0
)

var decodeErrorText = map[DecodeError]string{
	ErrTooShort:        "frame shorter than 124 octets",
	ErrNotSlowProtocol: "Length/Type is not the Slow Protocols type 0x8809",
	ErrSubtype:         "unexpected Slow Protocols subtype",
	ErrActorLength:     "Actor_Information_Length is not 20",
	ErrPartnerLength:   "Partner_Information_Length is not 20",
	ErrCollectorLength: "Collector_Information_Length is not 16",
	ErrMarkerTLV:       "Marker TLV_type is neither 1 (Information) nor 2 (Response)",
	ErrMarkerLength:    "Marker_Information_Length is not 16",
	ErrVersion:         "Version_Number is 0",
	ErrActorTLV:        "TLV_type of the Actor Information TLV is not 1",
	ErrPartnerTLV:      "TLV_type of the Partner Information TLV is not 2",
	ErrCollectorTLV:    "TLV_type of the Collector Information TLV is not 3",
	ErrTerminator:      "version 1 PDU without a Terminator TLV (type 0, length 0)",
}

func (e DecodeError) Error() string {
	if t, ok := decodeErrorText[e]; ok {
		return "lacp: " + t
	}
	return "lacp: invalid PDU"
}

// ErrShortBuffer is returned by the encoders when the buffer is smaller
// than FrameLen.
var ErrShortBuffer = errors.New("lacp: buffer shorter than 124 octets")

// checkSlow validates what LACPDUs and Marker PDUs share: the length, the
// Slow Protocols type and the subtype.
//
// The destination address is not checked: like Linux bonding and Open
// vSwitch, frames are recognised by Length/Type and subtype, and
// 802.1AX-2014 allows LACPDUs to be addressed to other reserved group
// addresses (aAggPortProtocolDA) than Slow_Protocols_Multicast.
func checkSlow(f []byte, subtype byte) error {
	if len(f) < FrameLen {
		return ErrTooShort
	}
	if binary.BigEndian.Uint16(f[offType:]) != EtherTypeSlowProtocols {
		return ErrNotSlowProtocol
	}
	if f[offSubtype] != subtype {
		return ErrSubtype
	}
	return nil
}

func getInfo(b []byte) PortInfo {
	var p PortInfo
	p.SystemPriority = binary.BigEndian.Uint16(b[0:])
	copy(p.System[:], b[2:8])
	p.Key = binary.BigEndian.Uint16(b[8:])
	p.PortPriority = binary.BigEndian.Uint16(b[10:])
	p.Port = binary.BigEndian.Uint16(b[12:])
	p.State = State(b[14])
	return p
}

func putInfo(b []byte, p *PortInfo) {
	binary.BigEndian.PutUint16(b[0:], p.SystemPriority)
	copy(b[2:8], p.System[:])
	binary.BigEndian.PutUint16(b[8:], p.Key)
	binary.BigEndian.PutUint16(b[10:], p.PortPriority)
	binary.BigEndian.PutUint16(b[12:], p.Port)
	b[14] = byte(p.State)
	b[15], b[16], b[17] = 0, 0, 0 // reserved
}

// DecodeLACPDU decodes the Ethernet frame f (from the destination address,
// with or without FCS: trailing octets are ignored) into p.
//
// It validates what 802.1AX-2014 6.4.12 lets a receiver validate: the
// frame holds 124 octets, Length/Type is 0x8809, the subtype is LACP, and
// Actor_Information_Length, Partner_Information_Length and
// Collector_Information_Length are 20, 20 and 16. The Receive machine
// "shall not validate the Version Number, TLV_type, or Reserved fields"
// (same clause; 43.4.12 of IEEE 802.3-2005), so that version 1 systems work
// with later versions: any version is processed as version 1, whose fields
// keep their offsets in later versions (a version 2 LACPDU carries more
// TLVs where version 1 has the Terminator, so the Terminator is not
// checked either). Frames longer than 124 octets, such as version 2 "long
// LACPDUs", are accepted; the octets after the version 1 fields are not
// interpreted. CheckLACPDU reports the fields this function tolerates.
func DecodeLACPDU(f []byte, p *LACPDU) error {
	if err := checkSlow(f, SubtypeLACP); err != nil {
		return err
	}
	switch {
	case f[offActor+1] != lenActor:
		return ErrActorLength
	case f[offPartner+1] != lenPartner:
		return ErrPartnerLength
	case f[offCollector+1] != lenCollector:
		return ErrCollectorLength
	}
	p.Version = f[offVersion]
	p.Actor = getInfo(f[offActor+2:])
	p.Partner = getInfo(f[offPartner+2:])
	p.CollectorMaxDelay = binary.BigEndian.Uint16(f[offCollector+2:])
	return nil
}

// CheckLACPDU checks a frame against the transmission rules of 6.4.2.3,
// beyond what DecodeLACPDU requires: Version_Number is not 0, the TLV_types
// are 1, 2 and 3, and a version 1 PDU ends with the Terminator TLV (0, 0).
// It returns the first problem found, or nil. Reserved octets are not
// checked.
func CheckLACPDU(f []byte) error {
	var p LACPDU
	if err := DecodeLACPDU(f, &p); err != nil {
		return err
	}
	switch {
	case f[offVersion] == 0:
		return ErrVersion
	case f[offActor] != tlvActor:
		return ErrActorTLV
	case f[offPartner] != tlvPartner:
		return ErrPartnerTLV
	case f[offCollector] != tlvCollector:
		return ErrCollectorTLV
	case f[offVersion] == 1 && (f[offTerm] != tlvTerminator || f[offTerm+1] != 0):
		return ErrTerminator
	}
	return nil
}

func putHeader(b []byte, src [6]byte, subtype, version byte) {
	copy(b[0:6], SlowProtocolsMulticast[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[offType:], EtherTypeSlowProtocols)
	b[offSubtype] = subtype
	b[offVersion] = version
}

// EncodeLACPDU writes p as a complete 124-octet frame (no FCS) into b, from
// src to Slow_Protocols_Multicast, and returns the length written. Every
// reserved octet is written as zero, so b need not be clean. It does not
// allocate.
func EncodeLACPDU(b []byte, src [6]byte, p *LACPDU) (int, error) {
	if len(b) < FrameLen {
		return 0, ErrShortBuffer
	}
	b = b[:FrameLen]
	putHeader(b, src, SubtypeLACP, VersionLACP)
	b[offActor], b[offActor+1] = tlvActor, lenActor
	putInfo(b[offActor+2:], &p.Actor)
	b[offPartner], b[offPartner+1] = tlvPartner, lenPartner
	putInfo(b[offPartner+2:], &p.Partner)
	b[offCollector], b[offCollector+1] = tlvCollector, lenCollector
	binary.BigEndian.PutUint16(b[offCollector+2:], p.CollectorMaxDelay)
	clear(b[offCollector+4 : offTerm]) // 12 reserved
	b[offTerm], b[offTerm+1] = tlvTerminator, 0
	clear(b[offTerm+2:]) // 50 reserved
	return FrameLen, nil
}

// DecodeMarker decodes a Marker Information or Marker Response PDU
// (6.5.3) from the Ethernet frame f into m. As DecodeLACPDU it requires 124
// octets, type 0x8809 and the subtype, and validates the length field
// (16); the TLV_type must be 1 or 2, since it says whether the PDU is a
// request or a response. Version, pad, terminator, reserved and trailing
// octets are not validated (CheckMarker reports them).
func DecodeMarker(f []byte, m *Marker) error {
	if err := checkSlow(f, SubtypeMarker); err != nil {
		return err
	}
	t := f[offMarkerTLV]
	switch {
	case t != tlvMarkerInfo && t != tlvMarkerResponse:
		return ErrMarkerTLV
	case f[offMarkerTLV+1] != lenMarker:
		return ErrMarkerLength
	}
	b := f[offMarkerTLV+2:]
	m.Version = f[offVersion]
	m.Response = t == tlvMarkerResponse
	m.RequesterPort = binary.BigEndian.Uint16(b[0:])
	copy(m.RequesterSystem[:], b[2:8])
	m.TransactionID = binary.BigEndian.Uint32(b[8:])
	return nil
}

// CheckMarker is CheckLACPDU for Marker PDUs: beyond DecodeMarker it
// requires a non-zero version and, for version 1, the Terminator TLV.
func CheckMarker(f []byte) error {
	var m Marker
	if err := DecodeMarker(f, &m); err != nil {
		return err
	}
	switch {
	case f[offVersion] == 0:
		return ErrVersion
	case f[offVersion] == 1 && (f[offMarkerTerm] != tlvTerminator || f[offMarkerTerm+1] != 0):
		return ErrTerminator
	}
	return nil
}

// EncodeMarker writes m as a complete 124-octet Marker (or Marker
// Response, if m.Response) frame into b, from src to
// Slow_Protocols_Multicast. Pad and reserved octets are written as zero.
func EncodeMarker(b []byte, src [6]byte, m *Marker) (int, error) {
	if len(b) < FrameLen {
		return 0, ErrShortBuffer
	}
	b = b[:FrameLen]
	putHeader(b, src, SubtypeMarker, VersionMarker)
	b[offMarkerTLV] = tlvMarkerInfo
	if m.Response {
		b[offMarkerTLV] = tlvMarkerResponse
	}
	b[offMarkerTLV+1] = lenMarker
	v := b[offMarkerTLV+2:]
	binary.BigEndian.PutUint16(v[0:], m.RequesterPort)
	copy(v[2:8], m.RequesterSystem[:])
	binary.BigEndian.PutUint32(v[8:], m.TransactionID)
	v[12], v[13] = 0, 0 // pad
	b[offMarkerTerm], b[offMarkerTerm+1] = tlvTerminator, 0
	clear(b[offMarkerTerm+2:]) // 90 reserved
	return FrameLen, nil
}
