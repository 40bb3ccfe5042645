// Command bahost measures the host path the way users see it: TCP
// throughput (iperf3) and ping round-trip times between the host stack of
// the gateway namespace and a peer namespace, through the appliance (bond0 →
// AF_XDP lane → members → peer) and, in the same run, through a plain veth
// pair between the same two namespaces (the baseline: no appliance), for
// active-backup, balance-xor and 802.3ad (against a private Open vSwitch
// LACP partner, appliance/lab's). Root only; it builds and removes its own
// namespaces (appliance/lab), also on Ctrl-C.
//
//	bahost [-binary bin/bond-appliance] [-modes active-backup,balance-xor,802.3ad]
//	       [-seconds 3] [-repeat 1] [-pings 1000] [-interval 0.001] [-idle 3]
//	       [-gen-cpu 0] [-lane-cpu 1] [-retries 1] [-throughput=false] [-work DIR]
//	       [-fast-path auto,off] [-polls adaptive,busy] [-peer-offloads on|off]
//	       [-host-device veth|tap]
//
// The peer side is the same for both paths: -peer-offloads on (the
// default) leaves the members' peer ports and the baseline's peer end
// with a veth's transmit offloads (a peer TCP stack hands 64 KB TSO
// super-frames over, as between containers); off makes both wire-like
// (every segment built and checksummed by the peer, as from a physical
// switch port). 802.3ad's Open vSwitch partner always runs wire-like, and
// so does its baseline.
//
// -host-device tap (env HOST_DEVICE=tap) runs the appliance with
// dataplane.host_device tap; its rows are marked [tap] and its summary
// keys _tap. The fast path steps aside for a TAP host, so -fast-path
// defaults to auto alone then.
//
// Each -fast-path value (dataplane.fast_path, set through the
// environment) is measured in the same run against the same baseline;
// the rows and summary keys of "off" are marked ([fast_path off], _nofast).
//
// Per mode it starts the appliance twice, poll adaptive (the default) then
// poll busy, the whole process on -lane-cpu (dataplane.cores: [lane-cpu]);
// iperf3 and ping run on -gen-cpu, for the appliance and the baseline
// alike. With each poll mode: the appliance's CPU use over -idle seconds
// of idle, then ping (appliance, then baseline) p50/p99/max over -pings
// requests -interval seconds apart. With adaptive also iperf3 TCP, one
// stream host→peer and peer→host (and 4 streams both ways for
// balance-xor), -seconds each, the median of -repeat runs, appliance and
// baseline runs alternating. A measurement during which other processes
// on the machine used more than 10% of a CPU is marked contended and taken
// again (-retries times at most; the last run is reported, marked
// CONTENDED when it still was).
//
// It prints a table (appliance, plain veth, ratio per test) and one
// summary line: perf=hostpath ... metric=value ...
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
	"github.com/bond-appliance/bond-appliance/appliance/lab"
	"golang.org/x/sys/unix"
)

// Baseline veth pair addresses: the lab's scheme (PeerIP/HostIP in
// 198.18.0.0/24) moved to the next /24, so both paths live in the same
// namespaces at once.
const (
	basePeerIP = "198.18.1.1"
	baseHostIP = "198.18.1.2"
	baseHost   = "hb0" // in the gateway namespace
	basePeer   = "hp0" // in the peer namespace
)

