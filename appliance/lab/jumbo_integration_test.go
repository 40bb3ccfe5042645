package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// jumboMTU is the bond MTU of the jumbo tests: with the default 2048-byte
// UMEM frames a full-size frame is a chain of six descriptors.
const jumboMTU = 9000

// setupJumbo builds members (and peer hosts behind the bridge) with every
// peer-side link at MTU 9000 and starts the appliance with spec at mtu
// 9000; the bond gets HostIP.
func setupJumbo(t *testing.T, members, hosts int, spec BondSpec) *env {
	t.Helper()
	privileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	topo, err := NewTopoOpts(ctx, TopoOptions{Members: members, Queues: 1, Bridge: true, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	mtu := fmt.Sprint(jumboMTU)
	for _, ns := range append([]string{topo.GW, topo.Peer}, topo.Hosts...) {
		Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	for _, p := range topo.Ports {
		mustSh(t, ctx, "ip", "-n", topo.Peer, "link", "set", p, "mtu", mtu)
	}
	for i, hn := range topo.Hosts {
		mustSh(t, ctx, "ip", "-n", topo.Peer, "link", "set", fmt.Sprintf("h%d", i), "mtu", mtu)
		mustSh(t, ctx, "ip", "-n", hn, "link", "set", "eth0", "mtu", mtu)
	}
	mustSh(t, ctx, "ip", "-n", topo.Peer, "link", "set", "br0", "mtu", mtu)
	if spec.Options == nil {
		spec.Options = map[string]string{}
	}
	spec.Options["mtu"] = mtu
	e := &env{t: t, ctx: ctx, topo: topo}
	e.start(spec)
	mustSh(t, ctx, "ip", "-n", topo.GW, "addr", "add", HostIP+Prefix, "dev", BondName)
	return e
}

func mustSh(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	out, err := Sh(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jumboPing pings with unfragmentable 9000-byte IP packets (8972 bytes of
// ICMP payload) from the gateway to ip (in namespace ns) and back.
func (e *env) jumboPing(t *testing.T, ns, ip string) {
	t.Helper()
	if out, err := e.topo.InGW(e.ctx, "ping", "-M", "do", "-s", "8972", "-c", "3", "-i", "0.2", "-W", "2", ip); err != nil {
		t.Fatalf("ping -M do -s 8972 host -> %s: %v\n%s", ip, err, out)
	}
	if out, err := Sh(e.ctx, "ip", "netns", "exec", ns, "ping", "-M", "do", "-s", "8972", "-c", "3", "-i", "0.2", "-W", "2", HostIP); err != nil {
		t.Fatalf("ping -M do -s 8972 %s -> host: %v\n%s", ip, err, out)
	}
}

// tcpTransfer sends size random bytes over TCP from a client in namespace
// from to a server on addr in namespace to, and checks that the server
// read exactly them (sha256), and that the connection's MSS is at least
// minMSS (8000 for the jumbo tests: the segments really were ~9000-byte
// frames).
func tcpTransfer(t *testing.T, from, to, addr string, size, minMSS int) {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	var ln net.Listener
	if err := InNetns(to, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		res <- r
	}()
	t0 := time.Now()
	c, err := DialInNetns(from, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
		t.Fatalf("send: %v", err)
	}
	mss := 0
	if rc, err := c.(*net.TCPConn).SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { mss, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) })
	}
	_ = c.(*net.TCPConn).CloseWrite()
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("receive: %v after %d bytes", r.err, r.n)
		}
		if r.n != int64(size) || r.sum != want {
			t.Fatalf("TCP %s -> %s: received %d bytes, sha256 %x; sent %d, sha256 %x", from, to, r.n, r.sum[:8], size, want[:8])
		}
	case <-time.After(90 * time.Second):
		t.Fatal("TCP transfer timed out")
	}
	el := time.Since(t0)
	t.Logf("TCP %s -> %s: %d bytes in %v (%.0f Mbit/s), sha256 checked, MSS %d", from, to, size, el.Round(time.Millisecond),
		float64(size)*8/el.Seconds()/1e6, mss)
	if mss < minMSS {
		t.Fatalf("MSS %d, want at least %d", mss, minMSS)
	}
}

// jumboChecks: the bond and a member carry MTU 9000, unfragmentable
// 9000-byte pings both ways, and checked TCP transfers both ways with
// the peer in namespace ns at ip.
func (e *env) jumboChecks(t *testing.T, ns, ip string) {
	t.Helper()
	for _, dev := range []string{BondName, e.topo.Members[0]} {
		out := mustSh(t, e.ctx, "ip", "-n", e.topo.GW, "-o", "link", "show", dev)
		if !strings.Contains(out, fmt.Sprintf(" mtu %d ", jumboMTU)) {
			t.Fatalf("%s: %s", dev, out)
		}
	}
	e.jumboPing(t, ns, ip)
	const size = 8 << 20
	tcpTransfer(t, e.topo.GW, ns, net.JoinHostPort(ip, "0"), size, 8000)
	tcpTransfer(t, ns, e.topo.GW, net.JoinHostPort(HostIP, "0"), size, 8000)
	if !strings.Contains(e.proc.Log(), "multi_buffer=true") {
		t.Fatalf("the appliance did not run multi-buffer:\n%s", e.proc.Log())
	}
}

// TestIntegrationJumbo: MTU 9000 in every mode that needs no special
// partner: frames of six UMEM frames cross the appliance as descriptor
// chains both ways, whole.
func TestIntegrationJumbo(t *testing.T) {
	for _, tc := range []struct {
		mode string
		opts map[string]string
	}{
		{"balance-rr", nil},
		{"active-backup", map[string]string{"miimon": "100"}},
		{"balance-xor", map[string]string{"xmit_hash_policy": "layer3+4"}},
		{"broadcast", nil},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := setupJumbo(t, 2, 0, BondSpec{Mode: tc.mode, Options: tc.opts})
			e.waitUp()
			e.jumboChecks(t, e.topo.Peer, PeerIP)
		})
	}
}

