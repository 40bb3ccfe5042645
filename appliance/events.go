package appliance

import (
	"fmt"
	"sync"
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

// eventBus fans events out to subscribers; a slow subscriber loses events
// (counted) rather than blocking control.
type eventBus struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
	lost uint64
}

func (e *eventBus) publish(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.subs {
		select {
		case c <- ev:
		default:
			e.lost++
		}
	}
}

func (e *eventBus) subscribe() chan Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.subs == nil {
		e.subs = map[chan Event]struct{}{}
	}
	c := make(chan Event, 256)
	e.subs[c] = struct{}{}
	return c
}

func (e *eventBus) unsubscribe(c chan Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.subs, c)
}

// event logs a state change and publishes it. args are slog-style
// key/value pairs; every event carries "bond".
func (a *Appliance) event(msg string, args ...any) {
	a.log.Info(msg, args...)
	ev := Event{Time: time.Now(), Msg: msg, Fields: map[string]string{}}
	for i := 0; i+1 < len(args); i += 2 {
		ev.Fields[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	a.events.publish(ev)
}
