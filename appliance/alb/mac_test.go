package alb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestActiveChangeMACs(t *testing.T) {
	type step struct {
		old, new int
		want     string // the MAC changes
	}
	for _, tc := range []struct {
		name  string
		mode  Mode
		bond  MAC
		steps []step
		final string // each slave's address afterwards
	}{
		{
			name: "bond address of slave 0", mode: ModeALB, bond: mac(1),
			steps: []step{
				{-1, 0, "[]"},
				{0, 1, "[{0 02:00:00:00:00:02 true} {1 02:00:00:00:00:01 true}]"},
				{1, 2, "[{1 02:00:00:00:00:03 true} {2 02:00:00:00:00:01 true}]"},
				{2, 0, "[{2 02:00:00:00:00:02 true} {0 02:00:00:00:00:01 true}]"},
			},
			final: "02:00:00:00:00:01 02:00:00:00:00:03 02:00:00:00:00:02",
		},
		{
			name: "own bond address", mode: ModeALB, bond: mac(0x99),
			steps: []step{
				{-1, 1, "[{1 02:00:00:00:00:99 true}]"},
				{1, 0, "[{1 02:00:00:00:00:01 true} {0 02:00:00:00:00:99 true}]"},
				{0, -1, "[]"},
				// no active slave: the holder of the bond's address swaps
				{-1, 2, "[{0 02:00:00:00:00:03 true} {2 02:00:00:00:00:99 true}]"},
			},
			final: "02:00:00:00:00:03 02:00:00:00:00:01 02:00:00:00:00:99",
		},
		{
			name: "balance-tlb", mode: ModeTLB, bond: mac(1),
			steps: []step{
				{-1, 0, "[]"},
				{0, 2, "[{0 02:00:00:00:00:03 false} {2 02:00:00:00:00:01 false}]"},
			},
			final: "02:00:00:00:00:03 02:00:00:00:00:02 02:00:00:00:00:01",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Mode: tc.mode, BondMAC: tc.bond, DynamicLB: true}
			for i := range 3 {
				cfg.Slaves = append(cfg.Slaves, Slave{Speed: 1000, MAC: mac(i + 1), Up: true})
			}
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.steps {
				got := fmt.Sprint(b.ActiveChange(s.old, s.new))
				if got != s.want {
					t.Fatalf("ActiveChange(%d, %d) = %s, want %s", s.old, s.new, got, s.want)
				}
				if b.Active() != s.new || b.Table().Active != s.new {
					t.Fatalf("active %d table %d, want %d", b.Active(), b.Table().Active, s.new)
				}
				if s.new >= 0 && b.MAC(s.new) != tc.bond {
					t.Fatalf("the new active slave has %s, not the bond's address", b.MAC(s.new))
				}
			}
			var got []string
			for _, c := range b.MACs() {
				got = append(got, c.MAC.String())
			}
			if strings.Join(got, " ") != tc.final {
				t.Fatalf("addresses %v, want %s", got, tc.final)
			}
		})
	}
}

func TestActiveChangeLearningPackets(t *testing.T) {
	b := newBond(t, ModeTLB, 1000, 1000)
	b.ActiveChange(0, 1)
	o := b.Drain()
	// both slaves can transmit: each announces its new address
	if len(o.Frames) != 2 || len(o.Promisc) != 0 {
		t.Fatalf("output %v", o)
	}
	for _, f := range o.Frames {
		if [6]byte(f.Data[6:12]) != b.MAC(f.Slave) || be16(f.Data, 12) != ethPLoopback {
			t.Fatalf("learning packet % x on slave %d", f.Data, f.Slave)
		}
	}
	if b.ActiveChange(1, 1) != nil || len(b.Drain().Frames) != 0 {
		t.Fatal("no change expected")
	}
	if b.ActiveChange(5, 0) != nil || b.ActiveChange(0, -2) != nil {
		t.Fatal("out-of-range slaves accepted")
	}
}

func TestAttachCollisions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bond  MAC
		perms []MAC
		want  string
		err   bool
	}{
		{"distinct", mac(1), []MAC{mac(1), mac(2), mac(3)}, "02:00:00:00:00:01 02:00:00:00:00:02 02:00:00:00:00:03", false},
		// the bond's address is slave 1's: slave 1 keeps it (no active yet)
		{"bond address later", mac(2), []MAC{mac(1), mac(2)}, "02:00:00:00:00:01 02:00:00:00:00:02", false},
		// slave 2 has slave 0's address: it gets the bond's, then the
		// free permanent address of... nobody; it keeps the bond's
		{"duplicate", mac(9), []MAC{mac(1), mac(2), mac(1)}, "02:00:00:00:00:01 02:00:00:00:00:02 02:00:00:00:00:09", false},
		// slave 1 took the bond's address instead of its duplicate; slave
		// 2, whose permanent address is the bond's, finds none free
		{"bond address taken", mac(3), []MAC{mac(1), mac(1), mac(3)}, "", true},
		{"three duplicates", mac(9), []MAC{mac(1), mac(1), mac(1)}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Mode: ModeALB, BondMAC: tc.bond}
			for _, p := range tc.perms {
				cfg.Slaves = append(cfg.Slaves, Slave{Speed: 1000, MAC: p})
			}
			b, err := New(cfg)
			if tc.err {
				if err == nil {
					t.Fatalf("no error; addresses %v", b.MACs())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range b.MACs() {
				got = append(got, c.MAC.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("addresses %v, want %s", got, tc.want)
			}
		})
	}
}

