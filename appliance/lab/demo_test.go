package lab

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pingOutput renders iputils ping's output for replies to seqs out of sent.
func pingOutput(sent int, seqs ...int) string {
	var b strings.Builder
	b.WriteString("PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.\n")
	for _, s := range seqs {
		b.WriteString("64 bytes from 198.18.0.1: icmp_seq=" + strconv.Itoa(s) + " ttl=64 time=0.120 ms\n")
	}
	b.WriteString("\n--- 198.18.0.1 ping statistics ---\n")
	b.WriteString(strconv.Itoa(sent) + " packets transmitted, " + strconv.Itoa(len(seqs)) + " received, 0% packet loss, time 823ms\n")
	return b.String()
}

func seqs(from, to int, except ...int) []int {
	var s []int
	for i := from; i <= to; i++ {
		if !slices.Contains(except, i) {
			s = append(s, i)
		}
	}
	return s
}

func TestParsePing(t *testing.T) {
	out := pingOutput(5, 1, 2, 4) +
		"64 bytes from 198.18.0.1: icmp_seq=4 ttl=64 time=0.1 ms (DUP!)\n"
	r := parsePing(out)
	if r.Sent != 5 || r.Received != 3 || !slices.Equal(r.Seqs, []int{1, 2, 4}) {
		t.Fatalf("parsed %+v", r)
	}
	if m := r.missing(); !slices.Equal(m, []int{3, 5}) {
		t.Fatalf("missing %v", m)
	}
	if d := r.describe(); d != "5 sent, 3 received, 2 lost (seq 3, 5)" {
		t.Fatalf("describe %q", d)
	}
	if r := parsePing("ping: connect: Network is unreachable\n"); r.Sent != 0 || r.describe() != "ping printed no summary" {
		t.Fatalf("no summary parsed as %+v", r)
	}
}

// TestAnalyseFailover: the pings lost around the moment the link went
// down are the outage; any other loss fails the lab (which used to say OK
// whenever ping got one reply).
func TestAnalyseFailover(t *testing.T) {
	const iv, win = 20 * time.Millisecond, time.Second
	down := 500 * time.Millisecond // before seq 26
	tests := []struct {
		name       string
		out        string
		wantErr    string
		wantOutage time.Duration
		wantText   string
	}{
		{"no loss", pingOutput(100, seqs(1, 100)...), "", 0, "below 20ms (no ping lost)"},
		{"outage at the failure", pingOutput(100, seqs(1, 100, 26, 27, 28)...), "", 60 * time.Millisecond, "about 60ms (3 lost, seq 26-28)"},
		{"just before the failure counts", pingOutput(100, seqs(1, 100, 25)...), "", 20 * time.Millisecond, "about 20ms (1 lost, seq 25)"},
		{"loss before the failure", pingOutput(100, seqs(1, 100, 3, 4)...), "2 lost outside the failover window (seq 3-4", 0, ""},
		{"loss long after", pingOutput(100, seqs(1, 100, 26, 90)...), "1 lost outside the failover window (seq 90", 20 * time.Millisecond, ""},
		{"outage longer than the window", pingOutput(100, seqs(1, 100, seqs(26, 80)...)...), "outside the failover window (seq 77-80", 0, ""},
		{"nothing came back", pingOutput(100), "no reply at all", 0, ""},
		{"ping did not run", "", "no summary", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := parsePing(tc.out)
			f := analyseFailover(r, r.seqAt(time.Unix(1000, 0), down, iv), iv, win)
			if f.downSeq != 26 {
				t.Fatalf("down seq %d", f.downSeq)
			}
			if tc.wantErr == "" {
				if f.err != nil {
					t.Fatalf("error %v (%s)", f.err, f.describe())
				}
			} else if f.err == nil || !strings.Contains(f.err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", f.err, tc.wantErr)
			}
			if tc.wantOutage != 0 && f.outage() != tc.wantOutage {
				t.Errorf("outage %v, want %v", f.outage(), tc.wantOutage)
			}
			if tc.wantText != "" && f.outageText() != tc.wantText {
				t.Errorf("outage text %q, want %q", f.outageText(), tc.wantText)
			}
		})
	}
}

// TestSeqAt: the link-down ping comes from ping -D's reply times, not
// from the interval (ping falls behind it on a loaded machine).
func TestSeqAt(t *testing.T) {
	out := "[999.900000] 64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.1 ms\n" +
		"[999.990000] 64 bytes from 198.18.0.1: icmp_seq=2 ttl=64 time=0.1 ms\n" +
		"[1000.050000] 64 bytes from 198.18.0.1: icmp_seq=4 ttl=64 time=0.1 ms\n" +
		"\n4 packets transmitted, 3 received, 25% packet loss, time 60ms\n"
	r := parsePing(out)
	if got := r.seqAt(time.Unix(1000, 0), time.Hour, time.Second); got != 3 {
		t.Fatalf("seqAt = %d, want 3 (after the reply to 2 at 999.99)", got)
	}
	// without -D: estimated from the elapsed time
	if got := parsePing(pingOutput(4, 1, 2, 4)).seqAt(time.Unix(1000, 0), 50*time.Millisecond, 20*time.Millisecond); got != 3 {
		t.Fatalf("estimated seqAt = %d, want 3", got)
	}
}

func TestSeqRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, "none"},
		{[]int{3}, "seq 3"},
		{[]int{3, 4, 5, 9, 11, 12}, "seq 3-5, 9, 11-12"},
	} {
		if got := seqRanges(tc.in); got != tc.want {
			t.Errorf("seqRanges(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
