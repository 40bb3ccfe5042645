package xsk

import (
	"fmt"
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

// TestTxBudgetRealSocket sets the budget on a real (unbound) AF_XDP
// socket; it is skipped where AF_XDP sockets cannot be created.
func TestTxBudgetRealSocket(t *testing.T) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("AF_XDP socket: %v", err)
	}
	defer unix.Close(fd)
	set := func(v uint32) error { return setInt(fd, unix.XDP_MAX_TX_SKB_BUDGET, v) }
	// without a TX ring the kernel refuses (or does not know the option)
	if got := setTxBudget(64, 256, set); got != DefaultTxBudget {
		t.Fatalf("budget %d without a TX ring", got)
	}
	if err := setInt(fd, unix.XDP_TX_RING, 256); err != nil {
		t.Fatal(err)
	}
	got := setTxBudget(64, 256, set)
	if err := set(64); err != nil {
		if got != DefaultTxBudget {
			t.Fatalf("budget %d although the kernel refuses it (%v)", got, err)
		}
		t.Skipf("kernel without XDP_MAX_TX_SKB_BUDGET: %v", err)
	}
	if got != 64 {
		t.Fatalf("budget %d, want 64", got)
	}
	if err := set(512); err == nil {
		t.Fatal("kernel accepted a budget above the TX ring size")
	}
}

// TestMultiBufferConstants: the uapi values jumbo frames rely on
// (include/uapi/linux/if_xdp.h).
func TestMultiBufferConstants(t *testing.T) {
	if unix.XDP_USE_SG != 1<<4 || unix.XDP_PKT_CONTD != 1 {
		t.Fatalf("XDP_USE_SG = %#x, XDP_PKT_CONTD = %#x", unix.XDP_USE_SG, unix.XDP_PKT_CONTD)
	}
}

// TestProbeSG: on a kernel that has multi-buffer AF_XDP (Linux ≥ 6.6)
// the probe succeeds and changes nothing; it needs CAP_NET_RAW.
func TestProbeSG(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("AF_XDP sockets need root")
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil || major < 6 || (major == 6 && minor < 6) {
		t.Skipf("kernel %s: before 6.6", unix.ByteSliceToString(u.Release[:]))
	}
	if err := ProbeSG(); err != nil {
		t.Fatal(err)
	}
}
