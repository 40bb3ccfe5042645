package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// median of xs (NaN when empty); xs is not modified.
func median(xs []float64) float64 {
	return percentile(xs, 50)
}

// percentile p (0..100) of xs by the nearest-rank method: the smallest
// value with at least p% of the values at or below it. NaN when empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	r := int(math.Ceil(p / 100 * float64(len(s))))
	r = min(max(r, 1), len(s))
	return s[r-1]
}

// pingRTTs parses ping(8) output: the RTT in ms of every reply line
// ("64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.061 ms") and the
// number of requests sent (from the "N packets transmitted" line, or the
// replies when that line is missing).
func pingRTTs(out string) (rtts []float64, sent int) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " time="); i >= 0 && strings.Contains(line, "bytes from") {
			f := strings.Fields(line[i+len(" time="):])
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue
			}
			if len(f) > 1 && f[1] == "s" {
				v *= 1000
			}
			rtts = append(rtts, v)
			continue
		}
		if i := strings.Index(line, " packets transmitted"); i > 0 {
			sent, _ = strconv.Atoi(strings.TrimSpace(line[:i]))
		}
	}
	if sent == 0 {
		sent = len(rtts)
	}
	return rtts, sent
}

// iperfResult is the part of `iperf3 --json` we read.
type iperfResult struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperfGbps reads the received throughput (Gbit/s) and the sender's
// retransmits from `iperf3 --json` output.
func iperfGbps(out []byte) (gbps float64, retrans int, err error) {
	var r iperfResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if r.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, 0, fmt.Errorf("iperf3: no received throughput in its output")
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, r.End.SumSent.Retransmits, nil
}

// procStat is one line of /proc/PID/stat, the fields we use.
type procStat struct {
	pid, ppid, pgrp int
	ticks           uint64 // utime + stime + cutime + cstime
	own             uint64 // utime + stime
}

// parseStat parses /proc/PID/stat (the command may contain spaces and
// parentheses: the fields start after the last ")").
func parseStat(line string) (procStat, bool) {
	var s procStat
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return s, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:strings.IndexByte(line, ' ')+1]))
	if err != nil {
		return s, false
	}
	f := strings.Fields(line[i+1:])
	// f[0] state, f[1] ppid, f[2] pgrp, f[11..14] utime stime cutime cstime
	if len(f) < 15 {
		return s, false
	}
	s.pid = pid
	s.ppid, _ = strconv.Atoi(f[1])
	s.pgrp, _ = strconv.Atoi(f[2])
	for i, x := range f[11:15] {
		v, _ := strconv.ParseUint(x, 10, 64)
		s.ticks += v
		if i < 2 {
			s.own += v
		}
	}
	return s, true
}

// foreignTicks is CPU time (clock ticks) used so far by every process
// outside process group pgrp and not in mine (kernel threads excluded):
// perf/run.sh's contention measure. Reaped children count in their
// parents' cutime/cstime, so the difference of two samples is what other
// work on the machine took in between.
func foreignTicks(pgrp int, mine map[int]bool) uint64 {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var t uint64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s, ok := parseStat(string(b))
		if !ok || s.pid == 2 || s.ppid == 2 || s.pgrp == pgrp || mine[s.pid] {
			continue
		}
		t += s.ticks
	}
	return t
}

// procTicks is the CPU time (clock ticks, user + system, threads included)
// of one process so far.
func procTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s, _ := parseStat(string(b))
	return s.own
}
