package netdev

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// fakeOps are devices in memory. Before every change it checks, through
// check, that the state file already records it.
type fakeOps struct {
	groOn map[string]bool // GRO per device
	ipv6  map[string]bool // disable_ipv6 per device (absent: no IPv6)
	devs  map[string]*devState
	chans map[string]Channels
	check func(op, dev string)
	fail  string // an op that fails
}

func newFake() *fakeOps {
	mac, _ := net.ParseMAC("02:42:b0:00:00:01")
	return &fakeOps{
		devs:  map[string]*devState{"m0": {Index: 7, Type: "veth", MAC: mac, MTU: 1500, Up: false}},
		chans: map[string]Channels{"m0": {MaxRx: 2, MaxTx: 2, Rx: 2, Tx: 2}},
	}
}

func (f *fakeOps) before(op, dev string) error {
	if f.check != nil {
		f.check(op, dev)
	}
	if f.fail == op {
		return errors.New("injected failure")
	}
	return nil
}

func (f *fakeOps) get(name string) (devState, error) {
	d, ok := f.devs[name]
	if !ok {
		return devState{}, fmt.Errorf("%s: %w", name, ErrNoDevice)
	}
	return *d, nil
}

func (f *fakeOps) dev(name string) *devState { return f.devs[name] }

func (f *fakeOps) ipv6Disabled(name string) (bool, bool, error) {
	off, ok := f.ipv6[name]
	return off, ok, nil
}

func (f *fakeOps) gro(name string) (bool, error) { return f.groOn[name], nil }

func (f *fakeOps) setGRO(name string, on bool) error {
	if err := f.before("gro", name); err != nil {
		return err
	}
	if f.groOn == nil {
		f.groOn = map[string]bool{}
	}
	f.groOn[name] = on
	return nil
}

func (f *fakeOps) setIPv6Disabled(name string, off bool) error {
	if err := f.before("ipv6", name); err != nil {
		return err
	}
	if f.ipv6 == nil {
		f.ipv6 = map[string]bool{}
	}
	f.ipv6[name] = off
	return nil
}

func (f *fakeOps) setMAC(name string, mac net.HardwareAddr) error {
	if err := f.before("mac", name); err != nil {
		return err
	}
	f.dev(name).MAC = mac
	return nil
}
func (f *fakeOps) setMTU(name string, mtu int) error {
	if err := f.before("mtu", name); err != nil {
		return err
	}
	f.dev(name).MTU = mtu
	return nil
}
func (f *fakeOps) setUp(name string, up bool) error {
	if err := f.before("updown", name); err != nil {
		return err
	}
	f.dev(name).Up = up
	return nil
}
func (f *fakeOps) setAllmulti(name string, on bool) error {
	if err := f.before("allmulti", name); err != nil {
		return err
	}
	f.dev(name).Allmulti = on
	return nil
}
func (f *fakeOps) setPromisc(name string, on bool) error {
	if err := f.before("promisc", name); err != nil {
		return err
	}
	f.dev(name).Promisc = on
	return nil
}
func (f *fakeOps) getChannels(name string) (Channels, error) {
	c, ok := f.chans[name]
	if !ok {
		return c, errors.New("not supported")
	}
	return c, nil
}
func (f *fakeOps) setChannels(name string, ch Channels) error {
	if err := f.before("channels", name); err != nil {
		return err
	}
	f.chans[name] = ch
	return nil
}
func (f *fakeOps) addVeth(host, peer string, _ int, mac net.HardwareAddr, mtu int) error {
	if err := f.before("veth", host); err != nil {
		return err
	}
	f.devs[host] = &devState{Index: 20, Type: "veth", MAC: mac, MTU: mtu}
	f.devs[peer] = &devState{Index: 21, Type: "veth", MTU: mtu}
	return nil
}
func (f *fakeOps) del(name string) error {
	delete(f.devs, name)
	delete(f.devs, name+"-dp") // a veth goes with its peer
	return nil
}
func (f *fakeOps) attachXDP(name string, id uint32, _ *ebpf.Program, _ int) error {
	f.dev(name).XDPProg = id
	return nil
}

