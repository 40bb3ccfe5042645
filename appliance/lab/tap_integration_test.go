package lab

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestIntegrationTapOffload: host_device tap with offloads (vnet header,
// TSO/USO, checksum): the host stack hands the TAP TSO super-frames,
// which the lane cuts into wire frames, and the lane hands the host
// coalesced ones. 8 MiB of TCP each way between the host and the peer,
// sha256 checked, and pings both ways; the TAP's own counters show that
// the host sent fewer, larger packets than went on the wire (TSO) and
// received fewer than the peer sent (GRO in the lane).
func TestIntegrationTapOffload(t *testing.T) {
	for _, tc := range []struct {
		mode string
		opts map[string]string
	}{
		{"active-backup", map[string]string{"miimon": "100"}},
		{"balance-xor", map[string]string{"xmit_hash_policy": "layer3+4"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: tc.mode, HostDevice: "tap", Options: tc.opts})
			e.waitUp()
			mustSh(t, e.ctx, "ip", "-n", e.topo.GW, "addr", "add", HostIP+Prefix, "dev", BondName)
			feat := mustSh(t, e.ctx, "ip", "netns", "exec", e.topo.GW, "ethtool", "-k", BondName)
			for _, f := range []string{"tcp-segmentation-offload: on", "tx-checksumming: on"} {
				if !strings.Contains(feat, f) {
					t.Fatalf("%s lacks %q:\n%s", BondName, f, feat)
				}
			}
			if out, err := e.topo.InGW(e.ctx, "ping", "-c", "5", "-i", "0.1", "-W", "1", PeerIP); err != nil {
				t.Fatalf("ping host -> peer: %v\n%s", err, out)
			}
			if out, err := e.topo.InPeer(e.ctx, "ping", "-c", "3", "-i", "0.1", "-s", "1400", "-W", "1", HostIP); err != nil {
				t.Fatalf("ping peer -> host: %v\n%s", err, out)
			}
			stat := func(k string) int {
				out := mustSh(t, e.ctx, "ip", "netns", "exec", e.topo.GW, "cat", "/sys/class/net/"+BondName+"/statistics/"+k)
				n, err := strconv.Atoi(strings.TrimSpace(out))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			const size = 8 << 20
			wire := size / 1448 // wire frames of one direction's data, at least
			tx0 := stat("tx_packets")
			tcpTransfer(t, e.topo.GW, e.topo.Peer, net.JoinHostPort(PeerIP, "0"), size, 0)
			tx := stat("tx_packets") - tx0
			rx0 := stat("rx_packets")
			tcpTransfer(t, e.topo.Peer, e.topo.GW, net.JoinHostPort(HostIP, "0"), size, 0)
			rx := stat("rx_packets") - rx0
			t.Logf("host -> peer: the TAP took %d packets for >= %d data frames; peer -> host: it gave %d packets for >= %d data frames", tx, wire, rx, wire)
			// without TSO the host sends every data frame (and with GRO in
			// the lane gone, receives every one) as a packet of its own
			if tx >= wire/2 {
				t.Errorf("host -> peer: %d packets through the TAP: no TSO", tx)
			}
			if rx >= wire/2 {
				t.Errorf("peer -> host: %d packets through the TAP: no coalescing", rx)
			}
		})
	}
}
