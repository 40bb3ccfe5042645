package lab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
)

const ovsSysID = "02:00:00:00:5a:01"

type adEnv struct {
	*env
	ovs *OVS
}

// setupAD builds n members whose far ends belong to a private Open vSwitch
// LACP partner, and starts the appliance in 802.3ad with opts.
func setupAD(t *testing.T, n int, o OVSOptions, opts map[string]string) *adEnv {
	t.Helper()
	privileged(t)
	for _, tool := range []string{"ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-appctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install openvswitch-switch)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	topo, err := NewTopoOpts(ctx, TopoOptions{Members: n, Queues: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	for _, ns := range []string{topo.GW, topo.Peer} {
		Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	if o.SysID == "" {
		o.SysID = ovsSysID
	}
	if o.IP == "" {
		o.IP = PeerIP + Prefix
	}
	ovs, err := StartOVS(ctx, topo.Peer, topo.Ports, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var diag strings.Builder
			for _, c := range [][]string{{"fdb/show", "lpbr"}, {"dpctl/dump-flows"}, {"bond/show", "lag"}} {
				out, _ := ovs.AppCtl(context.Background(), c...)
				fmt.Fprintf(&diag, "ovs-appctl %v:\n%s\n", c, out)
			}
			for _, ns := range []string{topo.GW, topo.Peer} {
				out, _ := Sh(context.Background(), "ip", "-n", ns, "neigh")
				fmt.Fprintf(&diag, "neigh %s:\n%s\n", ns, out)
			}
			t.Logf("diagnostics:\n%s\novs-vswitchd log:\n%s", diag.String(), ovs.Log(400))
		}
		ovs.Close()
	})
	e := &env{t: t, ctx: ctx, topo: topo}
	spec := BondSpec{Mode: "802.3ad", Options: map[string]string{"miimon": "100", "xmit_hash_policy": "layer3+4"}}
	for k, v := range opts {
		spec.Options[k] = v
	}
	e.start(spec)
	return &adEnv{env: e, ovs: ovs}
}

// distributing returns the names of our distributing slaves.
func (e *adEnv) distributing() []string {
	var out []string
	for _, s := range e.status().Slaves {
		if s.AD != nil && s.AD.Distributing {
			out = append(out, s.Name)
		}
	}
	return out
}

