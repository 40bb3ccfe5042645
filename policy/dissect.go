package policy

// This file is the encap2+3/encap3+4 path: __skb_flow_dissect()
// (net/core/flow_dissector.c) as called by bond_flow_dissect() with
// flow_keys_bonding (keys CONTROL, BASIC, IPV4_ADDRS, IPV6_ADDRS, TIPC,
// PORTS, ICMP, VLAN, FLOW_LABEL, GRE_KEYID) and flags 0, i.e. without
// FLOW_DISSECTOR_F_STOP_AT_ENCAP and without PARSE_1ST_FRAG. Only what can
// change the bonding hash is kept: which keys get written, the offsets, and
// whether the dissection reports success (false makes bonding fall back to
// bond_eth_hash). Keys bonding does not read (VLAN, flow label, GRE key id)
// are parsed over but not stored.
//
// Not covered: BPF flow-dissector programs, DSA tags (only reachable when
// the dissector reads the skb itself, which bonding never asks for), and
// the random key of TIPC keepalive messages (word 3 is used instead).

// Results of one protocol step (enum flow_dissect_ret).
const (
	retContinue = iota
	retOutGood
	retOutBad
	retProtoAgain
	retIPProtoAgain
)

const maxFlowDissectHdrs = 15 // MAX_FLOW_DISSECT_HDRS

// GRE header bits (include/uapi/linux/if_tunnel.h), host order.
const (
	greCSUM    = 0x8000
	greRouting = 0x4000
	greKey     = 0x2000
	greSeq     = 0x1000
	greAck     = 0x0080
	greVersion = 0x0007
	greProtoPP = 0x880b // GRE_PROTO_PPP (PPTP)
)

// PPP protocol numbers (include/uapi/linux/ppp_defs.h).
const (
	pppIP   = 0x21
	pppIPv6 = 0x57
)

// Sizes of headers the dissector needs in full.
const (
	fcoeHeaderLen   = 38 // FCOE_HEADER_LEN
	ptpHeaderLen    = 34 // sizeof(struct ptp_header)
	hsrHLen         = 6  // HSR_HLEN == sizeof(struct hsr_tag)
	tipcBasicHdrLen = 16 // sizeof(struct tipc_basic_hdr)
	pppoeSesHLen    = 8  // PPPOE_SES_HLEN: pppoe_hdr + PPP protocol
	batadvHdrLen    = 10 + ethHdrLen
	fragHdrLen      = 8 // sizeof(struct frag_hdr)
)

