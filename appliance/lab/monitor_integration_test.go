package lab

import (
	"bytes"
	"fmt"
	"net"
	"strings"
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

// waitForErr polls cond until it holds or timeout passes.
func waitForErr(timeout time.Duration, cond func() bool) (time.Duration, error) {
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > timeout {
			return time.Since(t0), fmt.Errorf("timed out after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0), nil
}

// TestIntegrationARPMonitor: active-backup with the ARP monitor (miimon 0):
// the active slave is up while its target answers, the bond goes down when
// the peer stops answering ARP (nftables drop in the peer namespace), and
// comes back when it answers again.
func TestIntegrationARPMonitor(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{
		"miimon": "0", "arp_interval": "100", "arp_ip_target": PeerIP, "arp_validate": "active", "arp_missed_max": "3",
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
				return sl.Counters.NeighRx
			}
		}
		return 0
	}
	// validated: probes go out (the monitor knows the host's address) and
	// replies come back on the active slave, with the bond up throughout
	probes := func() uint64 {
		if m := e.status().Monitor; m != nil {
			return m.ProbesSent
		}
		return 0
	}
	// Until the monitor knows the host's address its probes come from
	// 0.0.0.0, no reply validates, and the active slave fails over every
	// arp_missed_max intervals (the backup sees the flooded probes): stable
	// means the same active slave, up, for 1 s, several failover periods.
	el := waitFor(t, 10*time.Second, "the ARP monitor to validate replies on the active slave", func() bool {
		a, p, act := rxARP(), probes(), e.status().CurrentlyActiveSlave
		for i := 0; i < 20; i++ {
			time.Sleep(50 * time.Millisecond)
			if s := e.status(); s.MIIStatus != "up" || s.CurrentlyActiveSlave != act {
				return false
			}
		}
		return a > 0 && rxARP() > a && probes() > p
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
	// the slave goes down arp_missed_max (3) intervals of 100 ms after its
	// last reply, which came at most one interval before the drop: no
	// sooner than 200 ms after it (50 ms for nft's own return)
	if el < 150*time.Millisecond {
		t.Fatalf("down after %v: sooner than arp_missed_max (3) intervals of 100 ms after the last reply allow", el)
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

func (e *env) linkMAC(ns, dev string) string {
	e.t.Helper()
	out, err := Sh(e.ctx, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/address")
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestIntegrationFailOverMAC: fail_over_mac active and follow move MACs as
// bonding does at a failover, and shutdown restores the members' MACs.
func TestIntegrationFailOverMAC(t *testing.T) {
	const mac0, mac1 = "02:42:b0:00:00:01", "02:42:b0:00:00:02" // the lab's permanent member MACs
	for _, tc := range []struct {
		fom           string
		before, after [3]string // m0, m1, bond0 before and after failing m0
	}{
		{"active", [3]string{mac0, mac1, mac0}, [3]string{mac0, mac1, mac1}},
		// follow: the new active takes the bond MAC, the old one the new one's former MAC
		{"follow", [3]string{mac0, mac1, mac0}, [3]string{mac1, mac0, mac0}},
		{"none", [3]string{mac0, mac0, mac0}, [3]string{mac0, mac0, mac0}},
	} {
		t.Run(tc.fom, func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{"miimon": "100", "fail_over_mac": tc.fom, "primary": "m0", "primary_reselect": "failure"}})
			waitFor(t, 3*time.Second, "m0 active", func() bool { return e.status().CurrentlyActiveSlave == "m0" })
			macs := func() [3]string {
				return [3]string{e.linkMAC(e.topo.GW, "m0"), e.linkMAC(e.topo.GW, "m1"), e.linkMAC(e.topo.GW, BondName)}
			}
			if got := macs(); got != tc.before {
				t.Fatalf("before failover m0,m1,bond0 = %v, want %v", got, tc.before)
			}
			if err := e.topo.SetPort(e.ctx, 0, false); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 3*time.Second, "failover to m1", func() bool { return e.status().CurrentlyActiveSlave == "m1" })
			// the device worker changes the MACs after the control loop
			// decided the failover
			var got [3]string
			if _, err := waitForErr(3*time.Second, func() bool { got = macs(); return got == tc.after }); err != nil {
				t.Fatalf("after failover m0,m1,bond0 = %v, want %v", got, tc.after)
			}
			if s := e.status(); s.MAC != tc.after[2] {
				t.Fatalf("status MAC %s, want %s", s.MAC, tc.after[2])
			}
			if err := e.proc.Stop(); err != nil {
				t.Fatal(err)
			}
			if m0, m1 := e.linkMAC(e.topo.GW, "m0"), e.linkMAC(e.topo.GW, "m1"); m0 != mac0 || m1 != mac1 {
				t.Fatalf("after shutdown m0 %s m1 %s, want %s %s", m0, m1, mac0, mac1)
			}
		})
	}
}

// TestIntegrationPromiscFollows: tcpdump-style promiscuity on the host
// device reaches the active member only (active-backup), all members in
// balance-xor, and is dropped again.
func TestIntegrationPromiscFollows(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want [2]bool
	}{{"active-backup", [2]bool{true, false}}, {"balance-xor", [2]bool{true, true}}} {
		t.Run(tc.mode, func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: tc.mode, Options: map[string]string{"miimon": "100"}})
			e.waitUp()
			promisc := func(dev string) bool {
				out, _ := e.topo.InGW(e.ctx, "ip", "-o", "link", "show", dev)
				return strings.Contains(out, "PROMISC")
			}
			if _, err := e.topo.InGW(e.ctx, "ip", "link", "set", BondName, "promisc", "on"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Second, "members to follow promisc on", func() bool {
				return promisc("m0") == tc.want[0] && promisc("m1") == tc.want[1]
			})
			if _, err := e.topo.InGW(e.ctx, "ip", "link", "set", BondName, "promisc", "off"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Second, "members to drop promisc", func() bool { return !promisc("m0") && !promisc("m1") })
		})
	}
}

