package lab

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// setupHosts is setup with n peer hosts behind the bridge.
func setupHosts(t *testing.T, members, hosts int, spec BondSpec) *env {
	t.Helper()
	privileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	topo, err := NewTopoOpts(ctx, TopoOptions{Members: members, Queues: 1, Bridge: true, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	for _, ns := range append([]string{topo.GW, topo.Peer}, topo.Hosts...) {
		Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	e := &env{t: t, ctx: ctx, topo: topo}
	e.start(spec)
	if _, err := topo.InGW(ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		t.Fatal(err)
	}
	return e
}

// hostMACSeen returns the MAC peer host i has for the bond's address.
func (e *env) hostMACSeen(i int) string {
	out, _ := Sh(e.ctx, "ip", "-n", e.topo.Hosts[i], "neigh", "show", HostIP)
	f := strings.Fields(out)
	for j := 0; j+1 < len(f); j++ {
		if f[j] == "lladdr" {
			return f[j+1]
		}
	}
	return ""
}

func (e *env) pingHosts(t *testing.T) {
	t.Helper()
	for i := range e.topo.Hosts {
		if out, err := e.topo.InGW(e.ctx, "ping", "-c", "2", "-i", "0.1", "-W", "1", PeerHostIP(i)); err != nil {
			t.Fatalf("ping host %d: %v\n%s", i, err, out)
		}
	}
}

// TestIntegrationALB: balance-alb assigns different peers to different
// slaves by ARP (seen in the peers' neighbour caches and in per-slave RX
// counters); when a slave fails its clients move to the survivor and
// traffic continues.
func TestIntegrationALB(t *testing.T) {
	e := setupHosts(t, 2, 4, BondSpec{Mode: "balance-alb", Options: map[string]string{"miimon": "100"}})
	e.waitUp()
	e.pingHosts(t)
	// rlb updates go out after RLB_UPDATE_DELAY
	seen := map[string]int{}
	el := waitFor(t, 5*time.Second, "peers to learn different slave MACs", func() bool {
		seen = map[string]int{}
		for i := range e.topo.Hosts {
			seen[e.hostMACSeen(i)]++
		}
		return len(seen) >= 2
	})
	t.Logf("peers assigned to slaves %v after %v", seen, el)
	s := e.status()
	// traffic from the peers arrives on both slaves
	before := [2]uint64{s.Slaves[0].Counters.RxPackets, s.Slaves[1].Counters.RxPackets}
	for i, h := range e.topo.Hosts {
		if out, err := Sh(e.ctx, "ip", "netns", "exec", h, "ping", "-c", "20", "-i", "0.01", "-W", "1", HostIP); err != nil {
			t.Fatalf("ping from host %d: %v\n%s", i, err, out)
		}
	}
	s = e.status()
	rx := [2]uint64{s.Slaves[0].Counters.RxPackets - before[0], s.Slaves[1].Counters.RxPackets - before[1]}
	t.Logf("balance-alb receive spread over 4 peers: m0 %d m1 %d frames; peers see MACs %v", rx[0], rx[1], seen)
	if rx[0] < 15 || rx[1] < 15 {
		t.Fatalf("receive not spread: m0 %d m1 %d", rx[0], rx[1])
	}
	// failover: the survivor takes the failed slave's clients
	if err := e.topo.SetPort(e.ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 3*time.Second, "m1 down", func() bool { return e.status().Slaves[1].MIIStatus == "down" })
	// the survivor takes m1's clients and sends them ARP updates
	for i, h := range e.topo.Hosts {
		waitFor(t, 5*time.Second, fmt.Sprintf("host %d to reach the bond after the failover", i), func() bool {
			_, err := Sh(e.ctx, "ip", "netns", "exec", h, "ping", "-c", "1", "-W", "1", HostIP)
			return err == nil
		})
	}
	t.Logf("balance-alb: every peer reaches the bond %v after the slave failed (updates sent %d)", time.Since(t0), e.status().ALB.UpdatesSent)
	if err := e.topo.SetPort(e.ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "m1 gets clients back", func() bool {
		st := e.status()
		if st.ALB == nil {
			return false
		}
		for _, as := range st.ALB.Slaves {
			if as.Index == 1 && as.Clients > 0 {
				return true
			}
		}
		return false
	})
}

// TestIntegrationTLB: balance-tlb spreads many flows over both slaves by
// load; receive stays on the active slave; traffic survives a failure.
func TestIntegrationTLB(t *testing.T) {
	e := setupHosts(t, 2, 4, BondSpec{Mode: "balance-tlb", Options: map[string]string{"miimon": "100", "tlb_dynamic_lb": "1"}})
	e.waitUp()
	e.pingHosts(t)
	load := func() {
		// load from the host to the four peers
		for i := range e.topo.Hosts {
			if out, err := e.topo.InGW(e.ctx, "ping", "-c", "50", "-i", "0.005", "-s", "1000", "-W", "1", PeerHostIP(i)); err != nil {
				t.Fatalf("ping host %d: %v\n%s", i, err, out)
			}
		}
	}
	// As in bonding, new flows go to the least loaded slave by the loads
	// measured at the last rebalance (every 10 s): before the first one
	// every flow lands on one slave. Load, wait for a rebalance, load again.
	load()
	rebalances := func() uint64 {
		if a := e.status().ALB; a != nil {
			return a.Rebalances
		}
		return 0
	}
	r0 := rebalances()
	waitFor(t, 12*time.Second, "a tlb rebalance", func() bool { return rebalances() > r0 })
	s := e.status()
	before := [2]uint64{s.Slaves[0].Counters.TxPackets, s.Slaves[1].Counters.TxPackets}
	load()
	s = e.status()
	tx := [2]uint64{s.Slaves[0].Counters.TxPackets - before[0], s.Slaves[1].Counters.TxPackets - before[1]}
	t.Logf("balance-tlb transmit spread over 4 peers: m0 %d m1 %d", tx[0], tx[1])
	if tx[0] < 20 || tx[1] < 20 {
		t.Fatalf("transmit not spread over both slaves: %v (alb %+v)", tx, s.ALB)
	}
	active := s.CurrentlyActiveSlave
	port := 0
	if active == "m1" {
		port = 1
	}
	if err := e.topo.SetPort(e.ctx, port, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "failover", func() bool { return e.status().CurrentlyActiveSlave != active })
	time.Sleep(300 * time.Millisecond)
	for i := range e.topo.Hosts {
		if out, err := e.topo.InGW(e.ctx, "ping", "-c", "3", "-i", "0.2", "-W", "1", PeerHostIP(i)); err != nil {
			t.Fatalf("after failover ping host %d: %v\n%s", i, err, out)
		}
	}
	if got := e.status().MAC; got == "" {
		t.Fatal("no bond MAC")
	}
}
