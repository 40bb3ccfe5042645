// Command bafailover measures the traffic outage of an active-backup
// failover: it builds a lab topology (appliance/lab), sends a constant-rate
// numbered UDP stream from the host device through the bond, takes the
// active member's link down (carrier loss, from the peer side), and reports
// the frames lost and the outage in milliseconds — once with carrier events
// (netlink, the appliance's default) and once with miimon polling only
// (use_carrier 0: ethtool link state every miimon ms, the kernel bonding
// driver's bound).
//
//	bafailover [-binary bin/bond-appliance] [-rate 20000] [-miimon 100] [-runs 3] [-series FILE]
//
// -series writes, for every run, the frames delivered per millisecond of
// send time around the link-down (t_ms 0 = the millisecond the port was
// taken down, -200 to +499 ms; the sender sends rate/1000 frames each ms)
// as CSV (mode,run,t_ms,frames), for perf/cmd/baplot.
//
// It prints a table and one summary line per mode:
//
//	failover mode=events miimon=100 rate_pps=20000 lost=3 outage_ms=0.150 ...
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/lab"
	"github.com/bond-appliance/bond-appliance/appliance/lab/labtest"
	"golang.org/x/sys/unix"
)

func main() {
	bin := flag.String("binary", "bin/bond-appliance", "appliance binary")
	rate := flag.Int("rate", 10000, "frames per second")
	miimon := flag.Int("miimon", 100, "miimon (ms)")
	runs := flag.Int("runs", 3, "failovers per mode")
	cpu := flag.Int("cpu", -1, "pin this tool's threads to this CPU once the appliance runs (-1: no pinning)")
	series := flag.String("series", "", "write frames received per ms around each link-down as CSV to this file")
	flag.Parse()
	pinCPU = *cpu
	var csv *os.File
	if *series != "" {
		f, err := os.Create(*series)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bafailover:", err)
			os.Exit(1)
		}
		defer f.Close()
		fmt.Fprintln(f, "mode,run,t_ms,frames")
		csv = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("%-8s %-4s %8s %10s\n", "mode", "run", "lost", "outage_ms")
	for _, mode := range []struct{ name, useCarrier string }{{"events", "1"}, {"polling", "0"}} {
		var outs, lost []float64
		for r := 0; r < *runs; r++ {
			res, err := once(ctx, *bin, *rate, *miimon, mode.useCarrier)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bafailover:", err)
				os.Exit(1)
			}
			fmt.Printf("%-8s %-4d %8d %10.3f\n", mode.name, r, res.lost, res.outageMs)
			if csv != nil {
				for i, n := range res.perMs {
					fmt.Fprintf(csv, "%s,%d,%d,%d\n", mode.name, r, i+seriesFrom, n)
				}
			}
			outs = append(outs, res.outageMs)
			lost = append(lost, float64(res.lost))
		}
		fmt.Printf("failover mode=%s miimon=%d rate_pps=%d runs=%d lost_median=%.0f outage_ms_median=%.3f outage_ms_max=%.3f\n",
			mode.name, *miimon, *rate, *runs, median(lost), median(outs), maxf(outs))
	}
}

var pinCPU = 0

type result struct {
	lost                         int
	outageMs, detectMs, maxGapMs float64
	perMs                        []int // frames received per ms from seriesFrom ms after the link-down
}

// the window of the per-ms series, in ms relative to the link-down
const seriesFrom, seriesTo = -200, 500

