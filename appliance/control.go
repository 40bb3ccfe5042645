package appliance

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"golang.org/x/sys/unix"
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

// Control socket limits.
const (
	// maxRequest is the longest request line; a longer one is answered
	// with an error and the connection closed.
	maxRequest = 64 * 1024
	// Per-connection deadlines: an idle client is dropped, and a reply or
	// event that cannot be written in time ends the connection.
	idleTimeout  = 30 * time.Second
	writeTimeout = 5 * time.Second
	// refuseTimeout bounds writing a refusal (permission, too many
	// clients) to a client that does not read.
	refuseTimeout = time.Second
)

type controlServer struct {
	ln   net.Listener
	path string
	log  *slog.Logger
	// group is the control.group ("" = root only) and gid its id.
	group string
	gid   uint32
	// slots holds one token per connection being served
	// (control.max_clients).
	slots chan struct{}
	wg    sync.WaitGroup
	done  chan struct{} // closed at shutdown: every connection ends
}

// lookupGroup resolves control.group ("" = root only).
func lookupGroup(name string) (uint32, error) {
	if name == "" {
		return 0, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("control.group: group %q does not exist on this system (%v)", name, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("control.group: group %q has gid %q: not a number", name, g.Gid)
	}
	return uint32(gid), nil
}

// prepareSocketDir makes sure the socket's directory exists and that
// nobody but root (and, with control.group, that group) can replace the
// socket in it. A directory it creates, or systemd's RuntimeDirectory, is
// set to 0700 (0750 with the group, owned by the group); an existing one
// that group or others can write is refused.
func prepareSocketDir(dir, group string, gid uint32, log *slog.Logger) error {
	mode := os.FileMode(0o700)
	if group != "" {
		mode = 0o750
	}
	fi, err := os.Stat(dir)
	created := false
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, mode); err != nil {
			return fmt.Errorf("control.socket: directory %s: %w", dir, err)
		}
		created = true
	case err != nil:
		return fmt.Errorf("control.socket: directory %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("control.socket: %s is not a directory", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("control.socket: directory %s has mode %04o: group or others can write it and could replace the socket; "+
			"use a directory only root can write (0700, or 0750 with control.group)", dir, fi.Mode().Perm())
	}
	if rd := os.Getenv("RUNTIME_DIRECTORY"); rd != "" && filepath.Clean(rd) == filepath.Clean(dir) {
		created = true // systemd's RuntimeDirectory= is the appliance's own
	}
	if created {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("control.socket: directory %s: %w", dir, err)
		}
		if group != "" {
			if err := os.Chown(dir, -1, int(gid)); err != nil {
				return fmt.Errorf("control.socket: directory %s: group %s: %w", dir, group, err)
			}
		}
		return nil
	}
	if group != "" {
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		if ok && !(perm&0o001 != 0 || perm&0o010 != 0 && st.Gid == gid) {
			log.Warn("members of control.group cannot reach the control socket: its directory lets neither the group nor others in",
				"dir", dir, "mode", fmt.Sprintf("%04o", perm), "group", group)
		}
	}
	return nil
}

// startControl listens on cfg.Socket. Without control.group only root
// may use it (directory 0700, socket 0600); with it, members of that
// group too (directory 0750, socket 0660, both of that group). Every
// connection's peer credentials are checked as well (SO_PEERCRED), and at
// most cfg.MaxClients connections are served at once.
func startControl(cfg config.Control, a *Appliance) (*controlServer, error) {
	path := cfg.Socket
	gid, err := lookupGroup(cfg.Group)
	if err != nil {
		return nil, err
	}
	if err := prepareSocketDir(filepath.Dir(path), cfg.Group, gid, a.log); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control.socket: %s is in use by a running appliance", path)
	}
	_ = os.Remove(path)
	perm := os.FileMode(0o600)
	if cfg.Group != "" {
		perm = 0o660
	}
	old := umask(0o777 &^ int(perm))
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control.socket: %w", err)
	}
	if err := os.Chmod(path, perm); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control.socket: %w", err)
	}
	if cfg.Group != "" {
		if err := os.Chown(path, -1, int(gid)); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control.socket: group %s: %w", cfg.Group, err)
		}
	}
	max := cfg.MaxClients
	if max < 1 {
		max = 16
	}
	s := &controlServer{ln: ln, path: path, log: a.log, group: cfg.Group, gid: gid,
		slots: make(chan struct{}, max), done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go s.conn(c, a)
		}
	}()
	return s, nil
}

