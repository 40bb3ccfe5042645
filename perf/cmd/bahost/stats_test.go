package main

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		p, want float64
	}{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {0, 1}, {90, 9}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%g = %g, want %g", tc.p, got, tc.want)
		}
	}
	if xs[0] != 5 {
		t.Error("percentile sorted its input")
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %g, want 2", got)
	}
}

func TestPingRTTs(t *testing.T) {
	out := `PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.
64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.061 ms
64 bytes from 198.18.0.1: icmp_seq=2 ttl=64 time=1.25 ms
64 bytes from 198.18.0.1: icmp_seq=4 ttl=64 time=2.5 s

--- 198.18.0.1 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 3ms
rtt min/avg/max/mdev = 0.061/0.655/1.250/0.594 ms
`
	rtts, sent := pingRTTs(out)
	if sent != 4 || len(rtts) != 3 || rtts[0] != 0.061 || rtts[1] != 1.25 || rtts[2] != 2500 {
		t.Fatalf("got %v sent %d", rtts, sent)
	}
	if r, s := pingRTTs("garbage\n"); len(r) != 0 || s != 0 {
		t.Fatalf("garbage: %v %d", r, s)
	}
}

func TestParseStat(t *testing.T) {
	// comm with spaces and a parenthesis; utime 100 stime 20 cutime 3 cstime 4
	line := "1234 (a (b) c) S 1 1200 1200 0 -1 4194560 0 0 0 0 100 20 3 4 20 0 1 0 5 0 0"
	s, ok := parseStat(line)
	if !ok || s.pid != 1234 || s.ppid != 1 || s.pgrp != 1200 || s.ticks != 127 || s.own != 120 {
		t.Fatalf("parseStat = %+v %v", s, ok)
	}
	if _, ok := parseStat("1234 (short) S 1"); ok {
		t.Fatal("a truncated line parsed")
	}
}

func TestIperfGbps(t *testing.T) {
	g, r, err := iperfGbps([]byte(`{"end":{"sum_received":{"bits_per_second":2.5e9},"sum_sent":{"retransmits":7}}}`))
	if err != nil || g != 2.5 || r != 7 {
		t.Fatalf("got %g %d %v", g, r, err)
	}
	if _, _, err := iperfGbps([]byte(`{"error":"unable to connect to server"}`)); err == nil {
		t.Fatal("an iperf3 error was not reported")
	}
	if _, _, err := iperfGbps([]byte(`not json`)); err == nil {
		t.Fatal("bad output was not reported")
	}
}
