package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/perf/trafficgen"
	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	def := trafficgen.DefaultSpec()
	devs := fs.String("dev", "", "target device(s), comma-separated; flow f goes to device f % n (required)")
	ns := fs.String("netns", "", "network namespace of the devices (name under /run/netns or a path)")
	size := fs.Int("size", def.Size, "frame size on the wire including FCS (the buffer is size-4 bytes), like pktgen's pkt_size; live frames up to 3504, xsk up to 9018 (multi-buffer chains of 4096-byte fragments above 4096)")
	flows := fs.Int("flows", def.Flows, "number of flows (UDP source port and source address low 16 bits), 1..65536")
	rate := fs.Float64("rate", 0, "frames per second over all CPUs, 0 = as fast as possible (live: paced inside the XDP program; xsk: in user space)")
	secs := fs.Float64("seconds", 5, "duration")
	count := fs.Uint64("count", 0, "send this many frames (exactly with one CPU; each of N CPUs sends count/N rounded up) (0: run for --seconds; with --count, --seconds applies only when given)")
	cpus := fs.String("cpu", "0", "CPU(s) to generate on, one thread each (list or range; -1 = not pinned)")
	mode := fs.String("mode", modeAuto, "generator: auto (live frames when the kernel allows them, else xsk), live (BPF_PROG_RUN live frames), xsk (AF_XDP TX-only sockets in copy mode, one per device and thread)")
	batch := fs.Uint("batch", 0, "frames per batch (0: 64 for live frames, 256 for xsk): live frames BatchSize (1..256); xsk: frames per device per round and per sendto (XDP_MAX_TX_SKB_BUDGET), 1..--ring")
	ring := fs.Uint("ring", 2048, "xsk: entries of each AF_XDP ring (power of two); the UMEM has twice as many frames")
	call := fs.Duration("call", time.Second, "target length of one BPF_PROG_RUN call: every call pays a fixed setup/teardown (~25 ms on Linux 6.18), so calls are long; the last one is sized to end on time")
	srcMAC := fs.String("src-mac", "", "source MAC (default: the first device's address)")
	dstMAC := fs.String("dst-mac", def.DstMAC.String(), "destination MAC")
	srcIP := fs.String("src-ip", def.SrcIP.String(), "source IPv4 address (its low 16 bits vary per flow)")
	dstIP := fs.String("dst-ip", def.DstIP.String(), "destination IPv4 address")
	sport := fs.Uint("sport", uint(def.Sport), "first UDP source port (flow f uses sport+f)")
	dport := fs.Uint("dport", uint(def.Dport), "UDP destination port")
	verbose := fs.Bool("v", false, "log every BPF_PROG_RUN call on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := splitList(*devs)
	if len(names) == 0 {
		return errors.New("--dev is required")
	}
	cpuList, err := parseCPUs(*cpus)
	if err != nil {
		return err
	}
	switch *mode {
	case modeAuto, modeLive, modeXSK:
	default:
		return fmt.Errorf("--mode %q: must be %s, %s or %s", *mode, modeAuto, modeLive, modeXSK)
	}
	if *ring < 64 || *ring > 1<<16 || *ring&(*ring-1) != 0 {
		return fmt.Errorf("--ring %d: must be a power of two, 64..65536", *ring)
	}
	batchSet := *batch != 0
	why := "--mode " + *mode
	if *batch > 256 && *mode == modeAuto {
		*mode = modeXSK // only xsk takes such batches
		why = fmt.Sprintf("--batch %d is above the live-frames maximum 256", *batch)
	}
	if *batch == 0 {
		*batch = 64
		if *mode == modeXSK {
			*batch = 256
		}
	}
	if (*mode == modeLive && *batch > 256) || *batch > *ring {
		return fmt.Errorf("--batch %d: must be 1..256 for live frames and 1..--ring (%d) for xsk", *batch, *ring)
	}
	if err := enter(*ns, cpuList[0]); err != nil {
		return err
	}
	spec := def
	spec.Size, spec.Flows, spec.Sport, spec.Dport = *size, *flows, uint16(*sport), uint16(*dport)
	var ifindexes []int
	for i, n := range names {
		ifc, err := net.InterfaceByName(n)
		if err != nil {
			return fmt.Errorf("device %s: %w", n, err)
		}
		ifindexes = append(ifindexes, ifc.Index)
		if i == 0 {
			spec.SrcMAC = ifc.HardwareAddr
		}
	}
	if *srcMAC != "" {
		if spec.SrcMAC, err = net.ParseMAC(*srcMAC); err != nil {
			return err
		}
	}
	if spec.DstMAC, err = net.ParseMAC(*dstMAC); err != nil {
		return err
	}
	spec.SrcIP, spec.DstIP = net.ParseIP(*srcIP).To4(), net.ParseIP(*dstIP).To4()
	nw := len(cpuList)
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.Size > trafficgen.MaxSize {
		switch *mode {
		case modeLive:
			return fmt.Errorf("--size %d: live frames take at most %d bytes; --mode xsk or auto sends larger frames (multi-buffer above one UMEM frame)", spec.Size, trafficgen.MaxSize)
		case modeAuto:
			*mode = modeXSK
			why = fmt.Sprintf("--size %d is above the live-frames maximum %d", spec.Size, trafficgen.MaxSize)
			if !batchSet {
				*batch = 256
			}
		}
	}
	kind := *mode
	switch kind {
	case modeXSK:
		fmt.Fprintf(os.Stderr, "bagen gen: generator xsk (AF_XDP TX, copy mode): %s\n", why)
	case modeLive:
		fmt.Fprintf(os.Stderr, "bagen gen: generator live (BPF_PROG_RUN live frames): %s\n", why)
	}
	if kind == modeAuto {
		kind = modeLive
		if err := liveFramesUsable(spec.Template()); err != nil {
			kind = modeXSK
			if !batchSet {
				*batch = 256
			}
			fmt.Fprintf(os.Stderr, "bagen gen: generator xsk (AF_XDP TX, copy mode): live frames refused by the kernel (%v)\n", err)
		} else {
			fmt.Fprintf(os.Stderr, "bagen gen: generator live (BPF_PROG_RUN live frames)\n")
		}
	}
	if kind == modeXSK {
		return genXSK(names, ifindexes, cpuList, spec, xskArgs{ns: *ns, rate: *rate, secs: *secs, count: *count, timed: timedRun(fs, *count), ring: uint32(*ring), batch: uint32(*batch), cpus: *cpus})
	}
	gopts := trafficgen.GenOptions{RatePerCPU: *rate / float64(nw)}
	if *count > 0 {
		gopts.LimitPerCPU = (*count + uint64(nw) - 1) / uint64(nw)
	}
	g, err := trafficgen.NewGen(spec, ifindexes, gopts)
	if err != nil {
		return err
	}
	defer g.Close()
	tmpl := spec.Template()

	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; stop.Store(true) }()

	dur := time.Duration(*secs * float64(time.Second))
	timed := timedRun(fs, *count)
	start := time.Now()
	deadline := start.Add(dur)
	var waited atomic.Int64 // run-queue wait of the generator threads, ns
	var calls atomic.Int64
	worker := func(cpu int) error {
		w0 := runqWait()
		defer func() { waited.Add(int64(runqWait() - w0)) }()
		opts := ebpf.RunOptions{Data: tmpl, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: uint32(*batch)}
		n := float64(1 << 20) // first call: a probe of the invocation rate
		for !stop.Load() {
			if *count > 0 {
				sent, err := g.Sent()
				if err != nil || sent >= *count {
					return err
				}
				if *rate == 0 && float64(*count-sent) < n {
					n = float64(*count - sent) // every invocation sends a frame
				}
			}
			left := time.Until(deadline)
			if timed {
				if left < 5*time.Millisecond {
					return nil
				}
			}
			rep := uint64(n)
			if rep < 64 {
				rep = 64
			}
			if rep > 1<<32-1 {
				rep = 1<<32 - 1
			}
			opts.Repeat = uint32(rep)
			t0 := time.Now()
			if _, err := g.Prog.Run(&opts); err != nil {
				return fmt.Errorf("cpu %d: BPF_PROG_RUN live frames: %w (--mode xsk or auto uses AF_XDP sockets instead)", cpu, err)
			}
			calls.Add(1)
			took := time.Since(t0)
			perSec := float64(rep) / took.Seconds() // invocations/s, setup included
			if *verbose {
				fmt.Fprintf(os.Stderr, "bagen gen: cpu %d: call with repeat %d took %v (%.0f invocations/s)\n", cpu, rep, took, perSec)
			}
			next := call.Seconds()
			if timed {
				if l := time.Until(deadline).Seconds(); l < next {
					next = l
				}
			}
			n = perSec * next
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, nw)
	for i := 1; i < nw; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := enter(*ns, cpuList[i]); err != nil {
				errs[i] = err
				return
			}
			errs[i] = worker(cpuList[i])
		}(i)
	}
	errs[0] = worker(cpuList[0])
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	sent, err := g.Sent()
	if err != nil {
		return err
	}
	pps := float64(sent) / elapsed.Seconds()
	var k kv
	k.add("bagen", "gen")
	k.add("gen", modeLive)
	k.add("dev", strings.Join(names, ","))
	k.add("size", spec.Size)
	k.add("flows", spec.Flows)
	k.add("cpus", *cpus)
	k.add("seconds", round(elapsed.Seconds(), 3))
	k.add("frames", sent)
	k.add("pps", round(pps, 0))
	k.add("mpps", round(pps/1e6, 3))
	k.add("gbps", round(pps*float64(spec.Size)*8/1e9, 3))
	k.add("calls", calls.Load())
	k.add("runq_wait_ms", round(float64(waited.Load())/1e6, 1))
	fmt.Println(k.String())
	return nil
}