// TestIntegrationUpDownDelay: downdelay holds a lost carrier for its time
// ("going down"), updelay a returning one ("going back").
func TestIntegrationUpDownDelay(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "balance-xor", Options: map[string]string{"miimon": "100", "updelay": "600", "downdelay": "400"}})
	e.waitUp()
	mii := func() string { return e.status().Slaves[0].MIIStatus }
	t0 := time.Now()
	if err := e.topo.SetPort(e.ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "going down", func() bool { return mii() == "going down" })
	waitFor(t, 2*time.Second, "down", func() bool { return mii() == "down" })
	if el := time.Since(t0); el < 400*time.Millisecond {
		t.Fatalf("down after %v, before downdelay 400 ms", el)
	}
	t0 = time.Now()
	if err := e.topo.SetPort(e.ctx, 0, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "going back", func() bool { return mii() == "going back" })
	waitFor(t, 2*time.Second, "up", func() bool { return mii() == "up" })
	if el := time.Since(t0); el < 600*time.Millisecond {
		t.Fatalf("up after %v, before updelay 600 ms", el)
	}
	if s := e.status(); s.UpDelay != 600 || s.DownDelay != 400 || s.Slaves[0].LinkFailureCount != 1 {
		t.Fatalf("status %+v", s)
	}
}

// TestIntegrationARPValidateFilter: with arp_validate none any traffic on the
// active slave keeps it up; with filter only ARP counts, so a stream of UDP
// frames from the peer does not hide that ARP replies stopped.
func TestIntegrationARPValidateFilter(t *testing.T) {
	for _, tc := range []struct {
		validate string
		down     bool
	}{{"none", false}, {"filter", true}} {
		t.Run(tc.validate, func(t *testing.T) {
			e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{
				"miimon": "0", "arp_interval": "100", "arp_ip_target": PeerIP, "arp_validate": tc.validate}})
			if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "bond up", func() bool { return e.status().MIIStatus == "up" })
			time.Sleep(1500 * time.Millisecond)
			active := e.status().CurrentlyActiveSlave
			port := 0
			if active == "m1" {
				port = 1
			}
			if _, err := e.topo.InPeer(e.ctx, "nft", "add table arp batest"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.topo.InPeer(e.ctx, "nft", "add chain arp batest c { type filter hook input priority 0 ; policy drop ; }"); err != nil {
				t.Fatal(err)
			}
			// UDP frames from the peer to the bond on the active's port, 1.5 s
			s, err := OpenPacket(e.topo.Peer, e.topo.Ports[port])
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			peer, _ := net.ParseMAC(PeerMAC)
			mac := e.bondMAC()
			wentDown := false
			for i := 0; i < 150; i++ {
				s.Send(UDPFrame(mac, peer, 7, 7, uint32(i), 64))
				time.Sleep(10 * time.Millisecond)
				if e.status().MIIStatus != "up" {
					wentDown = true
					break
				}
			}
			if wentDown != tc.down {
				t.Fatalf("arp_validate %s: bond went down %v while UDP flowed without ARP replies, want %v", tc.validate, wentDown, tc.down)
			}
		})
	}
}

const (
	peerIP6 = "2001:db8:b0::1"
	hostIP6 = "2001:db8:b0::2"
)

