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
}

// Response answers a Request.
type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

type controlServer struct {
	ln   net.Listener
	path string
	wg   sync.WaitGroup
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
	s := &controlServer{ln: ln, path: path}
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
				defer c.Close()
				a.serve(c)
			}()
		}
	}()
	return s, nil
}

func (s *controlServer) close() {
	s.ln.Close()
	s.wg.Wait()
	_ = os.Remove(s.path)
}

func (a *Appliance) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	enc := json.NewEncoder(c)
	for sc.Scan() {
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "malformed request: " + err.Error()
		} else {
			resp = a.handle(req)
		}
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
		switch req.Option {
		case "active_slave":
			if err := a.SetActiveSlave(req.Bond, req.Value); err != nil {
				return Response{Error: err.Error()}
			}
			return Response{OK: true}
		default:
			return Response{Error: fmt.Sprintf("set: option %q cannot be changed at runtime in this version (allowed: active_slave)", req.Option)}
		}
	default:
		return Response{Error: fmt.Sprintf("unknown command %q (allowed: status, set)", req.Cmd)}
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
