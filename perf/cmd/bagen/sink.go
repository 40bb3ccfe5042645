package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/perf/trafficgen"
	"github.com/cilium/ebpf/link"
)

func cmdSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	devs := fs.String("dev", "", "device(s) to count on, comma-separated (required)")
	ns := fs.String("netns", "", "network namespace of the devices")
	secs := fs.Float64("seconds", 5, "run at most this long (0: until SIGINT/SIGTERM)")
	idle := fs.Float64("idle", 0, "stop once traffic was seen and then nothing arrived for this many seconds (0: off)")
	interval := fs.Duration("interval", 100*time.Millisecond, "sampling interval of the rate")
	mode := fs.String("mode", "native", "XDP attach mode: native or generic")
	pass := fs.Bool("pass", false, "XDP_PASS instead of XDP_DROP (count, then let the stack have the frames)")
	passSlow := fs.Bool("pass-slow", false, "hand slow-protocol frames (LACPDUs, ethertype 0x8809) to the stack uncounted (sink on an LACP partner's ports)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := splitList(*devs)
	if len(names) == 0 {
		return errors.New("--dev is required")
	}
	flags := link.XDPDriverMode
	switch *mode {
	case "native":
	case "generic":
		flags = link.XDPGenericMode
	default:
		return fmt.Errorf("--mode %q: native or generic", *mode)
	}
	if err := enter(*ns, -1); err != nil {
		return err
	}
	sinks := make([]*trafficgen.Sink, len(names))
	for i, n := range names {
		ifc, err := net.InterfaceByName(n)
		if err != nil {
			return fmt.Errorf("device %s: %w", n, err)
		}
		s, err := trafficgen.NewSinkOpts(*pass, *passSlow)
		if err != nil {
			return err
		}
		defer s.Close()
		l, err := link.AttachXDP(link.XDPOptions{Program: s.Prog, Interface: ifc.Index, Flags: flags})
		if err != nil {
			return fmt.Errorf("attach sink to %s (%s): %w", n, *mode, err)
		}
		defer l.Close()
		sinks[i] = s
	}
	fmt.Fprintf(os.Stderr, "bagen sink: counting on %s\n", strings.Join(names, ","))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	read := func() ([]trafficgen.Totals, trafficgen.Totals, error) {
		per := make([]trafficgen.Totals, len(sinks))
		var all trafficgen.Totals
		for i, s := range sinks {
			t, err := s.Read()
			if err != nil {
				return nil, all, err
			}
			per[i] = t
			all.Merge(t)
		}
		return per, all, nil
	}
	// Two meters: over generator-tagged frames (immune to the odd IPv6
	// neighbour discovery frame), and over every frame for foreign traffic.
	var mGen, mAll trafficgen.Meter
	start := time.Now()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	basePer, base, err := read()
	if err != nil {
		return err
	}
	mGen.Sample(start, 0)
	mAll.Sample(start, 0)
	m := &mAll
loop:
	for {
		select {
		case <-sig:
			break loop
		case <-tick.C:
			_, t, err := read()
			if err != nil {
				return err
			}
			now := time.Now()
			mGen.Sample(now, t.Gen-base.Gen)
			mAll.Sample(now, t.Packets-base.Packets)
			if t.Gen > base.Gen {
				m = &mGen
			}
			if *secs > 0 && now.Sub(start).Seconds() >= *secs {
				break loop
			}
			if *idle > 0 && m.IdleFor(now).Seconds() >= *idle {
				break loop
			}
		}
	}
	per, all, err := read()
	if err != nil {
		return err
	}
	pps, over := m.Rate()
	span := all.Span()
	var lost int64
	if span > 0 {
		lost = int64(span) - int64(all.Gen-all.Dup)
	}
	var k kv
	k.add("bagen", "sink")
	k.add("dev", strings.Join(names, ","))
	k.add("seconds", round(time.Since(start).Seconds(), 3))
	k.add("active_s", round(m.Active().Seconds(), 3))
	k.add("packets", all.Packets-base.Packets)
	k.add("bytes", all.Bytes-base.Bytes)
	k.add("pps", round(pps, 0))
	k.add("mpps", round(pps/1e6, 3))
	k.add("rate_over_s", round(over.Seconds(), 3))
	k.add("gen_frames", all.Gen-base.Gen)
	k.add("seq_span", span)
	k.add("seq_lost", lost)
	k.add("flow_reorder", all.FlowReorder)
	k.add("reorder_global", all.Reorder)
	k.add("dup", all.Dup)
	for i, n := range names {
		k.add(n+"_packets", per[i].Packets-basePer[i].Packets)
	}
	fmt.Println(k.String())
	return nil
}
