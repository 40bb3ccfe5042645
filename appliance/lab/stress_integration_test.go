package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/lab/labtest"
)

// TestIntegrationStress runs the appliance built with -race on a bond with
// three members and, for BOND_APPLIANCE_STRESS (a Go duration, default 60s)
// per mode, at the same time:
//
//   - hot-removes and re-adds member m2 in a loop (`slave bond0 del/add m2`);
//   - pings from the peer namespace to the host address through the bond,
//     and sends UDP (iperf3, 8 flows of 1 Mbit/s) from the host to the peer;
//   - storms `set bond0 <opt> <val>` over runtime options valid for the mode;
//   - `reload`s, with and without a changed file;
//   - polls `status --json` and checks it is JSON holding bond0;
//   - scrapes the Prometheus endpoint;
//   - keeps an `events` client connected that never reads.
//
// Then: no data race or panic in the appliance's output, some traffic
// passed (loss is printed, only 100% fails), SIGTERM ends the process within
// 3 s, and every member is back to its MAC, promiscuity, allmulti and MTU.
// With BOND_APPLIANCE_UMEM_LEDGER=1 the appliance checks its UMEM frame
// ledger at shutdown; the line `umem ledger ok` is required when the binary
// prints either ledger line.
//
// Modes: BOND_APPLIANCE_STRESS_MODES (comma-separated, default
// "balance-xor,active-backup"). The appliance's full output is kept in a
// file whose path is logged.
func TestIntegrationStress(t *testing.T) {
	privileged(t)
	dur := 60 * time.Second
	if v := os.Getenv("BOND_APPLIANCE_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BOND_APPLIANCE_STRESS=%q: %v", v, err)
		}
		dur = d
	}
	if !raceEnabled {
		t.Log("note: the test itself is not built with -race (go test -race is intended)")
	}
	bin := raceBinary(t)
	modes := []string{"balance-xor", "active-backup"}
	if v := os.Getenv("BOND_APPLIANCE_STRESS_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { stressMode(t, bin, mode, dur) })
	}
}

// raceBinary is the appliance built with -race: TestMain's binary when
// BOND_APPLIANCE_RACE=1 built it so, otherwise one built here for t.
func raceBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv("BOND_APPLIANCE_RACE") == "1" && applianceBin != "" {
		return applianceBin
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bond-appliance")
	out, err := exec.Command("go", "build", "-race", "-o", bin, "../../cmd/bond-appliance").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -race: %v\n%s", err, out)
	}
	return bin
}

// linkState is what shutdown must restore on a member.
type linkState struct {
	Address     string `json:"address"`
	Promiscuity int    `json:"promiscuity"`
	Allmulti    int    `json:"allmulti"`
	MTU         int    `json:"mtu"`
	// flags that the counters above do not cover
	FlagPromisc  bool
	FlagAllmulti bool
	XDP          bool
}

