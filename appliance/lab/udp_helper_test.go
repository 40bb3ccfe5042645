package lab

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// udpResult is what an iperf3 UDP run through the bond delivered.
type udpResult struct {
	sent, recv int
	out        string
}

// udpHostToPeer sends UDP from the host address to the peer in 8 flows of
// 1 Mbit/s for about d (layer3+4 spreads them over every member), with an
// iperf3 server in the peer namespace, and reports the datagrams sent and
// received.
func udpHostToPeer(ctx context.Context, topo *Topo, d time.Duration) udpResult {
	secs := strconv.Itoa(max(1, int(d/time.Second)-2))
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", topo.Peer, "iperf3", "-s", "-1", "-B", PeerIP)
	if err := srv.Start(); err != nil {
		return udpResult{out: err.Error()}
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var out string
	for try := 0; try < 20; try++ { // until the server listens
		time.Sleep(200 * time.Millisecond)
		var err error
		out, err = topo.InGW(ctx, "iperf3", "-c", PeerIP, "-B", HostIP, "-u", "-b", "1M", "-l", "1000", "-P", "8", "-t", secs, "-J")
		if err == nil || !strings.Contains(out, "connect") {
			break
		}
	}
	var res struct {
		End struct {
			Sum struct {
				Packets     int `json:"packets"`
				LostPackets int `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
	}
	r := udpResult{out: trunc(out, 2000)}
	if i := strings.Index(out, "{"); i >= 0 && json.Unmarshal([]byte(out[i:]), &res) == nil {
		r.sent, r.recv = res.End.Sum.Packets, res.End.Sum.Packets-res.End.Sum.LostPackets
	}
	return r
}
