// Command balacp measures 802.3ad against a private Open vSwitch LACP
// partner (appliance/lab): time to aggregate from start, time to remove a
// member after carrier loss and after the partner goes silent (fast rate,
// short timeout), and the LACP tick jitter of the control goroutine with
// the lanes at full load (iperf3 through the aggregate plus a raw frame
// flood). It prints a table and one summary line:
//
//	lacp aggregate_s=2.3 remove_carrier_ms=4 remove_timeout_s=3.0 jitter_idle_max_ms=0.4 jitter_load_max_ms=1.2 ...
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/lab"
	"github.com/bond-appliance/bond-appliance/appliance/lab/labtest"
)

func main() {
	bin := flag.String("binary", "bin/bond-appliance", "appliance binary")
	load := flag.Duration("load", 10*time.Second, "duration of the full-load phase")
	flag.StringVar(&poll, "poll", "busy", "dataplane.poll of the appliance (busy|adaptive)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *load); err != nil {
		fmt.Fprintln(os.Stderr, "balacp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin string, load time.Duration) error {
	t, err := lab.NewTopoOpts(ctx, lab.TopoOptions{Members: 2, Queues: 1})
	if err != nil {
		return err
	}
	defer t.Close()
	for _, ns := range []string{t.GW, t.Peer} {
		_, _ = lab.Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	ovs, err := lab.StartOVS(ctx, t.Peer, t.Ports, lab.OVSOptions{SysID: "02:00:00:00:5a:01", IP: lab.PeerIP + lab.Prefix})
	if err != nil {
		return err
	}
	defer ovs.Close()
	t0 := time.Now()
	p, err := t.Start(ctx, bin, t.Config(lab.BondSpec{Mode: "802.3ad", Poll: poll, Options: map[string]string{
		"lacp_rate": "fast", "miimon": "100", "xmit_hash_policy": "layer3+4"}}, "@SOCKET@"))
	if err != nil {
		return err
	}
	defer p.Stop()
	started := time.Since(t0)
	el, err := ovs.WaitReady(ctx, 2, 30*time.Second)
	if err != nil {
		return err
	}
	aggregate := started + el
	fmt.Printf("%-36s %10.3f s\n", "aggregated (both sides, from start)", aggregate.Seconds())
	time.Sleep(time.Duration(lab.JitterWindowSeconds) * time.Second) // a full window of idle ticks
	jIdle := jitter(p)
	fmt.Printf("%-36s %10.3f ms (mean %.3f)\n", "tick jitter max, idle", jIdle[1], jIdle[0])

	// full load: iperf3 and a raw flood through the aggregate
	if _, err := t.InGW(ctx, "ip", "addr", "add", lab.HostIP+lab.Prefix, "dev", lab.BondName); err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", t.Peer, "iperf3", "-s", "-1")
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	time.Sleep(time.Duration(2*lab.JitterWindowSeconds) * time.Second) // let the idle window age out
	lctx, cancel := context.WithTimeout(ctx, load+5*time.Second)
	defer cancel()
	go flood(lctx, t, p)
	before, _ := p.Status("")
	out, _ := lab.Sh(lctx, "ip", "netns", "exec", t.GW, "iperf3", "-c", lab.PeerIP, "-t", fmt.Sprint(int(load.Seconds())), "-P", "4", "-f", "m")
	cancel()
	after, _ := p.Status("")
	jLoad := jitter(p)
	busy := 0.0
	if len(after.Lanes) > 0 && len(before.Lanes) > 0 {
		if dt := after.Uptime - before.Uptime; dt > 0 {
			busy = float64(after.Lanes[0].BusyNanos-before.Lanes[0].BusyNanos) / 1e9 / dt
		}
	}
	fwd := 0.0
	if len(after.Bonds) > 0 && len(before.Bonds) > 0 {
		fwd = float64(after.Bonds[0].Host.RxPackets-before.Bonds[0].Host.RxPackets) / load.Seconds()
	}
	fmt.Printf("%-36s %10.3f ms (mean %.3f), lane busy ratio %.2f, host->members %.0f pps\n", "tick jitter max, full load", jLoad[1], jLoad[0], busy, fwd)
	fmt.Print(lastLine(out, "sender"))

	// member removal: carrier loss
	t1 := time.Now()
	if err := t.SetPort(ctx, 0, false); err != nil {
		return err
	}
	rmCarrier := waitDist(p, 1)
	if err := t.SetPort(ctx, 0, true); err != nil {
		return err
	}
	fmt.Printf("%-36s %10.3f ms\n", "member out after carrier loss", float64(rmCarrier-time.Duration(t1.Sub(epoch)))/1e6)
	waitDist(p, 2)
	// member removal: partner silent (fast rate: short timeout 3 s)
	bh, err := labtest.NewBlackhole(t.Peer, t.Ports[1])
	if err != nil {
		return err
	}
	t2 := time.Now()
	rmTimeout := waitDist(p, 1)
	bh.Close()
	fmt.Printf("%-36s %10.3f s\n", "member out after partner silence", float64(rmTimeout-time.Duration(t2.Sub(epoch)))/1e9)
	fmt.Printf("lacp aggregate_s=%.3f jitter_idle_max_ms=%.3f jitter_load_max_ms=%.3f jitter_load_mean_ms=%.3f lane_busy=%.2f load_pps=%.0f remove_carrier_ms=%.3f remove_timeout_s=%.3f\n",
		aggregate.Seconds(), jIdle[1], jLoad[1], jLoad[0], busy, fwd, float64(rmCarrier-time.Duration(t1.Sub(epoch)))/1e6, float64(rmTimeout-time.Duration(t2.Sub(epoch)))/1e9)
	return nil
}

var epoch = time.Now()

var poll string

func jitter(p *lab.Proc) [2]float64 {
	st, err := p.Status("")
	if err != nil || st.Bonds[0].AD == nil {
		return [2]float64{}
	}
	return [2]float64{st.Bonds[0].AD.TickJitterMeanMs, st.Bonds[0].AD.TickJitterRecentMaxMs}
}

func waitDist(p *lab.Proc, n int) time.Duration {
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		st, err := p.Status("")
		if err == nil {
			d := 0
			for _, s := range st.Bonds[0].Slaves {
				if s.AD != nil && s.AD.Distributing {
					d++
				}
			}
			if d == n {
				return time.Since(epoch)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0
}

func flood(ctx context.Context, t *lab.Topo, p *lab.Proc) {
	tx, err := labtest.OpenPacket(t.GW, lab.BondName)
	if err != nil {
		return
	}
	defer tx.Close()
	st, _ := p.Status("")
	src, _ := net.ParseMAC(st.Bonds[0].MAC)
	dst, _ := net.ParseMAC(lab.PeerMAC)
	frames := make([][]byte, 256)
	for i := range frames {
		frames[i] = labtest.UDPFrame(dst, src, uint16(1000+i), 9, uint32(i), 64)
	}
	for i := 0; ctx.Err() == nil; i++ {
		_ = tx.Send(frames[i%len(frames)])
	}
}

func lastLine(s, marker string) string {
	var out string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, marker) {
			out = l + "\n"
		}
	}
	return out
}
