package alb

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

const hostIP = "10.0.0.1"

func clientIP(i int) string { return fmt.Sprintf("10.0.0.%d", 11+i) }
func clientMAC(i int) MAC   { return MAC{0x52, 0x54, 0, 0, 0, byte(0x11 + i)} }
func hostReply(i int) []byte {
	return arp(2, clientMAC(i), mac(1), mac(1), hostIP, clientMAC(i), clientIP(i), 0)
}
func hostRequest(i int) []byte {
	return arp(1, broadcast, mac(1), mac(1), hostIP, MAC{}, clientIP(i), 0)
}
func peerReply(i int) []byte {
	return arp(2, mac(1), clientMAC(i), clientMAC(i), clientIP(i), mac(1), hostIP, 0)
}

// tickUntil ticks every TickInterval from *now (exclusive) to end
// (inclusive) and collects the output.
func tickUntil(b *Bond, now *time.Duration, end time.Duration) Output {
	var out Output
	for *now+TickInterval <= end {
		*now += TickInterval
		o := b.Tick(*now, nil)
		out.Frames = append(out.Frames, o.Frames...)
		out.Promisc = append(out.Promisc, o.Promisc...)
	}
	return out
}

// updatesFor returns the client updates (ARP replies) sent to client i.
func updatesFor(fs []Frame, i int) []Frame {
	var out []Frame
	for _, f := range fs {
		if a, _, _, ok := parseARP(f.Data); ok && a.op == arpOpReply && a.tha == clientMAC(i) {
			out = append(out, f)
		}
	}
	return out
}

func clientSlaves(b *Bond) map[string]int {
	m := map[string]int{}
	for _, c := range b.RLB().Clients() {
		m[c.IP.String()] = c.Slave
	}
	return m
}

func TestRLBAssignsClientsRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		speeds []int
		want   []int // slave per client
	}{
		{"equal", []int{1000, 1000, 1000}, []int{0, 1, 2, 0, 1, 2}},
		{"fastest only", []int{1000, 10000, 10000}, []int{1, 2, 1, 2, 1, 2}},
		{"one fast", []int{10000, 1000}, []int{0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBond(t, ModeALB, tc.speeds...)
			for i, want := range tc.want {
				in := hostReply(i)
				out, s, ok := b.HostTx(in)
				if !ok || s != want {
					t.Fatalf("client %d: slave %d ok %t, want %d", i, s, ok, want)
				}
				a, _, _, _ := parseARP(out)
				if a.sha != b.MAC(s) {
					t.Fatalf("client %d: ARP sender %s, want slave %d's %s", i, a.sha, s, b.MAC(s))
				}
				wantSrc := mac(1)
				if s != 0 {
					wantSrc = b.MAC(s)
				}
				if [6]byte(out[6:12]) != wantSrc {
					t.Fatalf("client %d: Ethernet source %x, want %s", i, out[6:12], wantSrc)
				}
				if !bytes.Equal(in, hostReply(i)) {
					t.Fatal("HostTx modified its input")
				}
			}
			// every reply had the client's MAC: one update (2 ARPs)
			// each at the next tick, and none after
			now := time.Duration(0)
			b.Tick(now, nil)
			out := tickUntil(b, &now, TickInterval)
			for i, want := range tc.want {
				u := updatesFor(out.Frames, i)
				if len(u) != rlbARPBurst || u[0].Slave != want {
					t.Fatalf("client %d: %d updates on %v, want %d on slave %d", i, len(u), framesBy(u), rlbARPBurst, want)
				}
			}
			if out = tickUntil(b, &now, 10*time.Second); len(out.Frames) != len(b.sh.s)*10 {
				// only learning packets are left: one per slave per second
				t.Fatalf("%d frames after the updates, want only learning packets", len(out.Frames))
			}
		})
	}
}

