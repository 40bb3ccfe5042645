package appliance

import (
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/vnet"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestTapReadLongerThanBuffer checks on the running kernel how a TAP queue
// (IFF_TAP|IFF_NO_PI) hands over a frame longer than the read buffer, and
// that the lane drops such a frame (drop_too_long) instead of passing it on
// truncated: read(2) truncates it and returns the truncated length
// (logged), so the lane reads with readv and a spill byte. It runs in a
// network namespace of its own, unshared by a locked thread that dies with
// it.
func TestTapReadLongerThanBuffer(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (and not -short): creates a TAP in a private network namespace")
	}
	const big, small, room = 4000, 100, 2048 - 256 // UDP payloads; the lane's read room
	type result struct {
		raw                     int // read(2) of the big frame into room bytes
		tooLong, rx, rxBytesMax uint64
		err                     error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread and its namespace end with the goroutine
		var r result
		defer func() { res <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWNET); r.err != nil {
			return
		}
		tap, err := openTap("batest0", 1, net.HardwareAddr{0x02, 0, 0, 0, 0x7a, 0x01}, 9000, &netdev.Journal{})
		if r.err = err; err != nil {
			return
		}
		defer tap.close()
		l, err := netlink.LinkByName("batest0")
		if r.err = err; err != nil {
			return
		}
		addr, _ := netlink.ParseAddr("10.9.0.1/24")
		if r.err = netlink.AddrAdd(l, addr); r.err != nil {
			return
		}
		if r.err = netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
			IP: net.IPv4(10, 9, 0, 2), HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0x7a, 0x02}}); r.err != nil {
			return
		}
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if r.err = err; err != nil {
			return
		}
		defer unix.Close(s)
		send := func(n int) error {
			return unix.Sendto(s, make([]byte, n), 0, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{10, 9, 0, 2}})
		}
		// what read(2) says (IPv6 neighbour discovery and MLD frames
		// may come first: read until the IPv4 frame)
		if r.err = send(big); r.err != nil {
			return
		}
		buf := make([]byte, vnet.HdrLen+room) // the TAP has a vnet header
		for deadline := time.Now().Add(3 * time.Second); r.raw == 0; {
			n, err := unix.Read(tap.fds[0], buf)
			switch {
			case err == unix.EAGAIN && time.Now().Before(deadline):
				time.Sleep(time.Millisecond)
			case err != nil:
				r.err = err
				return
			case n >= vnet.HdrLen+14 && binary.BigEndian.Uint16(buf[vnet.HdrLen+12:]) == 0x0800:
				r.raw = n - vnet.HdrLen
			}
		}
		// the lane's read
		u, err := umem.New(umem.Config{NumFrames: 64, FrameSize: 2048})
		if r.err = err; err != nil {
			return
		}
		defer u.Close()
		h := tap.port(0, u)
		ln := lane.New(lane.Config{ID: 0, CPU: -1, Batch: 8, RingSize: 8}, u, []*lane.Bond{{Host: h}})
		if r.err = send(big); r.err != nil {
			return
		}
		if r.err = send(small); r.err != nil {
			return
		}
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			ln.Step()
			if h.Stats.DropTooLong.Load() > 0 && h.Stats.RxBytes.Load() > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		r.tooLong, r.rx = h.Stats.DropTooLong.Load(), h.Stats.RxPackets.Load()
		r.rxBytesMax = h.Stats.RxBytes.Load()
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	frame := 14 + 20 + 8 + big
	t.Logf("read(2) of a %d-byte frame into %d bytes returned %d", frame, room, r.raw)
	if r.raw != room && r.raw != frame {
		t.Errorf("read(2) returned %d: neither the truncated (%d) nor the whole length (%d)", r.raw, room, frame)
	}
	if r.tooLong != 1 {
		t.Errorf("drop_too_long %d, want 1 (the %d-byte frame)", r.tooLong, frame)
	}
	if r.rx == 0 || r.rxBytesMax >= uint64(room)*r.rx {
		t.Errorf("received %d frames, %d bytes: want the small frame, and no frame cut to %d bytes", r.rx, r.rxBytesMax, room)
	}
}