// conn serves one connection: the peer must be allowed and there must be
// a free slot, else it gets one error answer and is closed.
func (s *controlServer) conn(c net.Conn, a *Appliance) {
	defer s.wg.Done()
	defer c.Close()
	if err := s.allowConn(c); err != nil {
		s.log.Warn("control socket: connection refused", "err", err)
		s.refuse(c, err.Error(), true)
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.log.Warn("control socket: too many clients", "max_clients", cap(s.slots))
		s.refuse(c, fmt.Sprintf("too many clients: %d connections are being served (control.max_clients); try again later", cap(s.slots)), true)
		return
	}
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
	defer func() {
		// a bug in serving one request ends that connection, not the
		// appliance (panics on the control loop are its own, see
		// recoverPanic)
		if v := recover(); v != nil {
			s.log.Error("control socket: panic serving a connection", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.refuse(c, "internal error (logged by the appliance)", false)
		}
	}()
	a.serve(c, s.done)
}

// refuse writes one error answer. With readFirst it reads the request
// line first (for at most refuseTimeout), so that the client's write does
// not fail on the closed connection before it could read the answer.
func (s *controlServer) refuse(c net.Conn, msg string, readFirst bool) {
	if readFirst {
		_ = c.SetReadDeadline(time.Now().Add(refuseTimeout))
		br := bufio.NewReaderSize(c, 4096)
		for n := 0; n < maxRequest; n += 4096 {
			if _, err := br.ReadSlice('\n'); !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(refuseTimeout))
	_ = json.NewEncoder(c).Encode(&Response{Error: msg})
}

// peer is who is on the other end of a connection.
type peer struct {
	uid, gid uint32
	pid      int32
	groups   []uint32 // supplementary groups (nil: unknown)
}

// allowConn checks the connection's peer credentials.
func (s *controlServer) allowConn(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("permission denied: not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("permission denied: peer credentials: %w", err)
	}
	var p peer
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr == nil {
			p = peer{uid: cred.Uid, gid: cred.Gid, pid: cred.Pid}
			if s.group != "" && p.uid != 0 && p.gid != s.gid {
				p.groups = peerGroups(int(fd))
			}
		}
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		return fmt.Errorf("permission denied: peer credentials: %w", cerr)
	}
	return s.allow(p)
}

// allow decides: root, or a member of control.group.
func (s *controlServer) allow(p peer) error {
	if p.uid == 0 {
		return nil
	}
	if s.group == "" {
		return fmt.Errorf("permission denied: uid %d (pid %d) is not root; only root may use the control socket (control.group is not set)", p.uid, p.pid)
	}
	if p.gid == s.gid || slices.Contains(p.groups, s.gid) {
		return nil
	}
	return fmt.Errorf("permission denied: uid %d (pid %d) is neither root nor a member of group %s (control.group)", p.uid, p.pid, s.group)
}

// peerGroups returns the peer's supplementary groups as they were when it
// connected (SO_PEERGROUPS, Linux 4.13); nil when the kernel cannot say.
func peerGroups(fd int) []uint32 {
	buf := make([]uint32, 64)
	for range 2 {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch e {
		case 0:
			return buf[:n/4]
		case unix.ERANGE:
			buf = make([]uint32, n/4+1)
		default:
			return nil
		}
	}
	return nil
}

// close stops listening and ends every connection, whatever its client
// does (a client that stops reading cannot hold shutdown up).
func (s *controlServer) close() {
	close(s.done)
	s.ln.Close()
	s.wg.Wait()
	_ = os.Remove(s.path)
}

func (a *Appliance) serve(c net.Conn, done chan struct{}) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxRequest)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		if !sc.Scan() {
			if errors.Is(sc.Err(), bufio.ErrTooLong) {
				_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
				_ = enc.Encode(&Response{Error: fmt.Sprintf("request too long: a request is one JSON line of at most %d bytes", maxRequest)})
			}
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

// dial connects to the control socket, turning the usual failures into
// messages that say what to do.
func dial(path string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("no appliance is running (control socket %s does not exist)", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("no appliance is running (control socket %s exists but nothing listens on it)", path)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("control socket %s: permission denied: run this as root, or as a member of the appliance's control.group", path)
	}
	return nil, fmt.Errorf("control socket %s: %w", path, err)
}

// Stream sends one request and calls fn for every response line until fn
// returns false or the connection ends (for events).
func Stream(path string, req Request, fn func(*Response) bool) error {
	c, err := dial(path)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
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

// Client deadlines: a request that changes devices (reload, bond, slave)
// may take long (channel count changes, sockets rebinding while the
// kernel releases a queue); the others answer at once.
const (
	QuickTimeout = 10 * time.Second
	SlowTimeout  = 2 * time.Minute
)

// DefaultTimeout is how long Call waits for the answer to cmd.
func DefaultTimeout(cmd string) time.Duration {
	switch cmd {
	case "reload", "bond", "slave":
		return SlowTimeout
	}
	return QuickTimeout
}

// TimeoutError is a request that got no answer in time. The appliance may
// still be carrying it out.
type TimeoutError struct {
	Cmd   string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no answer to %q within %s: the operation may still be in progress in the appliance; "+
		"check the result with `bond-appliance status` (or wait longer with --timeout)", e.Cmd, e.After)
}

// Call sends one request to the appliance listening on path and waits
// DefaultTimeout(req.Cmd) for the answer.
func Call(path string, req Request) (*Response, error) {
	return CallTimeout(path, req, DefaultTimeout(req.Cmd))
}

// CallTimeout is Call with its own deadline (0 or less: wait as long as it
// takes). A missed deadline is a *TimeoutError.
func CallTimeout(path string, req Request, timeout time.Duration) (*Response, error) {
	c, err := dial(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if timeout > 0 {
		_ = c.SetDeadline(time.Now().Add(timeout))
	}
	// a write error (the appliance refused and closed) may still leave
	// its answer to read
	werr := json.NewEncoder(c).Encode(req)
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		if werr != nil {
			return nil, fmt.Errorf("control socket %s: %w", path, werr)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &TimeoutError{Cmd: req.Cmd, After: timeout}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, fmt.Errorf("control socket %s: the appliance closed the connection without answering (is it shutting down?); "+
				"the %q request may or may not have been applied", path, req.Cmd)
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &resp, nil
}
