package lab

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bond-appliance/bond-appliance/appliance/bondsm"
	"github.com/bond-appliance/bond-appliance/appliance/lab/labtest"
	"github.com/bond-appliance/bond-appliance/lacp"
)

// lacpduFloodFrames are the frames of a LACPDU flood: exact duplicates of
// the partner's LACPDU as the member last received it (partner and actor
// information from our own status), and bogus ones — truncated, a wrong
// Actor or Collector information length, version 0 with garbage in the
// reserved octets, a Marker PDU with an unknown TLV type.
func lacpduFloodFrames(src net.HardwareAddr, ad *bondsm.SlaveAD) [][]byte {
	pdu := lacp.LACPDU{CollectorMaxDelay: 0}
	if ad != nil {
		pdu.Actor = portInfo(ad.Partner)
		pdu.Partner = portInfo(ad.Actor)
	}
	var s [6]byte
	copy(s[:], src)
	dup := make([]byte, lacp.FrameLen)
	if _, err := lacp.EncodeLACPDU(dup, s, &pdu); err != nil {
		panic(err) // the buffer is FrameLen long
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), dup...)) }
	return [][]byte{
		dup,
		mod(func(b []byte) []byte { return b[:60] }),        // truncated
		mod(func(b []byte) []byte { b[17] = 19; return b }), // Actor_Information_Length 19
		dup, // duplicate again
		mod(func(b []byte) []byte { b[15] = 0; b[40] ^= 0xff; return b }),             // version 0, garbage
		mod(func(b []byte) []byte { b[57] = 0; return b }),                            // Collector_Information_Length 0
		mod(func(b []byte) []byte { b[14], b[16] = lacp.SubtypeMarker, 9; return b }), // Marker, TLV type 9
	}
}

func portInfo(i bondsm.LACPInfo) lacp.PortInfo {
	p := lacp.PortInfo{SystemPriority: uint16(i.SystemPriority), Key: uint16(i.Key), PortPriority: uint16(i.PortPriority),
		Port: uint16(i.PortNumber), State: lacp.State(i.PortState)}
	if mac, err := net.ParseMAC(i.SystemMAC); err == nil {
		copy(p.System[:], mac)
	}
	return p
}

// lacpduFrames builds the LACPDU flood for member port from its current status.
func (r *chaosRun) lacpduFrames(port int) [][]byte {
	var ad *bondsm.SlaveAD
	if b, err := r.bond(); err == nil {
		for _, s := range b.Slaves {
			if s.Name == r.topo.Members[port] {
				ad = s.AD
			}
		}
	}
	src := net.HardwareAddr{0x02, 0x42, 0xa0, 0, 0, 0x88}
	if out, err := Sh(r.ctx, "ip", "netns", "exec", r.topo.Peer, "cat", "/sys/class/net/"+r.topo.Ports[port]+"/address"); err == nil {
		if mac, err := net.ParseMAC(strings.TrimSpace(out)); err == nil {
			src = mac
		}
	}
	return lacpduFloodFrames(src, ad)
}

// floodFrames sends frames round-robin out of dev in namespace ns for d at
// rate frames/s, with an AF_PACKET socket (sendmmsg, PACKET_QDISC_BYPASS:
// no qdisc and no packet taps, so an Open vSwitch on the port does not see
// them). A full or down device loses the frames; the flood goes on.
func floodFrames(ns, dev string, frames [][]byte, d time.Duration, rate float64) error {
	var fd int
	err := labtest.InNetns(ns, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flood on %s in %s: %w", dev, ns, err)
	}
	defer unix.Close(fd)
	const batch = 64
	iovs := make([]unix.Iovec, batch)
	msgs := make([]unix.Mmsghdr, batch)
	for i := range msgs {
		f := frames[i%len(frames)]
		iovs[i].Base = &f[0]
		iovs[i].SetLen(len(f))
		msgs[i].Hdr.Iov = &iovs[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	start := time.Now()
	var sent uint64
	for time.Since(start) < d {
		if ahead := time.Duration(float64(sent)/rate*1e9) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
		switch {
		case errno == 0:
			sent += uint64(n)
		case errors.Is(errno, unix.ENOBUFS), errors.Is(errno, unix.EAGAIN), errors.Is(errno, unix.EINTR),
			errors.Is(errno, unix.ENETDOWN), errors.Is(errno, unix.ENXIO):
			sent += batch // lost: the port is full or down
		default:
			return fmt.Errorf("sendmmsg on %s: %w", dev, errno)
		}
	}
	runtime.KeepAlive(frames)
	runtime.KeepAlive(iovs)
	return nil
}

func TestLACPDUFloodFrames(t *testing.T) {
	ad := &bondsm.SlaveAD{
		Actor:   bondsm.LACPInfo{SystemPriority: 65535, SystemMAC: "02:42:b0:00:00:01", Key: 9, PortPriority: 255, PortNumber: 1, PortState: 0x3f},
		Partner: bondsm.LACPInfo{SystemPriority: 65534, SystemMAC: ovsSysID, Key: 5, PortPriority: 65535, PortNumber: 3, PortState: 0x3d},
	}
	frames := lacpduFloodFrames(net.HardwareAddr{2, 0, 0, 0, 0, 9}, ad)
	var p lacp.LACPDU
	want := []error{nil, lacp.ErrTooShort, lacp.ErrActorLength, nil, nil, lacp.ErrCollectorLength, lacp.ErrSubtype}
	if len(frames) != len(want) {
		t.Fatalf("%d frames, want %d", len(frames), len(want))
	}
	for i, f := range frames {
		err := lacp.DecodeLACPDU(f, &p)
		if !errors.Is(err, want[i]) && err != want[i] {
			t.Errorf("frame %d: decode error %v, want %v", i, err, want[i])
		}
	}
	// the duplicate carries the partner's information as its actor
	if err := lacp.DecodeLACPDU(frames[0], &p); err != nil || p.Actor.Port != 3 || p.Actor.Key != 5 || p.Partner.Port != 1 || p.Actor.System != [6]byte{2, 0, 0, 0, 0x5a, 1} {
		t.Fatalf("duplicate: %v %+v", err, p)
	}
	if err := lacp.CheckLACPDU(frames[4]); err != lacp.ErrVersion {
		t.Fatalf("version-0 frame: CheckLACPDU %v, want %v", err, lacp.ErrVersion)
	}
}
