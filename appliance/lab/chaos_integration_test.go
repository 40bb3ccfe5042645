package lab

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
	"github.com/bond-appliance/bond-appliance/appliance/lab/labtest"
)

// TestIntegrationStressChaos is the chaos soak (issues #11 and #10). Its name
// puts it under `make integration-race` (-run TestIntegrationStress) and
// keeps it out of `make integration` (-skip TestIntegrationStress).
//
// Per mode (active-backup, balance-xor, 802.3ad against the private Open
// vSwitch partner), for BOND_APPLIANCE_CHAOS (default 60s) under ping (100/s,
// peer → host) and UDP (iperf3, host → peer), with the appliance built with
// -race and its UMEM ledger on, at random:
//
//   - carrier flaps: a peer port down, then up (`ip link set pX down/up`);
//   - member hot del/add cycles of a random member;
//   - `set` storms of runtime options valid for the mode;
//   - `reload`s, with and without a changed file;
//   - 802.3ad: partner LACP restarts (lacp=off/active on the Open vSwitch
//     bond, or ovs-vswitchd itself stopped and started again);
//   - floods from the peer side: ARP broadcasts (the flood helper of
//     TestIntegrationADARPFlood) and bogus/duplicate LACPDUs;
//   - kill -9 and restart every BOND_APPLIANCE_CHAOS_KILL_EVERY (default 3m),
//     only when restart after kill -9 is supported (killRestartSupported) or
//     BOND_APPLIANCE_CHAOS_KILL=1 forces it.
//
// In 802.3ad the first third of the run (at most 20 s) has only the member
// del/add cycles and traffic: the LACP tick jitter they cause (issue #10,
// goal ≤ 10 ms) is read from ad_info.tick_jitter_recent_max_ms at its end.
// A member re-added every ~0.5 s never outlasts the 2 s aggregate wait (and
// a waiting port holds the others back, 802.1AX Ready), so that phase has
// long outages by design: the line gives the loss of the whole run and of
// the chaos phase alone ("chaos phase"), and when the longest outage began
// (max_outage_at, UTC, as the appliance log, which says when the
// distributing slaves change: "802.3ad distributing").
//
// Hard invariants (the test fails): no panic, no data race report; after
// each carrier change the member's MII status follows within 1 s + downdelay
// (down) or 1 s + updelay (up) — a change is judged only when no del/add of that
// member nor a restart overlapped it, and the lag is bracketed by status
// polls every 10 ms: the failure is a poll that still saw the old state
// after the bound; `umem ledger ok` at the clean exit, no violation; every
// member restored exactly and bond0 gone after SIGTERM; RSS and goroutine
// count far beyond noise (> +50 % and > 32 MiB; > +50 % + 20) from the
// end of the warm-up to the end; traffic passing again after the soak.
// Everything else is printed, in one line:
//
//	chaos: mode=... duration=... flaps=... slave_cycles=... sets=... reloads=...
//	partner_restarts=... floods=... kills=... rss_start=... rss_end=...
//	goroutines_start=... goroutines_end=... max_state_lag_ms=...
//	lacp_tick_jitter_max_ms=... loss=...% (chaos phase ...%; ping .../...,
//	max_outage_ms=... max_outage_at=..., ...)
//
// BOND_APPLIANCE_CHAOS_MODES picks modes, BOND_APPLIANCE_CHAOS_SEED repeats
// a run's random choices, BOND_APPLIANCE_CHAOS_FLOOD_PPS caps the floods
// (default 20000 frames/s). The long soak (≥ 30 min per mode) is run by
// hand: BOND_APPLIANCE_CHAOS=30m make integration-race.
func TestIntegrationStressChaos(t *testing.T) {
	privileged(t)
	o := chaosEnv(t)
	if !o.kill && o.killEvery > 0 {
		fmt.Printf("chaos: note: kill -9 step skipped: restart after kill -9 not supported yet (BOND_APPLIANCE_CHAOS_KILL=1 runs it; flip killRestartSupported when restart recovery lands)\n")
	}
	bin := raceBinary(t)
	for _, mode := range o.modes {
		t.Run(mode, func(t *testing.T) { chaosMode(t, bin, mode, o) })
	}
}

