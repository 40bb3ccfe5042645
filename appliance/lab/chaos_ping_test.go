package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// pingLog follows `ping -D -i interval` and keeps, per (unwrapped) icmp_seq
// of each reply, the time it was sent (reply timestamp − rtt).
type pingLog struct {
	mu       sync.Mutex
	interval time.Duration
	sent     map[int64]time.Time // received seq → send time
	first    time.Time           // start of the ping
	last     int64               // last raw seq seen, for unwrapping
	wraps    int64
	maxSeq   int64
	summary  string
	cmd      *exec.Cmd
	done     chan struct{}
}

var pingReply = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) .*time=([\d.]+) ms`)

// add parses one line of ping's output.
func (l *pingLog) add(line string) {
	m := pingReply.FindStringSubmatch(line)
	if m == nil {
		if line != "" && (line[0] < '0' || line[0] > '9') {
			return
		}
		l.mu.Lock()
		l.summary += line + "\n"
		l.mu.Unlock()
		return
	}
	sec, _ := strconv.ParseInt(m[1], 10, 64)
	frac := m[2]
	for len(frac) < 9 {
		frac += "0"
	}
	ns, _ := strconv.ParseInt(frac[:9], 10, 64)
	raw, _ := strconv.ParseInt(m[3], 10, 64)
	rtt, _ := strconv.ParseFloat(m[4], 64)
	at := time.Unix(sec, ns).Add(-time.Duration(rtt * float64(time.Millisecond)))
	l.mu.Lock()
	defer l.mu.Unlock()
	if raw < l.last-32768 {
		l.wraps++
	}
	l.last = raw
	seq := l.wraps*65536 + raw - 1 // iputils counts from 1
	l.sent[seq] = at
	l.maxSeq = max(l.maxSeq, seq)
}

// startPing pings dst from namespace ns every interval until Stop.
func startPing(ctx context.Context, ns, dst string, interval time.Duration) (*pingLog, error) {
	l := &pingLog{interval: interval, sent: map[int64]time.Time{}, done: make(chan struct{}), first: time.Now()}
	l.cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-D", "-n", "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", dst)
	out, err := l.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	l.cmd.Stderr = io.Discard
	if err := l.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.add(sc.Text())
		}
		_ = l.cmd.Wait()
	}()
	return l, nil
}

// Stop ends ping (SIGINT: it prints its summary) and waits.
func (l *pingLog) Stop() {
	_ = l.cmd.Process.Signal(os.Interrupt)
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
	}
}

// pingStats is what pingLog's replies say about an event list.
type pingStats struct {
	sent, received int64
	maxOutage      time.Duration            // longest gap between two replies' send times
	maxOutageAt    time.Time                // when it began (the last reply's send time before it)
	outageByKind   map[string]time.Duration // longest gap that began within 3 s after an event of that kind
	maxEventLoss   float64                  // worst loss (%) in the 2 s after one event
	maxEventKind   string
	// from the phase time on (802.3ad's chaos phase, after the tick-jitter
	// phase's back-to-back del/add, in which no port stays long enough to
	// aggregate): pings sent and answered
	phaseSent, phaseReceived int64
}

// chaosEvent is one disruptive step of the soak.
type chaosEvent struct {
	at   time.Time
	kind string
}

// analyse computes pingStats from replies (seq → send time, seqs from 0 to
// last) against events, and the loss from phase on. Lost sequence numbers
// get send times interpolated between the replies around them.
func analysePing(replies map[int64]time.Time, last int64, interval time.Duration, events []chaosEvent, phase time.Time) pingStats {
	st := pingStats{outageByKind: map[string]time.Duration{}, received: int64(len(replies)), sent: last + 1}
	if len(replies) == 0 {
		st.maxEventLoss = 100
		return st
	}
	seqs := make([]int64, 0, len(replies))
	for s := range replies {
		if s >= 0 && s <= last {
			seqs = append(seqs, s)
		}
	}
	if len(seqs) == 0 {
		st.maxEventLoss = 100
		return st
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	// send time of every seq 0..last
	at := make([]time.Time, last+1)
	got := make([]bool, last+1)
	for i, s := range seqs {
		at[s], got[s] = replies[s], true
		if i == 0 {
			for k := int64(0); k < s; k++ {
				at[k] = replies[s].Add(-time.Duration(s-k) * interval)
			}
			continue
		}
		p := seqs[i-1]
		span := replies[s].Sub(replies[p])
		for k := p + 1; k < s; k++ {
			at[k] = replies[p].Add(span * time.Duration(k-p) / time.Duration(s-p))
		}
		if s > p+1 {
			gap := span
			if gap > st.maxOutage {
				st.maxOutage, st.maxOutageAt = gap, replies[p]
			}
			// put it down to the last event before it began (within 3 s)
			// and to every event during it
			latest := -1
			for k, e := range events {
				switch {
				case !e.at.After(replies[p]) && replies[p].Sub(e.at) <= 3*time.Second:
					if latest < 0 || e.at.After(events[latest].at) {
						latest = k
					}
				case e.at.After(replies[p]) && e.at.Before(replies[s]):
					st.outageByKind[e.kind] = max(st.outageByKind[e.kind], gap)
				}
			}
			if latest >= 0 {
				st.outageByKind[events[latest].kind] = max(st.outageByKind[events[latest].kind], gap)
			}
		}
	}
	lastGot := seqs[len(seqs)-1]
	for k := lastGot + 1; k <= last; k++ {
		at[k] = replies[lastGot].Add(time.Duration(k-lastGot) * interval)
	}
	if last > lastGot && at[last].Sub(replies[lastGot]) > st.maxOutage {
		st.maxOutage, st.maxOutageAt = at[last].Sub(replies[lastGot]), replies[lastGot]
	}
	for k := range at {
		if !at[k].Before(phase) {
			st.phaseSent++
			if got[k] {
				st.phaseReceived++
			}
		}
	}
	for _, e := range events {
		lo := sort.Search(len(at), func(i int) bool { return !at[i].Before(e.at) })
		hi := sort.Search(len(at), func(i int) bool { return !at[i].Before(e.at.Add(2 * time.Second)) })
		if hi-lo < 10 {
			continue // the window is not covered by the ping
		}
		lost := 0
		for k := lo; k < hi; k++ {
			if !got[k] {
				lost++
			}
		}
		if l := 100 * float64(lost) / float64(hi-lo); l > st.maxEventLoss {
			st.maxEventLoss, st.maxEventKind = l, e.kind
		}
	}
	return st
}

func (st pingStats) loss() float64 {
	if st.sent == 0 {
		return 100
	}
	return math.Max(0, 100*float64(st.sent-st.received)/float64(st.sent))
}

// phaseLoss is the loss (%) from the phase time on.
func (st pingStats) phaseLoss() float64 {
	if st.phaseSent == 0 {
		return 100
	}
	return 100 * float64(st.phaseSent-st.phaseReceived) / float64(st.phaseSent)
}

func TestAnalysePing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	iv := 10 * time.Millisecond
	// replies for seqs 0..99 except lost ones
	mk := func(lost func(int64) bool) map[int64]time.Time {
		m := map[int64]time.Time{}
		for s := int64(0); s < 400; s++ {
			if !lost(s) {
				m[s] = t0.Add(time.Duration(s) * iv)
			}
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		replies   map[int64]time.Time
		last      int64
		events    []chaosEvent
		outage    time.Duration
		loss      float64 // overall %
		eventLoss float64 // worst 2-s window after an event %
		kind      string  // the event kind the outage is put down to
		phaseLoss float64 // % from 2 s (seq 200) on
	}{
		{"clean", mk(func(int64) bool { return false }), 399, []chaosEvent{{t0.Add(time.Second), "flap"}}, 0, 0, 0, "", 0},
		{"outage after a flap", mk(func(s int64) bool { return s >= 100 && s < 150 }), 399,
			[]chaosEvent{{t0.Add(995 * time.Millisecond), "flap"}}, 510 * time.Millisecond, 12.5, 25, "flap", 0},
		{"tail lost", mk(func(s int64) bool { return s >= 300 }), 399, []chaosEvent{{t0.Add(3 * time.Second), "kill"}}, time.Second, 25, 100, "kill", 50},
		{"outage put down to the last event", mk(func(s int64) bool { return s >= 200 && s < 220 }), 399,
			[]chaosEvent{{t0.Add(1000 * time.Millisecond), "slave"}, {t0.Add(1980 * time.Millisecond), "flap"}}, 210 * time.Millisecond, 5, 10, "flap", 10},
		{"nothing", map[int64]time.Time{}, 99, nil, 0, 100, 100, "", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := analysePing(tc.replies, tc.last, iv, tc.events, t0.Add(2*time.Second))
			if st.maxOutage != tc.outage || math.Abs(st.loss()-tc.loss) > 0.01 || math.Abs(st.maxEventLoss-tc.eventLoss) > 0.01 {
				t.Fatalf("outage %v loss %.2f%% event loss %.2f%%, want %v %.2f%% %.2f%%", st.maxOutage, st.loss(), st.maxEventLoss, tc.outage, tc.loss, tc.eventLoss)
			}
			// the outage begins at the last reply before it (seq 99 for the
			// flap's, 299 for the lost tail)
			if want := map[string]time.Time{"outage after a flap": t0.Add(99 * iv), "tail lost": t0.Add(299 * iv)}[tc.name]; !want.IsZero() && !st.maxOutageAt.Equal(want) {
				t.Fatalf("outage began at %v, want %v", st.maxOutageAt, want)
			}
			if math.Abs(st.phaseLoss()-tc.phaseLoss) > 0.01 {
				t.Fatalf("loss from 2 s on %.2f%%, want %.2f%%", st.phaseLoss(), tc.phaseLoss)
			}
			if tc.kind == "flap" && st.outageByKind["slave"] != 0 {
				t.Fatalf("outage put down to an earlier event too: %v", st.outageByKind)
			}
			if tc.kind != "" && tc.kind != "kill" && st.outageByKind[tc.kind] != tc.outage {
				t.Fatalf("outage by kind %v, want %s: %v", st.outageByKind, tc.kind, tc.outage)
			}
		})
	}
}

func TestPingLogParses(t *testing.T) {
	l := &pingLog{sent: map[int64]time.Time{}}
	for _, line := range []string{
		"PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.",
		"[1700000000.500000] 64 bytes from 198.18.0.2: icmp_seq=65535 ttl=64 time=0.500 ms",
		"[1700000000.510000] 64 bytes from 198.18.0.2: icmp_seq=0 ttl=64 time=1.000 ms",
		"--- 198.18.0.2 ping statistics ---",
		"3 packets transmitted, 2 received, 33% packet loss, time 20ms",
	} {
		l.add(line)
	}
	want := time.Unix(1700000000, 509000000)
	if got := l.sent[65535]; !got.Equal(want) || len(l.sent) != 2 || l.maxSeq != 65535 {
		t.Fatalf("icmp_seq 0 after 65535 = %v (want %v as the 65536th), %d replies, max %d", got, want, len(l.sent), l.maxSeq)
	}
	if l.summary != "3 packets transmitted, 2 received, 33% packet loss, time 20ms\n" {
		t.Fatalf("summary %q", l.summary)
	}
}
