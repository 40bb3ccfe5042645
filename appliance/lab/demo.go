package lab

import (
	"context"
	"errors"
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
// continuing, and removes everything (also when ctx is cancelled: the
// error then wraps ctx.Err()). It fails when a ping is lost while every
// link is up, or outside the failover window, and reports the failover's
// outage.
func Run(ctx context.Context, o Options) (err error) {
	w := o.Out
	// Interrupted, every step fails in its own way (iperf3 "signal:
	// killed", a ping without summary): report the interruption instead,
	// after everything was removed (this runs after the other deferred
	// steps).
	defer func() {
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}()
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
	say("starting bond-appliance in netns %s", t.GW)
	p, err := t.Start(ctx, o.Binary, cfg)
	if err != nil {
		fmt.Fprint(w, indent(strings.ReplaceAll(cfg, "@SOCKET@", "(in a temporary directory, removed)")))
		return err
	}
	say("bond-appliance runs with:\n%s", indent(strings.ReplaceAll(cfg, "@SOCKET@", p.Socket)))
	fmt.Fprintf(w, "    (status meanwhile: sudo %s status --socket %s)\n", o.Binary, p.Socket)
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
	out, _ := t.InGW(ctx, "ping", "-c", "5", "-i", "0.2", "-W", "1", PeerIP)
	fmt.Fprint(w, indent(out))
	if err := ctx.Err(); err != nil {
		return err
	}
	first := parsePing(out)
	fmt.Fprintf(w, "    first pings: %s\n", first.describe())
	if first.Sent == 0 || first.Received < first.Sent {
		return fmt.Errorf("ping through the aggregate lost %d of %d (no link was down)", first.Sent-first.Received, first.Sent)
	}
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", t.Peer, "iperf3", "-s", "-1")
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return err
	}
	say("iperf3 %d s, host -> peer, 4 streams", o.Seconds)
	out, err = t.InGW(ctx, "iperf3", "-c", PeerIP, "-t", fmt.Sprint(o.Seconds), "-P", "4", "-f", "m")
	if ctx.Err() != nil {
		return ctx.Err()
	}
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
	say("taking %s down on the peer side (carrier loss on %s) while pinging every %v", t.Ports[active], t.Members[active], failoverInterval)
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", t.GW, "ping", "-D", "-c", fmt.Sprint(failoverPings),
		"-i", fmt.Sprintf("%.3f", failoverInterval.Seconds()), "-W", "1", PeerIP)
	var pout strings.Builder
	ping.Stdout = &pout
	t0 := time.Now()
	if err := ping.Start(); err != nil {
		return err
	}
	if err := sleep(ctx, failoverAfter); err != nil {
		_ = ping.Wait()
		return err
	}
	down, downAt := time.Since(t0), time.Now()
	if err := t.SetPort(ctx, active, false); err != nil {
		_ = ping.Wait()
		return err
	}
	_ = ping.Wait() // ping's exit status says nothing about partial loss: its output does
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprint(w, indent(lastLines(pout.String(), 3)))
	pr := parsePing(pout.String())
	fo := analyseFailover(pr, pr.seqAt(downAt, down, failoverInterval), failoverInterval, failoverWindow)
	fmt.Fprintf(w, "    failover: %s\n", fo.describe())
	if fo.err != nil {
		return fmt.Errorf("failover: %w", fo.err)
	}
	st, err = p.Status("")
	if err != nil {
		return err
	}
	say("status after the failure")
	fmt.Fprint(w, indent(firstBond(st)))
	for _, l := range st.Lanes {
		u := l.UMEM
		fmt.Fprintf(w, "    lane %d UMEM frames: %d = free %d + fill %d + rx %d + in flight %d + tx %d + completion %d; lost to reclaim deadlines %d\n",
			l.ID, u.Frames, u.Free, u.Fill, u.RX, u.InFlight, u.TX, u.Completion, u.LostToReclaim)
	}
	say("lab %s OK: first pings without loss, failover outage %s", o.Mode, fo.outageText())
	return nil
}

// The failover measurement: a ping every failoverInterval, failoverPings
// of them; the member goes down failoverAfter after the first. Lost
// replies of pings sent from just before the link went down to
// failoverWindow after it are the failover's outage; any other loss fails
// the lab.
const (
	failoverInterval = 20 * time.Millisecond
	failoverPings    = 100
	failoverAfter    = 500 * time.Millisecond
	failoverWindow   = time.Second
)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pingResult is what ping printed: how many it sent, how many replies
// came back, the sequence numbers of the replies and, with ping -D, when
// each came (Unix seconds; 0 without -D).
type pingResult struct {
	Sent, Received int
	Seqs           []int
	At             []float64
}