// snapshot is the device state a test compares.
func (f *fakeOps) snapshot() string {
	var b strings.Builder
	for _, n := range []string{"m0", "bond0", "bond0-dp"} {
		if d, ok := f.devs[n]; ok {
			fmt.Fprintf(&b, "%s %d %s %d up=%v am=%v pr=%v xdp=%d ch=%+v;", n, d.Index, d.MAC, d.MTU, d.Up, d.Allmulti, d.Promisc, d.XDPProg, f.chans[n])
		}
	}
	return b.String()
}

func readDoc(t *testing.T, path string) stateDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

var bondMAC, _ = net.ParseMAC("02:00:5e:00:00:99")

// TestJournalWritesBeforeChange: every change is in the state file, with
// the value found, before the device is touched.
func TestJournalWritesBeforeChange(t *testing.T) {
	cases := []struct {
		name   string
		op     string // fakeOps op the change makes
		dev    string
		change func(j *Journal) error
		want   Record
	}{
		{"mac", "mac", "m0", func(j *Journal) error { return j.SetMAC("m0", bondMAC) },
			Record{Kind: KindMAC, Device: "m0", Ifindex: 7, MAC: "02:42:b0:00:00:01"}},
		{"mtu", "mtu", "m0", func(j *Journal) error { return j.SetMTU("m0", 1400) },
			Record{Kind: KindMTU, Device: "m0", Ifindex: 7, MTU: 1500}},
		{"up", "updown", "m0", func(j *Journal) error { return j.SetUp("m0", true) },
			Record{Kind: KindUp, Device: "m0", Ifindex: 7, On: false}},
		{"allmulti", "allmulti", "m0", func(j *Journal) error { return j.SetAllmulti("m0", true) },
			Record{Kind: KindAllmulti, Device: "m0", Ifindex: 7, On: false}},
		{"promisc", "promisc", "m0", func(j *Journal) error { return j.SetPromisc("m0", true) },
			Record{Kind: KindPromisc, Device: "m0", Ifindex: 7, On: false}},
		{"channels", "channels", "m0", func(j *Journal) error { return j.SetQueues("m0", 1) },
			Record{Kind: KindChannels, Device: "m0", Ifindex: 7, Channels: &Channels{MaxRx: 2, MaxTx: 2, Rx: 2, Tx: 2}}},
		{"veth", "veth", "bond0", func(j *Journal) error { return j.CreateVeth("bond0", "bond0-dp", 1, bondMAC, 1500) },
			Record{Kind: KindVeth, Device: "bond0", Peer: "bond0-dp"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.json")
			f := newFake()
			j := &Journal{ops: f}
			if _, err := j.Open(path, nil); err != nil {
				t.Fatal(err)
			}
			seen := false
			f.check = func(op, dev string) {
				if op != c.op || dev != c.dev {
					return
				}
				seen = true
				d := readDoc(t, path)
				got, _ := json.Marshal(d.Records)
				want, _ := json.Marshal([]Record{c.want})
				if string(got) != string(want) {
					t.Errorf("state file before the %s change: %s, want %s", op, got, want)
				}
			}
			before := f.snapshot()
			if err := c.change(j); err != nil {
				t.Fatal(err)
			}
			if !seen {
				t.Fatalf("no %s change made", c.op)
			}
			f.check = nil
			if err := j.Restore(); err != nil {
				t.Fatal(err)
			}
			if after := f.snapshot(); after != before {
				t.Errorf("after Restore:\n%s\nwant\n%s", after, before)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file left after a clean Restore: %v", err)
			}
		})
	}
}

// TestJournalFailedChangeDropsRecord: a change that fails leaves no record.
func TestJournalFailedChangeDropsRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	f := newFake()
	f.fail = "mtu"
	j := &Journal{ops: f}
	if _, err := j.Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer j.Restore()
	if err := j.SetMTU("m0", 1400); err == nil {
		t.Fatal("SetMTU succeeded with an injected failure")
	}
	if d := readDoc(t, path); len(d.Records) != 0 {
		t.Fatalf("records after a failed change: %+v", d.Records)
	}
}

