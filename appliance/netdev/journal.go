package netdev

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
)

// Journal applies changes to devices and remembers, per device and kind of
// change, the value it found before the first change (the true original),
// so Restore puts every device back as it was found, newest change first.
// Devices the journal created are deleted by Restore.
//
// A journal opened on a state file (Open) writes each record to the file,
// and syncs it, before it makes the change the record describes, so after
// a crash (SIGKILL, a panic, power loss) the next start or `bond-appliance
// cleanup` can restore the devices from the file. Undone records leave the
// file; a full clean Restore removes it. The zero Journal keeps its records
// in memory only.
type Journal struct {
	recs []*entry
	ops  devOps // nil: the real devices (netlink, ethtool)
	st   *stateFile
}

// entry is a record and what this process holds for it.
type entry struct {
	Record
	hold *ebpf.Program // xdp: the replaced program, kept alive while we run
}

// Record is one change of a device, with the value to restore.
type Record struct {
	Kind    string `json:"kind"` // one of the Kind* constants
	Device  string `json:"device"`
	Ifindex int    `json:"ifindex,omitempty"` // 0: not known (a device being created)
	// The original value, by kind.
	MAC      string    `json:"mac,omitempty"`       // KindMAC
	MTU      int       `json:"mtu,omitempty"`       // KindMTU
	Channels *Channels `json:"channels,omitempty"`  // KindChannels
	On       bool      `json:"on,omitempty"`        // KindUp, KindAllmulti, KindPromisc, KindIPv6Off, KindGRO: the state found
	Peer     string    `json:"peer,omitempty"`      // KindVeth: the other end
	ProgID   uint32    `json:"prog_id,omitempty"`   // KindXDP: the program force replaced
	XDPFlags int       `json:"xdp_flags,omitempty"` // KindXDP: its attach mode (XDP_FLAGS_*)
}

// Kinds of record.
const (
	KindMAC      = "mac"
	KindMTU      = "mtu"
	KindChannels = "channels"
	KindUp       = "updown"
	KindAllmulti = "allmulti"
	KindPromisc  = "promisc"
	KindIPv6Off  = "ipv6_disabled" // net.ipv6.conf.<dev>.disable_ipv6; On: the value found
	KindVeth     = "veth"          // a veth pair the appliance created
	KindTap      = "tap"           // a TAP the appliance created
	KindXDP      = "xdp"           // an XDP program replaced under force: true
	KindGRO      = "gro"           // generic receive offload; On: the state found
)

func (j *Journal) dev() devOps {
	if j.ops == nil {
		return netlinkOps{}
	}
	return j.ops
}

// find returns the record of kind for device, or nil.
func (j *Journal) find(kind, device string) *entry {
	for _, e := range j.recs {
		if e.Kind == kind && e.Device == device {
			return e
		}
	}
	return nil
}

// add records r (persisting it first when the journal has a file).
func (j *Journal) add(r Record) (*entry, error) {
	e := &entry{Record: r}
	j.recs = append(j.recs, e)
	if err := j.save(); err != nil {
		j.recs = j.recs[:len(j.recs)-1]
		return nil, err
	}
	return e, nil
}

// forget drops e (a change that was not made, or has been undone).
func (j *Journal) forget(e *entry) error {
	for i, x := range j.recs {
		if x == e {
			j.recs = append(j.recs[:i], j.recs[i+1:]...)
			if e.hold != nil {
				_ = e.hold.Close()
				e.hold = nil
			}
			return j.save()
		}
	}
	return nil
}

// change records r unless a record of its kind for the device exists
// already (that one holds the true original), then runs fn; when fn fails
// the new record is dropped again.
func (j *Journal) change(r Record, fn func() error) error {
	var e *entry
	if j.find(r.Kind, r.Device) == nil {
		var err error
		if e, err = j.add(r); err != nil {
			return err
		}
	}
	if err := fn(); err != nil {
		if e != nil {
			_ = j.forget(e)
		}
		return err
	}
	return nil
}

// SetMAC sets the device's MAC; when the driver refuses a live change the
// device is taken down for it and brought back.
func (j *Journal) SetMAC(name string, mac net.HardwareAddr) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	if macEqual(d.MAC, mac) {
		return nil
	}
	return j.change(Record{Kind: KindMAC, Device: name, Ifindex: d.Index, MAC: d.MAC.String()}, func() error {
		if err := j.dev().setMAC(name, mac); err != nil {
			return fmt.Errorf("%s: set MAC %s: %w", name, mac, err)
		}
		return nil
	})
}