// parsePing reads iputils ping's output: "icmp_seq=N" of every reply, its
// "[unix time]" prefix (-D), and the "N packets transmitted, M received"
// summary. Duplicate replies (DUP!) count once.
func parsePing(out string) pingResult {
	var r pingResult
	seen := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "icmp_seq="); i >= 0 && strings.Contains(line, "bytes from") {
			var seq int
			if _, err := fmt.Sscanf(line[i+len("icmp_seq="):], "%d", &seq); err == nil && !seen[seq] {
				var at float64
				if strings.HasPrefix(line, "[") {
					fmt.Sscanf(line[1:], "%f", &at)
				}
				seen[seq] = true
				r.Seqs = append(r.Seqs, seq)
				r.At = append(r.At, at)
			}
			continue
		}
		if strings.Contains(line, "packets transmitted") {
			fmt.Sscanf(strings.TrimSpace(line), "%d packets transmitted, %d received", &r.Sent, &r.Received)
		}
	}
	return r
}

func (r pingResult) describe() string {
	if r.Sent == 0 {
		return "ping printed no summary"
	}
	if r.Received >= r.Sent {
		return fmt.Sprintf("%d sent, %d received, no loss", r.Sent, r.Received)
	}
	return fmt.Sprintf("%d sent, %d received, %d lost (%s)", r.Sent, r.Received, r.Sent-r.Received, seqRanges(r.missing()))
}

// seqAt returns the first ping sent after time t: one after the last
// reply that came before t (ping -D's timestamps). Without timestamps it
// estimates it from the time since the first ping and the interval (late
// when ping falls behind its interval on a loaded machine).
func (r pingResult) seqAt(t time.Time, since, interval time.Duration) int {
	at := float64(t.UnixNano()) / 1e9
	last, stamped := 0, false
	for i, s := range r.Seqs {
		if r.At[i] == 0 {
			continue
		}
		stamped = true
		if r.At[i] <= at && s > last {
			last = s
		}
	}
	if !stamped {
		return int(since/interval) + 1
	}
	return last + 1
}

// missing returns the sequence numbers 1..Sent without a reply.
func (r pingResult) missing() []int {
	got := make(map[int]bool, len(r.Seqs))
	for _, s := range r.Seqs {
		got[s] = true
	}
	var m []int
	for s := 1; s <= r.Sent; s++ {
		if !got[s] {
			m = append(m, s)
		}
	}
	return m
}

// failover is the analysis of the pings across a link failure.
type failover struct {
	ping     pingResult
	interval time.Duration
	downSeq  int   // the first ping sent after the link went down
	inWindow []int // lost in the failover window
	outside  []int // lost elsewhere
	err      error
}

// analyseFailover splits the lost pings of r into those of the failover
// window (from the ping before downSeq, the first sent after the link went
// down, to window after it) and the others. Loss outside the window, or no
// ping at all, is an error.
func analyseFailover(r pingResult, downSeq int, interval, window time.Duration) failover {
	f := failover{ping: r, interval: interval, downSeq: downSeq}
	if r.Sent == 0 {
		f.err = fmt.Errorf("ping printed no summary (did it run?)")
		return f
	}
	lo, hi := f.downSeq-1, f.downSeq+int(window/interval)
	for _, s := range r.missing() {
		if s >= lo && s <= hi {
			f.inWindow = append(f.inWindow, s)
		} else {
			f.outside = append(f.outside, s)
		}
	}
	switch {
	case r.Received == 0:
		f.err = fmt.Errorf("no reply at all: traffic did not continue after the link went down")
	case len(f.outside) > 0:
		f.err = fmt.Errorf("%d lost outside the failover window (%s; the link went down at seq %d, window %v)",
			len(f.outside), seqRanges(f.outside), f.downSeq, window)
	}
	return f
}

// outage is the longest run of consecutive lost pings in the window,
// times the interval: the failover's outage, to within one interval.
func (f failover) outage() time.Duration {
	longest, run, prev := 0, 0, -2
	for _, s := range f.inWindow {
		if s == prev+1 {
			run++
		} else {
			run = 1
		}
		prev = s
		longest = max(longest, run)
	}
	return time.Duration(longest) * f.interval
}

func (f failover) outageText() string {
	if len(f.inWindow) == 0 {
		return fmt.Sprintf("below %v (no ping lost)", f.interval)
	}
	return fmt.Sprintf("about %v (%d lost, %s)", f.outage(), len(f.inWindow), seqRanges(f.inWindow))
}

func (f failover) describe() string {
	s := fmt.Sprintf("%d sent, %d received; link down before seq %d; outage %s", f.ping.Sent, f.ping.Received, f.downSeq, f.outageText())
	if len(f.outside) > 0 {
		s += fmt.Sprintf("; lost OUTSIDE the failover window: %s", seqRanges(f.outside))
	}
	return s
}

// seqRanges writes sorted sequence numbers as "seq 3, 7-9".
func seqRanges(seqs []int) string {
	if len(seqs) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(seqs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		}
		i = j + 1
	}
	return "seq " + strings.Join(parts, ", ")
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
