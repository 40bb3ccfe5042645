package lane

import "time"

// idlePolicy is how an adaptive lane backs off when no frame moves. It is a
// pure function of the time since the lane last moved a frame:
//
//   - for Spin after the last frame the lane keeps spinning, so traffic
//     that comes at least every Spin (a ping every millisecond, a
//     request/response exchange) never waits for a wake-up;
//   - then it sleeps in ppoll(2) on its sockets, woken at once by a frame
//     arriving (the kernel signals the socket), with a timeout that grows
//     with the idle time past Spin, from MinSleep to MaxSleep: the timeout
//     only bounds how late the lane notices what does not wake a socket
//     (frames from control, a new layout, Stop), and long timeouts keep an
//     idle lane's CPU use low.
//
// The timeout after idle time i > Spin is clamp(i - Spin, MinSleep,
// MaxSleep): each sleep about as long as all sleeps so far, a geometric
// back-off without state.
type idlePolicy struct {
	Spin     time.Duration
	MinSleep time.Duration
	MaxSleep time.Duration
}

// defaultIdle is the adaptive lanes' policy. Spin covers traffic every 2 ms
// and then some (scheduling noise); MaxSleep keeps today's 1 ms bound on
// how late control frames leave an idle lane.
var defaultIdle = idlePolicy{Spin: 2500 * time.Microsecond, MinSleep: 50 * time.Microsecond, MaxSleep: time.Millisecond}

// sleepFor returns how long to sleep after idle time since the last frame:
// 0 means keep spinning.
func (p idlePolicy) sleepFor(idle time.Duration) time.Duration {
	if idle < p.Spin {
		return 0
	}
	return min(max(idle-p.Spin, p.MinSleep), p.MaxSleep)
}
