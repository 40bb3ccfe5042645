package appliance

import (
	"fmt"
	"time"
)

// Event is one state change (slave up/down, failover, LACP, monitor
// verdict, option change), logged once with its reason and streamed to
// `bond-appliance events` clients.
type Event struct {
	Time   time.Time         `json:"time"`
	Msg    string            `json:"msg"`
	Fields map[string]string `json:"fields"`
}

// eventBuffer is how many events a subscriber may lag behind before it
// loses events (counted) rather than holding up the control loop.
const eventBuffer = 256

// event logs a state change and hands it to every subscriber; only the
// control loop calls it. args are slog-style key/value pairs; every event
// carries "bond".
func (c *ctl) event(msg string, args ...any) {
	c.a.log.Info(msg, args...)
	if len(c.subs) == 0 {
		return
	}
	ev := Event{Time: time.Now(), Msg: msg, Fields: map[string]string{}}
	for i := 0; i+1 < len(args); i += 2 {
		ev.Fields[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	for ch := range c.subs {
		select {
		case ch <- ev:
		default:
			c.lost++
		}
	}
}

// subscribe registers an events stream with the control loop.
func (a *Appliance) subscribe() (chan Event, error) {
	ch := make(chan Event, eventBuffer)
	if err := a.do(func(c *ctl) { c.subs[ch] = struct{}{} }); err != nil {
		return nil, err
	}
	return ch, nil
}

// unsubscribe ends an events stream.
func (a *Appliance) unsubscribe(ch chan Event) {
	_ = a.do(func(c *ctl) { delete(c.subs, ch) })
}
