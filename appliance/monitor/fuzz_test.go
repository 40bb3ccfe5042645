package monitor

import (
	"bytes"
	"net/netip"
	"testing"
)

// The seed corpora are committed under testdata/fuzz/FuzzParseARP and
// testdata/fuzz/FuzzParseNA; f.Add adds the same frames built here.
func fuzzSeedsARP(tb testing.TB) [][]byte {
	b := make([]byte, 64)
	var out [][]byte
	n, _ := BuildARPProbe(b, 0, testMAC, netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.1"))
	out = append(out, bytes.Clone(b[:n]))
	n, _ = BuildGratuitousARP(b, 100, testMAC, netip.MustParseAddr("192.0.2.10"))
	out = append(out, bytes.Clone(b[:n]))
	out = append(out, arpFrameTB(tb, testMAC, ARPReply, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.10"))[:42])
	return out
}

func FuzzParseARP(f *testing.F) {
	for _, s := range fuzzSeedsARP(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		a, err := ParseARP(frame)
		if err != nil {
			if a != (ARP{}) {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		if !a.SenderIP.Is4() || !a.TargetIP.Is4() {
			t.Fatalf("non-IPv4 addresses %+v", a)
		}
		// Rebuilding gives a frame that decodes to the same packet.
		buf := make([]byte, 64)
		n, err := BuildARP(buf, &a)
		if a.VLAN > MaxVLAN {
			if err != ErrVLAN {
				t.Fatalf("VLAN %d rebuilt: %v", a.VLAN, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		b, err := ParseARP(buf[:n])
		if err != nil || b != a {
			t.Fatalf("round trip\n got %+v %v\nwant %+v", b, err, a)
		}
	})
}

func fuzzSeedsNA(tb testing.TB) [][]byte {
	b := make([]byte, 128)
	var out [][]byte
	n, _ := BuildUnsolicitedNA(b, 0, testMAC, netip.MustParseAddr("2001:db8::10"), false)
	out = append(out, bytes.Clone(b[:n]))
	n, _ = BuildUnsolicitedNA(b, 7, testMAC, netip.MustParseAddr("fe80::1"), true)
	out = append(out, bytes.Clone(b[:n]))
	n = buildNA(tb, b, testMAC, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::10"))
	out = append(out, bytes.Clone(b[:n]))
	n, _ = BuildNS(b, 0, testMAC, netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::1"))
	out = append(out, bytes.Clone(b[:n]))
	return out
}

func FuzzParseNA(f *testing.F) {
	for _, s := range fuzzSeedsNA(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		nd, err := ParseND(frame)
		na, errNA := ParseNA(frame)
		if err != nil {
			if errNA != err || na != (ND{}) {
				t.Fatalf("ParseND %v, ParseNA %v %+v", err, errNA, na)
			}
			return
		}
		if nd.Type != ICMPv6NeighborSolicitation && nd.Type != ICMPv6NeighborAdvertisement {
			t.Fatalf("type %d accepted", nd.Type)
		}
		if !nd.IPSrc.Is6() || !nd.IPDst.Is6() || !nd.Target.Is6() {
			t.Fatalf("addresses %+v", nd)
		}
		if (nd.Type == ICMPv6NeighborAdvertisement) != (errNA == nil) {
			t.Fatalf("ParseNA %v on type %d", errNA, nd.Type)
		}
		if errNA == nil && na != nd {
			t.Fatalf("ParseNA %+v != ParseND %+v", na, nd)
		}
		if nd.Type == ICMPv6NeighborSolicitation && (nd.Router || nd.Solicited || nd.Override) {
			t.Fatalf("NA flags on an NS %+v", nd)
		}
		// An unsolicited NA rebuilt from what was parsed verifies.
		if nd.Type == ICMPv6NeighborAdvertisement && nd.HasLinkAddr && !nd.Target.IsUnspecified() && !nd.Target.Is4In6() && nd.VLAN <= MaxVLAN {
			buf := make([]byte, 128)
			n, err := BuildUnsolicitedNA(buf, nd.VLAN, nd.LinkAddr, nd.Target, nd.Router)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			if r, err := ParseNA(buf[:n]); err != nil || !r.ChecksumOK || r.Target != nd.Target {
				t.Fatalf("rebuilt %+v %v", r, err)
			}
		}
	})
}