// chaosRun is one mode's soak.
type chaosRun struct {
	t      *testing.T
	ctx    context.Context
	o      chaosOptions
	bin    string
	mode   string
	sock   string // the control socket every instance of the run uses
	topo   *Topo
	ovs    *OVS
	yaml   string
	cfg    []byte // the current instance's configuration as first written
	before map[string]linkState

	cur      atomic.Pointer[Proc]
	mute     net.Conn // never-reading events client of the current instance
	epoch    atomic.Int64
	killsOff atomic.Bool    // no more kill -9 steps (restart after one failed)
	gen      []atomic.Int64 // per member: bumped around every del/add
	restarts []time.Time    // epoch starts
	oldLogs  []string

	mu      sync.Mutex
	rng     *rand.Rand
	events  []chaosEvent
	lagMax  time.Duration // upper bound of the lag, over judged changes
	lagBad  []string
	judged  int
	skipped int
	fatal   error
	samples []chaosSample
	jitter  float64 // max tick_jitter_recent_max_ms sampled during the soak
	errs    map[string][]string

	flaps, slaveCycles, slaveErrs, sets, setErrs, reloads, reloadErrs atomic.Int64
	partner, partnerErrs, floods, floodErrs, kills, scrapeErrs        atomic.Int64
}

type chaosSample struct {
	at         time.Time
	epoch      int64
	rssKiB     int64
	goroutines int64
}

func (r *chaosRun) note(kind, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs[kind]) < 3 {
		r.errs[kind] = append(r.errs[kind], trunc(strings.TrimSpace(msg), 400))
	}
}

func (r *chaosRun) event(kind string) {
	r.mu.Lock()
	r.events = append(r.events, chaosEvent{time.Now(), kind})
	r.mu.Unlock()
}

func (r *chaosRun) intn(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.IntN(n)
}

// jit is d ± half of it, at random.
func (r *chaosRun) jit(d time.Duration) time.Duration {
	return d/2 + time.Duration(r.intn(int(d/time.Millisecond)+1))*time.Millisecond
}

// ctl sends one request to the current instance.
func (r *chaosRun) ctl(req appliance.Request) (*appliance.Response, error) {
	resp, err := appliance.Call(r.cur.Load().Socket, req)
	if err == nil && !resp.OK {
		err = fmt.Errorf("%s", resp.Error)
	}
	return resp, err
}

func (r *chaosRun) bond() (*appliance.BondStatus, error) {
	resp, err := r.ctl(appliance.Request{Cmd: "status", Bond: BondName})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil || len(resp.Status.Bonds) != 1 {
		return nil, fmt.Errorf("status without %s", BondName)
	}
	return &resp.Status.Bonds[0], nil
}