func readLinkState(ctx context.Context, ns, dev string) (linkState, error) {
	out, err := Sh(ctx, "ip", "-n", ns, "-d", "-j", "link", "show", "dev", dev)
	if err != nil {
		return linkState{}, err
	}
	var v []struct {
		linkState
		Flags []string        `json:"flags"`
		XDP   json.RawMessage `json:"xdp"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		return linkState{}, fmt.Errorf("ip -d -j link show %s: %v: %s", dev, err, out)
	}
	s := v[0].linkState
	for _, f := range v[0].Flags {
		switch f {
		case "PROMISC":
			s.FlagPromisc = true
		case "ALLMULTI":
			s.FlagAllmulti = true
		}
	}
	s.XDP = len(v[0].XDP) > 0
	return s, nil
}

// stressCounts are the loop counters of one run.
type stressCounts struct {
	slaveCycles, slaveErrs atomic.Int64
	sets, setErrs          atomic.Int64
	reloads, reloadErrs    atomic.Int64
	statuses, statusErrs   atomic.Int64
	events                 atomic.Int64
	scrapes, scrapeErrs    atomic.Int64
	firstErrMu             sync.Mutex
	firstErrs              map[string][]string
}

func (c *stressCounts) note(kind, msg string) {
	c.firstErrMu.Lock()
	defer c.firstErrMu.Unlock()
	if c.firstErrs == nil {
		c.firstErrs = map[string][]string{}
	}
	if len(c.firstErrs[kind]) < 3 {
		c.firstErrs[kind] = append(c.firstErrs[kind], msg)
	}
}

func stressMode(t *testing.T, bin, mode string, dur time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+3*time.Minute)
	defer cancel()
	topo, err := NewTopo(ctx, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	for _, ns := range []string{topo.GW, topo.Peer} {
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if _, err := Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", k); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := map[string]linkState{}
	for _, m := range topo.Members {
		s, err := readLinkState(ctx, topo.GW, m)
		if err != nil {
			t.Fatal(err)
		}
		before[m] = s
	}

	opts := map[string]string{"miimon": "100"}
	// runtime option storms valid for the mode (updelay/downdelay multiples of every miimon used)
	sets := [][2]string{
		{"miimon", "50"}, {"miimon", "100"}, {"updelay", "0"}, {"updelay", "200"},
		{"downdelay", "0"}, {"downdelay", "200"}, {"miimon", "100"},
	}
	if mode == "balance-xor" || mode == "2" {
		opts["xmit_hash_policy"] = "layer3+4"
		for _, p := range []string{"layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "layer3+4"} {
			sets = append(sets, [2]string{"xmit_hash_policy", p})
		}
	} else {
		sets = append(sets, [2]string{"primary", "m1"}, [2]string{"primary_reselect", "better"},
			[2]string{"primary", "m2"}, [2]string{"primary", ""}, [2]string{"primary_reselect", "always"})
	}

	t.Setenv("BOND_APPLIANCE_UMEM_LEDGER", "1")
	p, err := topo.Start(ctx, bin, topo.Config(BondSpec{Mode: mode, Options: opts, Metrics: "127.0.0.1:9470"}, "@SOCKET@"))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(os.TempDir(), "ba-stress-"+topo.ID+"-"+mode+".log")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.Stop()
		}
		_ = os.WriteFile(logPath, []byte(p.Log()), 0o644)
		t.Logf("appliance output (%d bytes) kept in %s", len(p.Log()), logPath)
	})
	cli := func(ctx context.Context, args ...string) (string, error) {
		return Sh(ctx, bin, append(args, "--socket", p.Socket)...)
	}
	// ctl sends one request straight to the control socket (the CLI built
	// with -race starts too slowly for a storm); the reply line is returned.
	ctl := func(req map[string]string) (string, error) {
		conn, err := net.DialTimeout("unix", p.Socket, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := json.Marshal(req)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return "", err
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return line, fmt.Errorf("reply: %w", err)
		}
		var r struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return line, err
		}
		if !r.OK {
			return line, fmt.Errorf("%s", r.Error)
		}
		return line, nil
	}
	if _, err := topo.InGW(ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		t.Fatal(err)
	}
	{
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := topo.InPeer(ctx, "ping", "-c", "1", "-W", "1", HostIP)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ping through the bond before the stress: %v\n%s", err, p.Log())
			}
		}
	}
	cfgPath := filepath.Join(p.Dir, "bond.yaml")
	origCfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// the events client that never reads: it must not block the appliance
	// (BOND_APPLIANCE_STRESS_MUTE=0 leaves it out, to see the rest of a
	// shutdown while it does block)
	mute, err := net.Dial("unix", p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	if os.Getenv("BOND_APPLIANCE_STRESS_MUTE") == "0" {
		t.Log("note: BOND_APPLIANCE_STRESS_MUTE=0: no never-reading events client")
		mute.Close()
	} else if _, err := mute.Write([]byte("{\"cmd\":\"events\"}\n")); err != nil {
		t.Fatal(err)
	}

	var c stressCounts
	lctx, lcancel := context.WithTimeout(ctx, dur)
	defer lcancel()
	var wg sync.WaitGroup
	loop := func(name string, gap time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; lctx.Err() == nil; i++ {
				fn(i)
				select {
				case <-lctx.Done():
				case <-time.After(gap):
				}
			}
		}()
	}
	// a client that does read events, to count them
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := net.Dial("unix", p.Socket)
		if err != nil {
			c.note("events", err.Error())
			return
		}
		go func() { <-lctx.Done(); conn.Close() }()
		if _, err := conn.Write([]byte("{\"cmd\":\"events\"}\n")); err != nil {
			return
		}
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			c.events.Add(1)
		}
	}()
	opCtx := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 30*time.Second) }
	// m2 out and in
	// every 5th cycle through the CLI, the others straight to the socket
	slave := func(i int, op string) (string, error) {
		if i%5 == 0 {
			cctx, cc := opCtx()
			defer cc()
			return cli(cctx, "slave", BondName, op, "m2")
		}
		return ctl(map[string]string{"cmd": "slave", "bond": BondName, "option": op, "value": "m2"})
	}
	loop("slave", 50*time.Millisecond, func(i int) {
		if out, err := slave(i, "del"); err != nil {
			c.slaveErrs.Add(1)
			c.note("slave del", err.Error()+" "+out)
		}
		time.Sleep(50 * time.Millisecond)
		if out, err := slave(i, "add"); err != nil {
			c.slaveErrs.Add(1)
			c.note("slave add", err.Error()+" "+out)
		}
		c.slaveCycles.Add(1)
	})
	loop("set", 5*time.Millisecond, func(i int) {
		s := sets[i%len(sets)]
		c.sets.Add(1)
		if out, err := ctl(map[string]string{"cmd": "set", "bond": BondName, "option": s[0], "value": s[1]}); err != nil {
			c.setErrs.Add(1)
			c.note("set "+s[0]+" "+s[1], err.Error()+" "+out)
		}
	})
	loop("reload", 500*time.Millisecond, func(i int) {
		cctx, cc := opCtx()
		defer cc()
		// odd: the file changed (miimon 200), even: back to the original
		// (a change again after an odd one, none after an even one)
		var cfg string
		switch i % 4 {
		case 1:
			cfg = strings.Replace(string(origCfg), "miimon: 100", "miimon: 200", 1)
		default:
			cfg = string(origCfg)
		}
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			c.note("reload", err.Error())
		}
		c.reloads.Add(1)
		if out, err := cli(cctx, "reload"); err != nil {
			c.reloadErrs.Add(1)
			c.note("reload", out)
		}
	})
	loop("status", 50*time.Millisecond, func(i int) {
		cctx, cc := opCtx()
		defer cc()
		c.statuses.Add(1)
		var out string
		var err error
		if i%4 == 0 { // the CLI's --json, or the protocol's status reply
			out, err = cli(cctx, "status", "--json")
		} else if out, err = ctl(map[string]string{"cmd": "status"}); err == nil {
			var r struct {
				Status json.RawMessage `json:"status"`
			}
			if err = json.Unmarshal([]byte(out), &r); err == nil {
				out = string(r.Status)
			}
		}
		if err != nil {
			c.statusErrs.Add(1)
			c.note("status", out)
			return
		}
		var st struct {
			Bonds []struct {
				Name   string            `json:"name"`
				Slaves []json.RawMessage `json:"slaves"`
			} `json:"bonds"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			c.statusErrs.Add(1)
			c.note("status json", err.Error()+": "+trunc(out, 300))
			return
		}
		found := false
		for _, b := range st.Bonds {
			found = found || b.Name == BondName
		}
		if !found {
			c.statusErrs.Add(1)
			c.note("status json", "no "+BondName+" in "+trunc(out, 300))
		}
	})
	// the Prometheus endpoint, scraped like status (its collector reads the same state)
	scraper := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return labtest.DialInNetns(topo.GW, network, addr)
		},
	}}
	loop("metrics", 100*time.Millisecond, func(i int) {
		c.scrapes.Add(1)
		resp, err := scraper.Get("http://127.0.0.1:9470/metrics")
		if err != nil {
			c.scrapeErrs.Add(1)
			c.note("metrics", err.Error())
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `bond_appliance_bond_up{bond="bond0"}`) {
			c.scrapeErrs.Add(1)
			c.note("metrics", resp.Status+" "+trunc(string(b), 300))
		}
	})
	// traffic: ping from the peer to the host address, for the whole run
	type pingResult struct {
		sent, recv int
		out        string
	}
	pingDone := make(chan pingResult, 1)
	go func() {
		secs := strconv.Itoa(int(dur.Round(time.Second) / time.Second))
		if secs == "0" {
			secs = "1"
		}
		out, _ := topo.InPeer(ctx, "ping", "-q", "-i", "0.002", "-W", "1", "-w", secs, HostIP)
		r := pingResult{out: out}
		if m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out); m != nil {
			r.sent, _ = strconv.Atoi(m[1])
			r.recv, _ = strconv.Atoi(m[2])
		}
		pingDone <- r
	}()
	// and UDP from the host to the peer in 8 flows, which layer3+4 spreads
	// over every member (m2 included), 8 × 1 Mbit/s
	udpDone := make(chan pingResult, 1)
	go func() {
		u := udpHostToPeer(ctx, topo, dur)
		udpDone <- pingResult(u)
	}()

	t0 := time.Now()
	wg.Wait()
	pr := <-pingDone
	ur := <-udpDone
	elapsed := time.Since(t0)
	// leave m2 in (a failed add in the last cycle leaves it out)
	if st, err := p.Status(BondName); err == nil && len(st.Bonds) == 1 && len(st.Bonds[0].Slaves) < 3 {
		_, _ = cli(ctx, "slave", BondName, "add", "m2")
	}
	if st, err := p.Status(BondName); err == nil {
		t.Logf("status after the stress: %s", Summary(st))
	} else {
		t.Errorf("status after the stress: %v", err)
	}

	// SIGTERM: exit within 3 s (the mute events client still connected)
	exitStart := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var exitAfter time.Duration
	select {
	case <-p.done:
		exitAfter = time.Since(exitStart)
	case <-time.After(10 * time.Second):
		// a hang: ask the Go runtime for every goroutine's stack, then kill
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		exitAfter = -1
	}
	stopped = true
	mute.Close()
	os.RemoveAll(p.Dir)
	log := p.Log()

	lossOf := func(sent, recv int) float64 {
		if sent == 0 {
			return 100
		}
		return 100 * float64(sent-recv) / float64(sent)
	}
	exitStr := exitAfter.Round(time.Millisecond).String()
	if exitAfter < 0 {
		exitStr = "hang"
	}
	fmt.Printf("stress: mode=%s duration=%v slave_cycles=%d slave_errors=%d sets=%d set_errors=%d reloads=%d reload_errors=%d status=%d status_errors=%d metrics=%d metrics_errors=%d events=%d sent=%d received=%d loss=%.2f%% (ping %d/%d loss=%.2f%%, udp %d/%d loss=%.2f%%) exit_after=%s\n",
		mode, elapsed.Round(time.Millisecond), c.slaveCycles.Load(), c.slaveErrs.Load(), c.sets.Load(), c.setErrs.Load(),
		c.reloads.Load(), c.reloadErrs.Load(), c.statuses.Load(), c.statusErrs.Load(), c.scrapes.Load(), c.scrapeErrs.Load(), c.events.Load(),
		pr.sent+ur.sent, pr.recv+ur.recv, lossOf(pr.sent+ur.sent, pr.recv+ur.recv),
		pr.recv, pr.sent, lossOf(pr.sent, pr.recv), ur.recv, ur.sent, lossOf(ur.sent, ur.recv), exitStr)
	for kind, msgs := range c.firstErrs {
		for _, m := range msgs {
			t.Logf("first errors of %s: %s", kind, trunc(strings.TrimSpace(m), 400))
		}
	}

	if n := strings.Count(log, "WARNING: DATA RACE"); n > 0 {
		t.Errorf("%d data race report(s) in the appliance's output; the first:\n%s", n, firstBlock(log, "WARNING: DATA RACE", "=================="))
	}
	if i := strings.Index(log, "panic:"); i >= 0 {
		t.Errorf("panic in the appliance's output:\n%s", trunc(log[i:], 6000))
	}
	if ur.sent == 0 {
		t.Logf("note: no iperf3 UDP result: %s", ur.out)
	}
	if pr.recv+ur.recv == 0 {
		t.Errorf("no traffic passed during the stress (ping sent %d, received %d; udp sent %d, received %d):\n%s\n%s", pr.sent, pr.recv, ur.sent, ur.recv, pr.out, ur.out)
	}
	if c.statuses.Load() > 0 && c.statusErrs.Load() == c.statuses.Load() {
		t.Errorf("every status --json failed")
	}
	switch {
	case exitAfter < 0:
		i := strings.Index(log, "SIGQUIT")
		if i < 0 {
			i = max(0, len(log)-20000)
		}
		t.Errorf("the appliance did not exit within 10 s of SIGTERM; goroutines (SIGQUIT):\n%s", trunc(log[i:], 20000))
	case exitAfter > 3*time.Second:
		t.Errorf("the appliance exited %v after SIGTERM (want ≤ 3 s)", exitAfter)
	}
	if p.err != nil && exitAfter >= 0 {
		t.Logf("appliance exit status: %v (66 = race detector reports)", p.err)
	}
	switch {
	case strings.Contains(log, "umem ledger violation"):
		t.Errorf("UMEM ledger violation:\n%s", firstBlock(log, "umem ledger violation", "\n"))
	case strings.Contains(log, "umem ledger ok"):
	default:
		t.Log("note: no `umem ledger ok|violation` line: this binary has no UMEM ledger hook yet (assertion skipped)")
	}
	// every member restored exactly
	killed := ""
	if exitAfter < 0 {
		killed = " (the appliance was killed after hanging)"
	}
	for _, m := range topo.Members {
		after, err := readLinkState(ctx, topo.GW, m)
		if err != nil {
			t.Error(err)
			continue
		}
		if after != before[m] {
			t.Errorf("%s not restored%s: before %+v after %+v", m, killed, before[m], after)
		}
	}
	if _, err := Sh(ctx, "ip", "-n", topo.GW, "link", "show", BondName); err == nil {
		t.Errorf("host device %s still exists after exit%s", BondName, killed)
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// firstBlock returns log from the first start up to the next end after it
// (the race detector ends a report with a ===== line).
func firstBlock(log, start, end string) string {
	i := strings.Index(log, start)
	if i < 0 {
		return ""
	}
	rest := log[i:]
	if j := strings.Index(rest[len(start):], end); j >= 0 {
		rest = rest[:len(start)+j]
	}
	return trunc(rest, 8000)
}
