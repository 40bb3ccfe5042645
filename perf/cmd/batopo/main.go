// Command batopo is perf/run.sh's topology helper, built on appliance/lab
// (the same namespaces the integration tests use).
//
//	batopo up [--members 2] [--queues 1] [--ref] --dir DIR [--mode M] [--opt k=v,...] [--cores 1] [--poll busy]
//	    creates a gateway and a peer namespace (members m0.., ports p0.. in an
//	    isolated-port bridge), writes DIR/bond.yaml for the appliance (control
//	    socket DIR/control.sock) and prints shell assignments: GW PEER MEMBERS
//	    PORTS CONFIG SOCKET BOND_MAC PEER_MAC HOST_IP PEER_IP. With --ref it
//	    also creates the veth pair bond0/bond0-dp the appliance would create,
//	    for the C reference forwarder.
//	    With --ovs the peer ports are left bare and a private Open vSwitch
//	    (lab.StartOVS, fast-rate active LACP, balance-tcp) takes them as the
//	    appliance's 802.3ad partner; it prints OVS_DIR too.
//	batopo down GW PEER [OVS_DIR]             deletes both namespaces (and stops that Open vSwitch)
//	batopo lacpwait --ovs-dir D --ns PEER --ports p0,p1 [--timeout 30s]
//	                                          waits until Open vSwitch has aggregated every port
//	batopo wait --socket S [--timeout 15s]    waits until the bond and all its slaves are up
//	batopo delta BEFORE.json AFTER.json       counter deltas of two `bond-appliance status --json` outputs
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
	"github.com/bond-appliance/bond-appliance/appliance/lab"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "down":
		if len(os.Args) != 4 && len(os.Args) != 5 {
			usage()
		}
		if len(os.Args) == 5 && os.Args[4] != "" {
			(&lab.OVS{Dir: os.Args[4], NS: os.Args[3]}).Close()
		}
		(&lab.Topo{GW: os.Args[2], Peer: os.Args[3]}).Close()
	case "lacpwait":
		err = lacpwait(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	case "delta":
		if len(os.Args) != 4 {
			usage()
		}
		err = delta(os.Args[2], os.Args[3])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "batopo %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: batopo up --dir DIR [--members N] [--queues Q] [--ref] [--mode M] [--opt k=v,...] [--cores C,...] [--poll busy|adaptive]\n"+
		"       batopo down GW PEER [OVS_DIR]\n       batopo lacpwait --ovs-dir D --ns PEER --ports p0,p1 [--timeout 30s]\n       batopo wait --socket S [--timeout 15s]\n       batopo delta BEFORE.json AFTER.json")
	os.Exit(2)
}