func chaosMode(t *testing.T, bin, mode string, o chaosOptions) {
	ctx, cancel := context.WithTimeout(context.Background(), o.dur+4*time.Minute)
	defer cancel()
	r := &chaosRun{t: t, ctx: ctx, o: o, bin: bin, mode: mode, rng: rand.New(rand.NewPCG(o.seed, uint64(len(mode)))), errs: map[string][]string{}}
	ad := mode == "802.3ad"
	topo, err := NewTopoOpts(ctx, TopoOptions{Members: 3, Queues: 1, Bridge: !ad})
	if err != nil {
		t.Fatal(err)
	}
	r.topo = topo
	t.Cleanup(topo.Close)
	r.gen = make([]atomic.Int64, len(topo.Members))
	for _, ns := range []string{topo.GW, topo.Peer} {
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if _, err := Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ad {
		for _, tool := range []string{"ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-appctl"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s not installed (apt-get install openvswitch-switch)", tool)
			}
		}
		r.ovs, err = StartOVS(ctx, topo.Peer, topo.Ports, OVSOptions{SysID: ovsSysID, IP: PeerIP + Prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("ovs-vswitchd log:\n%s", r.ovs.Log(100))
			}
			r.ovs.Close()
		})
	}
	r.before = map[string]linkState{}
	for _, m := range topo.Members {
		s, err := readLinkState(ctx, topo.GW, m)
		if err != nil {
			t.Fatal(err)
		}
		r.before[m] = s
	}
	opts := map[string]string{"miimon": "100"}
	if mode != "active-backup" {
		opts["xmit_hash_policy"] = "layer3+4"
	}
	if ad {
		opts["lacp_rate"] = "fast"
	}
	r.yaml = topo.Config(BondSpec{Mode: mode, Options: opts, Metrics: "127.0.0.1:9471"}, "@SOCKET@")
	t.Setenv("BOND_APPLIANCE_UMEM_LEDGER", "1")
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(os.TempDir(), "ba-chaos-"+topo.ID+"-"+mode+".log")
	stopped := false
	t.Cleanup(func() {
		p := r.cur.Load()
		if !stopped {
			p.Stop()
		}
		all := strings.Join(append(r.oldLogs, p.Log()), "\n---- restart ----\n")
		_ = os.WriteFile(logPath, []byte(all), 0o644)
		t.Logf("appliance output (%d bytes, every instance) kept in %s", len(all), logPath)
	})
	if ad {
		if _, err := r.ovs.WaitReady(ctx, 3, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.waitPing(20 * time.Second); err != nil {
		t.Fatalf("no ping through the bond before the soak: %v\n%s", err, r.cur.Load().Log())
	}

	// traffic for the whole soak
	ping, err := startPing(ctx, topo.Peer, HostIP, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	udpDone := make(chan udpResult, 1)
	go func() { udpDone <- r.udp(o.dur) }()

	t0 := time.Now()
	end := t0.Add(o.dur)
	warm := min(20*time.Second, o.dur/3)
	var wg sync.WaitGroup
	lctx, lcancel := context.WithDeadline(ctx, end)
	defer lcancel()
	loop := func(from time.Time, gap func() time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-lctx.Done():
				return
			case <-time.After(time.Until(from)):
			}
			for i := 0; lctx.Err() == nil; i++ {
				fn(i)
				select {
				case <-lctx.Done():
				case <-time.After(gap()):
				}
			}
		}()
	}
	chaosFrom := t0 // 802.3ad: the tick-jitter phase first
	if ad {
		chaosFrom = t0.Add(warm)
	}
	// sampler: RSS, goroutines, and the LACP tick jitter
	jitterPhase := -1.0
	loop(t0, func() time.Duration { return time.Second }, func(int) { r.sample() })
	if ad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-lctx.Done():
				return
			case <-time.After(time.Until(chaosFrom)):
			}
			if b, err := r.bond(); err == nil && b.AD != nil {
				r.mu.Lock()
				jitterPhase = b.AD.TickJitterRecentMaxMs
				r.mu.Unlock()
			}
		}()
	}
	// member del/add: back to back in the tick-jitter phase; in 802.3ad's
	// chaos every 3 s or so, about the time a port needs to aggregate again
	// with lacp_rate fast (quicker, no port would ever be in the aggregate)
	loop(t0, func() time.Duration {
		if ad && time.Now().After(chaosFrom) {
			return r.jit(3 * time.Second)
		}
		return r.jit(400 * time.Millisecond)
	}, func(int) { r.slaveCycle() })
	loop(chaosFrom, func() time.Duration { return r.jit(600 * time.Millisecond) }, func(int) { r.flap() })
	sets := chaosSets(mode)
	loop(chaosFrom, func() time.Duration { return 20 * time.Millisecond }, func(i int) {
		s := sets[r.intn(len(sets))]
		r.sets.Add(1)
		if _, err := r.ctl(appliance.Request{Cmd: "set", Bond: BondName, Option: s[0], Value: s[1]}); err != nil {
			r.setErrs.Add(1)
			r.note("set "+s[0]+" "+s[1], err.Error())
		}
	})
	loop(chaosFrom, func() time.Duration { return r.jit(2 * time.Second) }, func(i int) { r.reload(i) })
	loop(chaosFrom.Add(2*time.Second), func() time.Duration { return r.jit(10 * time.Second) }, func(i int) { r.flood(i) })
	if ad {
		loop(chaosFrom.Add(5*time.Second), func() time.Duration { return r.jit(15 * time.Second) }, func(i int) { r.partnerRestart(i) })
	}
	if ad && os.Getenv("BOND_APPLIANCE_CHAOS_OVS_PURGE") != "0" {
		// Open vSwitch's userspace datapath keeps flows translated while a
		// member was disabled (actions:drop) long after the bond enabled it
		// again (see WaitReady); with members changing all the time the
		// ping's flow would stay dropped. Purge them every second, as a
		// switch's hardware would not cache them.
		loop(t0, func() time.Duration { return time.Second }, func(int) { _, _ = r.ovs.AppCtl(ctx, "revalidator/purge") })
	}
	if o.kill && o.killEvery > 0 {
		loop(t0.Add(o.killEvery), func() time.Duration { return o.killEvery }, func(int) { r.killRestart() })
	}
	wg.Wait()
	elapsed := time.Since(t0)

	// put everything back: ports up, members in, the partner's LACP on
	for i := range topo.Ports {
		_ = topo.SetPort(ctx, i, true)
	}
	if ad {
		_ = r.ovs.vsctl(ctx, "set", "port", "lag", "lacp=active")
	}
	if b, err := r.bond(); err == nil {
		in := map[string]bool{}
		for _, s := range b.Slaves {
			in[s.Name] = true
		}
		for _, m := range topo.Members {
			if !in[m] {
				if _, err := r.ctl(appliance.Request{Cmd: "slave", Bond: BondName, Option: "add", Value: m}); err != nil {
					t.Errorf("re-adding %s after the soak: %v", m, err)
				}
			}
		}
	}
	resumed := r.waitPing(20 * time.Second)
	ping.Stop()
	ur := <-udpDone
	r.sample()

	// figures
	r.mu.Lock()
	events := append([]chaosEvent(nil), r.events...)
	r.mu.Unlock()
	last := ping.maxSeq
	if n, err := strconv.ParseInt(strings.Fields(ping.summary + " x")[0], 10, 64); err == nil && n > 0 {
		last = n - 1
	}
	ps := analysePing(ping.sent, last, ping.interval, events, chaosFrom)
	rssStart, rssEnd, gStart, gEnd, flat := r.flatness(warm)
	jitter := "n/a"
	if ad {
		jitter = fmt.Sprintf("%.2f", jitterPhase)
		if b, err := r.bond(); err == nil && b.AD != nil {
			jitter += fmt.Sprintf(" (lifetime max %.2f, recent max over the chaos %.2f, mean %.2f)", b.AD.TickJitterMaxMs, r.jitter, b.AD.TickJitterMeanMs)
		}
	}
	var outages []string
	for k, v := range ps.outageByKind {
		outages = append(outages, fmt.Sprintf("%s:%d", k, v.Milliseconds()))
	}
	sort.Strings(outages)
	st, stErr := r.bond()
	if ad && ps.loss() > 20 {
		var diag strings.Builder
		for _, c := range [][]string{{"bond/show", "lag"}, {"lacp/show", "lag"}, {"dpctl/dump-flows"}} {
			out, _ := r.ovs.AppCtl(ctx, c...)
			fmt.Fprintf(&diag, "ovs-appctl %v:\n%s\n", c, trunc(out, 3000))
		}
		out, _ := Sh(ctx, "ip", "-n", topo.Peer, "neigh")
		t.Logf("ping loss %.1f%%: partner after the soak:\n%speer neigh: %s", ps.loss(), diag.String(), out)
	}

	// SIGTERM: the clean exit (within 3 s; printed, a hang fails)
	p := r.cur.Load()
	exitStart := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	exitStr := ""
	select {
	case <-p.done:
		exitStr = time.Since(exitStart).Round(time.Millisecond).String()
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		exitStr = "hang"
	}
	stopped = true
	if r.mute != nil {
		r.mute.Close()
	}
	os.RemoveAll(p.Dir)
	os.RemoveAll(filepath.Dir(r.sock)) // the first instance's: socket and journal
	log := p.Log()
	all := strings.Join(append(r.oldLogs, log), "\n")

	fmt.Printf("chaos: mode=%s duration=%v flaps=%d slave_cycles=%d sets=%d reloads=%d partner_restarts=%d floods=%d kills=%d rss_start=%dKiB rss_end=%dKiB goroutines_start=%d goroutines_end=%d max_state_lag_ms=%d lacp_tick_jitter_max_ms=%s loss=%.2f%% (chaos phase %.2f%%; ping %d/%d, max_outage_ms=%d max_outage_at=%s, worst_2s_after_event=%.0f%% %s, outage_ms_by_event=[%s]; udp %d/%d) state_changes_judged=%d not_judged=%d errors(slave=%d set=%d reload=%d partner=%d flood=%d metrics=%d) exit_after=%s seed=%d\n",
		mode, elapsed.Round(time.Second), r.flaps.Load(), r.slaveCycles.Load(), r.sets.Load(), r.reloads.Load(), r.partner.Load(), r.floods.Load(), r.kills.Load(),
		rssStart, rssEnd, gStart, gEnd, r.lagMax.Milliseconds(), jitter, ps.loss(), ps.phaseLoss(), ps.received, ps.sent, ps.maxOutage.Milliseconds(), ps.maxOutageAt.UTC().Format("15:04:05.000"),
		ps.maxEventLoss, ps.maxEventKind, strings.Join(outages, " "), ur.recv, ur.sent, r.judged, r.skipped,
		r.slaveErrs.Load(), r.setErrs.Load(), r.reloadErrs.Load(), r.partnerErrs.Load(), r.floodErrs.Load(), r.scrapeErrs.Load(), exitStr, o.seed)
	if stErr == nil {
		t.Logf("status after the soak: %s", summaryOf(st))
	}
	for kind, msgs := range r.errs {
		for _, m := range msgs {
			t.Logf("first errors of %s: %s", kind, m)
		}
	}
	if jitterPhase > 10 {
		t.Logf("note: LACP tick jitter during member del/add %.2f ms, above issue #10's 10 ms goal (the appliance is built with -race here)", jitterPhase)
	}

	// hard invariants
	if r.fatal != nil {
		t.Error(r.fatal)
	}
	if n := strings.Count(all, "WARNING: DATA RACE"); n > 0 {
		t.Errorf("%d data race report(s) in the appliance's output; the first:\n%s", n, firstBlock(all, "WARNING: DATA RACE", "=================="))
	}
	if i := strings.Index(all, "panic:"); i >= 0 {
		t.Errorf("panic in the appliance's output:\n%s", trunc(all[i:], 6000))
	}
	if len(r.lagBad) > 0 {
		t.Errorf("%d member state(s) lagged the carrier beyond the bound (1 s + downdelay down, 1 s + updelay up), the first:\n%s", len(r.lagBad), strings.Join(r.lagBad[:min(5, len(r.lagBad))], "\n"))
	}
	if r.flaps.Load() > 0 && r.judged == 0 {
		t.Errorf("%d flaps and none could be judged for the state lag", r.flaps.Load())
	}
	if resumed != nil {
		t.Errorf("no traffic within 20 s after the soak: %v", resumed)
	}
	if ps.received == 0 {
		t.Errorf("no ping reply during the soak: %s", ping.summary)
	}
	if !flat {
		t.Errorf("memory or goroutines grew far beyond noise: RSS %d → %d KiB, goroutines %d → %d", rssStart, rssEnd, gStart, gEnd)
	}
	switch {
	case exitStr == "hang":
		i := strings.Index(log, "SIGQUIT")
		if i < 0 {
			i = max(0, len(log)-20000)
		}
		t.Errorf("the appliance did not exit within 10 s of SIGTERM:\n%s", trunc(log[i:], 20000))
	case strings.Contains(all, "umem ledger violation"):
		t.Errorf("UMEM ledger violation:\n%s", firstBlock(all, "umem ledger violation", "\n"))
	case !strings.Contains(log, "umem ledger ok"):
		t.Errorf("no `umem ledger ok` line at the clean exit")
	}
	for _, m := range topo.Members {
		after, err := readLinkState(ctx, topo.GW, m)
		if err != nil {
			t.Error(err)
			continue
		}
		if after != r.before[m] {
			t.Errorf("%s not restored: before %+v after %+v", m, r.before[m], after)
		}
	}
	if _, err := Sh(ctx, "ip", "-n", topo.GW, "link", "show", BondName); err == nil {
		t.Errorf("host device %s still exists after exit", BondName)
	}
}

