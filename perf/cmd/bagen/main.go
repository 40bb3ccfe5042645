// Command bagen generates and sinks traffic for the perf scripts without
// kernel pktgen.
//
//	bagen gen  --dev IF[,IF...] [--netns NS] [--size 64] [--flows 1024] [--rate PPS] [--seconds 5] [--cpu 0] [--mode auto|live|xsk]
//	bagen sink --dev IF[,IF...] [--netns NS] [--seconds 5] [--idle S]
//	bagen xskdrop --dev IF [--netns NS] [--cpu 1] [--seconds 5]
//
// gen runs an XDP program in BPF_PROG_RUN live-frames mode
// (BPF_F_TEST_XDP_LIVE_FRAMES) that stamps a sequence number and a flow into
// every frame and redirects it (bpf_redirect) to the device: on a veth this
// hands the frame to the peer, which must have an XDP program (a sink, or
// the appliance's). Where the kernel refuses live frames (EPERM on the
// Firecracker development VMs) gen falls back to AF_XDP TX-only sockets in
// copy mode (--mode xsk) that send the same frames with the same tags.
// sink attaches a counting XDP_DROP program to each
// device. xskdrop receives and drops on an AF_XDP socket built from the
// appliance's own umem/rings/xsk packages (its Go data path primitives).
// Each prints one summary line of metric=value pairs on stdout.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = cmdGen(os.Args[2:])
	case "sink":
		err = cmdSink(os.Args[2:])
	case "xskdrop":
		err = cmdXSKDrop(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bagen %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  bagen gen     --dev IF[,IF...] [--netns NS] [--size 64] [--flows 1024] [--rate 0] [--seconds 5] [--cpu 0[,1...]] [--mode auto|live|xsk]
  bagen sink    --dev IF[,IF...] [--netns NS] [--seconds 5] [--idle 0]
  bagen xskdrop --dev IF [--netns NS] [--cpu 1] [--seconds 5]
run "bagen CMD -h" for every flag.
`)
}

// enter locks the calling goroutine to its thread, moves the thread into
// network namespace ns ("" = stay) and pins it to cpu (< 0 = no pinning).
// BPF_PROG_RUN's live frames come from the current thread's namespace, and
// interface names and ifindexes resolve there, so every goroutine that does
// either calls enter first. The thread is never unlocked: it exits with the
// goroutine.
func enter(ns string, cpu int) error {
	runtime.LockOSThread()
	if ns != "" {
		path := ns
		if !strings.Contains(ns, "/") {
			path = "/run/netns/" + ns
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netns %s: %w", ns, err)
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("setns %s: %w", ns, err)
		}
	}
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to cpu %d: %w", cpu, err)
		}
	}
	return nil
}

// runqWait returns how long the calling thread has waited on a run queue
// (runnable, not running), from /proc/thread-self/schedstat: a measurement
// is only clean when its busy threads did not have to share their CPU.
func runqWait() time.Duration {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	return time.Duration(ns)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseCPUs(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		if lo, hi, ok := strings.Cut(f, "-"); ok && lo != "" {
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || b < a {
				return nil, fmt.Errorf("bad cpu range %q", f)
			}
			for c := a; c <= b; c++ {
				out = append(out, c)
			}
			continue
		}
		c, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("bad cpu %q", f)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		out = []int{-1}
	}
	return out, nil
}

// kv builds the summary line.
type kv struct{ b strings.Builder }

func (k *kv) add(key string, v any) {
	if k.b.Len() > 0 {
		k.b.WriteByte(' ')
	}
	switch x := v.(type) {
	case float64:
		fmt.Fprintf(&k.b, "%s=%s", key, strconv.FormatFloat(x, 'f', -1, 64))
	default:
		fmt.Fprintf(&k.b, "%s=%v", key, v)
	}
}

func (k *kv) String() string { return k.b.String() }

func round(x float64, digits int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', digits, 64), 64)
	return v
}