func TestRLBRequestThenReply(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000)
	now := time.Duration(0)
	b.Tick(now, nil)
	// the host asks for client 0: the request goes on the client's slave
	// with the bond's address as ARP sender
	out, s, ok := b.HostTx(hostRequest(0))
	if !ok || s != 0 {
		t.Fatalf("request: slave %d ok %t", s, ok)
	}
	if a, _, _, _ := parseARP(out); a.sha != mac(1) {
		t.Fatalf("request sender %s, want the bond's", a.sha)
	}
	// a second client is asked for: it gets slave 1
	out, s, _ = b.HostTx(hostRequest(1))
	if s != 1 || [6]byte(out[6:12]) != mac(2) {
		t.Fatalf("second request on slave %d from %x", s, out[6:12])
	}
	if !b.PeerRx(1, peerReply(0)) || !b.PeerRx(0, peerReply(1)) {
		t.Fatal("the clients' replies did not schedule updates")
	}
	if b.PeerRx(0, peerReply(1)) {
		t.Fatal("a repeated reply scheduled another update")
	}
	// RLB_UPDATE_DELAY after the request: 20 ticks counting down, the
	// 21st sends
	if o := tickUntil(b, &now, 2*time.Second); len(updatesFor(o.Frames, 0)) != 0 {
		t.Fatal("update sent before RLB_UPDATE_DELAY")
	}
	o := tickUntil(b, &now, 2100*time.Millisecond)
	u0, u1 := updatesFor(o.Frames, 0), updatesFor(o.Frames, 1)
	if len(u0) != 2 || len(u1) != 2 || u0[0].Slave != 0 || u1[0].Slave != 1 {
		t.Fatalf("updates %v %v", framesBy(u0), framesBy(u1))
	}
	golden := unhex(t, `525400000011 020000000001 0806
		0001 0800 06 04 0002 020000000001 0a000001 525400000011 0a00000b`)
	if !bytes.Equal(u0[0].Data, golden) {
		t.Fatalf("update to client 0:\n% x\nwant\n% x", u0[0].Data, golden)
	}
	golden = unhex(t, `525400000012 020000000002 0806
		0001 0800 06 04 0002 020000000002 0a000001 525400000012 0a00000c`)
	if !bytes.Equal(u1[0].Data, golden) {
		t.Fatalf("update to client 1:\n% x\nwant\n% x", u1[0].Data, golden)
	}
	if st := b.Status(); st.UpdatesSent != 4 || st.UpdatePending {
		t.Fatalf("status: %d updates, pending %t", st.UpdatesSent, st.UpdatePending)
	}
}

func TestRLBBroadcastRequestSchedulesSubnetUpdates(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000)
	now := time.Duration(0)
	b.Tick(now, nil)
	for i := range 4 {
		b.HostTx(hostReply(i)) // clients 0, 2 on slave 0; 1, 3 on slave 1
	}
	tickUntil(b, &now, 5*time.Second)
	// a broadcast request from the host's address teaches every peer the
	// bond's address: the clients not on it are updated 2 s later
	b.HostTx(arp(1, broadcast, mac(1), mac(1), hostIP, MAC{}, "10.0.0.200", 0))
	o := tickUntil(b, &now, 7*time.Second)
	if len(updatesFor(o.Frames, 1)) != 0 {
		t.Fatal("update before the delay")
	}
	o = tickUntil(b, &now, 7100*time.Millisecond)
	for i, want := range []int{0, 2, 0, 2} {
		if got := len(updatesFor(o.Frames, i)); got != want {
			t.Errorf("client %d: %d updates, want %d", i, got, want)
		}
	}
}

func TestRLBReplacedSlotAndPurge(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000)
	b.HostTx(hostReply(0)) // slave 0
	b.HostTx(hostReply(1)) // slave 1, hash 6
	b.Drain()
	// 10.0.1.13 hashes like 10.0.0.12 (10^1^13 = 6): it takes the slot;
	// the old client is told the bond's address (the active slave) first
	other := MAC{0x52, 0x54, 0, 0, 1, 1}
	if _, s, _ := b.HostTx(arp(2, other, mac(1), mac(1), hostIP, other, "10.0.1.13", 0)); s != 0 {
		t.Fatalf("new client on slave %d", s)
	}
	o := b.Drain()
	u := updatesFor(o.Frames, 1)
	if len(u) != 2 || u[0].Slave != 0 {
		t.Fatalf("old client updates %v", framesBy(u))
	}
	if a, _, _, _ := parseARP(u[0].Data); a.sha != mac(1) {
		t.Fatalf("old client told %s, want the bond's address", a.sha)
	}
	if _, ok := clientSlaves(b)["10.0.0.12"]; ok {
		t.Fatal("the replaced client is still listed")
	}
	// another machine claims the host's address: its slots go
	b.PeerRx(1, arp(1, broadcast, MAC{0x52, 0x54, 0, 0, 9, 9}, MAC{0x52, 0x54, 0, 0, 9, 9}, hostIP, MAC{}, "10.0.0.99", 0))
	if n := len(b.RLB().Clients()); n != 0 {
		t.Fatalf("%d clients left after the address moved", n)
	}
}

