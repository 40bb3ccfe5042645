package config

import (
	"strconv"
	"testing"

	"github.com/bond-appliance/bond-appliance/policy"
)

// The mode and xmit_hash_policy options take exactly package policy's
// names and numbers, and say so in the same words as before.
func TestModeTableFromPolicy(t *testing.T) {
	mode, xmit := opt("mode"), opt("xmit_hash_policy")
	type named struct {
		o    Option
		name string
		num  int
	}
	var tests []named
	n := 0
	for m := policy.Mode(0); m.Valid(); m++ {
		tests = append(tests, named{mode, m.String(), int(m)})
		n++
	}
	for p := policy.HashPolicy(0); p.Valid(); p++ {
		tests = append(tests, named{xmit, p.String(), int(p)})
	}
	for _, tc := range tests {
		for _, in := range []string{tc.name, strconv.Itoa(tc.num)} {
			v, err := tc.o.Parse(in)
			if err != nil || v != tc.num {
				t.Errorf("%s: Parse(%q) = %v, %v; want %d", tc.o.Name, in, v, err, tc.num)
			}
		}
		if got := tc.o.Format(tc.num); got != tc.name {
			t.Errorf("%s: Format(%d) = %q, want %q", tc.o.Name, tc.num, got, tc.name)
		}
	}
	if len(mode.Values) != n || len(xmit.Values) != 6 {
		t.Errorf("mode has %d values, xmit_hash_policy %d; want %d and 6", len(mode.Values), len(xmit.Values), n)
	}
	if bits := popcount(uint(AllModes)); bits != n {
		t.Errorf("AllModes holds %d modes, policy has %d", bits, n)
	}
	cases := []struct {
		got, want string
	}{
		{mode.Allowed(), "balance-rr|0, active-backup|1, balance-xor|2, broadcast|3, 802.3ad|4, balance-tlb|5, balance-alb|6"},
		{xmit.Allowed(), "layer2|0, layer3+4|1, layer2+3|2, encap2+3|3, encap3+4|4, vlan+srcmac|5"},
		{mode.Default, "balance-rr"},
		{xmit.Default, "layer2"},
		{ModeName(Mode8023AD), "802.3ad"},
		{ModeName(7), "7"},
		{ModeName(-1), "-1"},
		{bondModeName(ModeActiveBackup), "fault-tolerance (active-backup)"},
		{bondModeName(9), "unknown"},
		{bondModeName(-3), "unknown"},
		{modes(Mode8023AD, ModeBalanceTLB).String(), "802.3ad, balance-tlb"},
		{AllModes.String(), "all"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, m := range []int{-1, 7, 8, 300} {
		if AllModes.Has(m) {
			t.Errorf("AllModes.Has(%d) = true", m)
		}
	}
}

func popcount(x uint) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
