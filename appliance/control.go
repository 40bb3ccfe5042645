package appliance

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Request is one control command (newline-delimited JSON on the control socket).
type Request struct {
	Cmd    string `json:"cmd"`              // "status", "set"
	Bond   string `json:"bond,omitempty"`   // bond name ("" = all, for status)
	Option string `json:"option,omitempty"` // for set
	Value  string `json:"value,omitempty"`  // for set
	Path   string `json:"path,omitempty"`   // for reload: the configuration file ("" = the one started with)
}

// Response answers a Request.
type Response struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	Status  *Status  `json:"status,omitempty"`
	Value   string   `json:"value,omitempty"`   // set: the value as applied
	Changes []string `json:"changes,omitempty"` // reload: what was applied
	Event   *Event   `json:"event,omitempty"`   // events stream
}

type controlServer struct {
	ln   net.Listener
	path string
	wg   sync.WaitGroup
	done chan struct{} // closed at shutdown: every connection ends
}

// startControl listens on path with root-only permissions (directory 0700,
// socket 0600).
func startControl(path string, a *Appliance) (*controlServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control.socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control.socket: %s is in use by a running appliance", path)
	}
	_ = os.Remove(path)
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control.socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &controlServer{ln: ln, path: path, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				end := make(chan struct{})
				defer close(end)
				go func() {
					// shutdown ends the connection whatever its client does
					select {
					case <-s.done:
						c.Close()
					case <-end:
					}
				}()
				defer c.Close()
				a.serve(c, s.done)
			}()
		}
	}()
	return s, nil
}

// close stops listening and ends every connection, whatever its client
// does (a client that stops reading cannot hold shutdown up).
func (s *controlServer) close() {
	close(s.done)
	s.ln.Close()
	s.wg.Wait()
	_ = os.Remove(s.path)
}

// Per-connection deadlines: an idle client is dropped, and a reply or
// event that cannot be written in time ends the connection.
const (
	idleTimeout  = 30 * time.Second
	writeTimeout = 5 * time.Second
)

func (a *Appliance) serve(c net.Conn, done chan struct{}) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		if !sc.Scan() {
			return
		}
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "malformed request: " + err.Error()
		} else if req.Cmd == "events" {
			a.streamEvents(c, enc, done)
			return
		} else {
			resp = a.handle(req)
		}
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if enc.Encode(&resp) != nil {
			return
		}
	}
}

func (a *Appliance) handle(req Request) Response {
	switch req.Cmd {
	case "status":
		st, err := a.Status(req.Bond)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Status: st}
	case "set":
		v, err := a.SetOption(req.Bond, req.Option, req.Value)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Value: v}
	case "bond":
		var err error
		switch req.Option {
		case "add":
			err = a.addBondFromFile(req.Path, req.Bond)
		case "del":
			err = a.DelBond(req.Bond)
		default:
			err = fmt.Errorf("bond: %q is not add or del", req.Option)
		}
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case "slave":
		var err error
		switch req.Option {
		case "add":
			err = a.AddSlave(req.Bond, req.Value)
		case "del":
			err = a.DelSlave(req.Bond, req.Value)
		default:
			err = fmt.Errorf("slave: %q is not add or del", req.Option)
		}
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case "reload":
		changes, err := a.Reload(req.Path)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Changes: changes}
	default:
		return Response{Error: fmt.Sprintf("unknown command %q (allowed: status, set, slave, bond, reload, events)", req.Cmd)}
	}
}

// streamEvents writes events as JSON lines until the client goes away, a
// write does not complete in time, or the appliance stops.
func (a *Appliance) streamEvents(c net.Conn, enc *json.Encoder, done chan struct{}) {
	_ = c.SetReadDeadline(time.Time{})
	ch, err := a.subscribe()
	if err != nil {
		return
	}
	defer a.unsubscribe(ch)
	// a closed client is noticed by the next write, or here
	gone := make(chan struct{})
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := c.Read(buf); err != nil {
				close(gone)
				return
			}
		}
	}()
	write := func(r *Response) bool {
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		return enc.Encode(r) == nil
	}
	if !write(&Response{OK: true}) {
		return
	}
	for {
		select {
		case ev := <-ch:
			if !write(&Response{OK: true, Event: &ev}) {
				return
			}
		case <-gone:
			return
		case <-done:
			return
		case <-a.stop:
			return
		}
	}
}

// Stream sends one request and calls fn for every response line until fn
// returns false or the connection ends (for events).
func Stream(path string, req Request, fn func(*Response) bool) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			return nil
		}
		if !resp.OK {
			return fmt.Errorf("%s", resp.Error)
		}
		if !fn(&resp) {
			return nil
		}
	}
}

// Call sends one request to the appliance listening on path.
func Call(path string, req Request) (*Response, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no appliance is running (control socket %s does not exist)", path)
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &resp, nil
}