func TestRLBVLANClient(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000)
	b.HostTx(hostReply(0))
	out, s, _ := b.HostTx(arp(2, clientMAC(1), mac(1), mac(1), hostIP, clientMAC(1), clientIP(1), 5))
	if s != 1 || len(out) != 46 {
		t.Fatalf("tagged reply on slave %d, %d bytes", s, len(out))
	}
	o := b.Tick(0, nil)
	o = b.Tick(TickInterval, nil)
	u := updatesFor(o.Frames, 1)
	golden := unhex(t, `525400000012 020000000002 8100 0005 0806
		0001 0800 06 04 0002 020000000002 0a000001 525400000012 0a00000c`)
	if len(u) != 2 || !bytes.Equal(u[0].Data, golden) {
		t.Fatalf("tagged update:\n% x\nwant\n% x", u[0].Data, golden)
	}
	if c := b.RLB().Clients()[0]; c.VLAN != 5 {
		t.Fatalf("client VLAN %d", c.VLAN)
	}
}

// TestRLBFailoverAndRecovery: the active slave fails, its clients and the
// bond's address move, the clients are updated RLB_UPDATE_RETRY+1 times;
// when it comes back, it gets clients again once updelay has passed.
func TestRLBFailoverAndRecovery(t *testing.T) {
	cfg := Config{Mode: ModeALB, BondMAC: mac(1), DynamicLB: true, Updelay: 5 * time.Second, VLANs: []uint16{10}}
	for i := range 3 {
		cfg.Slaves = append(cfg.Slaves, Slave{Speed: 1000, MAC: mac(i + 1), Up: true})
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.ActiveChange(-1, 0)
	now := time.Duration(0)
	b.Tick(now, nil)
	for i := range 6 {
		b.HostTx(hostReply(i)) // slaves 0 1 2 0 1 2
	}
	tickUntil(b, &now, 5*time.Second)

	// slave 0, the active one, fails
	b.SlaveDown(0, now)
	got := clientSlaves(b)
	// rx_slave was 2; the slots are walked most recent first: client 3
	// wraps to slave 1, client 0 goes to slave 2
	if got[clientIP(3)] != 1 || got[clientIP(0)] != 2 {
		t.Fatalf("after the failure: %v", got)
	}
	changes := b.ActiveChange(0, 1)
	want := []MACChange{{Slave: 0, MAC: mac(2), Hardware: true}, {Slave: 1, MAC: mac(1), Hardware: true}}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("MAC changes %v, want %v", changes, want)
	}
	if tab := b.Table(); tab.Active != 1 || tab.MAC[1] != mac(1) || tab.MAC[0] != mac(2) {
		t.Fatalf("table active %d MACs %s %s", tab.Active, tab.MAC[0], tab.MAC[1])
	}
	o := tickUntil(b, &now, now+TickInterval)
	// alb_fasten_mac_swap: learning packets for the bond's address from
	// slave 1, then the failed slave's new address taught on slave 1,
	// which goes promiscuous
	var learned []string
	for _, f := range o.Frames {
		if be16(f.Data, 12) == ethPLoopback || (be16(f.Data, 12) == ethP8021Q && be16(f.Data, 16) == ethPLoopback) {
			learned = append(learned, fmt.Sprintf("%d:%x", f.Slave, f.Data[6:12]))
		}
	}
	wantLearned := "1:020000000001 1:020000000001 1:020000000002 1:020000000002"
	if strings.Join(learned, " ") != wantLearned {
		t.Fatalf("learning packets %v, want %s", learned, wantLearned)
	}
	if len(o.Promisc) != 1 || o.Promisc[0] != (Promisc{Slave: 1, On: true}) {
		t.Fatalf("promisc %v", o.Promisc)
	}
	// the moved clients (0, 3) and slave 1's clients (its address
	// changed: 1, 3, 4) are updated RLB_UPDATE_RETRY+1 times, 2 s apart,
	// starting when the delay left by the last update run has passed
	o2 := tickUntil(b, &now, now+10*time.Second)
	o.Frames = append(o.Frames, o2.Frames...)
	for i, want := range []int{8, 8, 0, 8, 8, 0} {
		u := updatesFor(o.Frames, i)
		if len(u) != want {
			t.Errorf("client %d: %d updates, want %d", i, len(u), want)
		}
		for _, f := range u {
			a, _, _, _ := parseARP(f.Data)
			if a.sha != b.MAC(f.Slave) || f.Slave != got[clientIP(i)] {
				t.Errorf("client %d: update from slave %d as %s", i, f.Slave, a.sha)
			}
		}
	}
	if st := b.Status(); st.UpdatesSent != 12+32 || st.UpdatePending {
		t.Fatalf("updates sent %d (pending %t), want 44", st.UpdatesSent, st.UpdatePending)
	}
	// promiscuous mode ends RLB_PROMISC_TIMEOUT after the teaching
	if len(o2.Promisc) != 1 || o2.Promisc[0] != (Promisc{Slave: 1, On: false}) {
		t.Fatalf("promisc after 10 s: %v", o2.Promisc)
	}

	// slave 0 comes back; updelay holds it for 5 s
	back := now
	b.SlaveUp(0, back)
	o = tickUntil(b, &now, back+4900*time.Millisecond)
	if n := b.Status().Slaves[0]; n.Clients != 0 || n.State != "going back" || n.Indexes != 0 {
		t.Fatalf("during updelay: %+v", n)
	}
	for _, f := range o.Frames {
		if f.Slave == 0 && be16(f.Data, 12) != ethPLoopback && be16(f.Data, 12) != ethP8021Q {
			t.Fatalf("frame other than a learning packet on slave 0 during updelay")
		}
	}
	o = tickUntil(b, &now, back+5*time.Second)
	st := b.Status()
	if st.Slaves[0].State != "up" || st.Slaves[0].Clients != 2 {
		t.Fatalf("after updelay: slave 0 %+v", st.Slaves[0])
	}
	// the clients that moved to slave 0 are told its address (now
	// mac(2)) once the update delay left by the last update run has
	// counted down (it only counts while updates are pending)
	if u := updatesFor(o.Frames, 2); len(u) != 0 {
		t.Fatalf("update before RLB_UPDATE_DELAY: %v", framesBy(u))
	}
	// (the rebalance and the first count down share a tick: 2.0 s)
	o2 = tickUntil(b, &now, back+6900*time.Millisecond)
	for i := range 6 {
		if u := updatesFor(o2.Frames, i); len(u) != 0 {
			t.Fatalf("client %d updated before RLB_UPDATE_DELAY", i)
		}
	}
	o = tickUntil(b, &now, back+7*time.Second)
	moved := 0
	for i := range 6 {
		if clientSlaves(b)[clientIP(i)] != 0 {
			continue
		}
		u := updatesFor(o.Frames, i)
		if len(u) != 2 || u[0].Slave != 0 {
			t.Fatalf("client %d on slave 0: updates %v", i, framesBy(u))
		}
		if a, _, _, _ := parseARP(u[0].Data); a.sha != mac(2) {
			t.Fatalf("client %d told %s", i, a.sha)
		}
		moved++
	}
	if moved != 2 {
		t.Fatalf("%d clients on slave 0", moved)
	}
}

