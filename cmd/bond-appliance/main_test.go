package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The daemon's configuration loading (--check exercises it without
// touching any interface): the file, the environment and --set.
func TestCheckLayers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bond.yaml")
	if err := os.WriteFile(path, []byte("log: {level: debug}\nbonds: [{name: bond0, slaves: [m0, m1]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        []string
		code       int
		wantOut    string
		wantErr    string
		notWantErr string
	}{
		{"file only", []string{"-c", path, "--check-config"}, nil, 0, "configuration OK (1 bond(s))", "", ""},
		{"good env and flags", []string{"-c", path, "--check-config", "--set", "dataplane.poll=busy", "--set", "metrics.listen=127.0.0.1:9100"},
			[]string{"BOND_APPLIANCE_LOG_LEVEL=warn", "BOND_APPLIANCE_PRIVILEGED=1"}, 0, "configuration OK", "", ""},
		{"bad flag value", []string{"-c", path, "--check-config", "--set", "log.level=loud"}, nil, 1, "",
			`--set "log.level=loud" (log.level): invalid value "loud" (allowed: debug, info, warn, error)`, ""},
		{"bad env value", []string{"-c", path, "--check-config"}, []string{"BOND_APPLIANCE_DATAPLANE_POLL=bogus"}, 1, "",
			`BOND_APPLIANCE_DATAPLANE_POLL (dataplane.poll): invalid value "bogus" (allowed: busy, adaptive)`, ""},
		{"flag beats bad env", []string{"-c", path, "--check-config", "--set", "dataplane.poll=busy"},
			[]string{"BOND_APPLIANCE_DATAPLANE_POLL=bogus"}, 0, "configuration OK", "", "bogus"},
		{"unknown env key", []string{"-c", path, "--check-config"}, []string{"BOND_APPLIANCE_LOG_LEVL=warn"}, 1, "",
			"did you mean BOND_APPLIANCE_LOG_LEVEL?", ""},
		{"bond key on the command line", []string{"-c", path, "--check-config", "--set", "bonds[0].miimon=1"}, nil, 1, "",
			"bond options are read from the configuration file only", ""},
		{"--set without -c", []string{"--set", "log.level=warn"}, nil, 2, "", "usage:", ""},
		// --check also checks the machine, read-only: these members do not exist
		{"check: members missing", []string{"-c", path, "--check"}, nil, 1, "",
			"bond bond0: slaves: m0: no such network interface", ""},
	}
	saved := environ
	defer func() { environ = saved }()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			environ = func() []string { return tc.env }
			var out, errOut strings.Builder
			code := run(tc.args, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.wantOut)
			}
			if !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.wantErr)
			}
			if tc.notWantErr != "" && strings.Contains(errOut.String(), tc.notWantErr) {
				t.Errorf("stderr %q mentions %q", errOut.String(), tc.notWantErr)
			}
		})
	}
}

