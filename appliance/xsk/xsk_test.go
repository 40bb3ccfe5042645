package xsk

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

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

func TestSetBusyPoll(t *testing.T) {
	type call struct{ opt, v int }
	refuse := func(opt int, err error) func(int) error {
		return func(o int) error {
			if o == opt {
				return err
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name   string
		d      time.Duration
		budget uint32
		fail   func(int) error
		want   bool
		calls  []call
	}{
		{"off", 0, 64, nil, false, nil},
		{"prefer and timeout", 50 * time.Microsecond, 0, nil, true,
			[]call{{unix.SO_PREFER_BUSY_POLL, 1}, {unix.SO_BUSY_POLL, 50}}},
		{"with budget", 20 * time.Microsecond, 64, nil, true,
			[]call{{unix.SO_PREFER_BUSY_POLL, 1}, {unix.SO_BUSY_POLL, 20}, {unix.SO_BUSY_POLL_BUDGET, 64}}},
		{"below a microsecond rounds up", 100 * time.Nanosecond, 0, nil, true,
			[]call{{unix.SO_PREFER_BUSY_POLL, 1}, {unix.SO_BUSY_POLL, 1}}},
		{"old kernel without prefer: nothing left on", 50 * time.Microsecond, 64, refuse(unix.SO_PREFER_BUSY_POLL, unix.ENOPROTOOPT), false,
			[]call{{unix.SO_PREFER_BUSY_POLL, 1}}},
		{"timeout refused (EPERM): prefer turned back off", 50 * time.Microsecond, 64, refuse(unix.SO_BUSY_POLL, unix.EPERM), false,
			[]call{{unix.SO_PREFER_BUSY_POLL, 1}, {unix.SO_BUSY_POLL, 50}, {unix.SO_PREFER_BUSY_POLL, 0}}},
		{"budget refused: both turned back off", 50 * time.Microsecond, 64, refuse(unix.SO_BUSY_POLL_BUDGET, unix.EINVAL), false,
			[]call{{unix.SO_PREFER_BUSY_POLL, 1}, {unix.SO_BUSY_POLL, 50}, {unix.SO_BUSY_POLL_BUDGET, 64}, {unix.SO_PREFER_BUSY_POLL, 0}, {unix.SO_BUSY_POLL, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []call
			ok := setBusyPoll(tc.d, tc.budget, func(o, v int) error {
				got = append(got, call{o, v})
				if tc.fail != nil && v != 0 {
					return tc.fail(o)
				}
				return nil
			})
			if ok != tc.want {
				t.Errorf("setBusyPoll = %v, want %v", ok, tc.want)
			}
			if !reflect.DeepEqual(got, tc.calls) {
				t.Errorf("setsockopt calls %v, want %v", got, tc.calls)
			}
		})
	}
}

// The kernel takes the options on a real AF_XDP socket (root: CAP_NET_ADMIN).
func TestBusyPollOptionsOnSocket(t *testing.T) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no AF_XDP socket: %v", err)
	}
	defer unix.Close(fd)
	ok := setBusyPoll(50*time.Microsecond, 64, func(o, v int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, v) })
	if os.Geteuid() == 0 && !ok {
		t.Fatal("root: the kernel refused the busy-poll options")
	}
	if ok {
		if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL); v != 50 {
			t.Errorf("SO_BUSY_POLL reads %d, want 50", v)
		}
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