// TestJournalReload: a state file left by a dead process is restored on
// Open with the true originals, even when the leftovers were changed
// again; the journal then records afresh.
func TestJournalReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	f := newFake()
	before := f.snapshot()
	j1 := &Journal{ops: f}
	if _, err := j1.Open(path, nil); err != nil {
		t.Fatal(err)
	}
	steps := []func(*Journal) error{
		func(j *Journal) error { return j.CreateVeth("bond0", "bond0-dp", 1, bondMAC, 1400) },
		func(j *Journal) error { return j.SetUp("bond0", true) },
		func(j *Journal) error { return j.SetMTU("m0", 1400) },
		func(j *Journal) error { return j.SetMAC("m0", bondMAC) },
		func(j *Journal) error { return j.SetQueues("m0", 1) },
		func(j *Journal) error { return j.SetAllmulti("m0", true) },
		func(j *Journal) error { return j.SetUp("m0", true) },
		func(j *Journal) error { return j.SetMTU("m0", 9000) }, // a second change: the original stays 1500
	}
	for _, s := range steps {
		if err := s(j1); err != nil {
			t.Fatal(err)
		}
	}
	// the process dies: its lock goes, the file stays
	j1.st.release()
	if d := readDoc(t, path); len(d.Records) != 7 {
		t.Fatalf("%d records in the file, want 7: %+v", len(d.Records), d.Records)
	}

	j2 := &Journal{ops: f}
	var got []string
	leftover, err := j2.Open(path, func(s Step) { got = append(got, s.String()) })
	if err != nil || !leftover {
		t.Fatalf("Open: leftover %v, err %v", leftover, err)
	}
	if after := f.snapshot(); after != before {
		t.Errorf("after reload:\n%s\nwant\n%s\nsteps %q", after, before, got)
	}
	want := []string{
		"m0: updown up → down", "m0: allmulti on → off", "m0: channels rx 1 tx 1 → rx 2 tx 2",
		"m0: mac 02:00:5e:00:00:99 → 02:42:b0:00:00:01", "m0: mtu 9000 → 1500",
		"bond0: updown up → down", "bond0: veth present → deleted",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("steps:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := readDoc(t, path); len(d.Records) != 0 || d.PID != os.Getpid() {
		t.Errorf("after reload the file has %+v (pid %d), want no records and this pid", d.Records, d.PID)
	}
	// fresh records hold the true original, not the leftover
	if err := j2.SetMTU("m0", 1400); err != nil {
		t.Fatal(err)
	}
	if r := j2.Records(); len(r) != 1 || r[0].MTU != 1500 {
		t.Errorf("fresh records %+v, want mtu 1500", r)
	}
	if err := j2.Restore(); err != nil {
		t.Fatal(err)
	}
}

