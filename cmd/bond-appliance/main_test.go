package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"file only", []string{"-c", path, "--check"}, nil, 0, "configuration OK (1 bond(s))", "", ""},
		{"good env and flags", []string{"-c", path, "--check", "--set", "dataplane.poll=busy", "--set", "metrics.listen=127.0.0.1:9100"},
			[]string{"BOND_APPLIANCE_LOG_LEVEL=warn", "BOND_APPLIANCE_PRIVILEGED=1"}, 0, "configuration OK", "", ""},
		{"bad flag value", []string{"-c", path, "--check", "--set", "log.level=loud"}, nil, 1, "",
			`--set "log.level=loud" (log.level): invalid value "loud" (allowed: debug, info, warn, error)`, ""},
		{"bad env value", []string{"-c", path, "--check"}, []string{"BOND_APPLIANCE_DATAPLANE_POLL=bogus"}, 1, "",
			`BOND_APPLIANCE_DATAPLANE_POLL (dataplane.poll): invalid value "bogus" (allowed: busy, adaptive)`, ""},
		{"flag beats bad env", []string{"-c", path, "--check", "--set", "dataplane.poll=busy"},
			[]string{"BOND_APPLIANCE_DATAPLANE_POLL=bogus"}, 0, "configuration OK", "", "bogus"},
		{"unknown env key", []string{"-c", path, "--check"}, []string{"BOND_APPLIANCE_LOG_LEVL=warn"}, 1, "",
			"did you mean BOND_APPLIANCE_LOG_LEVEL?", ""},
		{"bond key on the command line", []string{"-c", path, "--check", "--set", "bonds[0].miimon=1"}, nil, 1, "",
			"bond options are read from the configuration file only", ""},
		{"--set without -c", []string{"--set", "log.level=warn"}, nil, 2, "", "usage:", ""},
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
