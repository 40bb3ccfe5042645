package vnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestSegmentKernelAccepts writes the frames Segment makes into a TAP
// without offloads (plain frames, as a NIC would receive them) in a
// private network namespace, and reads them on real sockets of its stack:
// the kernel drops frames with a bad IPv4 header or transport checksum
// (a frame with a deliberately broken checksum shows it does), so every
// byte received proves Segment's lengths and checksums. UDP over IPv4 and
// IPv6 (USO), and TCP over IPv4 after a handshake made by hand.
func TestSegmentKernelAccepts(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (and not -short): a TAP in a private network namespace")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread and its namespace end with the goroutine
		errc <- kernelRun(t)
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

type ifreq struct {
	Name  [16]byte
	Flags uint16
	_     [22]byte
}

func kernelRun(t *testing.T) error {
	if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
		return err
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr ifreq
	copy(ifr.Name[:], "vt0")
	ifr.Flags = syscall.IFF_TAP | syscall.IFF_NO_PI
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TUNSETIFF, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return fmt.Errorf("TUNSETIFF: %w", e)
	}
	// the stack's side: the TAP has macs[0:6] and 10.7.0.1, fd00::2; the
	// frames come from 10.7.0.2, fd00::1 at macs[6:12] (build's addresses)
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "vt0", "address", "02:00:00:00:00:01", "up"},
		{"addr", "add", "10.7.0.1/24", "dev", "vt0"},
		{"addr", "add", "fd00::2/64", "dev", "vt0", "nodad"},
		{"neigh", "add", "10.7.0.2", "lladdr", "02:00:00:00:00:02", "dev", "vt0"},
		{"neigh", "add", "fd00::1", "lladdr", "02:00:00:00:00:02", "dev", "vt0"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", c, err, out)
		}
	}
	write := func(s spec, gso int) ([]byte, error) {
		s.partial = true
		f, lo := build(s)
		h := gsoHdr(s, lo, gso)
		n, maxLen, err := Count(h, f)
		if err != nil {
			return nil, err
		}
		out, sizes := outBufs(n, maxLen)
		if _, err := Segment(h, f, out, sizes); err != nil {
			return nil, err
		}
		for i := 0; i < n; i++ {
			if _, err := syscall.Write(fd, out[i][:sizes[i]]); err != nil {
				return nil, err
			}
		}
		return f[lo.hlen:], nil
	}
	// UDP, IPv4 and IPv6: every datagram arrives, the broken one does not
	for _, v6 := range []bool{false, true} {
		addr := "10.7.0.1:5001"
		if v6 {
			addr = "[fd00::2]:5001"
		}
		ua, _ := net.ResolveUDPAddr("udp", addr)
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			return err
		}
		bad, _ := build(spec{udp: true, v6: v6, payload: 100, badCsum: true})
		if _, err := syscall.Write(fd, bad); err != nil {
			return err
		}
		pay, err := write(spec{udp: true, v6: v6, payload: 4097, fill: 3}, 1203)
		if err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 2000)
		var got []byte
		for len(got) < len(pay) {
			n, err := c.Read(buf)
			if err != nil {
				return fmt.Errorf("UDP v6=%v: after %d of %d bytes: %w", v6, len(got), len(pay), err)
			}
			if n != 1203 && len(got)+n != len(pay) {
				return fmt.Errorf("UDP v6=%v: a datagram of %d bytes (the broken one?)", v6, n)
			}
			got = append(got, buf[:n]...)
		}
		c.Close()
		if !bytes.Equal(got, pay) {
			return fmt.Errorf("UDP v6=%v: payload differs", v6)
		}
		t.Logf("UDP v6=%v: %d bytes in %d datagrams received, checksums accepted", v6, len(got), (len(pay)+1202)/1203)
	}
	// TCP over IPv4: SYN, read the SYN-ACK from the TAP, ACK, then a
	// super-frame of data segmented
	ln, err := net.Listen("tcp4", "10.7.0.1:5001")
	if err != nil {
		return err
	}
	defer ln.Close()
	syn, _ := build(spec{flags: tcpSYN, seq: 1000})
	if _, err := syscall.Write(fd, syn); err != nil {
		return err
	}
	var isn uint32
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(3 * time.Second); ; {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EAGAIN && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for the SYN-ACK: %w", err)
		}
		f := buf[:n]
		if n >= 54 && binary.BigEndian.Uint16(f[12:]) == etherIPv4 && f[23] == protoTCP && f[47] == tcpSYN|tcpACK {
			isn = binary.BigEndian.Uint32(f[38:])
			break
		}
	}
	ack, _ := build(spec{seq: 1001, ack: isn + 1})
	if _, err := syscall.Write(fd, ack); err != nil {
		return err
	}
	pay, err := write(spec{seq: 1001, ack: isn + 1, flags: tcpACK | tcpPSH, payload: 5001, fill: 9}, 1448)
	if err != nil {
		return err
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := make([]byte, len(pay))
	for n := 0; n < len(got); {
		k, err := c.Read(got[n:])
		if err != nil {
			return fmt.Errorf("TCP: after %d of %d bytes: %w", n, len(got), err)
		}
		n += k
	}
	if !bytes.Equal(got, pay) {
		return fmt.Errorf("TCP: payload differs")
	}
	t.Logf("TCP: %d bytes in 4 segments received, checksums accepted", len(got))
	return nil
}