func TestAttachGivesFreeAddress(t *testing.T) {
	// slave 0 became active with the bond's address before slave 2 joins
	// with that address as its permanent one: slave 2 gets slave 0's
	// unused permanent address (alb_handle_addr_collision_on_attach)
	sh := &shared{mode: ModeALB, bond: mac(9), active: -1}
	sh.s = []slave{{perm: mac(1), cur: mac(9)}, {perm: mac(2), cur: mac(2)}, {perm: mac(9), cur: mac(9)}}
	if err := attach(sh, 2); err != nil {
		t.Fatal(err)
	}
	if sh.s[2].cur != mac(1) {
		t.Fatalf("slave 2 got %s, want slave 0's permanent address", sh.s[2].cur)
	}
}

func TestNewErrors(t *testing.T) {
	ok := Slave{Speed: 1000, MAC: mac(1)}
	for _, cfg := range []Config{
		{Mode: 4, BondMAC: mac(1), Slaves: []Slave{ok}},
		{Mode: ModeALB, BondMAC: mac(1)},
		{Mode: ModeALB, BondMAC: broadcast, Slaves: []Slave{ok}},
		{Mode: ModeALB, BondMAC: mac(1), Slaves: []Slave{{MAC: MAC{}}}},
		{Mode: ModeALB, BondMAC: mac(1), Slaves: []Slave{ok}, VLANs: []uint16{4095}},
		{Mode: ModeALB, BondMAC: mac(1), Slaves: make([]Slave, MaxSlaves+1)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestGoldenLearningPackets(t *testing.T) {
	zeros := strings.Repeat("00", 46)
	if got, want := learningPacket(mac(2), 0), unhex(t, "020000000002 020000000002 9000"+zeros); !bytes.Equal(got, want) {
		t.Fatalf("untagged:\n% x\nwant\n% x", got, want)
	}
	if got, want := learningPacket(mac(2), 10), unhex(t, "020000000002 020000000002 8100 000a 9000"+zeros); !bytes.Equal(got, want) {
		t.Fatalf("tagged:\n% x\nwant\n% x", got, want)
	}
}

func TestPeriodicLearningPackets(t *testing.T) {
	cfg := Config{Mode: ModeALB, BondMAC: mac(1), DynamicLB: true, LPInterval: 2 * time.Second, VLANs: []uint16{10, 20}}
	for i := range 3 {
		cfg.Slaves = append(cfg.Slaves, Slave{Speed: 1000, MAC: mac(i + 1), Up: i != 2})
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.ActiveChange(-1, 0)
	b.Drain()
	now := time.Duration(0)
	b.Tick(now, nil)
	if o := tickUntil(b, &now, 1900*time.Millisecond); len(o.Frames) != 0 {
		t.Fatalf("%d frames before lp_interval", len(o.Frames))
	}
	o := tickUntil(b, &now, 2*time.Second)
	// slaves 0 and 1 (slave 2 is down): untagged + 2 VLANs each
	if len(o.Frames) != 6 || framesBy(o.Frames)[0] != 3 || framesBy(o.Frames)[1] != 3 {
		t.Fatalf("learning packets %v", framesBy(o.Frames))
	}
	for _, f := range o.Frames {
		if [6]byte(f.Data[0:6]) != b.MAC(f.Slave) || [6]byte(f.Data[6:12]) != b.MAC(f.Slave) {
			t.Fatalf("learning packet % x on slave %d", f.Data[:12], f.Slave)
		}
	}
	// a long pause: the missed ticks run, bounded
	o = b.Tick(now+time.Hour, nil)
	if n := len(o.Frames); n == 0 || n > 6*maxCatchUp/(2*ticksPerSec) {
		t.Fatalf("%d frames after a pause", n)
	}
	if b.Status().LearningSent == 0 {
		t.Fatal("not counted")
	}
}

func TestStatus(t *testing.T) {
	b := newBond(t, ModeALB, 1000, 10000)
	b.HostTx(hostReply(0))
	b.HostTx(hostRequest(1))
	st := b.Status()
	if st.Slaves[1].Clients != 2 || st.Slaves[0].Clients != 0 || len(st.Clients) != 2 || st.Active != 0 {
		t.Fatalf("status %+v", st)
	}
	if st.Clients[0].MAC != "" || st.Clients[1].MAC != clientMAC(0).String() {
		t.Fatalf("clients %+v", st.Clients)
	}
	j, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"rlb_clients":[`, `"tlb_load_bytes_per_sec":`, `"ip":"10.0.0.12"`, `"active_slave":0`} {
		if !bytes.Contains(j, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, j)
		}
	}
	var w strings.Builder
	if err := st.WriteText(&w, []string{"eth0", "eth1"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"active slave eth0", "Slave eth1: up, 10000 Mb/s", "10.0.0.1        10.0.0.11       52:54:00:00:00:11 eth1"} {
		if !strings.Contains(w.String(), k) {
			t.Errorf("text lacks %q:\n%s", k, w.String())
		}
	}
}
