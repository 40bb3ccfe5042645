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
	size := fs.Int("size", def.Size, "frame size on the wire including FCS (the buffer is size-4 bytes), like pktgen's pkt_size")
	flows := fs.Int("flows", def.Flows, "number of flows (UDP source port and source address low 16 bits), 1..65536")
	rate := fs.Float64("rate", 0, "frames per second over all CPUs, 0 = as fast as possible (paced inside the XDP program)")
	secs := fs.Float64("seconds", 5, "duration")
	count := fs.Uint64("count", 0, "send this many frames (exactly with one CPU; each of N CPUs sends count/N rounded up) (0: run for --seconds; with --count, --seconds applies only when given)")
	cpus := fs.String("cpu", "0", "CPU(s) to generate on, one thread each (list or range; -1 = not pinned)")
	batch := fs.Uint("batch", 64, "live-frames batch size (BatchSize, 1..256)")
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
	if *batch < 1 || *batch > 256 {
		return errors.New("--batch must be 1..256")
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
	timed := true
	if *count > 0 {
		// with --count, --seconds only bounds the run when given explicitly
		timed = false
		fs.Visit(func(f *flag.Flag) { timed = timed || f.Name == "seconds" })
	}
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
				return fmt.Errorf("cpu %d: BPF_PROG_RUN live frames: %w", cpu, err)
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
