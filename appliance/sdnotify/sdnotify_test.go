package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket standing in for the service manager's
// and points $NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(socketEnv, name)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := conn.ReadFromUnix(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func socketPath(t *testing.T) string {
	// Short, so that it fits sun_path whatever TMPDIR is.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "notify")
}

func TestNotifications(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"path", socketPath},
		{"abstract", func(*testing.T) string {
			return fmt.Sprintf("@bond-appliance-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listen(t, tc.addr(t))

			if err := Ready(); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != "READY=1" {
				t.Errorf("Ready sent %q", got)
			}

			if err := Status("2 bonds up\nbond0: 2/2 slaves"); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != "STATUS=2 bonds up bond0: 2/2 slaves" {
				t.Errorf("Status sent %q", got)
			}

			before, _ := monotonicUsec()
			if err := Reloading(); err != nil {
				t.Fatal(err)
			}
			after, _ := monotonicUsec()
			got := receive(t, conn)
			lines := strings.Split(got, "\n")
			if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
				t.Fatalf("Reloading sent %q", got)
			}
			us, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
			if err != nil || us < before || us > after {
				t.Errorf("MONOTONIC_USEC %q not within [%d, %d]", lines[1], before, after)
			}

			if err := Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != "STOPPING=1" {
				t.Errorf("Stopping sent %q", got)
			}

			sent, err := Notify("READY=1\nSTATUS=custom")
			if err != nil || !sent {
				t.Fatalf("Notify = %v, %v", sent, err)
			}
			if got := receive(t, conn); got != "READY=1\nSTATUS=custom" {
				t.Errorf("Notify sent %q", got)
			}
		})
	}
}

func TestNoSocket(t *testing.T) {
	t.Setenv(socketEnv, "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
	for name, f := range map[string]func() error{"Ready": Ready, "Stopping": Stopping, "Reloading": Reloading,
		"Status": func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET: %v", name, err)
		}
	}
}

func TestSendErrors(t *testing.T) {
	for _, addr := range []string{"", "relative/path", "vsock:2:1234"} {
		if err := Send(addr, "READY=1"); err == nil {
			t.Errorf("Send(%q) succeeded", addr)
		}
	}
	// A socket nobody listens on.
	t.Setenv(socketEnv, socketPath(t))
	if err := Ready(); err == nil || !strings.Contains(err.Error(), "sdnotify:") {
		t.Errorf("Ready to a missing socket = %v; want an error", err)
	}
}
