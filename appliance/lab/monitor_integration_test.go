package lab

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0)
}

// TestIntegrationARPMonitor: active-backup with the ARP monitor (miimon 0):
// the active slave is up while its target answers, the bond goes down when
// the peer stops answering ARP (nftables drop in the peer namespace), and
// comes back when it answers again.
func TestIntegrationARPMonitor(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{
		"miimon": "0", "arp_interval": "100", "arp_ip_target": PeerIP, "arp_validate": "active",
	}})
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		t.Fatal(err)
	}
	up := func() bool { return e.status().MIIStatus == "up" }
	// validated: the active slave keeps receiving ARP replies (the monitor
	// learns the host's address within a second of it being added)
	rxARP := func() uint64 {
		s := e.status()
		for _, sl := range s.Slaves {
			if sl.Name == s.CurrentlyActiveSlave {
				return sl.Counters.CtrlRx
			}
		}
		return 0
	}
	el := waitFor(t, 5*time.Second, "the ARP monitor to validate replies on the active slave", func() bool {
		a := rxARP()
		time.Sleep(300 * time.Millisecond)
		return up() && a > 0 && rxARP() > a
	})
	s := e.status()
	t.Logf("bond up and validated %v after start, active %s, probes %d", el, s.CurrentlyActiveSlave, s.Monitor.ProbesSent)
	if s.ArpInterval != 100 || len(s.ArpTargets) != 1 || s.ArpTargets[0] != PeerIP || s.ArpValidate == "" {
		t.Fatalf("status lacks ARP monitor settings: %+v", s)
	}
	if out, err := e.topo.InGW(e.ctx, "ping", "-c", "3", "-i", "0.1", "-W", "1", PeerIP); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	// the target stops answering ARP
	if _, err := e.topo.InPeer(e.ctx, "nft", "add table arp batest"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.topo.InPeer(e.ctx, "nft", "add chain arp batest c { type filter hook input priority 0 ; policy drop ; }"); err != nil {
		t.Fatal(err)
	}
	el = waitFor(t, 5*time.Second, "the bond to go down without ARP replies", func() bool { return !up() })
	t.Logf("bond down %v after the target stopped answering", el)
	if el < 150*time.Millisecond {
		t.Fatalf("down after %v: sooner than arp_missed_max (2) intervals of 100 ms allow", el)
	}
	if _, err := e.topo.InPeer(e.ctx, "nft", "delete table arp batest"); err != nil {
		t.Fatal(err)
	}
	el = waitFor(t, 5*time.Second, "the bond to come back when the target answers", up)
	t.Logf("bond back %v after the target answered again", el)
}

// TestIntegrationPeerNotify: after a failover, num_grat_arp gratuitous ARPs
// for the host address leave on the new active slave with the bond MAC.
func TestIntegrationPeerNotify(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{"miimon": "100", "num_grat_arp": "3", "primary": "m0"}})
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "m0 active", func() bool { return e.status().CurrentlyActiveSlave == "m0" })
	time.Sleep(1500 * time.Millisecond) // the appliance reads the host's addresses once a second
	rx, err := OpenPacket(e.topo.Peer, e.topo.Ports[1])
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := e.topo.SetPort(e.ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "failover to m1", func() bool { return e.status().CurrentlyActiveSlave == "m1" })
	mac := e.bondMAC()
	host := net.ParseIP(HostIP).To4()
	n := 0
	for _, f := range rx.Recv(1500*time.Millisecond, 1000) {
		if len(f) >= 42 && f[12] == 0x08 && f[13] == 0x06 && bytes.Equal(f[6:12], mac) &&
			bytes.Equal(f[28:32], host) && bytes.Equal(f[38:42], host) && bytes.Equal(f[22:28], mac) {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d gratuitous ARPs for %s from %s on the new active slave, want num_grat_arp=3", n, HostIP, mac)
	}
}
