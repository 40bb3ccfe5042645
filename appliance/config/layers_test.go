package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// Precedence of the layered keys: default < file < environment < --set.
func TestLayerPrecedence(t *testing.T) {
	const bond = "bonds: [{name: bond0, slaves: [m0, m1]}]\n"
	tests := []struct {
		name      string
		file      string
		env       []string
		overrides []string
		check     func(c *Config) (got, want any)
	}{
		{"default", bond, nil, nil,
			func(c *Config) (any, any) { return c.Log.Level, "info" }},
		{"file over default", "log: {level: debug}\n" + bond, nil, nil,
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"env over file", "log: {level: debug}\n" + bond, []string{"BOND_APPLIANCE_LOG_LEVEL=warn"}, nil,
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"env over default", bond, []string{"BOND_APPLIANCE_LOG_LEVEL=warn"}, nil,
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"flag over env over file", "log: {level: debug}\n" + bond, []string{"BOND_APPLIANCE_LOG_LEVEL=warn"}, []string{"log.level=error"},
			func(c *Config) (any, any) { return c.Log.Level, "error" }},
		{"flag over file", "log: {level: debug}\n" + bond, nil, []string{"log.level=error"},
			func(c *Config) (any, any) { return c.Log.Level, "error" }},
		{"last flag wins", bond, nil, []string{"log.level=error", "log.level=debug"},
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"last variable wins", bond, []string{"BOND_APPLIANCE_LOG_LEVEL=error", "BOND_APPLIANCE_LOG_LEVEL=debug"}, nil,
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"env for one key leaves the file's other keys", "log: {level: debug, format: json}\n" + bond,
			[]string{"BOND_APPLIANCE_LOG_LEVEL=warn"}, nil,
			func(c *Config) (any, any) { return c.Log, Log{Level: "warn", Format: "json"} }},
		{"dataplane poll from env", "dataplane: {poll: adaptive}\n" + bond, []string{"BOND_APPLIANCE_DATAPLANE_POLL=busy"}, nil,
			func(c *Config) (any, any) { return c.Dataplane.Poll, "busy" }},
		{"metrics listen from env", bond, []string{"BOND_APPLIANCE_METRICS_LISTEN=127.0.0.1:9100"}, nil,
			func(c *Config) (any, any) { return c.Metrics.Listen, "127.0.0.1:9100" }},
		{"an empty variable sets the empty value", "metrics: {listen: 127.0.0.1:9100}\n" + bond, []string{"BOND_APPLIANCE_METRICS_LISTEN="}, nil,
			func(c *Config) (any, any) { return c.Metrics.Listen, "" }},
		{"control socket from a flag", bond, []string{"BOND_APPLIANCE_CONTROL_SOCKET=/run/a.sock"}, []string{"control.socket=/run/b.sock"},
			func(c *Config) (any, any) { return c.Control.Socket, "/run/b.sock" }},
		{"lists comma-separated", bond, []string{"BOND_APPLIANCE_DATAPLANE_CORES=0,1"}, nil,
			func(c *Config) (any, any) { return c.Dataplane.Cores, []int{0, 1} }},
		{"queues follow cores from env", bond, []string{"BOND_APPLIANCE_DATAPLANE_CORES=0,1"}, nil,
			func(c *Config) (any, any) { return c.Dataplane.Queues, 2 }},
		{"queues from the file stay", "dataplane: {queues: 4}\n" + bond, nil, []string{"dataplane.cores=0,1"},
			func(c *Config) (any, any) { return c.Dataplane.Queues, 4 }},
		{"booleans", bond, []string{"BOND_APPLIANCE_DATAPLANE_HUGEPAGES=false"}, nil,
			func(c *Config) (any, any) { return c.Dataplane.HugePages, false }},
		{"other BOND_APPLIANCE_ variables are ignored", bond, []string{"BOND_APPLIANCE_PRIVILEGED=1", "BOND_APPLIANCE_RACE=1", "PATH=/bin"}, nil,
			func(c *Config) (any, any) { return c.Log.Level, "info" }},
		{"an overridden bad variable is not read", bond, []string{"BOND_APPLIANCE_LOG_LEVEL=loud"}, []string{"log.level=warn"},
			func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"bonds come from the file", "dataplane: {poll: busy}\n" + bond, []string{"BOND_APPLIANCE_LOG_LEVEL=warn"}, nil,
			func(c *Config) (any, any) { return c.Bonds[0].Name + "/" + c.Bonds[0].Slaves[1].Name, "bond0/m1" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := ParseWith([]byte(tc.file), tc.env, tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tc.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// Bad values, unknown keys and bond keys from the environment or --set are
// errors naming the variable or flag, the key and what is allowed.
func TestLayerErrors(t *testing.T) {
	const bond = "bonds: [{name: bond0, slaves: [m0, m1]}]\n"
	tests := []struct {
		name      string
		file      string
		env       []string
		overrides []string
		want      []string
	}{
		{"bad env value", bond, []string{"BOND_APPLIANCE_DATAPLANE_POLL=bogus"}, nil,
			[]string{`BOND_APPLIANCE_DATAPLANE_POLL (dataplane.poll): invalid value "bogus" (allowed: busy, adaptive)`}},
		{"env value out of range", bond, []string{"BOND_APPLIANCE_DATAPLANE_BATCH=0"}, nil,
			[]string{`BOND_APPLIANCE_DATAPLANE_BATCH (dataplane.batch): 0 out of range (allowed 1..1024)`}},
		{"bad flag value", bond, nil, []string{"log.format=xml"},
			[]string{`--set "log.format=xml" (log.format): invalid value "xml" (allowed: text, json)`}},
		{"bad socket path", bond, []string{"BOND_APPLIANCE_CONTROL_SOCKET=relative.sock"}, nil,
			[]string{`BOND_APPLIANCE_CONTROL_SOCKET (control.socket): "relative.sock" is not an absolute path`}},
		{"bad control group", bond, []string{"BOND_APPLIANCE_CONTROL_GROUP=-x"}, nil,
			[]string{`BOND_APPLIANCE_CONTROL_GROUP (control.group): "-x" is not a group name (allowed: letters, digits, '_', '.', '-', not starting with a digit or '-')`}},
		{"unknown env key", bond, []string{"BOND_APPLIANCE_DATAPLANE_POLLL=busy"}, nil,
			[]string{`BOND_APPLIANCE_DATAPLANE_POLLL: unknown key "POLLL" in dataplane (did you mean BOND_APPLIANCE_DATAPLANE_POLL?)`}},
		{"env key in lower case", bond, []string{"BOND_APPLIANCE_LOG_level=warn"}, nil,
			[]string{`BOND_APPLIANCE_LOG_level: unknown key "level" in log (did you mean BOND_APPLIANCE_LOG_LEVEL?)`}},
		{"unknown env key far from any", bond, []string{"BOND_APPLIANCE_METRICS_PORT=9100"}, nil,
			[]string{`BOND_APPLIANCE_METRICS_PORT: unknown key "PORT" in metrics (allowed: BOND_APPLIANCE_METRICS_LISTEN)`}},
		{"bond option from env", bond, []string{"BOND_APPLIANCE_BONDS_MIIMON=200"}, nil,
			[]string{`BOND_APPLIANCE_BONDS_MIIMON: bond options are read from the configuration file only (the environment sets dataplane.*, control.*, log.*, metrics.*)`}},
		{"flag without =", bond, nil, []string{"dataplane.poll"},
			[]string{`--set "dataplane.poll": want SECTION.KEY=VALUE, for example dataplane.poll=busy (keys: dataplane.*, control.*, log.*, metrics.*)`}},
		{"unknown flag key", bond, nil, []string{"dataplane.pol=busy"},
			[]string{`--set "dataplane.pol=busy": unknown key "dataplane.pol" (did you mean "dataplane.poll"?)`}},
		{"bond option from a flag", bond, nil, []string{"bonds[0].miimon=200"},
			[]string{`--set "bonds[0].miimon=200": bond options are read from the configuration file only (--set sets dataplane.*, control.*, log.*, metrics.*)`}},
		{"cross-key rule over layers", bond, []string{"BOND_APPLIANCE_DATAPLANE_RING_SIZE=64"}, []string{"dataplane.batch=128"},
			[]string{`dataplane.batch: 128 exceeds dataplane.ring_size 64 (allowed 1..64)`}},
		{"layer errors with file errors", "dataplane: {batch: 0}\n" + bond, []string{"BOND_APPLIANCE_LOG_LEVEL=loud"}, nil,
			[]string{
				`dataplane.batch: 0 out of range (allowed 1..1024)`,
				`BOND_APPLIANCE_LOG_LEVEL (log.level): invalid value "loud" (allowed: debug, info, warn, error)`,
			}},
		{"layer errors with a file that is not a mapping", "[1]\n", nil, []string{"log.level=loud"},
			[]string{
				`config: the top level must be a mapping with the keys dataplane, control, log, metrics, bonds, got a list`,
				`--set "log.level=loud" (log.level): invalid value "loud" (allowed: debug, info, warn, error)`,
				`bonds: at least one bond is required`,
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := ParseWith([]byte(tc.file), tc.env, tc.overrides)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			got := errLines(err)
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, joinLines(tc.want))
			}
		})
	}
}

func joinLines(l []string) string {
	s := ""
	for _, x := range l {
		s += x + "\n"
	}
	return s
}

// Load is LoadWith without environment and overrides; LoadWith reads the
// file like Load.
func TestLoadWith(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bond.yaml")
	if err := os.WriteFile(path, []byte("log: {level: debug}\nbonds: [{name: bond0, slaves: [m0]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := LoadWith(path, []string{"BOND_APPLIANCE_PRIVILEGED=1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Load and LoadWith without layers differ:\n%+v\n%+v", a, b)
	}
	c, _, err := LoadWith(path, []string{"BOND_APPLIANCE_LOG_LEVEL=error"}, []string{"log.format=json"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Log != (Log{Level: "error", Format: "json"}) {
		t.Errorf("LoadWith: log = %+v", c.Log)
	}
	if _, _, err := LoadWith(filepath.Join(t.TempDir(), "missing.yaml"), nil, nil); err == nil {
		t.Error("LoadWith of a missing file succeeded")
	}
}

func TestEnvVar(t *testing.T) {
	tests := []struct {
		key, want string
	}{
		{"dataplane.frame_size", "BOND_APPLIANCE_DATAPLANE_FRAME_SIZE"},
		{"control.socket", "BOND_APPLIANCE_CONTROL_SOCKET"},
		{"metrics.listen", "BOND_APPLIANCE_METRICS_LISTEN"},
		{"log.level", "BOND_APPLIANCE_LOG_LEVEL"},
		{"miimon", ""},
		{"bonds[].slaves[].prio", ""},
	}
	for _, tc := range tests {
		o, ok := LookupOption(tc.key)
		if !ok {
			t.Fatalf("no option %s", tc.key)
		}
		if got := o.EnvVar(); got != tc.want {
			t.Errorf("%s: EnvVar() = %q, want %q", tc.key, got, tc.want)
		}
		if o.IsLayered() != (tc.want != "") {
			t.Errorf("%s: IsLayered() = %v", tc.key, o.IsLayered())
		}
	}
	// Every layered option is reachable through its variable.
	for _, o := range Options() {
		if !o.IsLayered() {
			continue
		}
		got, known, err := envOption(o.EnvVar())
		if err != nil || !known || got.Key() != o.Key() {
			t.Errorf("%s: envOption(%s) = %s, %v, %v", o.Key(), o.EnvVar(), got.Key(), known, err)
		}
	}
}