// SetUp sets the administrative state.
func (j *Journal) SetUp(name string, up bool) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	if d.Up == up {
		return nil
	}
	return j.change(Record{Kind: KindUp, Device: name, Ifindex: d.Index, On: d.Up}, func() error {
		if err := j.dev().setUp(name, up); err != nil {
			return fmt.Errorf("%s: set up=%v: %w", name, up, err)
		}
		return nil
	})
}

// SetMTU sets the MTU.
func (j *Journal) SetMTU(name string, mtu int) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	if d.MTU == mtu {
		return nil
	}
	return j.change(Record{Kind: KindMTU, Device: name, Ifindex: d.Index, MTU: d.MTU}, func() error {
		if err := j.dev().setMTU(name, mtu); err != nil {
			return fmt.Errorf("%s: set MTU %d: %w", name, mtu, err)
		}
		return nil
	})
}

// SetPromisc turns the promiscuous flag on or off. The flag netlink sets
// and reports is the administrator's (the kernel counts other users, such
// as packet sockets and bridges, apart), so the undo puts it back to the
// state found.
func (j *Journal) SetPromisc(name string, on bool) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	if d.Promisc == on {
		return nil
	}
	return j.change(Record{Kind: KindPromisc, Device: name, Ifindex: d.Index, On: d.Promisc}, func() error {
		if err := j.dev().setPromisc(name, on); err != nil {
			return fmt.Errorf("%s: promisc %v: %w", name, on, err)
		}
		return nil
	})
}

// SetAllmulti turns all-multicast reception on or off (the administrator's
// flag, as SetPromisc). Members receive every multicast group so the host
// device's groups (IPv6 neighbour discovery, IGMP) reach it.
func (j *Journal) SetAllmulti(name string, on bool) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	if d.Allmulti == on {
		return nil
	}
	return j.change(Record{Kind: KindAllmulti, Device: name, Ifindex: d.Index, On: d.Allmulti}, func() error {
		if err := j.dev().setAllmulti(name, on); err != nil {
			return fmt.Errorf("%s: allmulti %v: %w", name, on, err)
		}
		return nil
	})
}

// SetQueues makes the device use exactly n combined (or rx/tx) channels when it
// has more, so RSS spreads only over the queues the lanes serve.
func (j *Journal) SetQueues(name string, n int) error {
	ch, err := j.dev().getChannels(name)
	if err != nil {
		return nil // driver without channel control: nothing to change
	}
	want := ch
	switch {
	case ch.Combined > 0:
		if int(ch.Combined) == n {
			return nil
		}
		want.Combined = uint32(n)
	default:
		if int(ch.Rx) == n && int(ch.Tx) == n {
			return nil
		}
		want.Rx, want.Tx = uint32(n), uint32(n)
	}
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	orig := ch
	return j.change(Record{Kind: KindChannels, Device: name, Ifindex: d.Index, Channels: &orig}, func() error {
		return j.dev().setChannels(name, want)
	})
}

// CreateVeth creates a veth pair (hostName in the current namespace carrying
// mac and mtu, peer dpName with queues queues on each end) and records its
// deletion (the record is written before the pair exists).
func (j *Journal) CreateVeth(hostName, dpName string, queues int, mac net.HardwareAddr, mtu int) error {
	e, err := j.add(Record{Kind: KindVeth, Device: hostName, Peer: dpName})
	if err != nil {
		return err
	}
	if err := j.dev().addVeth(hostName, dpName, queues, mac, mtu); err != nil {
		_ = j.forget(e)
		return fmt.Errorf("create veth %s/%s: %w", hostName, dpName, err)
	}
	if d, err := j.dev().get(hostName); err == nil {
		e.Ifindex = d.Index
		return j.save()
	}
	return nil
}

// CreatingTap records that the TAP name is about to be created (before the
// first queue is opened). The TAP disappears with its last queue, also
// when the process dies; the record lets a restart tell it from a device
// that is not the appliance's.
func (j *Journal) CreatingTap(name string) error {
	_, err := j.add(Record{Kind: KindTap, Device: name})
	return err
}