func TestRLBTeachDisabledMAC(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 1000, 1000)
	b.HostTx(hostReply(0))
	b.HostTx(hostReply(1)) // slave 1
	b.Drain()
	b.SlaveDown(1, 0)
	o := b.Drain()
	if len(o.Promisc) != 1 || o.Promisc[0] != (Promisc{Slave: 0, On: true}) {
		t.Fatalf("promisc %v", o.Promisc)
	}
	if len(o.Frames) != 1 || o.Frames[0].Slave != 0 || [6]byte(o.Frames[0].Data[6:12]) != mac(2) {
		t.Fatalf("teaching frames %v", o.Frames)
	}
	// a second failure keeps the mode and restarts the timeout
	b.SlaveDown(2, 0)
	if o := b.Drain(); len(o.Promisc) != 0 || len(o.Frames) != 1 {
		t.Fatalf("second teaching: %v", o)
	}
	// an active change ends it
	b.ActiveChange(0, 0)
	changes := b.ActiveChange(0, -1)
	if changes != nil {
		t.Fatalf("changes %v", changes)
	}
	if o := b.Drain(); len(o.Promisc) != 1 || o.Promisc[0].On {
		t.Fatalf("promisc after the active change: %v", o.Promisc)
	}
}

func TestRLBNoSlave(t *testing.T) {
	b := newBond(t, ModeALB, 1000)
	b.SlaveDown(0, 0)
	b.ActiveChange(0, -1)
	if _, _, ok := b.HostTx(hostReply(0)); ok {
		t.Fatal("HostTx ok with no slave")
	}
	if _, _, ok := b.HostTx(hostRequest(0)); ok {
		t.Fatal("HostTx ok with no slave")
	}
	// an ARP from another machine (bridged) is not touched and goes on
	// the active slave
	b2 := newBond(t, ModeALB, 1000, 1000)
	in := arp(2, clientMAC(0), MAC{0x52, 0, 0, 0, 0, 1}, MAC{0x52, 0, 0, 0, 0, 1}, "10.0.0.50", clientMAC(0), clientIP(0), 0)
	out, s, ok := b2.HostTx(in)
	if !ok || s != 0 || !bytes.Equal(out, in) || len(b2.RLB().Clients()) != 0 {
		t.Fatalf("foreign ARP: slave %d ok %t", s, ok)
	}
}
