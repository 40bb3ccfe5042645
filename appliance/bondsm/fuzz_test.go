package bondsm

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
)

var fuzzModes = []struct {
	mode  string
	extra []string
}{
	{"balance-rr", nil},
	{"active-backup", []string{"primary: eth0", "updelay: 200", "downdelay: 100", "fail_over_mac: follow"}},
	{"active-backup", []string{"miimon: 0", "arp_interval: 100", "arp_ip_target: [10.0.0.1]"}},
	{"balance-xor", []string{"arp_interval: 100", "arp_ip_target: [10.0.0.1]"}},
	{"broadcast", nil},
	{"802.3ad", []string{"lacp_rate: fast"}},
	{"balance-tlb", nil},
	{"balance-alb", []string{"primary: eth1"}},
}

type frozen struct {
	s    *lane.Snapshot
	copy lane.Snapshot
	tx   []int
}

// FuzzInputs drives a bond of every mode through a random input sequence
// and checks its invariants.
func FuzzInputs(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 3, 5, 0, 9, 0, 1, 1, 4, 2, 7, 3})
	f.Add([]byte{7, 0, 3, 1, 6, 2, 8, 0, 8, 1, 10, 1, 11, 0, 12, 2, 2, 0, 2, 1})
	f.Add([]byte{5, 5, 5, 5, 3, 3, 3, 3, 9, 2, 9, 1, 13, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fm := range fuzzModes {
			runFuzz(t, fm.mode, fm.extra, data)
		}
	})
}

func runFuzz(t *testing.T, mode string, extra []string, data []byte) {
	c := parseBond(t, mode, 3, extra...)
	b, out, err := New(setupFor(c), t0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []frozen
	keep := func(o Output) {
		if o.Snapshot != nil {
			seen = append(seen, frozen{o.Snapshot, *o.Snapshot, slices.Clone(o.Snapshot.TX)})
		}
	}
	keep(out)
	ms := 0
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		v := data[0]
		data = data[1:]
		return v
	}
	rx := make([]uint64, 4)
	for len(data) > 0 {
		op, arg := next(), next()
		ms += int(arg%8) * 10
		now := at(ms)
		m := int(arg) % 5
		switch op % 14 {
		case 0:
			keep(b.Link(now, m, arg&0x80 != 0))
		case 1:
			keep(b.LinkMode(now, m, []int{0, 100, 1000, 10000}[arg%4], []string{"full", "half", "unknown"}[arg%3]))
		case 2:
			rx[arg%4] += uint64(arg)
			keep(b.Tick(now, TickInput{RxPackets: rx}))
		case 3:
			ms += 100
			keep(b.TickLACP(at(ms)))
		case 4:
			n := int(next())
			frame := make([]byte, 0, n)
			for i := 0; i < n && len(data) > 0; i++ {
				frame = append(frame, next())
			}
			if arg&1 != 0 && len(frame) >= 14 {
				frame[12], frame[13] = 0x88, 0x09
			}
			who := m
			if arg&2 != 0 {
				who = HostMember
			}
			keep(b.Receive(now, who, frame))
		case 5:
			o, _ := b.SetActiveSlave(now, []string{"", "eth0", "eth1", "eth2", "eth9"}[arg%5])
			keep(o)
		case 6:
			_, o, _ := b.AddMember(now, testMember([]string{"eth0", "eth1", "eth2", "eth3"}[arg%4], int(arg%4), arg&0x80 != 0))
			keep(o)
		case 7:
			_, o, _ := b.RemoveMember(now, []string{"eth0", "eth1", "eth2", "eth3"}[arg%4])
			keep(o)
		case 8:
			keep(b.HostPromisc(now, arg&1 != 0))
		case 9:
			nc := b.Config()
			switch arg % 6 {
			case 0:
				nc.XmitHashPolicy = int(arg/6) % 3
			case 1:
				nc.Updelay, nc.Downdelay = 100*int(arg%3), 100*int(arg%2)
			case 2:
				nc.AllSlavesActive = !nc.AllSlavesActive
			case 3:
				if nc.Mode == config.ModeActiveBackup || nc.Mode == config.ModeBalanceTLB || nc.Mode == config.ModeBalanceALB {
					nc.Primary = []string{"", "eth0", "eth2"}[arg%3]
					nc.PrimaryReselect = int(arg) % 3
				}
			case 4:
				switch nc.Mode {
				case config.Mode8023AD:
					nc.ADUserPortKey, nc.MinLinks, nc.LACPRate = int(arg), int(arg%3), int(arg%2)
				case config.ModeBalanceTLB, config.ModeBalanceALB:
					nc.TLBDynamicLB, nc.LPInterval = !nc.TLBDynamicLB, 1+int(arg%3)
				}
			case 5:
				if nc.ArpInterval > 0 {
					nc.ArpInterval = 100 + 100*int(arg%3)
					nc.ArpValidate = int(arg % 4)
				}
			}
			o, _ := b.Reconfigure(now, nc)
			keep(o)
		case 10:
			keep(b.HostAddrs(now, []monitor.Addr{{Prefix: netip.MustParsePrefix("10.0.0.2/24")}, {Prefix: netip.MustParsePrefix("2001:db8::2/64")}}[:arg%3]))
		case 11:
			keep(b.HostGroups(now, []monitor.Group{{Addr: netip.MustParseAddr("239.1.1.1")}}[:arg%2]))
		case 12:
			for _, fr := range out.Frames {
				b.Dropped(fr)
			}
			_ = b.Status()
		case 13:
			keep(b.Release())
		}
		checkInvariants(t, b)
	}
	_ = b.Status()
	for i, fz := range seen {
		if fz.s.Active != fz.copy.Active || fz.s.RX != fz.copy.RX || fz.s.Hash != fz.copy.Hash || fz.s.ALB != fz.copy.ALB ||
			!slices.Equal(fz.s.TX, fz.tx) {
			t.Fatalf("%s: snapshot %d modified after it was returned", mode, i)
		}
	}
}

func checkInvariants(t *testing.T, b *Bond) {
	s := b.Snapshot()
	ms := b.Members()
	for _, i := range s.TX {
		if i < 0 || i >= len(ms) || ms[i].Removed || (ms[i].State != "up" && ms[i].State != "going down") {
			t.Fatalf("%s: TX %v holds member %d: %+v", b.cfg.Name, s.TX, i, ms)
		}
	}
	if s.Active != -1 && (s.Active < 0 || s.Active >= len(ms) || ms[s.Active].Removed) {
		t.Fatalf("active %d of %+v", s.Active, ms)
	}
	if b.Carrier() != (len(s.TX) > 0) {
		t.Fatalf("carrier %v with TX %v", b.Carrier(), s.TX)
	}
}