func once(ctx context.Context, bin string, rate, miimon int, useCarrier string) (res result, err error) {
	t, err := lab.NewTopo(ctx, 2, 1)
	if err != nil {
		return res, err
	}
	defer t.Close()
	for _, ns := range []string{t.GW, t.Peer} {
		_, _ = lab.Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	p, err := t.Start(ctx, bin, t.Config(lab.BondSpec{Mode: "active-backup", Poll: "busy", Options: map[string]string{
		"miimon": fmt.Sprint(miimon), "use_carrier": useCarrier, "primary": "m0"}}, "@SOCKET@"))
	if err != nil {
		return res, err
	}
	defer p.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := p.Status("")
		if err == nil && st.Bonds[0].CurrentlyActiveSlave == "m0" {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("m0 never became active")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pinCPU >= 0 {
		// The sender's CPU also runs the veth receive work of the host
		// device (NAPI is scheduled where veth_xmit ran): keep it off the
		// lane's core, or ksoftirqd fights the spinning lane there. Pinned
		// after the appliance started, so it does not inherit the mask.
		if err := pinProcess(pinCPU); err != nil {
			return res, fmt.Errorf("pin: %w", err)
		}
		defer pinProcess(-1)
	}
	st, _ := p.Status("")
	bondMAC, _ := net.ParseMAC(st.Bonds[0].MAC)
	peerMAC, _ := net.ParseMAC(lab.PeerMAC)
	tx, err := labtest.OpenPacket(t.GW, lab.BondName)
	if err != nil {
		return res, err
	}
	defer tx.Close()
	type rec struct {
		seq uint32
		at  time.Time
	}
	var mu sync.Mutex
	var got []rec
	var wg sync.WaitGroup
	stopRx := make(chan struct{})
	for _, port := range t.Ports {
		s, err := labtest.OpenPacket(t.Peer, port)
		if err != nil {
			return res, err
		}
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopRx:
					return
				default:
				}
				for _, f := range s.Recv(50*time.Millisecond, 256) {
					if q, ok := labtest.TestSeq(f); ok {
						mu.Lock()
						got = append(got, rec{q, time.Now()})
						mu.Unlock()
					}
				}
			}
		}()
	}
	// warm-up: the host device has carrier and frames get through
	warm := time.Now().Add(5 * time.Second)
	for k := uint32(0); ; k++ {
		_ = tx.Send(labtest.UDPFrame(peerMAC, bondMAC, 5000, 5001, 0xfff00000+k, 64))
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(warm) {
			return res, fmt.Errorf("no frame through the bond within 5 s")
		}
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	got = got[:0]
	mu.Unlock()
	// Paced sender: a burst every millisecond (sleeping, so the receivers
	// and the kernel's veth work keep a core on this 2-core machine).
	interval := time.Second / time.Duration(rate)
	total := uint32(rate * 2)
	cut := total / 2
	perMs := uint32(rate / 1000)
	if perMs == 0 {
		perMs = 1
	}
	var cutAt time.Time
	start := time.Now()
	for i := uint32(0); i < total; i++ {
		if i%perMs == 0 {
			next := start.Add(time.Duration(i/perMs) * time.Millisecond)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		if i == cut {
			cutAt = time.Now()
			go func() { _ = t.SetPort(ctx, 0, false) }()
		}
		_ = tx.Send(labtest.UDPFrame(peerMAC, bondMAC, 5000, 5001, i, 64))
	}
	time.Sleep(200 * time.Millisecond)
	close(stopRx)
	wg.Wait()
	if os.Getenv("BAFAILOVER_DEBUG") != "" {
		st, _ := p.Status("")
		fmt.Fprintf(os.Stderr, "debug: got %d records; status %s\n", len(got), lab.Summary(st))
	}
	seen := map[uint32]time.Time{}
	for _, r := range got {
		if r.seq < total {
			seen[r.seq] = r.at
		}
	}
	for i := uint32(0); i < total; i++ {
		if _, ok := seen[i]; !ok {
			res.lost++
		}
	}
	res.outageMs = float64(res.lost) * float64(interval) / 1e6
	// detection: first frame after the cut that arrived (on the new member)
	var times []time.Time
	for q, at := range seen {
		if q >= cut {
			times = append(times, at)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	if len(times) > 0 {
		res.detectMs = float64(times[0].Sub(cutAt)) / 1e6
	}
	res.perMs = make([]int, seriesTo-seriesFrom)
	// by send time: the sender sends perMs frames each millisecond, the
	// receivers read in batches, so their clock would show the batching
	for q := range seen {
		if ms := int(q/perMs) - int(cut/perMs) - seriesFrom; ms >= 0 && ms < len(res.perMs) {
			res.perMs[ms]++
		}
	}
	var all []time.Time
	for _, at := range seen {
		all = append(all, at)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	for i := 1; i < len(all); i++ {
		if g := float64(all[i].Sub(all[i-1])) / 1e6; g > res.maxGapMs {
			res.maxGapMs = g
		}
	}
	return res, nil
}

// pinProcess sets the CPU affinity of every thread of this process (new
// threads inherit it).
func pinProcess(cpu int) error {
	var set unix.CPUSet
	if cpu >= 0 {
		set.Set(cpu)
	} else {
		for i := 0; i < runtime.NumCPU(); i++ {
			set.Set(i)
		}
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return err
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func maxf(v []float64) (m float64) {
	for _, x := range v {
		if x > m {
			m = x
		}
	}
	return m
}
