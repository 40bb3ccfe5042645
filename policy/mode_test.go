package policy

import "testing"

func TestModeStrings(t *testing.T) {
	cases := []struct {
		m    Mode
		num  uint8
		name string
		desc string
		xor  bool
	}{
		{BalanceRR, 0, "balance-rr", "load balancing (round-robin)", false},
		{ActiveBackup, 1, "active-backup", "fault-tolerance (active-backup)", false},
		{BalanceXOR, 2, "balance-xor", "load balancing (xor)", true},
		{Broadcast, 3, "broadcast", "fault-tolerance (broadcast)", false},
		{IEEE8023AD, 4, "802.3ad", "IEEE 802.3ad Dynamic link aggregation", true},
		{BalanceTLB, 5, "balance-tlb", "transmit load balancing", false},
		{BalanceALB, 6, "balance-alb", "adaptive load balancing", false},
		{Mode(7), 7, "Mode(7)", "unknown", false},
		{Mode(255), 255, "Mode(255)", "unknown", false},
	}
	for _, c := range cases {
		if uint8(c.m) != c.num {
			t.Errorf("%v = %d, want %d", c.m, uint8(c.m), c.num)
		}
		if got := c.m.String(); got != c.name {
			t.Errorf("Mode(%d).String() = %q, want %q", c.num, got, c.name)
		}
		if got := c.m.Description(); got != c.desc {
			t.Errorf("Mode(%d).Description() = %q, want %q", c.num, got, c.desc)
		}
		if got := c.m.UsesXmitHash(); got != c.xor {
			t.Errorf("Mode(%d).UsesXmitHash() = %v", c.num, got)
		}
		if c.m.Valid() {
			for _, s := range []string{c.name, string(rune('0' + c.num))} {
				if m, ok := ParseMode(s); !ok || m != c.m {
					t.Errorf("ParseMode(%q) = %v, %v", s, m, ok)
				}
			}
		}
	}
	if _, ok := ParseMode("balance-xxx"); ok {
		t.Error("ParseMode accepted an unknown name")
	}
}

func TestHashPolicyStrings(t *testing.T) {
	cases := []struct {
		p    HashPolicy
		num  uint8
		name string
		proc string
	}{
		{Layer2, 0, "layer2", "layer2 (0)"},
		{Layer34, 1, "layer3+4", "layer3+4 (1)"},
		{Layer23, 2, "layer2+3", "layer2+3 (2)"},
		{Encap23, 3, "encap2+3", "encap2+3 (3)"},
		{Encap34, 4, "encap3+4", "encap3+4 (4)"},
		{VlanSrcMac, 5, "vlan+srcmac", "vlan+srcmac (5)"},
		{HashPolicy(6), 6, "HashPolicy(6)", "unknown (6)"},
	}
	for _, c := range cases {
		if uint8(c.p) != c.num {
			t.Errorf("%v = %d, want %d", c.p, uint8(c.p), c.num)
		}
		if got := c.p.String(); got != c.name {
			t.Errorf("HashPolicy(%d).String() = %q, want %q", c.num, got, c.name)
		}
		if got := c.p.ProcString(); got != c.proc {
			t.Errorf("HashPolicy(%d).ProcString() = %q, want %q", c.num, got, c.proc)
		}
		if c.p.Valid() {
			for _, s := range []string{c.name, string(rune('0' + c.num))} {
				if p, ok := ParseHashPolicy(s); !ok || p != c.p {
					t.Errorf("ParseHashPolicy(%q) = %v, %v", s, p, ok)
				}
			}
		}
	}
	if _, ok := ParseHashPolicy("layer5"); ok {
		t.Error("ParseHashPolicy accepted an unknown name")
	}
}
