package netdev

import (
	"errors"
	"fmt"
	"net"
)

// Step is one restore action, for the log and `bond-appliance cleanup`.
type Step struct {
	Device string
	What   string // the record's kind
	From   string // the value found
	To     string // the value restored ("" with Note)
	Note   string // why nothing was done, when nothing was
	Err    error
}

func (s Step) String() string {
	var out string
	switch {
	case s.Note != "":
		out = fmt.Sprintf("%s: %s: %s", s.Device, s.What, s.Note)
	default:
		out = fmt.Sprintf("%s: %s %s → %s", s.Device, s.What, s.From, s.To)
	}
	if s.Err != nil {
		out += ": FAILED: " + s.Err.Error()
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func upDown(b bool) string {
	if b {
		return "up"
	}
	return "down"
}

func chanString(c Channels) string {
	if c.Combined > 0 {
		return fmt.Sprintf("combined %d", c.Combined)
	}
	return fmt.Sprintf("rx %d tx %d", c.Rx, c.Tx)
}

// undo puts back what e records. A device that is gone, or is another
// device now (its ifindex changed: the driver was reloaded, which resets
// it), is left alone with a note; an error means the change is still there.
func undo(ops devOps, e *entry) (Step, error) {
	s := Step{Device: e.Device, What: e.Kind}
	d, err := ops.get(e.Device)
	if errors.Is(err, ErrNoDevice) {
		s.Note = "device gone, nothing to restore"
		return s, nil
	}
	if err != nil {
		s.Err = err
		return s, err
	}
	if e.Ifindex != 0 && d.Index != e.Ifindex {
		s.Note = fmt.Sprintf("ifindex %d now, was %d: another device, left alone", d.Index, e.Ifindex)
		return s, nil
	}
	fail := func(err error) (Step, error) {
		s.Err = err
		return s, err
	}
	switch e.Kind {
	case KindMAC:
		mac, err := net.ParseMAC(e.MAC)
		if err != nil {
			return fail(fmt.Errorf("recorded MAC %q: %w", e.MAC, err))
		}
		s.From, s.To = d.MAC.String(), e.MAC
		if macEqual(d.MAC, mac) {
			return s, nil
		}
		if err := ops.setMAC(e.Device, mac); err != nil {
			return fail(err)
		}
	case KindMTU:
		s.From, s.To = fmt.Sprint(d.MTU), fmt.Sprint(e.MTU)
		if d.MTU != e.MTU {
			if err := ops.setMTU(e.Device, e.MTU); err != nil {
				return fail(err)
			}
		}
	case KindChannels:
		if e.Channels == nil {
			return fail(errors.New("record without channel counts"))
		}
		s.To = chanString(*e.Channels)
		cur, err := ops.getChannels(e.Device)
		if err != nil {
			return fail(err)
		}
		s.From = chanString(cur)
		if cur.Combined != e.Channels.Combined || cur.Rx != e.Channels.Rx || cur.Tx != e.Channels.Tx || cur.Other != e.Channels.Other {
			if err := ops.setChannels(e.Device, *e.Channels); err != nil {
				return fail(err)
			}
		}
	case KindUp:
		s.From, s.To = upDown(d.Up), upDown(e.On)
		if d.Up != e.On {
			if err := ops.setUp(e.Device, e.On); err != nil {
				return fail(err)
			}
		}
	case KindAllmulti:
		s.From, s.To = onOff(d.Allmulti), onOff(e.On)
		if d.Allmulti != e.On {
			if err := ops.setAllmulti(e.Device, e.On); err != nil {
				return fail(err)
			}
		}
	case KindPromisc:
		s.From, s.To = onOff(d.Promisc), onOff(e.On)
		if d.Promisc != e.On {
			if err := ops.setPromisc(e.Device, e.On); err != nil {
				return fail(err)
			}
		}
	case KindIPv6Off:
		cur, ok, err := ops.ipv6Disabled(e.Device)
		if err != nil {
			return fail(err)
		}
		if !ok {
			s.Note = "no IPv6 setting now: nothing to restore"
			return s, nil
		}
		s.From, s.To = onOff(cur), onOff(e.On)
		if cur != e.On {
			if err := ops.setIPv6Disabled(e.Device, e.On); err != nil {
				return fail(err)
			}
		}
	case KindGRO:
		cur, err := ops.gro(e.Device)
		if err != nil {
			return fail(err)
		}
		s.From, s.To = onOff(cur), onOff(e.On)
		if cur != e.On {
			if err := ops.setGRO(e.Device, e.On); err != nil {
				return fail(err)
			}
		}
	case KindVeth, KindTap:
		want := map[string]string{KindVeth: "veth", KindTap: "tuntap"}[e.Kind]
		if d.Type != want {
			s.Note = fmt.Sprintf("is a %s device, not the %s the appliance created: left alone", d.Type, want)
			return s, nil
		}
		s.From, s.To = "present", "deleted"
		if err := ops.del(e.Device); err != nil {
			return fail(err)
		}
	case KindXDP:
		s.To = fmt.Sprintf("program id %d", e.ProgID)
		s.From = "none"
		if d.XDPProg != 0 {
			if d.XDPProg == e.ProgID {
				s.From = s.To
				return s, nil
			}
			s.Note = fmt.Sprintf("carries another XDP program (id %d) now: program id %d not re-attached", d.XDPProg, e.ProgID)
			return s, nil
		}
		if err := ops.attachXDP(e.Device, e.ProgID, e.hold, e.XDPFlags); err != nil {
			if errors.Is(err, errProgGone) {
				s.Note = fmt.Sprintf("XDP program id %d (replaced under force: true) no longer exists: cannot re-attach it", e.ProgID)
				return s, nil
			}
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown record kind %q", e.Kind))
	}
	return s, nil
}
