package lab

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// killRestartSupported says whether the appliance can be restarted after a
// kill -9: it restores what the killed instance left behind (bond0, member
// settings) from its persisted undo journal, then starts.
const killRestartSupported = true

// chaosOptions configure TestIntegrationStressChaos (environment variables
// BOND_APPLIANCE_CHAOS_*).
type chaosOptions struct {
	dur       time.Duration // per mode, BOND_APPLIANCE_CHAOS
	modes     []string      // BOND_APPLIANCE_CHAOS_MODES
	killEvery time.Duration // BOND_APPLIANCE_CHAOS_KILL_EVERY (0: never)
	kill      bool          // kill -9 steps run (killRestartSupported or BOND_APPLIANCE_CHAOS_KILL=1)
	killForce bool          // BOND_APPLIANCE_CHAOS_KILL=1
	seed      uint64        // BOND_APPLIANCE_CHAOS_SEED
	floodPPS  float64       // BOND_APPLIANCE_CHAOS_FLOOD_PPS
}

var chaosModes = []string{"active-backup", "balance-xor", "802.3ad"}

// chaosOptionsFrom reads the options through getenv; errors name the
// variable and what it accepts.
func chaosOptionsFrom(getenv func(string) string) (chaosOptions, error) {
	o := chaosOptions{dur: 60 * time.Second, modes: chaosModes, killEvery: 45 * time.Second,
		kill: killRestartSupported, seed: rand.Uint64() % 1_000_000, floodPPS: 20000}
	dur := func(name string, dst *time.Duration, zeroOK bool) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d == 0 && !zeroOK) {
			allowed := "a positive Go duration such as 60s or 30m"
			if zeroOK {
				allowed = "a Go duration such as 3m, 0 for never"
			}
			return fmt.Errorf("%s=%q: want %s", name, v, allowed)
		}
		*dst = d
		return nil
	}
	if err := dur("BOND_APPLIANCE_CHAOS", &o.dur, false); err != nil {
		return o, err
	}
	if err := dur("BOND_APPLIANCE_CHAOS_KILL_EVERY", &o.killEvery, true); err != nil {
		return o, err
	}
	if v := getenv("BOND_APPLIANCE_CHAOS_MODES"); v != "" {
		o.modes = nil
		for _, m := range strings.Split(v, ",") {
			m = strings.TrimSpace(m)
			ok := false
			for _, k := range chaosModes {
				ok = ok || k == m
			}
			if !ok {
				return o, fmt.Errorf("BOND_APPLIANCE_CHAOS_MODES=%q: mode %q: want a comma-separated list of %s", v, m, strings.Join(chaosModes, ", "))
			}
			o.modes = append(o.modes, m)
		}
	}
	switch v := getenv("BOND_APPLIANCE_CHAOS_KILL"); v {
	case "":
	case "1":
		o.kill, o.killForce = true, true
	case "0":
		o.kill = false
	default:
		return o, fmt.Errorf("BOND_APPLIANCE_CHAOS_KILL=%q: want 1 (kill -9 and restart) or 0 (never)", v)
	}
	if v := getenv("BOND_APPLIANCE_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("BOND_APPLIANCE_CHAOS_SEED=%q: want an unsigned integer", v)
		}
		o.seed = s
	}
	if v := getenv("BOND_APPLIANCE_CHAOS_FLOOD_PPS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return o, fmt.Errorf("BOND_APPLIANCE_CHAOS_FLOOD_PPS=%q: want frames per second > 0", v)
		}
		o.floodPPS = f
	}
	return o, nil
}

func TestChaosOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" = no error
		check   func(chaosOptions) bool
	}{
		{"defaults", nil, "", func(o chaosOptions) bool {
			return o.dur == time.Minute && len(o.modes) == 3 && o.killEvery == 45*time.Second && o.kill == killRestartSupported && o.floodPPS == 20000
		}},
		{"long run", map[string]string{"BOND_APPLIANCE_CHAOS": "30m", "BOND_APPLIANCE_CHAOS_MODES": "802.3ad", "BOND_APPLIANCE_CHAOS_SEED": "7"}, "",
			func(o chaosOptions) bool {
				return o.dur == 30*time.Minute && len(o.modes) == 1 && o.modes[0] == "802.3ad" && o.seed == 7
			}},
		{"kill forced", map[string]string{"BOND_APPLIANCE_CHAOS_KILL": "1", "BOND_APPLIANCE_CHAOS_KILL_EVERY": "0"}, "",
			func(o chaosOptions) bool { return o.kill && o.killForce && o.killEvery == 0 }},
		{"kill off", map[string]string{"BOND_APPLIANCE_CHAOS_KILL": "0"}, "", func(o chaosOptions) bool { return !o.kill }},
		{"bad duration", map[string]string{"BOND_APPLIANCE_CHAOS": "soon"}, "BOND_APPLIANCE_CHAOS=\"soon\": want a positive Go duration", nil},
		{"zero duration", map[string]string{"BOND_APPLIANCE_CHAOS": "0s"}, "want a positive", nil},
		{"negative kill interval", map[string]string{"BOND_APPLIANCE_CHAOS_KILL_EVERY": "-1m"}, "BOND_APPLIANCE_CHAOS_KILL_EVERY", nil},
		{"unknown mode", map[string]string{"BOND_APPLIANCE_CHAOS_MODES": "active-backup,balance-rr"}, "mode \"balance-rr\": want a comma-separated list of active-backup, balance-xor, 802.3ad", nil},
		{"bad kill", map[string]string{"BOND_APPLIANCE_CHAOS_KILL": "yes"}, "want 1 (kill -9 and restart) or 0", nil},
		{"bad seed", map[string]string{"BOND_APPLIANCE_CHAOS_SEED": "-3"}, "BOND_APPLIANCE_CHAOS_SEED", nil},
		{"bad rate", map[string]string{"BOND_APPLIANCE_CHAOS_FLOOD_PPS": "0"}, "frames per second > 0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := chaosOptionsFrom(func(k string) string { return tc.env[k] })
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.check != nil && !tc.check(o):
				t.Fatalf("options %+v", o)
			}
		})
	}
}

// chaosEnv reads the options from the process environment.
func chaosEnv(t *testing.T) chaosOptions {
	t.Helper()
	o, err := chaosOptionsFrom(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