// TestIntegrationJumboALB: balance-alb at MTU 9000 with four peers
// behind the bridge (rlb spreads them over the slaves; each gets jumbo
// pings and a checked TCP transfer both ways).
func TestIntegrationJumboALB(t *testing.T) {
	e := setupJumbo(t, 2, 2, BondSpec{Mode: "balance-alb", Options: map[string]string{"miimon": "100"}})
	e.waitUp()
	for i, hn := range e.topo.Hosts {
		e.jumboChecks(t, hn, PeerHostIP(i))
	}
}

// TestIntegrationJumboAD: 802.3ad at MTU 9000 against Open vSwitch with
// mtu_request 9000 on its ports and bridge.
func TestIntegrationJumboAD(t *testing.T) {
	e := setupAD(t, 2, OVSOptions{MTU: jumboMTU}, map[string]string{"lacp_rate": "fast", "mtu": fmt.Sprint(jumboMTU)})
	if _, err := e.ovs.WaitReady(e.ctx, 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitDistributing(2, 5*time.Second)
	mustSh(t, e.ctx, "ip", "-n", e.topo.GW, "addr", "add", HostIP+Prefix, "dev", BondName)
	e.jumboChecks(t, e.topo.Peer, PeerIP)
}

// TestIntegrationJumboAttachModes: between 3507 and 3822 (single-buffer
// frames of 4096 bytes) veth runs no native single-buffer XDP program:
// xdp_attach native is refused before any change, naming the devices, the
// MTU and the limit (not the kernel's bare "numerical result out of
// range", which an attach refused all the same is also translated
// into); auto falls back to
// generic with a warning saying why. At 9000 the xdp.frags program runs
// natively.
func TestIntegrationJumboAttachModes(t *testing.T) {
	for _, tc := range []struct {
		name, mtu, frame, attach string
		fail                     []string // start fails with all of these
		log                      []string // else the log has all of these
	}{
		{"native 3600", "3600", "4096", "native", []string{"bond bond0: mtu 3600 is above veth's native XDP limit 3506 for a single-buffer program (bond0-dp, m0, m1): dataplane.xdp_attach native cannot be honoured"}, nil},
		{"auto 3600", "3600", "4096", "auto", nil, []string{"level=WARN", "XDP program attached in generic mode", "dev=m0", "3506"}},
		{"auto 9000", "9000", "2048", "auto", nil, []string{"XDP program attached\" dev=m0 mode=native mtu=9000 multi_buffer=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			privileged(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			topo, err := NewTopo(ctx, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer topo.Close()
			y := topo.Config(BondSpec{Mode: "active-backup", Options: map[string]string{"mtu": tc.mtu}}, "@SOCKET@")
			// fast_path off: with it the host veth's program is attached
			// generic by choice (see ARCHITECTURE.md, fast path), and
			// this test is about the MTU fallback
			y = strings.Replace(y, "dataplane:\n", "dataplane:\n  frame_size: "+tc.frame+"\n  xdp_attach: "+tc.attach+"\n  fast_path: off\n", 1)
			p, err := topo.Start(ctx, applianceBin, y)
			if tc.fail != nil {
				if err == nil {
					p.Stop()
					t.Fatal("started")
				}
				for _, w := range tc.fail {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error lacks %q:\n%v", w, err)
					}
				}
				msg := strings.Split(strings.TrimSpace(err.Error()), "\n")
				t.Logf("refused: %s", msg[len(msg)-1])
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			log := p.Log()
			for _, w := range tc.log {
				if !strings.Contains(log, w) {
					t.Fatalf("log lacks %q:\n%s", w, log)
				}
			}
		})
	}
}
