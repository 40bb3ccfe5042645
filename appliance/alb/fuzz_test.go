package alb

import (
	"bytes"
	"testing"
	"time"
)

// fuzzBond is a balance-alb bond with three slaves and a few clients.
func fuzzBond(t *testing.T) *Bond {
	b := newBond(t, ModeALB, 1000, 1000, 10000)
	for i := range 4 {
		b.HostTx(hostReply(i))
	}
	b.HostTx(hostRequest(5))
	b.Drain()
	return b
}

// checkOutput verifies frames and promiscuous-mode requests name real
// slaves and frames are whole Ethernet frames.
func checkOutput(t *testing.T, b *Bond, o Output) {
	t.Helper()
	for _, f := range o.Frames {
		if f.Slave < 0 || f.Slave >= len(b.sh.s) || len(f.Data) < ethHdrLen+arpLen {
			t.Fatalf("bad frame for slave %d, %d bytes", f.Slave, len(f.Data))
		}
	}
	for _, p := range o.Promisc {
		if p.Slave < 0 || p.Slave >= len(b.sh.s) {
			t.Fatalf("promisc for slave %d", p.Slave)
		}
	}
}

func FuzzHostTx(f *testing.F) {
	f.Add(hostReply(0))
	f.Add(hostRequest(7))
	f.Add(arp(2, clientMAC(1), mac(1), mac(1), hostIP, clientMAC(1), clientIP(1), 5))
	f.Add(ipv4(mac(99), mac(1), hostIP, "10.1.2.3", 6, 20))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		b := fuzzBond(t)
		in := bytes.Clone(frame)
		out, s, ok := b.HostTx(frame)
		if !bytes.Equal(in, frame) {
			t.Fatal("HostTx modified its input")
		}
		if ok {
			if len(out) != len(frame) || !b.sh.canTx(s) {
				t.Fatalf("ok with %d bytes (in %d) on slave %d", len(out), len(frame), s)
			}
			if len(out) >= ethHdrLen && !bytes.Equal(out[12:], frame[12:]) {
				// only the source and the ARP sender may change
				a, off, _, isARP := parseARP(frame)
				if !isARP || a.op != arpOpReply || !bytes.Equal(out[12:off+8], frame[12:off+8]) ||
					!bytes.Equal(out[off+14:], frame[off+14:]) {
					t.Fatal("HostTx changed more than the source addresses")
				}
			}
		} else if out != nil || s != -1 {
			t.Fatalf("not ok but slave %d, %d bytes", s, len(out))
		}
		// the data path functions on the same bytes
		tab := b.Table()
		ps, pc := tab.Pick(frame, fnvHash)
		if ps < ToControl || ps >= len(b.sh.s) || pc < -1 || pc > Unbalanced {
			t.Fatalf("Pick = %d, %d", ps, pc)
		}
		tab.SetSource(in, ps)
		tab.Deliver(1, in)
		TLBHashIndex(frame, ModeTLB, true, fnvHash)
		now := time.Duration(0)
		o := b.Drain()
		o2 := tickUntil(b, &now, 3*time.Second)
		o.Frames = append(o.Frames, o2.Frames...)
		checkOutput(t, b, o)
	})
}

func FuzzPeerRx(f *testing.F) {
	f.Add(0, peerReply(0))
	f.Add(1, peerReply(5))
	f.Add(2, arp(1, broadcast, MAC{0x52, 0x54, 0, 0, 9, 9}, MAC{0x52, 0x54, 0, 0, 9, 9}, hostIP, MAC{}, "10.0.0.99", 0))
	f.Add(1, arp(2, mac(1), clientMAC(5), clientMAC(5), clientIP(5), mac(1), hostIP, 7))
	f.Add(-1, []byte{0xff})
	f.Fuzz(func(t *testing.T, slave int, frame []byte) {
		b := fuzzBond(t)
		in := bytes.Clone(frame)
		b.PeerRx(slave, frame)
		if !bytes.Equal(in, frame) {
			t.Fatal("PeerRx modified its input")
		}
		for _, c := range b.RLB().Clients() {
			if c.Slave < -1 || c.Slave >= len(b.sh.s) {
				t.Fatalf("client on slave %d", c.Slave)
			}
		}
		b.Table().Deliver(slave, frame)
		now := time.Duration(0)
		checkOutput(t, b, tickUntil(b, &now, 3*time.Second))
	})
}
