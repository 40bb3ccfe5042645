package bondsm

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
)

var t0 = time.Unix(1000, 0)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// parseBond parses a one-bond configuration with members eth0..eth<n-1>
// and the extra option lines, as a configuration file would give it.
func parseBond(t testing.TB, mode string, n int, extra ...string) config.Bond {
	t.Helper()
	names := []string{"eth0", "eth1", "eth2", "eth3"}[:n]
	y := "bonds:\n  - name: bond0\n    mode: " + mode + "\n"
	own := false
	for _, e := range extra {
		y += "    " + e + "\n"
		own = own || strings.HasPrefix(e, "slaves:")
	}
	if !own {
		y += "    slaves: [" + strings.Join(names, ", ") + "]\n"
	}
	c, _, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("config %q: %v", y, err)
	}
	return c.Bonds[0]
}

func permMAC(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)} }

// bondMAC is the bond's MAC: the first member's permanent one.
var bondMAC = permMAC(0)

func testMember(name string, i int, carrier bool) Member {
	return Member{Name: name, Ifindex: 10 + i, PermMAC: permMAC(i), CurMAC: permMAC(i), Carrier: carrier, Speed: 1000, Duplex: "full"}
}

// setupFor builds the Setup of c with every member up, as the appliance
// prepares it (members take the bond MAC unless UsesOwnMACs).
func setupFor(c config.Bond) Setup {
	s := Setup{Config: c, MTU: 1500, HostDevice: "veth"}
	for i, sc := range c.Slaves {
		m := testMember(sc.Name, i, true)
		m.Slave = sc
		if !UsesOwnMACs(c) {
			m.CurMAC = bondMAC
		}
		s.Members = append(s.Members, m)
	}
	return s
}

func newBond(t testing.TB, c config.Bond) (*Bond, Output) {
	t.Helper()
	b, out, err := New(setupFor(c), t0)
	if err != nil {
		t.Fatal(err)
	}
	return b, out
}

// snapState is the part of a snapshot the tests compare.
type snapState struct {
	TX     []int
	RX     uint64
	Active int
}

func stateOf(s *lane.Snapshot) snapState {
	return snapState{TX: slices.Clone(s.TX), RX: s.RX, Active: s.Active}
}

func (s snapState) equal(o snapState) bool {
	return slices.Equal(s.TX, o.TX) && s.RX == o.RX && s.Active == o.Active
}

func actionsOf(out Output, kind ActionKind) []Action {
	var r []Action
	for _, a := range out.Actions {
		if a.Kind == kind {
			r = append(r, a)
		}
	}
	return r
}

func hasEvent(out Output, msg string) bool {
	return slices.ContainsFunc(out.Events, func(e Event) bool { return e.Msg == msg })
}