// TestIntegrationNSMonitor: the IPv6 neighbour-solicitation monitor keeps the
// active slave up while its target answers and takes the bond down when
// the target's advertisements stop (nftables drop in the peer namespace).
func TestIntegrationNSMonitor(t *testing.T) {
	e := setupIP(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{
		"miimon": "0", "arp_interval": "100", "ns_ip6_target": peerIP6, "arp_validate": "active"}}, true)
	if _, err := e.topo.InPeer(e.ctx, "ip", "addr", "add", peerIP6+"/64", "dev", "br0", "nodad"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", hostIP6+"/64", "dev", BondName, "nodad"); err != nil {
		t.Fatal(err)
	}
	up := func() bool { return e.status().MIIStatus == "up" }
	waitFor(t, 5*time.Second, "NS monitor to validate the active slave", func() bool {
		s := e.status()
		return up() && s.Monitor.ProbesSent > 15 && len(s.NSTargets) == 1
	})
	if out, err := e.topo.InGW(e.ctx, "ping", "-6", "-c", "3", "-i", "0.1", "-W", "1", peerIP6); err != nil {
		t.Fatalf("ping6: %v\n%s", err, out)
	}
	if _, err := e.topo.InPeer(e.ctx, "nft", "add table ip6 batest"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.topo.InPeer(e.ctx, "nft", "add chain ip6 batest out { type filter hook output priority 0 ; }"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.topo.InPeer(e.ctx, "nft", "add rule ip6 batest out icmpv6 type nd-neighbor-advert drop"); err != nil {
		t.Fatal(err)
	}
	el := waitFor(t, 5*time.Second, "bond down without neighbour advertisements", func() bool { return !up() })
	t.Logf("NS monitor: bond down %v after the target stopped advertising", el)
	if _, err := e.topo.InPeer(e.ctx, "nft", "delete table ip6 batest"); err != nil {
		t.Fatal(err)
	}
	el = waitFor(t, 5*time.Second, "bond back", up)
	t.Logf("NS monitor: bond back %v after advertisements resumed", el)
}

// TestIntegrationNotifyNAAndIGMP: after a failover the new active slave sends
// num_unsol_na unsolicited neighbour advertisements for the host's IPv6
// address and resend_igmp membership reports for its groups.
func TestIntegrationNotifyNAAndIGMP(t *testing.T) {
	e := setupIP(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{
		"miimon": "100", "num_unsol_na": "2", "resend_igmp": "2", "primary": "m0"}}, true)
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", hostIP6+"/64", "dev", BondName, "nodad"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", "239.1.2.3/32", "dev", BondName, "autojoin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "m0 active", func() bool { return e.status().CurrentlyActiveSlave == "m0" })
	time.Sleep(1500 * time.Millisecond) // addresses and groups are read once a second
	rx, err := OpenPacket(e.topo.Peer, e.topo.Ports[1])
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := e.topo.SetPort(e.ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "failover to m1", func() bool { return e.status().CurrentlyActiveSlave == "m1" })
	target := net.ParseIP(hostIP6)
	group := net.ParseIP("239.1.2.3").To4()
	na, igmp := 0, 0
	for _, f := range rx.Recv(1500*time.Millisecond, 1000) {
		switch {
		case len(f) >= 78 && f[12] == 0x86 && f[13] == 0xdd && f[20] == 58 && f[54] == 136 && bytes.Equal(f[62:78], target):
			na++
		case len(f) >= 38 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 2 && bytes.Contains(f[34:], group):
			igmp++
		}
	}
	if na != 2 {
		t.Fatalf("%d unsolicited NAs for %s on the new active slave, want num_unsol_na=2", na, hostIP6)
	}
	if igmp < 2 {
		t.Fatalf("%d IGMP reports for 239.1.2.3 on the new active slave, want resend_igmp=2", igmp)
	}
}

// TestIntegrationCombinedMonitors (extension combine_monitors): with miimon
// and the ARP monitor together, a slave whose carrier is up is still taken
// out when its ARP target stops answering.
func TestIntegrationCombinedMonitors(t *testing.T) {
	e := setup(t, 2, BondSpec{Mode: "active-backup", Options: map[string]string{
		"miimon": "100", "arp_interval": "100", "arp_ip_target": PeerIP, "arp_validate": "active", "combine_monitors": "true"}})
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		t.Fatal(err)
	}
	s := e.status()
	if s.ArpInterval != 100 || s.MIIPollingInterval != 100 {
		t.Fatalf("both monitors should be configured: arp %d miimon %d", s.ArpInterval, s.MIIPollingInterval)
	}
	waitFor(t, 5*time.Second, "bond up", func() bool { return e.status().MIIStatus == "up" })
	time.Sleep(1500 * time.Millisecond)
	if _, err := e.topo.InPeer(e.ctx, "nft", "add table arp batest"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.topo.InPeer(e.ctx, "nft", "add chain arp batest c { type filter hook input priority 0 ; policy drop ; }"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the ARP monitor to take the bond down", func() bool { return e.status().MIIStatus != "up" })
	for _, sl := range e.status().Slaves {
		if sl.MIIStatus != "up" {
			t.Fatalf("%s MII %s: carrier never went away", sl.Name, sl.MIIStatus)
		}
	}
}
