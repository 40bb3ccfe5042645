package xsk

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestXDPMaxTxSkbBudgetOption(t *testing.T) {
	// include/uapi/linux/if_xdp.h: #define XDP_MAX_TX_SKB_BUDGET 9
	if unix.XDP_MAX_TX_SKB_BUDGET != 9 {
		t.Fatalf("XDP_MAX_TX_SKB_BUDGET = %d, want 9", unix.XDP_MAX_TX_SKB_BUDGET)
	}
}

func TestSetTxBudget(t *testing.T) {
	for _, tc := range []struct {
		name       string
		want, ring uint32
		err        error
		set        uint32 // value passed to setsockopt, 0 = not called
		got        uint32
	}{
		{"batch 64", 64, 2048, nil, 64, 64},
		{"not asked", 0, 2048, nil, 0, DefaultTxBudget},
		{"below the kernel minimum", 16, 2048, nil, 32, 32},
		{"above the ring", 4096, 2048, nil, 2048, 2048},
		{"ring smaller than the minimum", 64, 16, nil, 0, DefaultTxBudget},
		{"old kernel", 64, 2048, unix.ENOPROTOOPT, 64, DefaultTxBudget},
		{"refused", 64, 2048, unix.EINVAL, 64, DefaultTxBudget},
		{"out of range", 64, 2048, unix.EACCES, 64, DefaultTxBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var set uint32
			got := setTxBudget(tc.want, tc.ring, func(v uint32) error { set = v; return tc.err })
			if got != tc.got || set != tc.set {
				t.Fatalf("budget %d (setsockopt %d), want %d (setsockopt %d)", got, set, tc.got, tc.set)
			}
		})
	}
}
