// Package sdnotify implements the service side of systemd's notification
// protocol (sd_notify(3)): state lines such as READY=1 sent as one
// datagram to the unix socket named by $NOTIFY_SOCKET. A path starting
// with '@' is a socket in the abstract namespace.
//
// Every function is a no-op that returns nil when $NOTIFY_SOCKET is not
// set, so a service can call them unconditionally (in a terminal, in
// tests, under another supervisor).
//
// With Type=notify: Ready once the service is up; Reloading on SIGHUP and
// Ready again when the reload is done; Stopping when shutting down; Status
// for a one-line state that `systemctl status` shows.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment variable that carries the socket path.
const socketEnv = "NOTIFY_SOCKET"

// Notify sends state, newline-separated VARIABLE=value assignments, to the
// service manager. It reports whether a notification was sent: false, nil
// when $NOTIFY_SOCKET is not set.
func Notify(state string) (bool, error) {
	path := os.Getenv(socketEnv)
	if path == "" {
		return false, nil
	}
	if err := Send(path, state); err != nil {
		return false, err
	}
	return true, nil
}

// Send sends state as one datagram to the notification socket at path
// ("/run/systemd/notify", or "@name" for an abstract socket).
func Send(path, state string) error {
	if path == "" {
		return errors.New("sdnotify: no socket path")
	}
	if path[0] != '/' && path[0] != '@' {
		return fmt.Errorf("sdnotify: unsupported socket address %q (allowed: an absolute path or @abstract)", path)
	}
	// The net package turns a leading '@' into the abstract namespace's
	// NUL byte.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	n, err := conn.Write([]byte(state))
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if n != len(state) {
		return fmt.Errorf("sdnotify: short write (%d of %d bytes)", n, len(state))
	}
	return nil
}

// Ready tells the service manager that start-up (or a reload) is
// finished: READY=1.
func Ready() error { return notify("READY=1") }

// Stopping tells the service manager that the service is shutting down:
// STOPPING=1.
func Stopping() error { return notify("STOPPING=1") }

// Reloading tells the service manager that the service is reloading its
// configuration: RELOADING=1 with MONOTONIC_USEC, the CLOCK_MONOTONIC time
// in microseconds (which Type=notify-reload requires). Send Ready when the
// reload is done.
func Reloading() error {
	us, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(us, 10))
}

// Status sets the one-line status the service manager shows:
// STATUS=text. Line breaks in text are replaced with spaces.
func Status(text string) error {
	return notify("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(text))
}

func notify(state string) error {
	_, err := Notify(state)
	return err
}

func monotonicUsec() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000, nil
}
