// Package labtest is the test-only scaffolding of appliance/lab: raw frames
// (AF_PACKET sockets, crafted UDP test frames with sequence numbers), running
// code inside a namespace, and the TCX program that black-holes LACPDUs.
// The integration tests and the perf tools import it; the product binary
// (cmd/bond-appliance, which imports appliance/lab for the `lab` demo) must
// not (arch/arch_test.go checks that).
//
// labtest does not import appliance/lab: lab's own tests import labtest, and
// Go forbids the cycle. The two addresses UDPFrame writes are therefore
// repeated here; lab's tests check they equal lab.HostIP and lab.PeerIP.
package labtest

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// PacketSocket is an AF_PACKET socket bound to one interface of a namespace,
// for injecting and capturing raw frames in tests.
type PacketSocket struct {
	fd      int
	ifindex int
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// InNetns runs fn on a thread switched into namespace ns (sockets and
// links it creates belong to ns) and switches back.
func InNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	defer netns.Set(orig)
	return fn()
}

// OpenPacket opens a raw socket on ifname inside namespace ns.
func OpenPacket(ns, ifname string) (p *PacketSocket, err error) {
	err = InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifname, ns, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		p = &PacketSocket{fd: fd, ifindex: ifi.Index}
		return nil
	})
	return p, err
}

// Send transmits one frame.
func (p *PacketSocket) Send(frame []byte) error {
	return unix.Sendto(p.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: p.ifindex, Halen: 6})
}

// Recv returns the frames received (both directions are seen by a packet
// socket; outgoing ones are skipped) until quiet for idle or max frames.
func (p *PacketSocket) Recv(idle time.Duration, max int) [][]byte {
	var out [][]byte
	buf := make([]byte, 4096)
	tv := unix.NsecToTimeval(idle.Nanoseconds())
	_ = unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for len(out) < max {
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			return out
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	return out
}

// Close closes the socket.
func (p *PacketSocket) Close() { unix.Close(p.fd) }

// The lab's addresses (lab.HostIP, lab.PeerIP), written into UDPFrame's IP header.
const (
	HostIP = "198.18.0.2"
	PeerIP = "198.18.0.1"
)

// TestEtherType marks the test frames (IEEE local experimental ethertype 1).
const TestEtherType = 0x88b5

// UDPFrame builds an IPv4/UDP frame of size bytes from src to dst MAC for
// the flow (sport, dport) carrying seq. IP addresses are the lab's.
func UDPFrame(dst, src net.HardwareAddr, sport, dport uint16, seq uint32, size int) []byte {
	if size < 60 {
		size = 60
	}
	f := make([]byte, size)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], net.ParseIP(HostIP).To4())
	copy(ip[16:20], net.ParseIP(PeerIP).To4())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(size-34))
	copy(ip[28:32], []byte("BAT1"))
	binary.BigEndian.PutUint32(ip[32:], seq)
	return f
}

// TestSeq returns the sequence number of a frame built by UDPFrame, or false.
func TestSeq(f []byte) (uint32, bool) {
	if len(f) < 14+36 || f[12] != 0x08 || f[13] != 0 || string(f[14+28:14+32]) != "BAT1" {
		return 0, false
	}
	return binary.BigEndian.Uint32(f[14+32:]), true
}

// DialInNetns opens a connection from inside namespace ns (the socket
// belongs to ns for its whole life).
func DialInNetns(ns, network, addr string) (c net.Conn, err error) {
	err = InNetns(ns, func() error {
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	})
	return c, err
}
