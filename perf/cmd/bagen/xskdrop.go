package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/perf/trafficgen"
	"github.com/bond-appliance/bond-appliance/umem"
)

// cmdXSKDrop receives on one AF_XDP socket and puts every frame straight
// back on the fill ring: the receive half of the appliance's data path
// (its umem, rings and xsk packages, its XDP redirect program), for a
// comparison with the C reference (perf/ref/xskfwd --rxdrop).
func cmdXSKDrop(args []string) error {
	fs := flag.NewFlagSet("xskdrop", flag.ContinueOnError)
	dev := fs.String("dev", "", "device (required)")
	ns := fs.String("netns", "", "network namespace of the device")
	queue := fs.Int("queue", 0, "queue id")
	cpu := fs.Int("cpu", 1, "CPU to poll on (-1: not pinned)")
	secs := fs.Float64("seconds", 5, "run at most this long (0: until SIGINT/SIGTERM)")
	idle := fs.Float64("idle", 0, "stop once traffic was seen and then nothing arrived for this many seconds (0: off)")
	ring := fs.Uint("ring", 2048, "entries of each ring")
	batch := fs.Uint("batch", 64, "descriptors per ring operation")
	bind := fs.String("bind", "copy", "copy, zerocopy or auto")
	attach := fs.String("attach", "native", "XDP attach mode: native, generic or auto")
	frameSize := fs.Uint("frame-size", 2048, "UMEM frame size (2048 or 4096)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dev == "" {
		return errors.New("--dev is required")
	}
	if err := enter(*ns, *cpu); err != nil {
		return err
	}
	ifc, err := net.InterfaceByName(*dev)
	if err != nil {
		return err
	}
	u, err := umem.New(umem.Config{NumFrames: uint32(2 * *ring), FrameSize: uint32(*frameSize), HugePages: true})
	if err != nil {
		return err
	}
	defer u.Close()
	s, err := xsk.Open(u, ifc.Index, *queue, xsk.Options{RingSize: uint32(*ring), Bind: xsk.BindMode(*bind)}, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	p, err := xdpprog.New(*queue + 1)
	if err != nil {
		return err
	}
	defer p.Close()
	at, err := p.Attach(ifc.Index, xdpprog.AttachMode(*attach), false)
	if err != nil {
		return err
	}
	defer at.Detach()
	if err := p.SetSocket(*queue, s.FD); err != nil {
		return err
	}
	// prime the fill ring
	addrs := make([]uint64, *ring)
	got := u.AllocBatch(addrs)
	idx, r := s.Fill.Reserve(uint32(got))
	for i := uint32(0); i < r; i++ {
		s.Fill.Set(idx+i, addrs[i])
	}
	s.Fill.Submit(r)
	mode := "copy"
	if s.ZeroCopy {
		mode = "zero-copy"
	}
	fmt.Fprintf(os.Stderr, "bagen xskdrop: %s queue %d bind=%s attach=%s cpu %d\n", *dev, *queue, mode, at.Mode, *cpu)

	var stop atomic.Bool
	var rx atomic.Uint64
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var m trafficgen.Meter
	start := time.Now()
	m.Sample(start, 0)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sig:
				stop.Store(true)
				return
			case <-tick.C:
				now := time.Now()
				m.Sample(now, rx.Load())
				if (*secs > 0 && now.Sub(start).Seconds() >= *secs) || (*idle > 0 && m.IdleFor(now).Seconds() >= *idle) {
					stop.Store(true)
					return
				}
			}
		}
	}()
	w0 := runqWait()
	b := uint32(*batch)
	var n, wakeups, polls uint64
	var busy time.Duration // time spent handling non-empty batches
	for !stop.Load() {
		idx, got := s.RX.Peek(b)
		if got == 0 {
			if s.Fill.NeedWakeup() {
				s.KickRX()
				wakeups++
			}
			continue
		}
		t0 := time.Now()
		fidx, fr := s.Fill.Reserve(got)
		for i := uint32(0); i < fr; i++ {
			s.Fill.Set(fidx+i, u.Base(s.RX.Get(idx+i).Addr))
		}
		s.Fill.Submit(fr)
		s.RX.Release(fr)
		n += uint64(fr)
		polls++
		rx.Store(n)
		busy += time.Since(t0)
	}
	waited := runqWait() - w0
	for !stop.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	pps, over := m.Rate()
	st, _ := s.Stats()
	var k kv
	k.add("bagen", "xskdrop")
	k.add("impl", "go-appliance")
	k.add("dev", *dev)
	k.add("bind", mode)
	k.add("seconds", round(time.Since(start).Seconds(), 3))
	k.add("packets", n)
	k.add("pps", round(pps, 0))
	k.add("mpps", round(pps/1e6, 3))
	k.add("rate_over_s", round(over.Seconds(), 3))
	k.add("xsk_rx_dropped", st.Rx_dropped)
	k.add("xsk_rx_ring_full", st.Rx_ring_full)
	k.add("xsk_fill_ring_empty", st.Rx_fill_ring_empty_descs)
	k.add("wakeups", wakeups)
	k.add("runq_wait_ms", round(float64(waited)/1e6, 1))
	if n > 0 {
		k.add("avg_batch", round(float64(n)/float64(polls), 1))
		k.add("busy_ns_per_frame", round(float64(busy.Nanoseconds())/float64(n), 1))
	}
	fmt.Println(k.String())
	return nil
}