func (e *adEnv) waitDistributing(want int, timeout time.Duration) time.Duration {
	e.t.Helper()
	t0 := time.Now()
	for len(e.distributing()) != want {
		if time.Since(t0) > timeout {
			e.t.Fatalf("%d slaves distributing after %v, want %d: %s", len(e.distributing()), timeout, want, e.proc.StatusJSON())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(t0)
}

func TestIntegrationADAggregates(t *testing.T) {
	t0 := time.Now()
	e := setupAD(t, 2, OVSOptions{}, map[string]string{"lacp_rate": "fast"})
	el, err := e.ovs.WaitReady(e.ctx, 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.waitDistributing(2, 2*time.Second)
	t.Logf("aggregated: partner ready %v after start (%v since setup began)", el, time.Since(t0))
	s := e.status()
	ad := s.AD
	if ad == nil || ad.ActiveAggregator == nil || ad.ActiveAggregator.NumberOfPorts != 2 || ad.ActiveAggregator.PartnerMAC != ovsSysID {
		t.Fatalf("active aggregator: %+v", ad)
	}
	ms, err := e.ovs.MembersState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[int]bool{}
	for _, m := range ms {
		if m.PartnerSys != s.MAC || m.PartnerState&0x3c != 0x3c || m.PartnerState&0x02 == 0 {
			t.Fatalf("partner view of %s: sys %s (want %s) state %#x (want AGG SYN COL DIS and TMO for lacp_rate fast)", m.Name, m.PartnerSys, s.MAC, m.PartnerState)
		}
		ports[m.PartnerPort] = true
	}
	if len(ports) != 2 || ports[0] {
		t.Fatalf("partner saw port numbers %v: want two distinct non-zero", ports)
	}
	for _, sl := range s.Slaves {
		if sl.AD.Partner.SystemMAC != ovsSysID || sl.AD.Actor.PortState&0x3d != 0x3d {
			t.Fatalf("%s: %+v", sl.Name, sl.AD)
		}
	}
	// traffic both ways through the aggregate
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		t.Fatal(err)
	}
	// The partner's datapath may still be settling right after it enabled
	// the members (Open vSwitch revalidates its flows): allow a warm-up,
	// then require clean runs both ways.
	warm := time.Now().Add(5 * time.Second)
	for {
		_, err1 := e.topo.InGW(e.ctx, "ping", "-c", "1", "-W", "1", PeerIP)
		_, err2 := e.topo.InPeer(e.ctx, "ping", "-c", "1", "-W", "1", HostIP)
		if (err1 == nil && err2 == nil) || time.Now().After(warm) {
			break
		}
	}
	if out, err := e.topo.InGW(e.ctx, "ping", "-c", "5", "-i", "0.1", "-W", "1", PeerIP); err != nil {
		n1, _ := e.topo.InGW(e.ctx, "ip", "neigh")
		n2, _ := e.topo.InPeer(e.ctx, "ip", "-br", "link")
		t.Fatalf("ping: %v\n%s\ngw neigh:\n%s\npeer links:\n%s", err, out, n1, n2)
	}
	if out, err := e.topo.InPeer(e.ctx, "ping", "-c", "5", "-i", "0.1", "-W", "1", HostIP); err != nil {
		t.Fatalf("ping from partner side: %v\n%s", err, out)
	}
	// many flows use both members
	peerMAC := ovsBridgeMAC(t, e)
	per := e.hostToPeer(flowFrames(peerMAC, e.bondMAC(), 64, 4))
	if len(per[0]) < 40 || len(per[1]) < 40 {
		t.Fatalf("64 flows over the aggregate: %d/%d frames per member", len(per[0]), len(per[1]))
	}
	// tshark decodes our LACPDUs cleanly (when tshark is installed)
	if _, err := exec.LookPath("tshark"); err == nil {
		checkTshark(t, e)
	}
}

func ovsBridgeMAC(t *testing.T, e *adEnv) net.HardwareAddr {
	out, err := e.topo.InPeer(e.ctx, "cat", "/sys/class/net/lpbr/address")
	if err != nil {
		t.Fatal(err)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

func checkTshark(t *testing.T, e *adEnv) {
	pcap := t.TempDir() + "/lacp.pcap"
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	_, _ = Sh(ctx, "ip", "netns", "exec", e.topo.Peer, "tshark", "-q", "-i", e.topo.Ports[0], "-f", "ether proto 0x8809", "-a", "duration:4", "-c", "6", "-w", pcap)
	ours, err := stdout(ctx, "tshark", "-r", pcap, "-Y", "lacp && eth.src == "+strings.ToLower(e.status().Slaves[0].PermanentHWAddr), "-T", "fields", "-e", "frame.number")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(ours)); n == 0 {
		t.Fatalf("tshark saw none of our LACPDUs on %s", e.topo.Ports[0])
	}
	bad, _ := stdout(ctx, "tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= 0x00600000", "-T", "fields", "-e", "frame.number")
	if strings.TrimSpace(bad) != "" {
		detail, _ := Sh(ctx, "tshark", "-r", pcap, "-V", "-Y", "_ws.malformed || _ws.expert")
		t.Fatalf("tshark flags frames %s:\n%s", bad, detail)
	}
}

func TestIntegrationADLinkDown(t *testing.T) {
	e := setupAD(t, 2, OVSOptions{}, map[string]string{"lacp_rate": "fast"})
	if _, err := e.ovs.WaitReady(e.ctx, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitDistributing(2, 2*time.Second)
	t0 := time.Now()
	if err := e.topo.SetPort(e.ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	e.waitDistributing(1, 2*time.Second)
	t.Logf("member removed %v after carrier loss", time.Since(t0))
	if d := e.distributing(); d[0] != "m1" {
		t.Fatalf("distributing %v after m0 lost carrier", d)
	}
	if err := e.topo.SetPort(e.ctx, 0, true); err != nil {
		t.Fatal(err)
	}
	el := e.waitDistributing(2, 10*time.Second)
	t.Logf("member back %v after carrier return", el)
	if _, err := e.ovs.WaitReady(e.ctx, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationADSlaveDel: removing a member keeps the aggregate up on
// the others. One of the two members owns the aggregator both use; when it
// leaves, the other must keep distributing (bonding moves it to a free
// aggregator) instead of detaching and waiting 2 s to attach again. Each
// member is removed in turn, so the owner is removed once whichever it is.
func TestIntegrationADSlaveDel(t *testing.T) {
	e := setupAD(t, 2, OVSOptions{}, map[string]string{"lacp_rate": "fast"})
	if _, err := e.ovs.WaitReady(e.ctx, 2, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitDistributing(2, 5*time.Second)
	for i, m := range e.topo.Members {
		other := e.topo.Members[1-i]
		agg := e.status().AD.ActiveAggregator.ID
		e.slave("del", m)
		// what the status says for the next second, every 10 ms
		for t0 := time.Now(); time.Since(t0) < time.Second; time.Sleep(10 * time.Millisecond) {
			if d := e.distributing(); len(d) != 1 || d[0] != other {
				t.Fatalf("%v after slave del %s (aggregator %d): distributing %v, want [%s]\n%s", time.Since(t0), m, agg, d, other, e.proc.StatusJSON())
			}
		}
		e.slave("add", m)
		e.waitDistributing(2, 10*time.Second)
	}
}

// slave runs `slave BOND op m` on the control socket.
func (e *adEnv) slave(op, m string) {
	e.t.Helper()
	resp, err := appliance.Call(e.proc.Socket, appliance.Request{Cmd: "slave", Bond: BondName, Option: op, Value: m})
	if err == nil && !resp.OK {
		err = fmt.Errorf("%s", resp.Error)
	}
	if err != nil {
		e.t.Fatalf("slave %s %s: %v", op, m, err)
	}
}

// blackhole drops the LACPDUs the partner sends on port i.
func (e *adEnv) blackhole(i int) *Blackhole {
	e.t.Helper()
	b, err := NewBlackhole(e.topo.Peer, e.topo.Ports[i])
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { b.Close() })
	return b
}

func TestIntegrationADTimeout(t *testing.T) {
	for _, tc := range []struct {
		rate            string
		timeout, period time.Duration // our timeout; the partner's periodic time
	}{{"fast", 3 * time.Second, time.Second}, {"slow", 90 * time.Second, 30 * time.Second}} {
		t.Run("lacp_rate="+tc.rate, func(t *testing.T) {
			e := setupAD(t, 2, OVSOptions{}, map[string]string{"lacp_rate": tc.rate})
			if _, err := e.ovs.WaitReady(e.ctx, 2, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			e.waitDistributing(2, 3*time.Second)
			ms, _ := e.ovs.MembersState(e.ctx)
			for _, m := range ms {
				if tmo := m.PartnerState&0x02 != 0; tmo != (tc.rate == "fast") {
					t.Fatalf("partner sees our TMO bit %v with lacp_rate %s", tmo, tc.rate)
				}
			}
			t0 := time.Now()
			bh := e.blackhole(1)
			if tc.rate == "slow" {
				time.Sleep(5 * time.Second)
				if len(e.distributing()) != 2 {
					t.Fatal("long timeout: port timed out after 5 s")
				}
			}
			e.waitDistributing(1, tc.timeout+3*time.Second)
			el := time.Since(t0)
			t.Logf("lacp_rate %s: port out of the aggregate %v after the partner went silent", tc.rate, el)
			// the timer runs from the partner's last LACPDU, sent at most one
			// periodic time before the blackhole
			if el < tc.timeout-tc.period-500*time.Millisecond {
				t.Fatalf("timed out after %v, before the %v timeout", el, tc.timeout)
			}
			if d := e.distributing(); d[0] != "m0" {
				t.Fatalf("distributing %v", d)
			}
			bh.Close()
			e.waitDistributing(2, 35*time.Second)
		})
	}
}

func TestIntegrationADPassive(t *testing.T) {
	t.Run("lacp_active off vs active partner", func(t *testing.T) {
		e := setupAD(t, 2, OVSOptions{LACPMode: "active"}, map[string]string{"lacp_active": "off", "lacp_rate": "fast"})
		if _, err := e.ovs.WaitReady(e.ctx, 2, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		e.waitDistributing(2, 3*time.Second)
	})
	t.Run("lacp_active off vs passive partner", func(t *testing.T) {
		e := setupAD(t, 2, OVSOptions{LACPMode: "passive"}, map[string]string{"lacp_active": "off", "lacp_rate": "fast"})
		time.Sleep(5 * time.Second)
		if d := e.distributing(); len(d) != 0 {
			t.Fatalf("passive-passive aggregated: %v", d)
		}
		for _, s := range e.status().Slaves {
			if s.AD.Counters.LACPDUsTx != 0 {
				t.Fatalf("%s: passive port sent %d LACPDUs to a passive partner", s.Name, s.AD.Counters.LACPDUsTx)
			}
		}
	})
}

// TestIntegrationADSelect: the partner offers two aggregates with different
// keys (Open vSwitch bonds lag {p0,p1,p2} and lag2 {p3,p4}); our ports end
// up in two aggregators and ad_select picks the active one.
func TestIntegrationADSelect(t *testing.T) {
	for _, tc := range []struct {
		sel, slaves string
		want        []string // ports of the active aggregator
	}{
		{"count", "", []string{"m0", "m1", "m2"}},
		{"bandwidth", "", []string{"m0", "m1", "m2"}},
		{"actor_port_prio", "[m0, m1, m2, {name: m3, actor_port_prio: 1000}, {name: m4, actor_port_prio: 1000}]", []string{"m3", "m4"}},
	} {
		t.Run(tc.sel, func(t *testing.T) {
			opts := map[string]string{"ad_select": tc.sel, "lacp_rate": "fast"}
			if tc.slaves != "" {
				opts["slaves"] = tc.slaves
			}
			e := setupAD(t, 5, OVSOptions{Split: 3}, opts)
			deadline := time.Now().Add(10 * time.Second)
			for {
				s := e.status()
				aggs := map[int][]string{}
				for _, sl := range s.Slaves {
					aggs[sl.AD.AggregatorID] = append(aggs[sl.AD.AggregatorID], sl.Name)
				}
				if len(aggs) == 2 && s.AD.ActiveAggregator != nil && fmt.Sprint(aggs[s.AD.ActiveAggregator.ID]) == fmt.Sprint(tc.want) &&
					fmt.Sprint(e.distributing()) == fmt.Sprint(tc.want) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("ad_select %s: aggregators %v, active %+v, distributing %v; want active with %v", tc.sel, aggs, s.AD.ActiveAggregator, e.distributing(), tc.want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

var _ = appliance.Status{}

// stdout runs a command and returns its standard output only.
func stdout(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err
}