type cfg struct {
	bin              string
	modes            []string
	secs, repeat     int
	pings            int
	interval         float64
	idle             float64
	genCPU, laneCPU  int
	retries          int
	throughput       bool
	fastPaths        []string // dataplane.fast_path values measured, in order
	peerOffloads     string   // "on" or "off": the peer side's transmit offloads, members' ports and baseline alike
	polls            []string // poll modes measured
	hostDevice       string   // dataplane.host_device: veth or tap
	work             string
	pgrp             int
	hz               float64
	mine             map[int]bool // processes we started outside our process group (Open vSwitch)
	port             int
	rows             []string
	sum              []string
	contended, total int
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func main() {
	c := &cfg{mine: map[int]bool{}, port: 5301, hz: 100}
	modes := flag.String("modes", envStr("MODES", "active-backup,balance-xor,802.3ad"), "bonding modes, comma-separated (env MODES)")
	flag.StringVar(&c.bin, "binary", envStr("BIN", "bin/bond-appliance"), "appliance binary (env BIN)")
	flag.IntVar(&c.secs, "seconds", envInt("PERF_SECONDS", 3), "seconds per iperf3 run (env PERF_SECONDS)")
	flag.IntVar(&c.repeat, "repeat", envInt("PERF_REPEAT", 1), "iperf3 runs per test, the median is reported (env PERF_REPEAT)")
	flag.IntVar(&c.pings, "pings", envInt("PINGS", 1000), "ping requests per RTT distribution (env PINGS)")
	flag.Float64Var(&c.interval, "interval", 0.001, "seconds between ping requests")
	flag.Float64Var(&c.idle, "idle", float64(envInt("IDLE_SECONDS", 3)), "seconds of idle over which the appliance's CPU use is measured (env IDLE_SECONDS)")
	flag.IntVar(&c.genCPU, "gen-cpu", envInt("GEN_CPU", 0), "CPU of iperf3 and ping (env GEN_CPU)")
	flag.IntVar(&c.laneCPU, "lane-cpu", envInt("LANE_CPU", 1), "CPU of the appliance and its lane (env LANE_CPU)")
	flag.IntVar(&c.retries, "retries", envInt("RETRIES", 1), "re-runs of a contended measurement (env RETRIES)")
	flag.BoolVar(&c.throughput, "throughput", envStr("THROUGHPUT", "1") != "0", "run the iperf3 tests (env THROUGHPUT=0 leaves them out)")
	flag.StringVar(&c.work, "work", "", "directory for configs and logs (default: a temporary one, removed)")
	fast := flag.String("fast-path", envStr("FAST_PATH", "auto"), "dataplane.fast_path values to measure, comma-separated (env FAST_PATH; off needs -peer-offloads off)")
	flag.StringVar(&c.peerOffloads, "peer-offloads", envStr("PEER_OFFLOADS", "on"), "on: the peer side's veth ends transmit as a veth does (TSO, GSO, checksum offload); off: like a wire (none); applied to the members' peer ports and the baseline's peer end alike (802.3ad: always off, Open vSwitch's userspace datapath takes the ports) (env PEER_OFFLOADS)")
	polls := flag.String("polls", envStr("POLLS", "adaptive,busy"), "poll modes to measure, comma-separated (env POLLS)")
	flag.StringVar(&c.hostDevice, "host-device", envStr("HOST_DEVICE", "veth"), "dataplane.host_device: veth or tap (env HOST_DEVICE)")
	flag.Parse()
	c.modes = strings.Split(*modes, ",")
	c.fastPaths = strings.Split(*fast, ",")
	fastSet := os.Getenv("FAST_PATH") != ""
	flag.Visit(func(f *flag.Flag) { fastSet = fastSet || f.Name == "fast-path" })
	if c.hostDevice == "tap" && !fastSet {
		c.fastPaths = []string{"auto"} // no fast path for a TAP host: one pass
	}
	c.polls = strings.Split(*polls, ",")
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "bahost:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := c.run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bahost:", err)
		os.Exit(1)
	}
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *cfg) check() error {
	for _, m := range c.modes {
		switch m {
		case "active-backup", "balance-xor", "802.3ad":
		default:
			return fmt.Errorf("-modes: %q is not one of active-backup, balance-xor, 802.3ad", m)
		}
	}
	for _, f := range c.fastPaths {
		if f != "auto" && f != "off" {
			return fmt.Errorf("-fast-path: %q is not one of auto, off", f)
		}
	}
	if c.hostDevice != "veth" && c.hostDevice != "tap" {
		return fmt.Errorf("-host-device: %q is not one of veth, tap", c.hostDevice)
	}
	if c.peerOffloads != "on" && c.peerOffloads != "off" {
		return fmt.Errorf("-peer-offloads: %q is not one of on, off", c.peerOffloads)
	}
	// A veth peer with offloads hands partial checksums over (a wire never
	// does); the lane copies bytes and cannot finish them, so peer → host
	// TCP through the lane would carry bad checksums.
	if c.peerOffloads == "on" && (c.hostDevice == "tap" || slices.Contains(c.fastPaths, "off")) {
		return fmt.Errorf("-peer-offloads on with -fast-path off or -host-device tap: a veth peer with offloads hands partial checksums over, which the lane (copy-mode AF_XDP) cannot finish; measure those with -peer-offloads off (PEER_OFFLOADS=off), which makes the peer wire-like for both paths")
	}
	for _, p := range c.polls {
		if p != "adaptive" && p != "busy" {
			return fmt.Errorf("-polls: %q is not one of adaptive, busy", p)
		}
	}
	switch {
	case c.secs < 1:
		return fmt.Errorf("-seconds %d: at least 1", c.secs)
	case c.repeat < 1:
		return fmt.Errorf("-repeat %d: at least 1", c.repeat)
	case c.pings < 10:
		return fmt.Errorf("-pings %d: at least 10", c.pings)
	case c.interval < 0.0002 || c.interval > 1:
		return fmt.Errorf("-interval %g: between 0.0002 and 1 s", c.interval)
	case c.idle < 1:
		return fmt.Errorf("-idle %g: at least 1 s", c.idle)
	case c.retries < 0:
		return fmt.Errorf("-retries %d: at least 0", c.retries)
	}
	n := runtimeCPUs()
	if c.genCPU < 0 || c.genCPU >= n || c.laneCPU < 0 || c.laneCPU >= n {
		return fmt.Errorf("-gen-cpu %d / -lane-cpu %d: this machine has CPUs 0..%d", c.genCPU, c.laneCPU, n-1)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (namespaces, XDP, AF_XDP)")
	}
	for _, t := range []string{"ip", "iperf3", "ping", "taskset", "ethtool"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("missing %s", t)
		}
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("-binary: %w (make build)", err)
	}
	return nil
}