// Client commands take control.socket from -c FILE with the environment
// over it; --socket beats both.
func TestSocketFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bond.yaml")
	if err := os.WriteFile(path, []byte("control: {socket: /run/file.sock}\nbonds: [{name: bond0, slaves: [m0]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"default", nil, nil, defaultSocket},
		{"file", []string{"-c", path}, nil, "/run/file.sock"},
		{"env over file", []string{"-c", path}, []string{"BOND_APPLIANCE_CONTROL_SOCKET=/run/env.sock"}, "/run/env.sock"},
		{"--socket over all", []string{"-c", path, "--socket", "/run/flag.sock"}, []string{"BOND_APPLIANCE_CONTROL_SOCKET=/run/env.sock"}, "/run/flag.sock"},
	}
	saved := environ
	defer func() { environ = saved }()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			environ = func() []string { return tc.env }
			fs := newTestFlagSet()
			get := socketFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := get()
			if err != nil || got != tc.want {
				t.Errorf("socket = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// What a user sees when something is wrong: which word was not
// understood, the same "no appliance is running" from every client
// command, every line of an error with the program's name.
func TestCLIMessages(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "none.sock")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("dataplane: {queues: 0, batch: 0}\nbonds: [{name: bond0, slaves: [m0]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noDaemon := "no appliance is running (control socket " + sock + " does not exist)"
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr []string // lines (or parts) stderr must contain
	}{
		{"unknown verb", []string{"frobnicate"}, 2, []string{`bond-appliance: unknown command "frobnicate"`, "usage:"}},
		{"stray argument", []string{"-c", bad, "extra"}, 2, []string{`bond-appliance: unexpected argument "extra"`, "usage:"}},
		{"status without daemon", []string{"status", "--socket", sock}, 1, []string{"bond-appliance: status: " + noDaemon}},
		{"set without daemon", []string{"set", "bond0", "miimon", "100", "--socket", sock}, 1, []string{"bond-appliance: set: " + noDaemon}},
		{"events without daemon", []string{"events", "--socket", sock}, 1, []string{"bond-appliance: events: " + noDaemon}},
		{"reload without daemon", []string{"reload", "--socket", sock}, 1, []string{"bond-appliance: reload: " + noDaemon}},
		{"slave without daemon", []string{"slave", "bond0", "add", "eth3", "--socket", sock}, 1, []string{"bond-appliance: slave: " + noDaemon}},
		{"bond without daemon", []string{"bond", "add", "bond1", "--socket", sock}, 1, []string{"bond-appliance: bond: " + noDaemon}},
		{"multi-line config error", []string{"-c", bad, "--check-config"}, 1, []string{
			"bond-appliance: " + bad + ": dataplane.queues: 0 out of range (allowed 1..256)\n",
			"bond-appliance: " + bad + ": dataplane.batch: 0 out of range (allowed 1..1024)\n"}},
		{"status: two bonds", []string{"status", "a", "b", "--socket", sock}, 2, []string{"bond-appliance: status: at most one BOND"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := run(tc.args, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut.String())
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			// every error line (not the usage text) names the program
			for _, line := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
				if strings.HasPrefix(line, "usage:") {
					break
				}
				if !strings.HasPrefix(line, "bond-appliance: ") {
					t.Errorf("error line without the program name: %q", line)
				}
			}
			if strings.Contains(errOut.String(), "sudo") {
				t.Errorf("stderr says sudo:\n%s", errOut.String())
			}
		})
	}
}

// fakeDaemon stands in for a running appliance in supervise.
type fakeDaemon struct {
	mu          sync.Mutex
	reloads     int
	closes      int
	restores    int
	reloadGate  chan struct{} // a reload waits for a value (or close)
	reloadStart chan struct{} // told when a reload starts
	closeBlocks bool          // Close never returns
	closed      chan struct{} // closed by Close
	crash       chan struct{}
}

func newFake() *fakeDaemon {
	return &fakeDaemon{reloadGate: make(chan struct{}), reloadStart: make(chan struct{}, 16),
		closed: make(chan struct{}), crash: make(chan struct{})}
}

func (f *fakeDaemon) Reload(string) ([]string, error) {
	f.mu.Lock()
	f.reloads++
	f.mu.Unlock()
	f.reloadStart <- struct{}{}
	select {
	case <-f.reloadGate:
		return []string{"x"}, nil
	case <-f.closed:
		return nil, errors.New("the appliance is shutting down")
	}
}

func (f *fakeDaemon) Close() error {
	f.mu.Lock()
	f.closes++
	first := f.closes == 1
	f.mu.Unlock()
	if first {
		close(f.closed)
	}
	if f.closeBlocks {
		select {}
	}
	return nil
}

func (f *fakeDaemon) EmergencyRestore(time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores++
	return nil
}

func (f *fakeDaemon) Crashed() <-chan struct{} { return f.crash }
func (f *fakeDaemon) CrashErr() error          { return errors.New("lane 0 panicked: boom") }

func (f *fakeDaemon) counts() (reloads, closes, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads, f.closes, f.restores
}

// syncBuf is a log sink for several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Signals: SIGHUPs during a reload coalesce into one more; SIGTERM during a
// reload shuts down at once; a second signal, or a Close that does not
// return, forces the restore and a non-zero exit; a crash exits non-zero.
func TestSupervise(t *testing.T) {
	saved := shutdownGrace
	defer func() { shutdownGrace = saved }()
	shutdownGrace = 300 * time.Millisecond
	tests := []struct {
		name        string
		closeBlocks bool
		script      func(t *testing.T, f *fakeDaemon, term, hup chan os.Signal)
		code        int
		reloads     int
		restores    int
		wantLog     string
		maxDuration time.Duration
	}{
		{"SIGHUPs during a reload coalesce", false, func(t *testing.T, f *fakeDaemon, term, hup chan os.Signal) {
			hup <- syscall.SIGHUP
			<-f.reloadStart
			for range 5 {
				hup <- syscall.SIGHUP
			}
			time.Sleep(50 * time.Millisecond) // let the main loop take them
			f.reloadGate <- struct{}{}
			<-f.reloadStart
			f.reloadGate <- struct{}{}
			time.Sleep(50 * time.Millisecond) // no third reload starts
			term <- syscall.SIGTERM
		}, 0, 2, 0, "reload applied", 2 * time.Second},
		{"SIGTERM during a reload", false, func(t *testing.T, f *fakeDaemon, term, hup chan os.Signal) {
			hup <- syscall.SIGHUP
			<-f.reloadStart
			term <- syscall.SIGTERM
		}, 0, 1, 0, "shutting down", time.Second},
		{"second signal forces", true, func(t *testing.T, f *fakeDaemon, term, hup chan os.Signal) {
			term <- syscall.SIGTERM
			<-f.closed
			term <- syscall.SIGINT
		}, 1, 0, 1, "forced exit: second signal during shutdown", 250 * time.Millisecond},
		{"stuck Close is bounded", true, func(t *testing.T, f *fakeDaemon, term, hup chan os.Signal) {
			term <- syscall.SIGTERM
		}, 1, 0, 1, "forced exit: shutdown did not finish in time", 2 * time.Second},
		{"crash exits non-zero", false, func(t *testing.T, f *fakeDaemon, term, hup chan os.Signal) {
			close(f.crash)
		}, 1, 0, 0, "lane 0 panicked: boom", time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.closeBlocks = tc.closeBlocks
			term, hup := make(chan os.Signal, 2), make(chan os.Signal, 1)
			var logs syncBuf
			log := slog.New(slog.NewTextHandler(&logs, nil))
			codec := make(chan int, 1)
			go func() { codec <- supervise(f, term, hup, log, io.Discard, func() {}) }()
			t0 := time.Now()
			tc.script(t, f, term, hup)
			var code int
			select {
			case code = <-codec:
			case <-time.After(5 * time.Second):
				t.Fatalf("supervise did not return; log:\n%s", logs.String())
			}
			if d := time.Since(t0); d > tc.maxDuration {
				t.Errorf("took %s, want at most %s", d, tc.maxDuration)
			}
			reloads, closes, restores := f.counts()
			if code != tc.code || reloads != tc.reloads || restores != tc.restores || closes != 1 {
				t.Errorf("code %d reloads %d restores %d closes %d; want %d %d %d 1\nlog:\n%s",
					code, reloads, restores, closes, tc.code, tc.reloads, tc.restores, logs.String())
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}
