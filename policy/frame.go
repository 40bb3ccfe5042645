package policy

// EtherType classifies an Ethernet frame that starts at the destination MAC.
// It skips up to two VLAN tags (802.1Q 0x8100 and 802.1ad 0x88a8, in any
// order) and returns the ethertype behind them, the offset of the header
// that ethertype announces, the TCI of the outermost tag, and whether the
// frame is tagged. A third tag is not skipped: etype is then its TPID and
// l3off points at it.
//
// When the frame is too short for its Ethernet header and the tags it
// announces, every result is zero (etype 0 means "not classified").
// It never panics and does not allocate.
func EtherType(frame []byte) (etype uint16, l3off int, vlanTCI uint16, tagged bool) {
	if len(frame) < ethHdrLen {
		return 0, 0, 0, false
	}
	etype = be16(frame, 12)
	l3off = ethHdrLen
	for i := 0; i < 2 && isVLANProto(etype); i++ {
		if len(frame) < l3off+vlanHdrLen {
			return 0, 0, 0, false
		}
		if i == 0 {
			vlanTCI = be16(frame, l3off)
			tagged = true
		}
		etype = be16(frame, l3off+2)
		l3off += vlanHdrLen
	}
	return etype, l3off, vlanTCI, tagged
}

// IsSlowProtocol reports whether the frame is an untagged IEEE 802.3 Slow
// Protocols frame (ethertype 0x8809: LACPDU or marker). Slow protocols are
// never VLAN tagged, so a tagged 0x8809 is not one.
func IsSlowProtocol(frame []byte) bool {
	return len(frame) >= ethHdrLen && be16(frame, 12) == ethPSlow
}

// IsIGMP reports whether balance-rr would treat the frame as IGMP and send it
// through the current active slave instead of the round-robin one
// (bond_xmit_roundrobin_slave_get): skb->protocol is IPv4, a full 20-byte
// IPv4 header is present, and its protocol field is 2. Version, IHL and
// fragment fields are not checked, as in the kernel.
//
// With the frame model of [Hash], an outermost VLAN tag is out of band, so
// a single-tagged IGMP frame is IGMP; behind a second (QinQ) tag
// skb->protocol is 0x8100 and the frame is not.
func IsIGMP(frame []byte) bool {
	if len(frame) < ethHdrLen {
		return false
	}
	proto := be16(frame, 12)
	nh := ethHdrLen
	if isVLANProto(proto) && len(frame) >= ethHdrLen+vlanHdrLen {
		proto = be16(frame, 16)
		nh += vlanHdrLen
	}
	return proto == ethPIPv4 && has(frame, nh, ipv4MinLen) && frame[nh+9] == ipprotoIGMP
}