// TestJournalOpenRefusals: unreadable files are refused naming the file,
// and a file a live process owns is refused.
func TestJournalOpenRefusals(t *testing.T) {
	good := `{"version":1,"pid":1,"boot_id":"` + bootID() + `","records":[]}`
	cases := []struct {
		name, content string
		want          []string
	}{
		{"empty", "", []string{"unreadable", "j.json", "EOF"}},
		{"truncated", good[:len(good)-10], []string{"unreadable", "j.json", "unexpected EOF"}},
		{"garbage", "\x00\x01not json", []string{"unreadable", "j.json", "invalid character"}},
		{"unknown version", `{"version":2,"pid":1,"records":[]}`, []string{"j.json", "version 2", "reads version 1"}},
		{"unknown field", `{"version":1,"pid":1,"recs":[]}`, []string{"j.json", `unknown field "recs"`}},
		{"record without kind", `{"version":1,"pid":1,"boot_id":"x","records":[{"device":"m0"}]}`, []string{"j.json", "records[0]", "kind"}},
		{"unknown kind", `{"version":1,"pid":1,"boot_id":"` + bootID() + `","records":[{"kind":"frobnicate","device":"m0","ifindex":7}]}`,
			[]string{"j.json", `unknown record kind "frobnicate"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.json")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			j := &Journal{ops: newFake()}
			_, err := j.Open(path, nil)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != c.content {
				t.Errorf("file changed to %q", b)
			}
			// the lock is free again: a second Open gets the same error, not ErrLive
			if _, err2 := (&Journal{ops: newFake()}).Open(path, nil); err2 == nil || errors.Is(err2, ErrLive) {
				t.Errorf("second Open: %v", err2)
			}
		})
	}
	t.Run("live owner", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.json")
		j := &Journal{ops: newFake()}
		if _, err := j.Open(path, nil); err != nil {
			t.Fatal(err)
		}
		defer j.Restore()
		_, err := (&Journal{ops: newFake()}).Open(path, nil)
		if !errors.Is(err, ErrLive) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("Open of a live journal: %v", err)
		}
		if _, err := Cleanup(path, nil); !errors.Is(err, ErrLive) {
			t.Fatalf("Cleanup of a live journal: %v", err)
		}
	})
	t.Run("earlier boot", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.json")
		os.WriteFile(path, []byte(`{"version":1,"pid":1,"boot_id":"another-boot","records":[{"kind":"mtu","device":"m0","ifindex":7,"mtu":9000}]}`), 0o600)
		f := newFake()
		j := &Journal{ops: f}
		if _, err := j.Open(path, nil); err != nil {
			t.Fatal(err)
		}
		defer j.Restore()
		if f.devs["m0"].MTU != 1500 {
			t.Fatalf("a record from an earlier boot was applied: mtu %d", f.devs["m0"].MTU)
		}
	})
}

// TestJournalRestoreDevice: undoing one device's records leaves the others
// in the file.
func TestJournalRestoreDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	f := newFake()
	j := &Journal{ops: f}
	if _, err := j.Open(path, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.CreateVeth("bond0", "bond0-dp", 1, bondMAC, 1500); err != nil {
		t.Fatal(err)
	}
	if err := j.SetMTU("m0", 1400); err != nil {
		t.Fatal(err)
	}
	if err := j.RestoreDevice("m0"); err != nil {
		t.Fatal(err)
	}
	d := readDoc(t, path)
	if len(d.Records) != 1 || d.Records[0].Kind != KindVeth || f.devs["m0"].MTU != 1500 {
		t.Fatalf("after RestoreDevice(m0): file %+v, m0 mtu %d", d.Records, f.devs["m0"].MTU)
	}
	if err := j.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.devs["bond0"]; ok {
		t.Fatal("veth not deleted")
	}
}

// A member's IPv6 is turned off while it is a member and put back as found;
// a kernel without IPv6, or a device with IPv6 already off, is left alone.
func TestJournalDisableIPv6(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ipv6      map[string]bool
		wantWhile map[string]bool
		wantAfter map[string]bool
	}{
		{"on, turned off, put back", map[string]bool{"m0": false}, map[string]bool{"m0": true}, map[string]bool{"m0": false}},
		{"already off", map[string]bool{"m0": true}, map[string]bool{"m0": true}, map[string]bool{"m0": true}},
		{"no IPv6", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.ipv6 = tc.ipv6
			j := &Journal{ops: f}
			if err := j.DisableIPv6("m0"); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(f.ipv6) != fmt.Sprint(tc.wantWhile) {
				t.Fatalf("while a member: %v, want %v", f.ipv6, tc.wantWhile)
			}
			if err := j.Restore(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(f.ipv6) != fmt.Sprint(tc.wantAfter) {
				t.Fatalf("after restore: %v, want %v", f.ipv6, tc.wantAfter)
			}
		})
	}
}

// GRO is turned on for the fast path while a device is a member and put
// back as found; a device that has it already is left alone.
func TestJournalSetGRO(t *testing.T) {
	for _, tc := range []struct {
		name             string
		found            bool
		wantRec          int
		while, wantAfter bool
	}{
		{"off, turned on, put back", false, 1, true, false},
		{"already on", true, 0, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.groOn = map[string]bool{"m0": tc.found}
			j := &Journal{ops: f}
			if err := j.SetGRO("m0", true); err != nil {
				t.Fatal(err)
			}
			if f.groOn["m0"] != tc.while || len(j.Records()) != tc.wantRec {
				t.Fatalf("while a member: gro %v, %d records, want %v, %d", f.groOn["m0"], len(j.Records()), tc.while, tc.wantRec)
			}
			if err := j.Restore(); err != nil {
				t.Fatal(err)
			}
			if f.groOn["m0"] != tc.wantAfter {
				t.Fatalf("after restore: gro %v, want %v", f.groOn["m0"], tc.wantAfter)
			}
		})
	}
}