// timedRun: with --count, --seconds only bounds the run when given
// explicitly.
func timedRun(fs *flag.FlagSet, count uint64) bool {
	if count == 0 {
		return true
	}
	timed := false
	fs.Visit(func(f *flag.Flag) { timed = timed || f.Name == "seconds" })
	return timed
}

type xskArgs struct {
	ns          string
	rate, secs  float64
	count       uint64
	timed       bool
	ring, batch uint32
	cpus        string
}

// genXSK is gen with AF_XDP TX-only sockets: one thread per CPU, thread i
// with one copy-mode socket per device on queue i (a veth hands a frame
// sent on queue i to its peer's receive queue i), the same frames, flows,
// tags and flow-to-device spread as the XDP generator. The frames are
// copied into an skb by the kernel (copy mode) and delivered to the peer
// like the live frames' redirect; the peer's XDP runs on this CPU.
func genXSK(names []string, ifindexes []int, cpuList []int, spec trafficgen.Spec, a xskArgs) error {
	nw := len(cpuList)
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; stop.Store(true) }()
	lim := xskLimits{rate: a.rate / float64(nw)}
	if a.count > 0 {
		lim.count = (a.count + uint64(nw) - 1) / uint64(nw)
	}
	gens := make([]*xskGen, nw)
	errs := make([]error, nw)
	waits := make([]time.Duration, nw)
	var ready, done sync.WaitGroup
	begin := make(chan struct{})
	var start time.Time
	for i := range nw {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			opened := false
			defer func() {
				if !opened {
					ready.Done()
				}
			}()
			if err := enter(a.ns, cpuList[i]); err != nil {
				errs[i] = err
				return
			}
			tag := uint32(cpuList[i])
			if cpuList[i] < 0 {
				tag = uint32(i)
			}
			g, err := openXSKGen(names, ifindexes, i, spec, a.ring, a.batch, tag)
			if err != nil {
				if nw > 1 {
					err = fmt.Errorf("%w (thread %d uses queue %d: the devices need a TX queue per --cpu)", err, i, i)
				}
				errs[i] = err
				return
			}
			defer g.close()
			gens[i] = g
			opened = true
			ready.Done()
			<-begin
			l := lim
			if a.timed {
				l.deadline = start.Add(time.Duration(a.secs * float64(time.Second)))
			}
			w0 := runqWait()
			errs[i] = g.run(&stop, l)
			g.drain(time.Second)
			waits[i] = runqWait() - w0
		}()
	}
	ready.Wait()
	for _, e := range errs {
		if e != nil {
			stop.Store(true)
		}
	}
	start = time.Now()
	close(begin)
	done.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var sent, kicks, txInvalid uint64
	var waited time.Duration
	var budget uint32
	for i, g := range gens {
		sent += g.sent.Load()
		kicks += g.kicks
		ti, _ := g.stats()
		txInvalid += ti
		waited += waits[i]
		budget = g.txBudget
	}
	pps := float64(sent) / elapsed.Seconds()
	var k kv
	k.add("bagen", "gen")
	k.add("gen", modeXSK)
	k.add("dev", strings.Join(names, ","))
	k.add("size", spec.Size)
	k.add("flows", spec.Flows)
	k.add("cpus", a.cpus)
	k.add("seconds", round(elapsed.Seconds(), 3))
	k.add("frames", sent)
	k.add("pps", round(pps, 0))
	k.add("mpps", round(pps/1e6, 3))
	k.add("gbps", round(pps*float64(spec.Size)*8/1e9, 3))
	k.add("calls", kicks)
	k.add("batch", a.batch)
	k.add("tx_budget", budget)
	k.add("xsk_tx_invalid", txInvalid)
	k.add("runq_wait_ms", round(float64(waited)/1e6, 1))
	fmt.Println(k.String())
	return nil
}