// refMAC is what the appliance gives bond0: the first member's permanent MAC
// (lab.NewTopo numbers them 02:42:b0:00:00:01, ...).
const refMAC = "02:42:b0:00:00:01"

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	members := fs.Int("members", 2, "member links")
	queues := fs.Int("queues", 1, "queues per member (= lanes)")
	ref := fs.Bool("ref", false, "also create bond0/bond0-dp for the C reference forwarder (no appliance)")
	dir := fs.String("dir", "", "directory for bond.yaml and the control socket (required)")
	mode := fs.String("mode", "balance-xor", "bonding mode")
	opts := fs.String("opt", "xmit_hash_policy=layer3+4", "extra bond options, comma-separated k=v")
	cores := fs.String("cores", "1", "dataplane.cores, comma-separated")
	poll := fs.String("poll", "busy", "dataplane.poll")
	withOVS := fs.Bool("ovs", false, "bare peer ports taken by a private Open vSwitch LACP partner (for mode 802.3ad)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	var coreList []int
	for _, c := range strings.Split(*cores, ",") {
		var n int
		if _, err := fmt.Sscan(c, &n); err != nil {
			return fmt.Errorf("--cores %q: %w", *cores, err)
		}
		coreList = append(coreList, n)
	}
	options := map[string]string{}
	for _, kv := range strings.Split(*opts, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			options[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t, err := lab.NewTopoOpts(ctx, lab.TopoOptions{Members: *members, Queues: *queues, Bridge: !*withOVS})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	if *ref {
		q := fmt.Sprint(*queues)
		steps := [][]string{
			{"ip", "-n", t.GW, "link", "add", lab.BondName, "numtxqueues", q, "numrxqueues", q, "type", "veth",
				"peer", "name", lab.BondName + "-dp", "numtxqueues", q, "numrxqueues", q},
			{"ip", "-n", t.GW, "link", "set", lab.BondName, "address", refMAC},
			{"ip", "netns", "exec", t.GW, "ethtool", "-K", lab.BondName, "tx", "off", "tso", "off", "gso", "off", "sg", "off"},
			{"ip", "-n", t.GW, "link", "set", lab.BondName + "-dp", "up"},
			{"ip", "-n", t.GW, "link", "set", lab.BondName, "up"},
		}
		for _, m := range t.Members {
			steps = append(steps, []string{"ip", "-n", t.GW, "link", "set", m, "up"})
		}
		for _, s := range steps {
			if _, err := lab.Sh(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	ovsDir := ""
	if *withOVS {
		for _, ns := range []string{t.GW, t.Peer} {
			_, _ = lab.Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
		}
		o, err := lab.StartOVS(ctx, t.Peer, t.Ports, lab.OVSOptions{SysID: "02:00:00:00:5a:01", IP: lab.PeerIP + lab.Prefix})
		if err != nil {
			return err
		}
		defer func() {
			if !ok {
				o.Close()
			}
		}()
		ovsDir = o.Dir
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	sock := filepath.Join(*dir, "control.sock")
	cfg := filepath.Join(*dir, "bond.yaml")
	yaml := t.Config(lab.BondSpec{Mode: *mode, Options: options, Cores: coreList, Poll: *poll}, sock)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return err
	}
	ok = true
	fmt.Printf("OVS_DIR=%s\n", ovsDir)
	fmt.Printf("GW=%s\nPEER=%s\nMEMBERS=%q\nPORTS=%q\nCONFIG=%s\nSOCKET=%s\nBOND_MAC=%s\nPEER_MAC=%s\nHOST_IP=%s\nPEER_IP=%s\n",
		t.GW, t.Peer, strings.Join(t.Members, " "), strings.Join(t.Ports, " "), cfg, sock, refMAC, lab.PeerMAC, lab.HostIP, lab.PeerIP)
	return nil
}

func lacpwait(args []string) error {
	fs := flag.NewFlagSet("lacpwait", flag.ContinueOnError)
	dir := fs.String("ovs-dir", "", "Open vSwitch state directory (OVS_DIR of batopo up --ovs)")
	ns := fs.String("ns", "", "its namespace (PEER)")
	ports := fs.String("ports", "p0,p1", "its ports, comma-separated")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ps := strings.Split(*ports, ",")
	o := &lab.OVS{Dir: *dir, NS: *ns, Members: ps}
	el, err := o.WaitReady(context.Background(), len(ps), *timeout)
	if err != nil {
		return err
	}
	fmt.Printf("aggregated_s=%.3f\n", el.Seconds())
	return nil
}

func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	sock := fs.String("socket", "", "control socket")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := appliance.Call(*sock, appliance.Request{Cmd: "status"})
		if err == nil && resp.OK && resp.Status != nil && len(resp.Status.Bonds) > 0 {
			up := resp.Status.Bonds[0].MIIStatus == "up"
			for _, s := range resp.Status.Bonds[0].Slaves {
				up = up && s.MIIStatus == "up"
			}
			if up {
				return nil
			}
			last = "bond or slaves not up yet"
		} else if err != nil {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s after %s", last, *timeout)
}

func load(path string) (*appliance.Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st appliance.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(st.Bonds) == 0 {
		return nil, fmt.Errorf("%s: no bond", path)
	}
	return &st, nil
}

// delta prints the counter changes between two status documents as
// metric=value pairs: host_* are the bond's host port (frames the host sent
// are host_rx, frames delivered to the host are host_tx), members_* the sum
// over slaves, then per slave.
func delta(a, b string) error {
	s0, err := load(a)
	if err != nil {
		return err
	}
	s1, err := load(b)
	if err != nil {
		return err
	}
	b0, b1 := s0.Bonds[0], s1.Bonds[0]
	var out []string
	add := func(k string, v uint64) { out = append(out, fmt.Sprintf("%s=%d", k, v)) }
	c := func(prefix string, x, y appliance.Counters) {
		add(prefix+"_rx", y.RxPackets-x.RxPackets)
		add(prefix+"_tx", y.TxPackets-x.TxPackets)
		add(prefix+"_drop_tx_full", y.DropTxFull-x.DropTxFull)
		add(prefix+"_drop_no_slave", y.DropNoSlave-x.DropNoSlave)
		add(prefix+"_drop_inactive", y.DropInactive-x.DropInactive)
		add(prefix+"_xsk_rx_dropped", y.XSKRxDropped-x.XSKRxDropped)
		add(prefix+"_xsk_fill_empty", y.XSKFillRingEmpty-x.XSKFillRingEmpty)
		add(prefix+"_xsk_rx_ring_full", y.XSKRxRingFull-x.XSKRxRingFull)
	}
	c("host", b0.Host, b1.Host)
	var m0, m1 appliance.Counters
	for i := range b1.Slaves {
		if i >= len(b0.Slaves) {
			break
		}
		x, y := b0.Slaves[i].Counters, b1.Slaves[i].Counters
		sum(&m0, x)
		sum(&m1, y)
	}
	c("members", m0, m1)
	for i := range b1.Slaves {
		if i < len(b0.Slaves) {
			add(b1.Slaves[i].Name+"_tx", b1.Slaves[i].Counters.TxPackets-b0.Slaves[i].Counters.TxPackets)
			add(b1.Slaves[i].Name+"_rx", b1.Slaves[i].Counters.RxPackets-b0.Slaves[i].Counters.RxPackets)
		}
	}
	var it0, it1, busy0, busy1, ns0, ns1 uint64
	for _, l := range s0.Lanes {
		it0 += l.Iterations
		busy0 += l.Busy
		ns0 += l.BusyNanos
	}
	for _, l := range s1.Lanes {
		it1 += l.Iterations
		busy1 += l.Busy
		ns1 += l.BusyNanos
	}
	add("lane_iterations", it1-it0)
	add("lane_busy_iterations", busy1-busy0)
	add("lane_busy_ns", ns1-ns0)
	add("wall_ns", uint64((s1.Uptime-s0.Uptime)*1e9))
	fmt.Println(strings.Join(out, " "))
	return nil
}

func sum(d *appliance.Counters, c appliance.Counters) {
	d.RxPackets += c.RxPackets
	d.TxPackets += c.TxPackets
	d.DropTxFull += c.DropTxFull
	d.DropNoSlave += c.DropNoSlave
	d.DropInactive += c.DropInactive
	d.XSKRxDropped += c.XSKRxDropped
	d.XSKFillRingEmpty += c.XSKFillRingEmpty
	d.XSKRxRingFull += c.XSKRxRingFull
}
