package lab

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Options configure the demo.
type Options struct {
	Binary     string // the bond-appliance binary
	Mode       string
	Seconds    int // iperf3 duration
	HostDevice string
	Out        io.Writer
}

// Run builds a two-member topology, starts the appliance, sends traffic
// through the aggregate, takes the active member's link down, shows traffic
// continuing, and removes everything (also when ctx is cancelled).
func Run(ctx context.Context, o Options) (err error) {
	w := o.Out
	say := func(f string, a ...any) { fmt.Fprintf(w, "==> "+f+"\n", a...) }
	for _, tool := range []string{"ip", "bridge", "ping", "iperf3", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install iproute2 iputils-ping iperf3 ethtool)", tool)
		}
	}
	lacpMode := o.Mode == "802.3ad" || o.Mode == "4"
	var partner *OVS
	var t *Topo
	if lacpMode {
		say("building namespaces: gateway box with members m0,m1; peer with p0,p1 in a private Open vSwitch bond speaking LACP")
		t, err = NewTopoOpts(ctx, TopoOptions{Members: 2, Queues: 1})
	} else {
		say("building namespaces: gateway box with members m0,m1; peer with p0,p1 in an isolated-port bridge")
		t, err = NewTopo(ctx, 2, 1)
	}
	if err != nil {
		return err
	}
	defer func() {
		say("removing namespaces %s and %s", t.GW, t.Peer)
		t.Close()
	}()
	if lacpMode {
		ovs, err := StartOVS(ctx, t.Peer, t.Ports, OVSOptions{SysID: "02:00:00:00:5a:01", IP: PeerIP + Prefix})
		if err != nil {
			return err
		}
		defer ovs.Close()
		partner = ovs
	}
	spec := BondSpec{Mode: o.Mode, HostDevice: o.HostDevice, Options: map[string]string{"miimon": "100"}}
	if o.Mode == "balance-xor" || o.Mode == "2" || lacpMode {
		spec.Options["xmit_hash_policy"] = "layer3+4"
	}
	if lacpMode {
		spec.Options["lacp_rate"] = "fast"
	}
	cfg := t.Config(spec, "@SOCKET@")
	say("starting bond-appliance in netns %s with:\n%s", t.GW, indent(cfg))
	p, err := t.Start(ctx, o.Binary, cfg)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the appliance (SIGTERM)")
		if serr := p.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("appliance exit: %v", serr)
		}
		fmt.Fprint(w, indent(lastLines(p.Log(), 8)))
	}()
	if _, err := t.InGW(ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		return err
	}
	if lacpMode {
		say("waiting for LACP to aggregate both members")
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, err := p.Status("")
			n := 0
			if err == nil {
				for _, s := range st.Bonds[0].Slaves {
					if s.AD != nil && s.AD.Distributing {
						n++
					}
				}
			}
			if n == 2 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("LACP did not aggregate within 15 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st, err := partner.MembersState(ctx); err == nil {
			for _, m := range st {
				fmt.Fprintf(w, "    partner (Open vSwitch) %s: ready=%v sees system %s state %#x\n", m.Name, m.Ready(), m.PartnerSys, m.PartnerState)
			}
		}
		// the partner's datapath settles right after it enables the members
		for i := 0; i < 20; i++ {
			if _, err := t.InGW(ctx, "ping", "-c", "1", "-W", "1", PeerIP); err == nil {
				break
			}
		}
	}
	say("host side %s %s, peer %s", BondName, HostIP, PeerIP)
	out, err := t.InGW(ctx, "ping", "-c", "5", "-i", "0.2", "-W", "1", PeerIP)
	fmt.Fprint(w, indent(out))
	if err != nil {
		return fmt.Errorf("ping through the aggregate failed: %w", err)
	}
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", t.Peer, "iperf3", "-s", "-1")
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	say("iperf3 %d s, host -> peer, 4 streams", o.Seconds)
	out, err = t.InGW(ctx, "iperf3", "-c", PeerIP, "-t", fmt.Sprint(o.Seconds), "-P", "4", "-f", "m")
	fmt.Fprint(w, indent(lastLines(out, 4)))
	if err != nil {
		return fmt.Errorf("iperf3: %w", err)
	}
	st, err := p.Status("")
	if err != nil {
		return err
	}
	say("per-member counters")
	active := 0
	for _, s := range st.Bonds[0].Slaves {
		fmt.Fprintf(w, "    %s: mii %s tx %d rx %d\n", s.Name, s.MIIStatus, s.Counters.TxPackets, s.Counters.RxPackets)
	}
	for i, s := range st.Bonds[0].Slaves {
		if s.Name == st.Bonds[0].CurrentlyActiveSlave {
			active = i
		}
	}
	say("taking %s down on the peer side (carrier loss on %s) while pinging", t.Ports[active], t.Members[active])
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ping := exec.CommandContext(pctx, "ip", "netns", "exec", t.GW, "ping", "-c", "20", "-i", "0.1", "-W", "1", PeerIP)
	var pout strings.Builder
	ping.Stdout = &pout
	if err := ping.Start(); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	if err := t.SetPort(ctx, active, false); err != nil {
		return err
	}
	perr := ping.Wait()
	fmt.Fprint(w, indent(lastLines(pout.String(), 3)))
	if perr != nil {
		return fmt.Errorf("traffic did not continue after the link went down: %v", perr)
	}
	st, err = p.Status("")
	if err != nil {
		return err
	}
	say("status after the failure")
	fmt.Fprint(w, indent(firstBond(st)))
	say("lab %s OK", o.Mode)
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n") + "\n"
}
