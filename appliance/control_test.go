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
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// Who may use the control socket: root, or a member of control.group by
// its primary or a supplementary group.
func TestControlAllow(t *testing.T) {
	tests := []struct {
		name  string
		group string
		gid   uint32
		p     peer
		want  string // "" = allowed, else part of the refusal
	}{
		{"root without group", "", 0, peer{uid: 0, gid: 0}, ""},
		{"user without group", "", 0, peer{uid: 1000, gid: 1000, pid: 42},
			"permission denied: uid 1000 (pid 42) is not root; only root may use the control socket (control.group is not set)"},
		{"root with group", "bondctl", 990, peer{uid: 0, gid: 0}, ""},
		{"primary group", "bondctl", 990, peer{uid: 1000, gid: 990}, ""},
		{"supplementary group", "bondctl", 990, peer{uid: 1000, gid: 1000, groups: []uint32{27, 990}}, ""},
		{"not a member", "bondctl", 990, peer{uid: 1000, gid: 1000, pid: 7, groups: []uint32{27}},
			"permission denied: uid 1000 (pid 7) is neither root nor a member of group bondctl (control.group)"},
		{"groups unknown", "bondctl", 990, peer{uid: 1000, gid: 1000, pid: 7}, "is neither root nor a member of group bondctl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &controlServer{group: tc.group, gid: tc.gid}
			err := s.allow(tc.p)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The socket's directory: created private (0700; 0750 and the group's with
// control.group), an existing one that group or others can write refused
// with its name and mode, an unknown group refused by name.
func TestControlSocketDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (chown to a group)")
	}
	tests := []struct {
		name     string
		existing os.FileMode // 0: the directory does not exist
		group    string
		wantErr  string
		wantDir  os.FileMode
		wantSock os.FileMode
		wantGID  uint32
	}{
		{"created, root only", 0, "", "", 0o700, 0o600, 0},
		{"created, group", 0, "nogroup", "", 0o750, 0o660, 65534},
		{"existing private", 0o700, "", "", 0o700, 0o600, 0},
		{"existing 0755", 0o755, "nogroup", "", 0o755, 0o660, 65534},
		{"existing group-writable", 0o770, "", "has mode 0770: group or others can write it", 0, 0, 0},
		{"existing world-writable", 0o777, "", "has mode 0777: group or others can write it", 0, 0, 0},
		{"unknown group", 0, "no-such-group-ba", `control.group: group "no-such-group-ba" does not exist`, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if tc.existing != 0 {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			a := &Appliance{log: quietLog, stop: make(chan struct{})}
			sock := filepath.Join(dir, "control.sock")
			s, err := startControl(config.Control{Socket: sock, Group: tc.group, MaxClients: 4}, a)
			if tc.wantErr != "" {
				if err == nil {
					s.close()
					t.Fatalf("started; want an error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q lacks %q", err, tc.wantErr)
				}
				if tc.existing != 0 && !strings.Contains(err.Error(), dir) {
					t.Errorf("error %q does not name the directory", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			check := func(path string, mode os.FileMode, gid uint32) {
				t.Helper()
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != mode {
					t.Errorf("%s: mode %04o, want %04o", path, got, mode)
				}
				if g := fi.Sys().(*syscall.Stat_t).Gid; g != gid {
					t.Errorf("%s: gid %d, want %d", path, g, gid)
				}
			}
			dirGID := tc.wantGID
			if tc.existing != 0 {
				dirGID = 0 // an existing directory is left as it is
			}
			check(dir, tc.wantDir, dirGID)
			check(sock, tc.wantSock, tc.wantGID)
		})
	}
}

// roundTrip sends one raw line and reads one answer.
func roundTrip(t *testing.T, c net.Conn, line string) Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	var r Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&r); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return r
}

// Over control.max_clients a connection gets "too many clients" and is
// closed; a freed slot serves the next one. An oversized request line is
// answered, not silently dropped.
func TestControlLimits(t *testing.T) {
	a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
	path := filepath.Join(t.TempDir(), "limited.sock")
	s, err := startControl(config.Control{Socket: path, MaxClients: 2}, a)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if r := roundTrip(t, c, `{"cmd":"status"}`); !r.OK {
			t.Fatalf("status refused: %s", r.Error)
		}
		held = append(held, c)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := roundTrip(t, c, `{"cmd":"status"}`)
	c.Close()
	if r.OK || !strings.Contains(r.Error, "too many clients: 2 connections are being served (control.max_clients)") {
		t.Fatalf("third client: %+v, want too many clients", r)
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := Call(path, Request{Cmd: "status"})
		if err == nil && resp.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot was not reused: %v %+v", err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}

	held[1].Close()
	long := `{"cmd":"status","bond":"` + strings.Repeat("x", maxRequest) + `"}`
	for {
		c2, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		r = roundTrip(t, c2, long)
		c2.Close()
		if !strings.Contains(r.Error, "too many clients") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the slots of the closed clients are being freed
	}
	if r.OK || !strings.Contains(r.Error, "request too long: a request is one JSON line of at most 65536 bytes") {
		t.Fatalf("oversized request: %+v", r)
	}
}

// The client's deadline follows the command, and a missed one says the
// operation may still be running; dial failures say what is wrong.
func TestCallTimeoutAndDialErrors(t *testing.T) {
	for cmd, want := range map[string]time.Duration{"status": QuickTimeout, "set": QuickTimeout,
		"reload": SlowTimeout, "bond": SlowTimeout, "slave": SlowTimeout} {
		if got := DefaultTimeout(cmd); got != want {
			t.Errorf("DefaultTimeout(%s) = %s, want %s", cmd, got, want)
		}
	}
	dir := t.TempDir()
	// a server that reads the request and never answers
	mute := filepath.Join(dir, "mute.sock")
	ln, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t0 := time.Now()
	_, err = CallTimeout(mute, Request{Cmd: "reload"}, 100*time.Millisecond)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Cmd != "reload" {
		t.Fatalf("err = %v, want a TimeoutError for reload", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("timed out after %s, want about 100ms", d)
	}
	if !strings.Contains(err.Error(), "may still be in progress") {
		t.Errorf("timeout message %q does not say the operation may still run", err)
	}

	// a socket file nobody listens on
	stale := filepath.Join(dir, "stale.sock")
	l2, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l2.(*net.UnixListener).SetUnlinkOnClose(false)
	l2.Close()
	tests := []struct {
		path, want string
	}{
		{filepath.Join(dir, "none.sock"), "no appliance is running (control socket " + filepath.Join(dir, "none.sock") + " does not exist)"},
		{stale, "no appliance is running (control socket " + stale + " exists but nothing listens on it)"},
	}
	for _, tc := range tests {
		_, err := Call(tc.path, Request{Cmd: "status"})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Call: %v, want %q", err, tc.want)
		}
		err = Stream(tc.path, Request{Cmd: "events"}, func(*Response) bool { return false })
		if err == nil || err.Error() != tc.want {
			t.Errorf("Stream: %v, want %q", err, tc.want)
		}
	}
}

// helperEnv makes the test binary a control client (run as another user
// by TestControlPeerCredentials).
const helperEnv = "BOND_APPLIANCE_TEST_CONTROL_CLIENT"

func TestControlClientHelper(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	resp, err := Call(path, Request{Cmd: "status"})
	switch {
	case err != nil:
		fmt.Println("RESULT error:", err)
	case !resp.OK:
		fmt.Println("RESULT refused:", resp.Error)
	default:
		fmt.Println("RESULT ok")
	}
	os.Exit(0)
}

// Another user than root gets an answer naming why it is refused, even
// where the file permissions would let it connect; a member of
// control.group is served.
func TestControlPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (runs a client as nobody)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// a copy of the test binary and the socket where nobody can reach them
	top, err := os.MkdirTemp("", "bactl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(top)
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(top, "client.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	a := testAppliance(t, testBond(t, "bond0", "active-backup", "ba0", "ba1"))
	tests := []struct {
		name     string
		group    string
		openPerm bool // make the socket 0666 so only the credential check stands
		uid, gid uint32
		want     string
	}{
		{"nobody, root only", "", true, 65534, 65534, "RESULT refused: permission denied: uid 65534"},
		{"nobody, root only, file mode", "", false, 65534, 65534, "RESULT error: control socket"},
		{"not in group", "nogroup", true, 65534, 65533, "RESULT refused: permission denied: uid 65534"},
		{"in group", "nogroup", false, 65534, 65534, "RESULT ok"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(top, fmt.Sprintf("run%d", i), "control.sock")
			s, err := startControl(config.Control{Socket: sock, Group: tc.group, MaxClients: 4}, a)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if tc.openPerm {
				_ = os.Chmod(filepath.Dir(sock), 0o755)
				_ = os.Chmod(sock, 0o666)
			}
			cmd := exec.Command(bin, "-test.run=^TestControlClientHelper$")
			cmd.Env = append(os.Environ(), helperEnv+"="+sock)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.gid, Groups: []uint32{}}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("client: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("client said:\n%s\nwant %q", out, tc.want)
			}
		})
	}
}