func summaryOf(b *appliance.BondStatus) string {
	return Summary(&appliance.Status{Bonds: []appliance.BondStatus{*b}})
}

// chaosSets are the runtime options the set storm draws from (updelay and
// downdelay multiples of every miimon used, reload's 200 included).
func chaosSets(mode string) [][2]string {
	sets := [][2]string{{"miimon", "50"}, {"miimon", "100"}, {"updelay", "0"}, {"updelay", "200"}, {"downdelay", "0"}, {"downdelay", "200"}}
	switch mode {
	case "active-backup":
		sets = append(sets, [2]string{"primary", "m1"}, [2]string{"primary_reselect", "better"}, [2]string{"primary", "m2"},
			[2]string{"primary", ""}, [2]string{"primary_reselect", "always"}, [2]string{"active_slave", "m0"}, [2]string{"active_slave", ""})
	case "balance-xor":
		for _, p := range []string{"layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"} {
			sets = append(sets, [2]string{"xmit_hash_policy", p})
		}
	case "802.3ad":
		sets = append(sets, [2]string{"xmit_hash_policy", "layer2"}, [2]string{"xmit_hash_policy", "layer3+4"},
			// (lacp_rate changes only while the bond is down, as in bonding;
			// ad_actor_sys_prio / ad_actor_system are left out: a new actor
			// system is a new partner for the switch, which renegotiates
			// every port, so a storm of them is an outage by design)
			[2]string{"min_links", "0"}, [2]string{"min_links", "1"})
	}
	return sets
}

