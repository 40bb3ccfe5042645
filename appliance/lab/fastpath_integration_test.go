package lab

import (
	"net"

	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memberTC is the id of the fast path's TC program on device m of the
// gateway namespace (0: none).
func memberTC(e *env, m string) (id uint32, err error) {
	err = InNetns(e.topo.GW, func() error {
		ifi, err := net.InterfaceByName(m)
		if err != nil {
			return err
		}
		id, err = xdpprog.TCOwned(ifi.Index)
		return err
	})
	return id, err
}

// TestIntegrationFastPathOffloads: with the kernel deciding every frame
// (active-backup; balance-xor layer3+4; balance-rr) the host end keeps its transmit
// offloads on and the members run no XDP program (their TC programs
// deliver after GRO). TSO super-frames cross the members whole (a
// member's transmit counter, which counts skbs, stays far below the wire
// frames of 8 MiB) and 8 MiB of TCP each way arrive intact (sha256; the
// kernel drops a segment with a bad checksum). Switching the bond at
// runtime to a configuration that needs the lane — the ARP monitor
// (received frames in the lane: the members' XDP programs attached) and,
// for balance-xor, encap3+4 (the host's frames in the lane: offloads off)
// — keeps TCP intact, and switching back restores the kernel path.
func TestIntegrationFastPathOffloads(t *testing.T) {
	for _, tc := range []struct {
		mode string
		opts map[string]string
	}{
		{"active-backup", map[string]string{"miimon": "100"}},
		{"balance-xor", map[string]string{"miimon": "100", "xmit_hash_policy": "layer3+4"}},
		{"balance-rr", map[string]string{"miimon": "100"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: tc.mode, Options: tc.opts})
			e.waitUp()
			mustSh(t, e.ctx, "ip", "-n", e.topo.GW, "addr", "add", HostIP+Prefix, "dev", BondName)
			offloads := func() bool {
				feat := mustSh(t, e.ctx, "ip", "netns", "exec", e.topo.GW, "ethtool", "-k", BondName)
				return strings.Contains(feat, "tcp-segmentation-offload: on") && strings.Contains(feat, "tx-checksumming: on")
			}
			xdpOn := func(m string) bool {
				return strings.Contains(mustSh(t, e.ctx, "ip", "-n", e.topo.GW, "-d", "link", "show", m), "prog/xdp")
			}
			membersXDP := func(want bool) func() bool {
				return func() bool {
					for _, m := range e.topo.Members {
						if xdpOn(m) != want {
							return false
						}
					}
					return true
				}
			}
			waitFor(t, 3*time.Second, "host offloads on", offloads)
			waitFor(t, 3*time.Second, "members without XDP", membersXDP(false))
			for _, m := range e.topo.Members {
				if id, err := memberTC(e, m); err != nil || id == 0 {
					t.Fatalf("%s: no fast-path TC program (%v)", m, err)
				}
			}
			stat := func(dev, k string) int {
				out := mustSh(t, e.ctx, "ip", "netns", "exec", e.topo.GW, "cat", "/sys/class/net/"+dev+"/statistics/"+k)
				n, err := strconv.Atoi(strings.TrimSpace(out))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			pings := func() {
				t.Helper()
				if out, err := e.topo.InGW(e.ctx, "ping", "-c", "5", "-i", "0.1", "-W", "1", PeerIP); err != nil {
					t.Fatalf("ping host -> peer: %v\n%s", err, out)
				}
				if out, err := e.topo.InPeer(e.ctx, "ping", "-c", "3", "-i", "0.1", "-s", "1400", "-W", "1", HostIP); err != nil {
					t.Fatalf("ping peer -> host: %v\n%s", err, out)
				}
			}
			both := func(size int) {
				t.Helper()
				tcpTransfer(t, e.topo.GW, e.topo.Peer, net.JoinHostPort(PeerIP, "0"), size, 0)
				tcpTransfer(t, e.topo.Peer, e.topo.GW, net.JoinHostPort(HostIP, "0"), size, 0)
			}
			pings()
			const size = 8 << 20
			tx0 := 0
			for _, m := range e.topo.Members {
				tx0 += stat(m, "tx_packets")
			}
			tcpTransfer(t, e.topo.GW, e.topo.Peer, net.JoinHostPort(PeerIP, "0"), size, 0)
			tx := -tx0
			for _, m := range e.topo.Members {
				tx += stat(m, "tx_packets")
			}
			wire := size / 1448
			t.Logf("host -> peer: the members sent %d skbs for >= %d wire frames", tx, wire)
			if tx >= wire/2 {
				t.Errorf("host -> peer: %d skbs on the members for %d wire frames: no TSO through the bond", tx, wire)
			}
			tcpTransfer(t, e.topo.Peer, e.topo.GW, net.JoinHostPort(HostIP, "0"), size, 0)
			if tc.mode == "balance-rr" {
				return
			}
			if tc.mode == "active-backup" {
				// a member removed and added again (same index, same
				// ifindex, a new device) is delivered by the kernel again:
				// make it the only member and check traffic through it
				for _, c := range [][]string{{"del", "m0"}, {"add", "m0"}, {"del", "m1"}} {
					if out, err := e.cli("slave", BondName, c[0], c[1]); err != nil {
						t.Fatalf("slave %s %s: %v %s", c[0], c[1], err, out)
					}
				}
				waitFor(t, 3*time.Second, "m0 active", func() bool { return e.status().CurrentlyActiveSlave == "m0" })
				pings()
				both(2 << 20)
				if out, err := e.cli("slave", BondName, "add", "m1"); err != nil {
					t.Fatalf("slave add m1: %v %s", err, out)
				}
				waitFor(t, 3*time.Second, "m1 back", func() bool { return len(e.status().Slaves) == 2 })
			}

			// the ARP monitor needs received frames in the lane (setting
			// arp_interval turns MII monitoring off, as bonding's sysfs;
			// setting miimon again turns ARP monitoring off)
			for _, kv := range [][2]string{{"arp_ip_target", PeerIP}, {"arp_interval", "100"}} {
				if out, err := e.cli("set", BondName, kv[0], kv[1]); err != nil {
					t.Fatalf("set %s %s: %v %s", kv[0], kv[1], err, out)
				}
			}
			waitFor(t, 3*time.Second, "members with XDP (ARP monitor)", membersXDP(true))
			waitFor(t, 5*time.Second, "bond up under the ARP monitor", func() bool { return e.status().MIIStatus == "up" })
			pings()
			both(2 << 20)
			for _, kv := range [][2]string{{"miimon", "100"}} {
				if out, err := e.cli("set", BondName, kv[0], kv[1]); err != nil {
					t.Fatalf("set %s %s: %v %s", kv[0], kv[1], err, out)
				}
			}
			waitFor(t, 3*time.Second, "members without XDP again", membersXDP(false))
			pings()
			both(2 << 20)

			if tc.mode != "balance-xor" {
				return
			}
			// encap3+4 is hashed in the lane: the host end's offloads go off
			if out, err := e.cli("set", BondName, "xmit_hash_policy", "encap3+4"); err != nil {
				t.Fatalf("set xmit_hash_policy: %v %s", err, out)
			}
			waitFor(t, 3*time.Second, "host offloads off", func() bool { return !offloads() })
			pings()
			both(2 << 20)
			if out, err := e.cli("set", BondName, "xmit_hash_policy", "layer3+4"); err != nil {
				t.Fatalf("set xmit_hash_policy: %v %s", err, out)
			}
			waitFor(t, 3*time.Second, "host offloads on again", offloads)
			both(2 << 20)
		})
	}
}
