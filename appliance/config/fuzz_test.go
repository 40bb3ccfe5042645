package config

import (
	"os"
	"testing"
)

// FuzzParse: any input gives a configuration or an error, never a panic,
// and an accepted configuration validates again without error.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../configs/bond.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("bonds:\n  - name: bond0\n    slaves: [a, b]\n    mode: 4\n    lacp_rate: fast\n"))
	f.Add([]byte("bonds: [{name: x, slaves: [{name: e0, prio: 3}], arp_interval: 100, arp_ip_target: 10.0.0.1}]"))
	f.Add([]byte("dataplane: {cores: [0, 1], queues: 2}\nbonds: [{name: b, slaves: [e]}]"))
	f.Add([]byte(":\n- [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := Parse(data)
		if err != nil {
			return
		}
		if _, err := c.Validate(); err != nil {
			t.Fatalf("accepted configuration fails validation again: %v", err)
		}
	})
}

// FuzzParseWith: any environment variable or --set value gives a
// configuration or an error, never a panic, and an accepted configuration
// validates again without error.
func FuzzParseWith(f *testing.F) {
	base := []byte("bonds: [{name: bond0, slaves: [m0, m1]}]\n")
	f.Add("BOND_APPLIANCE_DATAPLANE_POLL", "busy", "log.level=warn")
	f.Add("BOND_APPLIANCE_DATAPLANE_CORES", "0,1", "dataplane.queues=4")
	f.Add("BOND_APPLIANCE_METRICS_LISTEN", "", "control.socket=/run/x.sock")
	f.Add("BOND_APPLIANCE_BONDS_MIIMON", "1", "bonds[0].mode=4")
	f.Add("BOND_APPLIANCE_PRIVILEGED", "1", "=")
	f.Fuzz(func(t *testing.T, name, value, override string) {
		c, _, err := ParseWith(base, []string{name + "=" + value}, []string{override})
		if err != nil {
			return
		}
		if _, err := c.Validate(); err != nil {
			t.Fatalf("accepted configuration fails validation again: %v", err)
		}
	})
}
