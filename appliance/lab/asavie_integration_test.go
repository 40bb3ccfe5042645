package lab

import (
	"net"
	"testing"
	"time"

	"github.com/asavie/xdp"
)

// TestIntegrationIndependentXSK receives the appliance's transmitted frames
// with an independent AF_XDP implementation (github.com/asavie/xdp, its own
// program, socket and UMEM) on the peer side of a member: the frames our
// rings and UMEM put on the wire are well-formed for another AF_XDP stack.
func TestIntegrationIndependentXSK(t *testing.T) {
	e := setup(t, 1, BondSpec{Mode: "balance-rr"})
	e.waitUp()
	sock, prog, ifindex := openAsavie(t, e.topo.Peer, e.topo.Ports[0])
	defer func() {
		inNetns(t, e.topo.Peer, func() { prog.Detach(ifindex) })
		prog.Close()
		sock.Close()
	}()
	peer, _ := net.ParseMAC(PeerMAC)
	frames := flowFrames(peer, e.bondMAC(), 4, 25)
	tx, err := OpenPacket(e.topo.GW, BondName)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	got := map[uint32]bool{}
	deadline := time.Now().Add(5 * time.Second)
	sock.Fill(sock.GetDescs(sock.NumFreeFillSlots()))
	next := 0
	for len(got) < len(frames) && time.Now().Before(deadline) {
		for k := 0; k < 10 && next < len(frames); k++ {
			_ = tx.Send(frames[next])
			next++
		}
		if n := sock.NumFreeFillSlots(); n > 0 {
			sock.Fill(sock.GetDescs(n))
		}
		numRx, _, err := sock.Poll(20)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range sock.Receive(numRx) {
			if q, ok := TestSeq(sock.GetFrame(d)); ok {
				got[q] = true
			}
		}
	}
	if len(got) != len(frames) {
		t.Fatalf("asavie/xdp received %d of %d frames", len(got), len(frames))
	}
}

func inNetns(t *testing.T, ns string, fn func()) {
	if err := InNetns(ns, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func openAsavie(t *testing.T, ns, dev string) (*xdp.Socket, *xdp.Program, int) {
	var sock *xdp.Socket
	var prog *xdp.Program
	var ifindex int
	inNetns(t, ns, func() {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			t.Fatal(err)
		}
		ifindex = ifi.Index
		prog, err = xdp.NewProgram(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := prog.Attach(ifindex); err != nil {
			t.Fatal(err)
		}
		sock, err = xdp.NewSocket(ifindex, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := prog.Register(0, sock.FD()); err != nil {
			t.Fatal(err)
		}
	})
	return sock, prog, ifindex
}