func runtimeCPUs() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 1
	}
	n := 0
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			n = i + 1
		}
	}
	return n
}

func (c *cfg) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", a...)
}

func (c *cfg) run(ctx context.Context) error {
	c.pgrp = syscall.Getpgrp()
	if c.work == "" {
		d, err := os.MkdirTemp("", "ba-hostpath-")
		if err != nil {
			return err
		}
		c.work = d
		ok := false
		defer func() {
			if ok {
				os.RemoveAll(d)
			} else {
				fmt.Fprintf(os.Stderr, "bahost: logs kept in %s\n", d)
			}
		}()
		defer func() { ok = ctx.Err() == nil }()
	}
	abs, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	c.bin = abs
	c.logf("load before start: %s", loadavg())
	for _, m := range c.modes {
		if err := c.mode(ctx, m); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
	}
	fmt.Println()
	fmt.Printf("bond-appliance host path vs a plain veth pair, same namespaces; peer transmit offloads %s (802.3ad: off); iperf3 %d s x %d (median), ping %d x %g ms; iperf3/ping on CPU %d, appliance on CPU %d; %s\n", c.peerOffloads,
		c.secs, c.repeat, c.pings, c.interval*1000, c.genCPU, c.laneCPU, kernel())
	fmt.Println("ratio = appliance / veth; other_ms = CPU time other processes on the machine used during the measurement (a clean run has ~0)")
	fmt.Println()
	fmt.Printf("%-56s %10s %10s %7s %9s  %s\n", "test", "appliance", "veth", "ratio", "other_ms", "notes")
	for _, r := range c.rows {
		fmt.Println(r)
	}
	fmt.Println()
	fmt.Printf("perf=hostpath seconds=%d repeat=%d pings=%d %s contended=%d/%d\n", c.secs, c.repeat, c.pings, strings.Join(c.sum, " "), c.contended, c.total)
	return nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func kernel() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

var short = map[string]string{"active-backup": "ab", "balance-xor": "xor", "802.3ad": "ad"}

func sh(ctx context.Context, args ...string) (string, error) {
	return lab.Sh(ctx, args[0], args[1:]...)
}

// mode measures one bonding mode on a topology of its own.
func (c *cfg) mode(ctx context.Context, mode string) error {
	ad := mode == "802.3ad"
	t, err := lab.NewTopoOpts(ctx, lab.TopoOptions{Members: 2, Queues: 1, Bridge: !ad})
	if err != nil {
		return err
	}
	defer t.Close()
	var ovs *lab.OVS
	opts := map[string]string{"miimon": "100"}
	switch mode {
	case "balance-xor":
		opts["xmit_hash_policy"] = "layer3+4"
	case "802.3ad":
		opts["xmit_hash_policy"] = "layer3+4"
		opts["lacp_rate"] = "fast"
		for _, ns := range []string{t.GW, t.Peer} {
			_, _ = sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
		}
		ovs, err = lab.StartOVS(ctx, t.Peer, t.Ports, lab.OVSOptions{SysID: "02:00:00:00:5a:01", IP: lab.PeerIP + lab.Prefix})
		if err != nil {
			return err
		}
		defer ovs.Close()
		// the partner is the peer side: on the generator's CPU, and its
		// CPU time is ours, not contention
		for _, f := range []string{"ovs-vswitchd.pid", "ovsdb-server.pid"} {
			if pid := readPid(filepath.Join(ovs.Dir, f)); pid > 0 {
				c.mine[pid] = true
				pinAll(pid, c.genCPU)
			}
		}
	}
	// the baseline: a plain veth pair between the same namespaces
	for _, s := range [][]string{
		{"ip", "-n", t.GW, "link", "add", baseHost, "type", "veth", "peer", "name", basePeer, "netns", t.Peer},
		{"ip", "-n", t.GW, "addr", "add", baseHostIP + lab.Prefix, "dev", baseHost},
		{"ip", "-n", t.Peer, "addr", "add", basePeerIP + lab.Prefix, "dev", basePeer},
		{"ip", "-n", t.GW, "link", "set", baseHost, "up"},
		{"ip", "-n", t.Peer, "link", "set", basePeer, "up"},
	} {
		if _, err := sh(ctx, s...); err != nil {
			return err
		}
	}
	// Both paths see the same peer: the members' peer ports and the
	// baseline's peer end transmit with the same offloads (lab.Topo makes
	// the ports wire-like; a veth's default hands TSO super-frames on).
	v := "on"
	if c.peerOffloads == "off" || ad {
		v = "off"
	}
	ends := []string{basePeer}
	if !ad {
		ends = append(ends, t.Ports...)
	}
	for _, p := range ends {
		if _, err := sh(ctx, "ip", "netns", "exec", t.Peer, "ethtool", "-K", p, "tx", v, "tso", v, "gso", v, "sg", v); err != nil {
			return fmt.Errorf("peer offloads %s on %s: %w", v, p, err)
		}
	}
	if ad {
		// lab.Topo makes the members wire-like towards Open vSwitch (its
		// packet sockets see partial checksums unfinished): the baseline's
		// host end transmits the same way
		if _, err := sh(ctx, "ip", "netns", "exec", t.GW, "ethtool", "-K", baseHost, "tx", "off", "tso", "off", "gso", "off", "sg", "off"); err != nil {
			return fmt.Errorf("baseline offloads: %w", err)
		}
	}
	c.logf("%s: peer transmit offloads %s (members' peer ports and the baseline's peer end)", mode, v)
	if err := c.reach(ctx, t.GW, basePeerIP, 5*time.Second); err != nil {
		return fmt.Errorf("baseline veth: %w", err)
	}
	for _, fp := range c.fastPaths {
		k, label := short[mode], mode
		if fp == "off" {
			// keys and rows of the lane-only path are marked; fast_path
			// auto (the default) keeps the plain names
			k, label = k+"_nofast", mode+" [fast_path off]"
		}
		if c.hostDevice == "tap" {
			k, label = k+"_tap", label+" [tap]"
		}
		for _, poll := range c.polls {
			a, err := c.start(ctx, t, mode, poll, fp, opts)
			if err != nil {
				return err
			}
			err = c.withAppliance(ctx, t, ovs, a, label, k, poll)
			a.stop()
			if err != nil {
				return fmt.Errorf("fast_path %s, poll %s: %w\nappliance log:\n%s", fp, poll, err, tail(a.log.String(), 30))
			}
		}
	}
	return nil
}

func (c *cfg) withAppliance(ctx context.Context, t *lab.Topo, ovs *lab.OVS, a *appl, mode, k, poll string) error {
	if ovs != nil {
		if _, err := ovs.WaitReady(ctx, 2, 30*time.Second); err != nil {
			return err
		}
	}
	if _, err := sh(ctx, "ip", "-n", t.GW, "addr", "add", lab.HostIP+lab.Prefix, "dev", lab.BondName); err != nil {
		return err
	}
	if err := c.reach(ctx, t.GW, lab.PeerIP, 15*time.Second); err != nil {
		return fmt.Errorf("through the appliance: %w", err)
	}
	if err := c.reach(ctx, t.Peer, lab.HostIP, 5*time.Second); err != nil {
		return fmt.Errorf("through the appliance (peer side): %w", err)
	}
	// idle CPU of the appliance
	st0, _ := a.status()
	p0, w0 := procTicks(a.pid), time.Now()
	if err := sleepCtx(ctx, time.Duration(c.idle*float64(time.Second))); err != nil {
		return err
	}
	p1, w1 := procTicks(a.pid), time.Now()
	st1, _ := a.status()
	el := w1.Sub(w0).Seconds()
	cpu := float64(p1-p0) / c.hz / el
	sleeps := 0.0
	if st0 != nil && st1 != nil && len(st0.Lanes) > 0 && len(st1.Lanes) > 0 {
		sleeps = float64(st1.Lanes[0].Sleeps-st0.Lanes[0].Sleeps) / el
	}
	c.rows = append(c.rows, fmt.Sprintf("%-56s %10.3f %10s %7s %9s  %s", mode+" idle CPU, poll "+poll+" (cores)", cpu, "-", "-", "-",
		fmt.Sprintf("lane sleeps/s %.0f over %.0f s idle", sleeps, el)))
	c.sum = append(c.sum, fmt.Sprintf("%s_idle_cpu_%s=%.3f", k, poll, cpu))
	// ping RTT distributions
	if err := c.pingPair(ctx, t, mode, k, poll); err != nil {
		return err
	}
	if poll != "adaptive" || !c.throughput {
		return nil
	}
	// throughput
	type tp struct {
		name, key string
		streams   int
		reverse   bool
	}
	tests := []tp{{"tcp1 host->peer", "tcp1_h2p", 1, false}, {"tcp1 peer->host", "tcp1_p2h", 1, true}}
	if strings.HasPrefix(mode, "balance-xor") {
		tests = append(tests, tp{"tcp4 host->peer", "tcp4_h2p", 4, false}, tp{"tcp4 peer->host", "tcp4_p2h", 4, true})
	}
	for _, x := range tests {
		var av, bv []float64
		other, retr, cont := 0.0, "", false
		for r := 0; r < c.repeat; r++ {
			var ag, bg float64
			var arx, brx int
			o, ct, err := c.measure(ctx, func() error {
				var err error
				ag, arx, err = c.iperf(ctx, t, lab.PeerIP, x.streams, x.reverse)
				if err != nil {
					return fmt.Errorf("appliance %s: %w", x.name, err)
				}
				bg, brx, err = c.iperf(ctx, t, basePeerIP, x.streams, x.reverse)
				if err != nil {
					return fmt.Errorf("veth %s: %w", x.name, err)
				}
				return nil
			}, float64(2*c.secs))
			if err != nil {
				return err
			}
			av, bv = append(av, ag), append(bv, bg)
			other += o
			cont = cont || ct
			retr += fmt.Sprintf(" %d/%d", arx, brx)
		}
		a, b := median(av), median(bv)
		note := "retransmits appl/veth:" + retr
		if cont {
			note = "CONTENDED; " + note
		}
		c.row(mode+" "+x.name+" Gbit/s", a, b, other, "%10.3f", note)
		c.sum = append(c.sum, fmt.Sprintf("%s_%s_gbps=%.3f %s_%s_veth_gbps=%.3f %s_%s_ratio=%.3f", k, x.key, a, k, x.key, b, k, x.key, ratio(a, b)))
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

func (c *cfg) row(name string, a, b, other float64, f, note string) {
	c.rows = append(c.rows, fmt.Sprintf("%-56s "+f+" "+f+" %7.3f %9.0f  %s", name, a, b, ratio(a, b), other, note))
}

// pingPair measures the RTT distribution through the appliance and through
// the baseline veth, back to back.
func (c *cfg) pingPair(ctx context.Context, t *lab.Topo, mode, k, poll string) error {
	var ar, br []float64
	var alost, blost int
	other, cont, err := c.measure(ctx, func() error {
		var err error
		ar, alost, err = c.ping(ctx, t.GW, lab.PeerIP)
		if err != nil {
			return fmt.Errorf("appliance ping: %w", err)
		}
		br, blost, err = c.ping(ctx, t.GW, basePeerIP)
		if err != nil {
			return fmt.Errorf("veth ping: %w", err)
		}
		return nil
	}, 2*float64(c.pings)*c.interval)
	if err != nil {
		return err
	}
	note := fmt.Sprintf("lost appl/veth %d/%d", alost, blost)
	if cont {
		note = "CONTENDED; " + note
	}
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 50}, {"p99", 99}, {"max", 100}} {
		a, b := percentile(ar, q.p), percentile(br, q.p)
		c.row(fmt.Sprintf("%s ping RTT %s, poll %s (ms)", mode, q.name, poll), a, b, other, "%10.3f", note)
		c.sum = append(c.sum, fmt.Sprintf("%s_ping_%s_%s_ms=%.3f %s_ping_%s_%s_veth_ms=%.3f", k, poll, q.name, a, k, poll, q.name, b))
	}
	return nil
}

// measure runs fn; when other processes used more than 10% of a CPU over
// its nominal length (secs) it runs it again, up to c.retries times. The
// last run's results stay in fn's variables; it returns the CPU ms others
// used during that run and whether it was contended.
func (c *cfg) measure(ctx context.Context, fn func() error, secs float64) (otherMs float64, contended bool, err error) {
	for i := 0; ; i++ {
		f0 := foreignTicks(c.pgrp, c.mine)
		w0 := time.Now()
		if err := fn(); err != nil {
			return 0, false, err
		}
		el := time.Since(w0).Seconds()
		otherMs = float64(foreignTicks(c.pgrp, c.mine)-f0) * 1000 / c.hz
		contended = otherMs > 100*math.Max(el, secs)
		if !contended || i >= c.retries || ctx.Err() != nil {
			c.total++
			if contended {
				c.contended++
			}
			return otherMs, contended, ctx.Err()
		}
		c.logf("other processes used %.0f ms CPU during a %.1f s measurement, measuring again", otherMs, el)
	}
}

// onGen runs argv in namespace ns on the generator's CPU.
func (c *cfg) onGen(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	args := append([]string{"-c", strconv.Itoa(c.genCPU), "ip", "netns", "exec", ns}, argv...)
	cmd := exec.CommandContext(ctx, "taskset", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// reach pings dst from ns until it answers (neighbour resolution, LACP
// settling), within timeout.
func (c *cfg) reach(ctx context.Context, ns, dst string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.onGen(ctx, ns, "ping", "-c", "1", "-W", "1", dst).CombinedOutput()
		if err == nil {
			// a few more, so the first measured requests find warm caches
			_, _ = c.onGen(ctx, ns, "ping", "-c", "5", "-i", "0.01", "-W", "1", dst).CombinedOutput()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer from %s after %s: %s", dst, ns, timeout, strings.TrimSpace(string(out)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping sends c.pings requests c.interval apart and returns every RTT (ms)
// and the number of requests without a reply.
func (c *cfg) ping(ctx context.Context, ns, dst string) ([]float64, int, error) {
	deadline := int(float64(c.pings)*c.interval) + 5
	out, _ := c.onGen(ctx, ns, "ping", "-n", "-c", strconv.Itoa(c.pings), "-i", strconv.FormatFloat(c.interval, 'f', -1, 64),
		"-W", "1", "-w", strconv.Itoa(deadline), dst).Output()
	rtts, sent := pingRTTs(string(out))
	if len(rtts) < sent/2 || len(rtts) == 0 {
		return nil, 0, fmt.Errorf("ping %s: %d of %d answered\n%s", dst, len(rtts), sent, tail(string(out), 5))
	}
	return rtts, sent - len(rtts), ctx.Err()
}

// iperf runs one iperf3 test from the gateway (the host) to dst in the peer
// namespace (reverse: peer → host); both ends on the generator's CPU.
func (c *cfg) iperf(ctx context.Context, t *lab.Topo, dst string, streams int, reverse bool) (float64, int, error) {
	c.port++
	port := strconv.Itoa(c.port)
	srv := c.onGen(ctx, t.Peer, "iperf3", "-s", "-1", "-B", dst, "-p", port)
	var serr bytes.Buffer
	srv.Stdout, srv.Stderr = &serr, &serr
	if err := srv.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	args := []string{"iperf3", "-c", dst, "-p", port, "-t", strconv.Itoa(c.secs), "-P", strconv.Itoa(streams), "-J", "--connect-timeout", "1000"}
	if reverse {
		args = append(args, "-R")
	}
	var last error
	for i := 0; i < 30; i++ {
		out, err := c.onGen(ctx, t.GW, args...).Output()
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		g, rx, perr := iperfGbps(out)
		if perr == nil {
			return g, rx, nil
		}
		last = fmt.Errorf("%v (%v)", perr, err)
		if !strings.Contains(perr.Error(), "unable to connect") && !strings.Contains(perr.Error(), "Connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("%w; server: %s", last, tail(serr.String(), 5))
}

// appl is a running appliance.
type appl struct {
	cmd  *exec.Cmd
	pid  int
	sock string
	log  *syncBuf
	done chan struct{}
}

// syncBuf collects a process's output while others read it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (a *appl) status() (*appliance.Status, error) {
	r, err := appliance.Call(a.sock, appliance.Request{Cmd: "status"})
	if err != nil {
		return nil, err
	}
	if !r.OK || r.Status == nil {
		return nil, fmt.Errorf("status: %s", r.Error)
	}
	return r.Status, nil
}

func (a *appl) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// start runs the appliance on the topology, the whole process on the lane's
// CPU, and waits until the bond and its slaves are up.
func (c *cfg) start(ctx context.Context, t *lab.Topo, mode, poll, fastPath string, opts map[string]string) (*appl, error) {
	dir := filepath.Join(c.work, short[mode]+"-"+poll+"-fast-"+fastPath+"-"+c.hostDevice)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "control.sock")
	yaml := t.Config(lab.BondSpec{Mode: mode, Options: opts, Cores: []int{c.laneCPU}, Poll: poll, HostDevice: c.hostDevice}, sock)
	cf := filepath.Join(dir, "bond.yaml")
	if err := os.WriteFile(cf, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	a := &appl{sock: sock, log: &syncBuf{}, done: make(chan struct{})}
	// taskset and ip netns exec both exec: the PID is the appliance's
	a.cmd = exec.Command("taskset", "-c", strconv.Itoa(c.laneCPU), "ip", "netns", "exec", t.GW, c.bin, "-c", cf)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.Env = append(os.Environ(), "BOND_APPLIANCE_DATAPLANE_FAST_PATH="+fastPath)
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	a.pid = a.cmd.Process.Pid
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	c.logf("%s: appliance up (pid %d, poll %s, fast_path %s, host_device %s)", mode, a.pid, poll, fastPath, c.hostDevice)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := a.status()
		if err == nil && len(st.Bonds) > 0 && st.Bonds[0].MIIStatus == "up" {
			up := true
			for _, s := range st.Bonds[0].Slaves {
				up = up && s.MIIStatus == "up"
			}
			if up {
				return a, nil
			}
		}
		select {
		case <-a.done:
			return nil, fmt.Errorf("appliance exited:\n%s", tail(a.log.String(), 30))
		case <-ctx.Done():
			a.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("bond not up within 20 s:\n%s", tail(a.log.String(), 30))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// pinAll moves every thread of pid to cpu.
func pinAll(pid, cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, &set)
		}
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
