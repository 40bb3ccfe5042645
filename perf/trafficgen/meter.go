package trafficgen

import "time"

// Meter turns periodic samples of a monotonic counter into a steady-state
// rate: the average over the intervals in which the counter moved, leaving
// out the first and the last such interval (partly idle while the traffic
// starts and stops) when there are at least three.
type Meter struct {
	lastT    time.Time
	lastV    uint64
	started  bool
	active   []span
	First    time.Time // start of the first active interval
	LastSeen time.Time // end of the last active interval
}

type span struct {
	d time.Duration
	n uint64
}

// Sample records the counter value v at time t.
func (m *Meter) Sample(t time.Time, v uint64) {
	if m.started && v > m.lastV {
		if len(m.active) == 0 {
			m.First = m.lastT
		}
		m.active = append(m.active, span{t.Sub(m.lastT), v - m.lastV})
		m.LastSeen = t
	}
	m.lastT, m.lastV, m.started = t, v, true
}

// Rate returns the steady-state rate per second and the duration it covers.
func (m *Meter) Rate() (perSec float64, over time.Duration) {
	a := m.active
	if len(a) >= 3 {
		a = a[1 : len(a)-1]
	}
	var n uint64
	for _, s := range a {
		over += s.d
		n += s.n
	}
	if over <= 0 {
		return 0, 0
	}
	return float64(n) / over.Seconds(), over
}

// Active is the time between the first and the last interval with traffic.
func (m *Meter) Active() time.Duration {
	if len(m.active) == 0 {
		return 0
	}
	return m.LastSeen.Sub(m.First)
}

// IdleFor is how long the counter has not moved, after it has moved once.
func (m *Meter) IdleFor(now time.Time) time.Duration {
	if len(m.active) == 0 {
		return 0
	}
	return now.Sub(m.LastSeen)
}