// flowDissect reports whether __skb_flow_dissect() succeeds on the emulated
// skb and fills fk as bonding would read it. b starts at the network header
// (nhoff 0) and ends where the skb ends; proto is skb->protocol; hwTag says
// whether an out-of-band VLAN tag is present, which makes the first VLAN
// header the dissector meets resolve to skb->protocol without consuming
// packet bytes (its dissector_vlan == FLOW_DISSECTOR_KEY_MAX branch).
func flowDissect(b []byte, proto uint16, hwTag bool, fk *flowKeys) bool {
	*fk = flowKeys{}
	skbProto := proto
	nhoff := 0
	numHdrs := 0
	vlanSeen := false
	isFrag := false
	var ipProto uint8

protoAgain:
	for {
		fdret := retContinue
		switch proto {
		case ethPIPv4:
			if !has(b, nhoff, ipv4MinLen) || b[nhoff]&0x0f < 5 {
				return false
			}
			ipProto = b[nhoff+9]
			fk.src = le32(b, nhoff+12)
			fk.dst = le32(b, nhoff+16)
			fragOff := be16(b, nhoff+6)
			nhoff += int(b[nhoff]&0x0f) * 4
			if fragOff&0x3fff != 0 {
				// Later fragments stop here; so does the first one, because
				// bonding does not pass FLOW_DISSECTOR_F_PARSE_1ST_FRAG.
				return true
			}

		case ethPIPv6:
			if !has(b, nhoff, ipv6HdrLen) {
				return false
			}
			ipProto = b[nhoff+6]
			fk.src = ipv6AddrHash(b, nhoff+8)
			fk.dst = ipv6AddrHash(b, nhoff+24)
			nhoff += ipv6HdrLen

		case ethP8021Q, ethP8021AD:
			if !vlanSeen && hwTag {
				proto = skbProto
			} else {
				if !has(b, nhoff, vlanHdrLen) {
					return false
				}
				proto = be16(b, nhoff+2)
				nhoff += vlanHdrLen
			}
			vlanSeen = true
			fdret = retProtoAgain

		case ethPPPPSes:
			if !has(b, nhoff, pppoeSesHLen) {
				return false
			}
			if b[nhoff] != 0x11 || b[nhoff+1] != 0 { // ver 1, type 1, code 0
				return false
			}
			ppp := be16(b, nhoff+6)
			if ppp&0x0100 != 0 { // compressed protocol field
				ppp >>= 8
				nhoff += pppoeSesHLen - 1
			} else {
				nhoff += pppoeSesHLen
			}
			switch {
			case ppp == pppIP:
				proto, fdret = ethPIPv4, retProtoAgain
			case ppp == pppIPv6:
				proto, fdret = ethPIPv6, retProtoAgain
			case ppp == ethPPPPMPLSUC:
				proto, fdret = ethPMPLSUC, retProtoAgain
			case ppp == ethPPPPMPLSMC:
				proto, fdret = ethPMPLSMC, retProtoAgain
			case ppp&0x0101 == 0x0001: // ppp_proto_is_valid()
				return true
			default:
				return false
			}

		case ethPTIPC:
			if !has(b, nhoff, tipcBasicHdrLen) {
				return false
			}
			fk.src = le32(b, nhoff+12) // tipc_hdr_rps_key(): word 3
			fk.dst = 0
			return true

		case ethPMPLSUC, ethPMPLSMC:
			// No MPLS key in flow_keys_bonding: __skb_flow_dissect_mpls stops
			// without reading the label.
			return true

		case ethPFCoE:
			return len(b)-nhoff >= fcoeHeaderLen

		case ethPARP, ethPRARP, ethPCFM:
			// No ARP/CFM key in flow_keys_bonding: success, nothing read.
			return true

		case ethPBatman:
			if !has(b, nhoff, batadvHdrLen) {
				return false
			}
			// batadv_unicast_packet: packet_type, version, ...; then an
			// Ethernet header.
			if b[nhoff+1] != 15 || b[nhoff] != 0x40 { // BATADV_COMPAT_VERSION, BATADV_UNICAST
				return false
			}
			proto = be16(b, nhoff+batadvHdrLen-2)
			nhoff += batadvHdrLen
			fdret = retProtoAgain

		case ethP1588:
			return has(b, nhoff, ptpHeaderLen)

		case ethPPRP, ethPHSR:
			if !has(b, nhoff, hsrHLen) {
				return false
			}
			proto = be16(b, nhoff+4)
			nhoff += hsrHLen
			fdret = retProtoAgain

		default:
			return false
		}

		switch fdret {
		case retProtoAgain:
			numHdrs++
			if numHdrs <= maxFlowDissectHdrs {
				continue protoAgain
			}
			return true
		case retContinue:
		default:
			return false
		}

		// ip_proto_again
		for {
			fdret = retContinue
			switch ipProto {
			case ipprotoGRE:
				fdret = dissectGRE(b, &proto, &nhoff)
				if fdret == retOutBad {
					return false
				}

			case ipprotoHopOpts, ipprotoRouting, ipprotoDstOpts:
				if proto != ethPIPv6 {
					break
				}
				if !has(b, nhoff, 2) {
					return false
				}
				ipProto = b[nhoff]
				nhoff += (int(b[nhoff+1]) + 1) << 3
				fdret = retIPProtoAgain

			case ipprotoFragment:
				if proto != ethPIPv6 {
					break
				}
				if !has(b, nhoff, fragHdrLen) {
					return false
				}
				isFrag = true
				ipProto = b[nhoff]
				nhoff += fragHdrLen
				fdret = retOutGood

			case ipprotoIPIP:
				proto = ethPIPv4
				fdret = retProtoAgain

			case ipprotoIPv6:
				proto = ethPIPv6
				fdret = retProtoAgain

			case ipprotoMPLS:
				proto = ethPMPLSUC
				fdret = retProtoAgain

			case ipprotoICMP, ipprotoICMPv6:
				flowGetICMP(b, nhoff, fk)
			}

			if !isFrag {
				fk.ports = flowGetPorts(b, nhoff, ipProto)
			}

			switch fdret {
			case retProtoAgain:
				numHdrs++
				if numHdrs <= maxFlowDissectHdrs {
					continue protoAgain
				}
				return true
			case retIPProtoAgain:
				numHdrs++
				if numHdrs <= maxFlowDissectHdrs {
					continue
				}
				return true
			default: // out_good or continue
				return true
			}
		}
	}
}

// dissectGRE is __skb_flow_dissect_gre() without STOP_AT_ENCAP: it returns
// retOutGood for GRE it does not look into, retOutBad for a truncated
// header, and retProtoAgain with proto and nhoff moved to the payload.
func dissectGRE(b []byte, proto *uint16, nhoff *int) int {
	off := *nhoff
	if !has(b, off, 4) {
		return retOutBad
	}
	flags := be16(b, off)
	if flags&greRouting != 0 {
		return retOutGood
	}
	ver := flags & greVersion
	if ver > 1 {
		return retOutGood
	}
	*proto = be16(b, off+2)
	if ver == 1 && (*proto != greProtoPP || flags&greKey == 0) {
		return retOutGood // version 1 must be PPTP with a key
	}
	hl := 4
	if flags&greCSUM != 0 {
		hl += 4 // checksum + reserved1
	}
	if flags&greKey != 0 {
		if !has(b, off+hl, 4) {
			return retOutBad
		}
		hl += 4
	}
	if flags&greSeq != 0 {
		hl += 4
	}
	if ver == 0 {
		if *proto == ethPTEB {
			if !has(b, off+hl, ethHdrLen) {
				return retOutBad
			}
			*proto = be16(b, off+hl+12)
			hl += ethHdrLen
		}
	} else {
		if flags&greAck != 0 {
			hl += 4
		}
		if !has(b, off+hl, 4) { // PPP_HDRLEN
			return retOutBad
		}
		switch be16(b, off+hl+2) { // PPP_PROTOCOL()
		case pppIP:
			*proto = ethPIPv4
		case pppIPv6:
			*proto = ethPIPv6
		}
		hl += 4
	}
	*nhoff = off + hl
	return retProtoAgain
}