// start starts an instance with r.yaml, puts the host address on bond0 and
// connects a never-reading events client.
func (r *chaosRun) start() error {
	// every instance uses the first one's control socket: a restart after
	// kill -9 finds the killed instance's undo journal beside it
	p, err := r.topo.StartAt(r.ctx, r.bin, r.yaml, r.sock)
	if err != nil {
		return err
	}
	r.sock = p.Socket
	cfg, err := os.ReadFile(filepath.Join(p.Dir, "bond.yaml"))
	if err != nil {
		return err
	}
	r.cur.Store(p)
	r.epoch.Add(1)
	r.mu.Lock()
	r.cfg = cfg // what reload writes back (this instance's socket path)
	r.restarts = append(r.restarts, time.Now())
	r.mu.Unlock()
	if _, err := r.topo.InGW(r.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		return err
	}
	if c, err := net.Dial("unix", p.Socket); err == nil {
		if _, err := c.Write([]byte("{\"cmd\":\"events\"}\n")); err == nil {
			r.mute = c
		}
	}
	return nil
}

func (r *chaosRun) waitPing(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := r.topo.InPeer(r.ctx, "ping", "-c", "1", "-W", "1", HostIP)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// slaveCycle removes a random member and adds it back.
func (r *chaosRun) slaveCycle() {
	i := r.intn(len(r.topo.Members))
	m := r.topo.Members[i]
	r.gen[i].Add(1)
	defer r.gen[i].Add(1)
	r.event("slave")
	if _, err := r.ctl(appliance.Request{Cmd: "slave", Bond: BondName, Option: "del", Value: m}); err != nil {
		r.slaveErrs.Add(1)
		r.note("slave del", err.Error())
	}
	time.Sleep(r.jit(150 * time.Millisecond))
	if _, err := r.ctl(appliance.Request{Cmd: "slave", Bond: BondName, Option: "add", Value: m}); err != nil {
		r.slaveErrs.Add(1)
		r.note("slave add", err.Error())
	}
	r.slaveCycles.Add(1)
}

// flap takes a random peer port down and up again, judging how fast the
// member's MII status follows each time.
func (r *chaosRun) flap() {
	i := r.intn(len(r.topo.Ports))
	r.event("flap")
	// the lag counts from when the peer's carrier changed: `ip link set`
	// returns once it has (it can wait a while for the kernel's rtnl lock
	// when devices are being changed, ours included)
	if err := r.topo.SetPort(r.ctx, i, false); err != nil {
		r.note("flap", err.Error())
		return
	}
	r.judge(i, "down", time.Now())
	time.Sleep(r.jit(250 * time.Millisecond))
	if err := r.topo.SetPort(r.ctx, i, true); err != nil {
		r.note("flap", err.Error())
	}
	r.judge(i, "up", time.Now())
	r.flaps.Add(1)
}

// judge polls the status every 10 ms until member i's MII status is want.
// The lag lies between the last poll that still saw the old state and the
// first that saw the new one; the bound is broken when the former is past
// it. A change overlapped by a del/add of the member or a restart is not
// judged.
func (r *chaosRun) judge(i int, want string, t0 time.Time) {
	name := r.topo.Members[i]
	g0, e0 := r.gen[i].Load(), r.epoch.Load()
	var stale, good time.Time
	var staleState string
	delay := 0 // updelay or downdelay (ms), the largest seen while waiting
	present := false
	for deadline := t0.Add(4 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := r.bond()
		at := time.Now()
		if err != nil {
			continue
		}
		if want == "up" {
			delay = max(delay, b.UpDelay)
		} else {
			delay = max(delay, b.DownDelay)
		}
		for _, s := range b.Slaves {
			if s.Name != name {
				continue
			}
			present = true
			if s.MIIStatus == want {
				good = at
			} else {
				stale, staleState = at, s.MIIStatus
			}
		}
		if !good.IsZero() {
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !present || r.gen[i].Load() != g0 || r.epoch.Load() != e0 {
		r.skipped++
		return
	}
	r.judged++
	// bonding keeps a member "going down"/"going back" for downdelay/updelay
	bound := time.Second + time.Duration(delay)*time.Millisecond
	if good.IsZero() {
		r.lagBad = append(r.lagBad, fmt.Sprintf("%s: peer carrier %s at %s, MII status still %q after %v", name, want, t0.Format("15:04:05.000"), staleState, time.Since(t0).Round(time.Millisecond)))
		r.lagMax = max(r.lagMax, time.Since(t0))
		return
	}
	r.lagMax = max(r.lagMax, good.Sub(t0))
	if !stale.IsZero() && stale.Sub(t0) > bound {
		r.lagBad = append(r.lagBad, fmt.Sprintf("%s: peer carrier %s at %s, MII status still %q %v later (bound %v), %s %v later",
			name, want, t0.Format("15:04:05.000"), staleState, stale.Sub(t0).Round(time.Millisecond), bound, want, good.Sub(t0).Round(time.Millisecond)))
	}
}

// reload rewrites the file (odd: miimon 200, even: as first written, so
// every other reload changes nothing) and reloads.
func (r *chaosRun) reload(i int) {
	r.mu.Lock()
	cfg := string(r.cfg)
	r.mu.Unlock()
	if i%4 == 1 {
		cfg = strings.Replace(cfg, "miimon: 100", "miimon: 200", 1)
	}
	if err := os.WriteFile(filepath.Join(r.cur.Load().Dir, "bond.yaml"), []byte(cfg), 0o600); err != nil {
		r.note("reload", err.Error())
	}
	r.reloads.Add(1)
	if _, err := r.ctl(appliance.Request{Cmd: "reload"}); err != nil {
		r.reloadErrs.Add(1)
		r.note("reload", err.Error())
	}
}

// flood sends, from the peer end of a random member, ARP broadcasts (even
// i) or bogus and duplicate LACPDUs (odd i) for 2 s.
func (r *chaosRun) flood(i int) {
	port := r.intn(len(r.topo.Ports))
	r.event("flood")
	r.floods.Add(1)
	var err error
	if i%2 == 0 {
		var fl *arpFlood
		if fl, err = startARPFlood(r.topo.Peer, r.topo.Ports[port], 2*time.Second, r.o.floodPPS, -1); err == nil {
			for !fl.Done() {
				time.Sleep(50 * time.Millisecond)
			}
			err = fl.Stop()
		}
	} else {
		err = floodFrames(r.topo.Peer, r.topo.Ports[port], r.lacpduFrames(port), 2*time.Second, r.o.floodPPS)
	}
	if err != nil && !strings.Contains(err.Error(), "network is down") { // the port flapped: the flood ends early
		r.floodErrs.Add(1)
		r.note("flood", err.Error())
	}
}

// partnerRestart restarts the partner's LACP: lacp=off then active on the
// Open vSwitch bond (even i), or ovs-vswitchd stopped and started (odd i).
func (r *chaosRun) partnerRestart(i int) {
	r.event("partner")
	r.partner.Add(1)
	ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	defer cancel()
	var err error
	if i%2 == 0 {
		if err = r.ovs.vsctl(ctx, "set", "port", "lag", "lacp=off"); err == nil {
			time.Sleep(r.jit(2 * time.Second))
			err = r.ovs.vsctl(ctx, "set", "port", "lag", "lacp=active")
		}
	} else {
		err = restartVswitchd(ctx, r.ovs)
	}
	if err != nil {
		r.partnerErrs.Add(1)
		r.note("partner", err.Error())
	}
}

// restartVswitchd stops ovs-vswitchd and starts it again as StartOVS did;
// the database keeps the bridge and bond, the bridge port gets its address back.
func restartVswitchd(ctx context.Context, o *OVS) error {
	pidb, _ := os.ReadFile(filepath.Join(o.Dir, "ovs-vswitchd.pid"))
	_, _ = o.AppCtl(ctx, "exit")
	if pid, err := strconv.Atoi(strings.TrimSpace(string(pidb))); err == nil && pid > 1 {
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			if i == 60 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, err := Sh(ctx, "ip", "netns", "exec", o.NS, "env", "OVS_RUNDIR="+o.Dir, "OVS_LOGDIR="+o.Dir, "ovs-vswitchd",
		"unix:"+o.Dir+"/db.sock", "--pidfile="+o.Dir+"/ovs-vswitchd.pid", "--unixctl="+o.Dir+"/ovs-vswitchd.ctl",
		"-vconsole:off", "-vsyslog:off", "--log-file="+o.Dir+"/ovs-vswitchd.log", "-vfile:info", "-vfile:lacp:dbg",
		"--detach", "--no-chdir"); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := Sh(ctx, "ip", "netns", "exec", o.NS, "cat", "/sys/class/net/lpbr/address")
		if strings.TrimSpace(out) == PeerMAC {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the restart lpbr MAC is %q, not %s", strings.TrimSpace(out), PeerMAC)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, _ := Sh(ctx, "ip", "-n", o.NS, "addr", "show", "dev", "lpbr"); !strings.Contains(out, PeerIP+Prefix) {
		if _, err := Sh(ctx, "ip", "-n", o.NS, "addr", "add", PeerIP+Prefix, "dev", "lpbr"); err != nil {
			return err
		}
	}
	_, err := Sh(ctx, "ip", "-n", o.NS, "link", "set", "lpbr", "up")
	return err
}

// killRestart kills the appliance with SIGKILL and starts it again. When
// the restart fails because the killed instance's devices are still there
// (restart recovery after kill -9 not in yet), it says so, cleans up by
// hand, starts again and kills no more.
func (r *chaosRun) killRestart() {
	if r.killsOff.Load() {
		return
	}
	p := r.cur.Load()
	r.event("kill")
	r.kills.Add(1)
	_ = p.cmd.Process.Kill()
	<-p.done
	if r.mute != nil {
		r.mute.Close()
	}
	r.mu.Lock()
	r.oldLogs = append(r.oldLogs, p.Log())
	r.mu.Unlock()
	err := r.start()
	if err != nil && strings.Contains(err.Error(), "already exists") {
		msg := fmt.Sprintf("restart after kill -9 not supported yet: %s", trunc(firstLine(err.Error(), "already exists"), 300))
		fmt.Printf("chaos: %s\n", msg)
		r.mu.Lock()
		if r.fatal == nil {
			r.fatal = fmt.Errorf("%s (BOND_APPLIANCE_CHAOS_KILL=1 forced the kill step)", msg)
		}
		r.mu.Unlock()
		r.cleanupAfterKill()
		r.killsOff.Store(true)
		err = r.start()
	}
	if err != nil {
		r.mu.Lock()
		if r.fatal == nil {
			r.fatal = fmt.Errorf("restart after kill -9: %v", err)
		}
		r.mu.Unlock()
	}
	if p.Dir != filepath.Dir(r.sock) {
		// (the first instance's directory holds the control socket and
		// the undo journal every later instance uses: it stays)
		os.RemoveAll(p.Dir)
	}
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return s
}

// cleanupAfterKill undoes by hand what a killed instance left: the host
// devices, XDP programs and member settings.
func (r *chaosRun) cleanupAfterKill() {
	ctx := r.ctx
	_, _ = Sh(ctx, "ip", "-n", r.topo.GW, "link", "del", BondName)
	_, _ = Sh(ctx, "ip", "-n", r.topo.GW, "link", "del", BondName+"-dp")
	for _, m := range r.topo.Members {
		b := r.before[m]
		for _, args := range [][]string{
			{"xdp", "off"}, {"xdpgeneric", "off"}, {"address", b.Address}, {"mtu", strconv.Itoa(b.MTU)},
			{"allmulticast", onOff(b.FlagAllmulti)}, {"promisc", onOff(b.FlagPromisc)},
		} {
			_, _ = Sh(ctx, "ip", append([]string{"-n", r.topo.GW, "link", "set", "dev", m}, args...)...)
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// sample records the current instance's RSS, goroutine count and (802.3ad)
// the recent LACP tick jitter.
func (r *chaosRun) sample() {
	p := r.cur.Load()
	s := chaosSample{at: time.Now(), epoch: r.epoch.Load()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				s.rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if g, err := r.goroutines(); err == nil {
		s.goroutines = g
	} else {
		r.scrapeErrs.Add(1)
		r.note("metrics", err.Error())
	}
	var jit float64
	if r.mode == "802.3ad" {
		if b, err := r.bond(); err == nil && b.AD != nil {
			jit = b.AD.TickJitterRecentMaxMs
		}
	}
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.jitter = max(r.jitter, jit)
	r.mu.Unlock()
}

// goroutines reads go_goroutines from the metrics endpoint in the gateway namespace.
func (r *chaosRun) goroutines() (int64, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return labtest.DialInNetns(r.topo.GW, network, addr)
		},
	}}
	resp, err := c.Get("http://127.0.0.1:9471/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("no go_goroutines in the metrics (%s)", resp.Status)
}

// flatness compares the median RSS and goroutine count of the 5 s after
// the warm-up (of the last instance) with the last 5 s. flat is false only
// far beyond noise.
func (r *chaosRun) flatness(warm time.Duration) (rssStart, rssEnd, gStart, gEnd int64, flat bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return 0, 0, 0, 0, true
	}
	lastEpoch := r.samples[len(r.samples)-1].epoch
	from := r.restarts[len(r.restarts)-1].Add(warm)
	var head, tail []chaosSample
	endAt := r.samples[len(r.samples)-1].at
	for _, s := range r.samples {
		if s.epoch != lastEpoch || s.rssKiB == 0 {
			continue
		}
		if !s.at.Before(from) && s.at.Before(from.Add(5*time.Second)) {
			head = append(head, s)
		}
		if s.at.After(endAt.Add(-5 * time.Second)) {
			tail = append(tail, s)
		}
	}
	if len(head) == 0 || len(tail) == 0 {
		return 0, 0, 0, 0, true
	}
	med := func(ss []chaosSample, f func(chaosSample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	rss := func(s chaosSample) int64 { return s.rssKiB }
	gor := func(s chaosSample) int64 { return s.goroutines }
	rssStart, rssEnd, gStart, gEnd = med(head, rss), med(tail, rss), med(head, gor), med(tail, gor)
	flat = !(rssEnd > rssStart*3/2 && rssEnd-rssStart > 32<<10) && !(gStart > 0 && gEnd > gStart*3/2+20)
	return rssStart, rssEnd, gStart, gEnd, flat
}

// udp sends UDP from the host to the peer in 8 flows of 1 Mbit/s for d.
func (r *chaosRun) udp(d time.Duration) udpResult { return udpHostToPeer(r.ctx, r.topo, d) }