// ReplacingXDP records, before an XDP program is replaced under force:
// true, the program attached to the device (its id and attach mode), and
// keeps it alive while the appliance runs, so Restore re-attaches it.
// After a crash it is re-attached if it still exists (it is pinned, or
// another process holds it). Without a program attached it does nothing.
func (j *Journal) ReplacingXDP(name string) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	if d.XDPProg == 0 || j.find(KindXDP, name) != nil {
		return nil
	}
	e, err := j.add(Record{Kind: KindXDP, Device: name, Ifindex: d.Index, ProgID: d.XDPProg, XDPFlags: d.XDPFlags})
	if err != nil {
		return err
	}
	if j.ops == nil {
		if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(d.XDPProg)); err == nil {
			e.hold = p
		}
	}
	return nil
}

// Records returns a copy of the records, oldest first.
func (j *Journal) Records() []Record {
	out := make([]Record, len(j.recs))
	for i, e := range j.recs {
		out[i] = e.Record
	}
	return out
}

// RestoreDevice undoes the changes recorded for one device (a member that
// leaves), newest first, and forgets them.
func (j *Journal) RestoreDevice(name string) error {
	var errs []error
	for i := len(j.recs) - 1; i >= 0; i-- {
		if i >= len(j.recs) || j.recs[i].Device != name {
			continue
		}
		errs = append(errs, j.undoOne(j.recs[i], nil))
	}
	return errors.Join(errs...)
}

// Restore undoes every recorded change, newest first, and returns all
// errors. When every change was undone the state file is removed; records
// that could not be undone stay in it for the next start or `cleanup`.
// The journal lets go of the state file either way.
func (j *Journal) Restore() error {
	return j.restoreAll(nil)
}

func (j *Journal) restoreAll(report func(Step)) error {
	var errs []error
	for i := len(j.recs) - 1; i >= 0; i-- {
		if i < len(j.recs) {
			errs = append(errs, j.undoOne(j.recs[i], report))
		}
	}
	err := errors.Join(errs...)
	errs = []error{err}
	if j.st != nil {
		if len(j.recs) == 0 {
			errs = append(errs, j.st.remove())
		}
		j.st.release()
		j.st = nil
	}
	return errors.Join(errs...)
}

// undoOne undoes e and forgets it when done (or when there is nothing left
// to undo); an error keeps it.
func (j *Journal) undoOne(e *entry, report func(Step)) error {
	s, err := undo(j.dev(), e)
	if report != nil {
		report(s)
	}
	if err != nil {
		return fmt.Errorf("restore %s %s: %w", e.Kind, e.Device, err)
	}
	return j.forget(e)
}

func macEqual(a, b net.HardwareAddr) bool { return string(a) == string(b) }

// DisableIPv6 turns IPv6 off on a member (net.ipv6.conf.<name>.disable_ipv6)
// until the member is restored. A kernel bond's slave sends nothing of its
// own (addrconf skips IFF_SLAVE devices); a member of the appliance is a
// plain device whose own stack would otherwise send router solicitations,
// MLD reports and duplicate address detection with the MAC the appliance
// gave it, from a member that is not the active one, and teach the switch
// the bond's MAC on the wrong port. Without IPv6 in the kernel (no such
// setting) it does nothing.
func (j *Journal) DisableIPv6(name string) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	off, ok, err := j.dev().ipv6Disabled(name)
	if err != nil || !ok || off {
		return err
	}
	return j.change(Record{Kind: KindIPv6Off, Device: name, Ifindex: d.Index, On: off}, func() error {
		if err := j.dev().setIPv6Disabled(name, true); err != nil {
			return fmt.Errorf("%s: disable IPv6: %w", name, err)
		}
		return nil
	})
}

// SetGRO turns generic receive offload on or off on a member until it is
// restored: the fast path hands a member's received frames to the host
// stack from TC, after GRO (on a veth GRO also turns on the NAPI receive
// path that runs GRO at all).
func (j *Journal) SetGRO(name string, on bool) error {
	d, err := j.dev().get(name)
	if err != nil {
		return err
	}
	cur, err := j.dev().gro(name)
	if err != nil || cur == on {
		return err
	}
	return j.change(Record{Kind: KindGRO, Device: name, Ifindex: d.Index, On: cur}, func() error {
		return j.dev().setGRO(name, on)
	})
}
