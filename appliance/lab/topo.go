// Package lab builds self-contained test topologies in network namespaces and
// runs the appliance on them: the "gateway" namespace holds the member veths
// and the appliance with its host device; the "peer" namespace holds the far
// ends of the members in a Linux bridge whose member ports are isolated from
// each other (a switch with a static LAG: no frame goes back out another
// member), with an IP address on the bridge. Everything it creates carries a
// unique prefix and is removed by Close, also after a failure or Ctrl-C.
// It drives iproute2 (`ip`, `bridge`), which every target machine has.
package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// Addresses used inside the namespaces (RFC 2544 benchmarking range; the
// namespaces have no route anywhere else).
const (
	PeerIP   = "198.18.0.1"
	HostIP   = "198.18.0.2"
	Prefix   = "/24"
	PeerMAC  = "02:42:a0:00:00:01"
	BondName = "bond0"
)

// Topo is one topology.
type Topo struct {
	ID      string
	GW      string   // netns of the appliance (the gateway box)
	Peer    string   // netns of the far side
	Members []string // member names in GW (m0, m1, ...)
	Ports   []string // their peers in Peer (p0, p1, ...)
	Hosts   []string // extra peer hosts' namespaces, behind the bridge (PeerHostIP(i))
}

// PeerHostIP is the address of extra peer host i.
func PeerHostIP(i int) string { return fmt.Sprintf("198.18.0.%d", 11+i) }

var seq atomic.Uint32

// UniqueID returns a short id unique to this process and call.
func UniqueID() string {
	return fmt.Sprintf("%x%x", os.Getpid()&0xffff, seq.Add(1))
}

// Sh runs a command, returning its combined output in the error.
func Sh(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// NewTopo creates the namespaces and n member links with queues queues each,
// the peer ports in an isolated-port bridge with the peer address.
func NewTopo(ctx context.Context, n, queues int) (*Topo, error) {
	return NewTopoOpts(ctx, TopoOptions{Members: n, Queues: queues, Bridge: true})
}

// TopoOptions shape a topology.
type TopoOptions struct {
	Members int
	Queues  int
	// Bridge puts the peer ports in an isolated-port Linux bridge carrying
	// PeerIP; without it the peer ports are left up and bare (for an LACP
	// partner such as Open vSwitch to take them).
	Bridge bool
	// Hosts adds that many peer hosts, each in its own namespace behind
	// the bridge (balance-alb spreads them over the members).
	Hosts int
}

// NewTopoOpts creates a topology.
func NewTopoOpts(ctx context.Context, o TopoOptions) (t *Topo, err error) {
	n, queues := o.Members, o.Queues
	id := UniqueID()
	t = &Topo{ID: id, GW: "ba-" + id + "-gw", Peer: "ba-" + id + "-pr"}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	sh := func(args ...string) error {
		_, err := Sh(ctx, args[0], args[1:]...)
		return err
	}
	for _, ns := range []string{t.GW, t.Peer} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		if err := sh("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	if o.Bridge {
		if err := sh("ip", "-n", t.Peer, "link", "add", "br0", "address", PeerMAC, "type", "bridge"); err != nil {
			return nil, err
		}
	}
	q := fmt.Sprint(queues)
	for i := 0; i < n; i++ {
		m, p := fmt.Sprintf("m%d", i), fmt.Sprintf("p%d", i)
		if err := sh("ip", "-n", t.GW, "link", "add", m, "numtxqueues", q, "numrxqueues", q, "type", "veth",
			"peer", "name", p, "netns", t.Peer, "numtxqueues", q, "numrxqueues", q); err != nil {
			return nil, err
		}
		// distinct permanent MACs, so "bond MAC = first slave's" is visible
		if err := sh("ip", "-n", t.GW, "link", "set", m, "address", fmt.Sprintf("02:42:b0:00:00:%02x", i+1)); err != nil {
			return nil, err
		}
		if o.Bridge {
			if err := sh("ip", "-n", t.Peer, "link", "set", p, "master", "br0"); err != nil {
				return nil, err
			}
			if err := sh("bridge", "-n", t.Peer, "link", "set", "dev", p, "isolated", "on"); err != nil {
				return nil, err
			}
		}
		if err := sh("ip", "-n", t.Peer, "link", "set", p, "up"); err != nil {
			return nil, err
		}
		// A veth hands partial checksums (and TSO segments) to its peer; a
		// real wire never does. Make the peer side behave like a switch port.
		if err := sh("ip", "netns", "exec", t.Peer, "ethtool", "-K", p, "tx", "off", "tso", "off", "gso", "off", "sg", "off"); err != nil {
			return nil, err
		}
		if !o.Bridge {
			// The same in the other direction for an Open vSwitch
			// partner: its userspace datapath reads the ports with packet
			// sockets, which see a partial checksum unfinished (the
			// kernel's peer stack behind a bridge finishes it). The
			// appliance's fast path hands members the host's TSO
			// super-frames with partial checksums, as the kernel's bond
			// does; a NIC finishes them in hardware, a veth does not.
			if err := sh("ip", "netns", "exec", t.GW, "ethtool", "-K", m, "tx", "off", "tso", "off", "gso", "off", "sg", "off"); err != nil {
				return nil, err
			}
		}
		t.Members = append(t.Members, m)
		t.Ports = append(t.Ports, p)
	}
	if o.Bridge {
		if err := sh("ip", "-n", t.Peer, "addr", "add", PeerIP+Prefix, "dev", "br0"); err != nil {
			return nil, err
		}
		if err := sh("ip", "-n", t.Peer, "link", "set", "br0", "up"); err != nil {
			return nil, err
		}
		for i := 0; i < o.Hosts; i++ {
			hn := fmt.Sprintf("ba-%s-h%d", id, i)
			if err := sh("ip", "netns", "add", hn); err != nil {
				return nil, err
			}
			t.Hosts = append(t.Hosts, hn)
			br := fmt.Sprintf("h%d", i)
			if err := sh("ip", "-n", t.Peer, "link", "add", br, "type", "veth", "peer", "name", "eth0", "netns", hn); err != nil {
				return nil, err
			}
			for _, c := range [][]string{
				{"ip", "-n", t.Peer, "link", "set", br, "master", "br0"},
				{"ip", "-n", t.Peer, "link", "set", br, "up"},
				{"ip", "-n", hn, "link", "set", "lo", "up"},
				{"ip", "-n", hn, "addr", "add", PeerHostIP(i) + Prefix, "dev", "eth0"},
				{"ip", "-n", hn, "link", "set", "eth0", "up"},
				{"ip", "netns", "exec", hn, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", "sg", "off"},
			} {
				if err := sh(c...); err != nil {
					return nil, err
				}
			}
		}
	}
	return t, nil
}

// InGW runs a command in the gateway namespace.
func (t *Topo) InGW(ctx context.Context, args ...string) (string, error) {
	return Sh(ctx, "ip", append([]string{"netns", "exec", t.GW}, args...)...)
}

// InPeer runs a command in the peer namespace.
func (t *Topo) InPeer(ctx context.Context, args ...string) (string, error) {
	return Sh(ctx, "ip", append([]string{"netns", "exec", t.Peer}, args...)...)
}

// SetPort sets a peer-side port up or down (the member loses carrier).
func (t *Topo) SetPort(ctx context.Context, i int, up bool) error {
	st := "down"
	if up {
		st = "up"
	}
	_, err := Sh(ctx, "ip", "-n", t.Peer, "link", "set", t.Ports[i], st)
	return err
}

// Close deletes both namespaces (and with them every veth).
func (t *Topo) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ns := range append([]string{t.GW, t.Peer}, t.Hosts...) {
		_, _ = Sh(ctx, "ip", "netns", "del", ns)
	}
}
