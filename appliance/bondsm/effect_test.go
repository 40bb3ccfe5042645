package bondsm

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/monitor"
	"github.com/bond-appliance/bond-appliance/lacp"
	"github.com/bond-appliance/bond-appliance/policy"
)

// env is one probe's running bond: its clock (ms since t0), the Output
// of the Reconfigure under test and, in 802.3ad, an LACP partner.
type env struct {
	t    *testing.T
	b    *Bond
	peer *lacpPeer
	ms   int
	out  Output
}

// timed is a frame sent, with when (ms after the Reconfigure).
type timed struct {
	ms   int
	kind string
	f    Frame
}

var (
	hostV4    = netip.MustParsePrefix("10.0.0.2/24")
	hostV6    = netip.MustParsePrefix("fd00::2/64")
	target1   = netip.MustParseAddr("10.0.0.1")
	hostGroup = netip.MustParseAddr("239.1.1.1")
)

// kindOf classifies a frame control sent.
func kindOf(f []byte) string {
	if isSlowProtocol(f) {
		return "lacpdu"
	}
	if policy.IsIGMP(f) {
		return "igmp"
	}
	if a, err := monitor.ParseARP(f); err == nil {
		if a.SenderIP == a.TargetIP {
			return "garp"
		}
		return "arp-probe " + a.TargetIP.String()
	}
	if et, off, _, _ := policy.EtherType(f); et == 0x86dd && len(f) > off+40 && f[off+6] == 58 {
		switch f[off+40] {
		case 135:
			return "ns"
		case 136:
			return "na"
		}
	}
	return "other"
}

// run ticks the bond every 10 ms for d ms (no carrier change), with
// rx counting frames received on every member when rx is set, and
// returns the frames sent.
func (e *env) run(d int, rx bool, replies func(ms int)) []timed {
	start := e.ms
	var sent []timed
	var counters []uint64
	if rx {
		counters = make([]uint64, 3)
	}
	for end := e.ms + d; e.ms < end; {
		e.ms += 10
		for i := range counters {
			counters[i] += 5
		}
		for _, f := range e.b.Tick(at(e.ms), TickInput{RxPackets: slices.Clone(counters)}).Frames {
			sent = append(sent, timed{e.ms - start, kindOf(f.Data), f})
		}
		if replies != nil {
			replies(e.ms)
		}
	}
	return sent
}

// arpReply answers the probe for target on member m.
func (e *env) arpReply(m int, target netip.Addr) {
	buf := make([]byte, 64)
	peer := monitor.MAC{2, 9, 9, 9, 9, byte(target.As4()[3])}
	n, err := monitor.BuildARP(buf, &monitor.ARP{Dst: monitor.MAC(bondMAC), Src: peer, Op: monitor.ARPReply,
		SenderMAC: peer, SenderIP: target, TargetMAC: monitor.MAC(bondMAC), TargetIP: hostV4.Addr()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.b.Receive(at(e.ms), m, buf[:n])
}

// count returns how many frames of kind were sent (a prefix of the kind
// counts its variants).
func count(sent []timed, kind string) int {
	n := 0
	for _, s := range sent {
		if strings.HasPrefix(s.kind, kind) {
			n++
		}
	}
	return n
}

// times lists when frames of kind were sent.
func times(sent []timed, kind string) []int {
	var l []int
	for _, s := range sent {
		if s.kind == kind {
			l = append(l, s.ms)
		}
	}
	return l
}

// failover takes member 0's carrier away and runs 2 s: the frames the
// bond sends after the failover.
func (e *env) failover() []timed {
	e.ms += 10
	e.b.Link(at(e.ms), 0, false)
	return e.run(2000, false, nil)
}

// pdus delivers the Reconfigure's frames to the partner and runs the
// exchange for 32 s (longer than the slow periodic time): our LACPDUs,
// the Reconfigure's first.
func (e *env) pdus() []lacp.LACPDU {
	var l []lacp.LACPDU
	for _, f := range e.out.Frames {
		var pdu lacp.LACPDU
		if lacp.DecodeLACPDU(f.Data, &pdu) == nil {
			l = append(l, pdu)
		}
		e.peer.sys.Receive(f.Member, f.Data, time.Duration(e.peer.ms)*time.Millisecond)
	}
	return append(l, e.peer.run(e.t, e.b, 32*time.Second)...)
}

// actor is the actor information of the last LACPDU sent.
func (e *env) actor() lacp.PortInfo {
	l := e.pdus()
	if len(l) == 0 {
		e.t.Fatal("no LACPDU sent")
	}
	return l[len(l)-1].Actor
}

func (e *env) snap() string {
	s := e.b.Snapshot()
	return fmt.Sprintf("TX %v RX %b active %d", s.TX, s.RX, s.Active)
}

// probe shows that changing one option on a running bond changes what the
// bond does.
type probe struct {
	mode  string
	base  []string // option lines of the running bond
	value string   // the new value, as `set` takes it
	// refused: the option has EffectRestart: Reconfigure refuses the
	// change and the bond behaves as before.
	refused bool
	// observe runs the bond after the Reconfigure and describes the
	// behaviour the option governs.
	observe func(e *env) string
	want    string // observe's result after the change (before differs)
}

// Every runtime-changeable bond option (config.Options with
// RuntimeChangeable) has a probe here: a new option without one fails.
// Each probe starts a bond, changes the option as `set` does (Parse,
// Apply, Validate, Reconfigure) and compares what the bond does with a
// bond whose Reconfigure changed nothing.
func TestEveryRuntimeOptionChangesBehaviour(t *testing.T) {
	ab := "active-backup"
	arpBase := []string{"miimon: 0", "arp_interval: 100", "arp_ip_target: [10.0.0.1]"}
	// a failover of member 0 to member 1, with the frames it sends
	notif := func(kind string) func(e *env) string {
		return func(e *env) string {
			sent := e.failover()
			return fmt.Sprintf("%s at %v", kind, times(sent, kind))
		}
	}
	// when member 0 (the primary, active) loses its carrier at 0 ms and,
	// for up, gets it back at 10 ms: the active member over time
	activeOverTime := func(up bool) func(e *env) string {
		return func(e *env) string {
			start := e.ms
			var l []string
			last := -2
			e.ms += 10
			e.b.Link(at(e.ms), 0, false)
			if up {
				e.ms += 10
				e.b.Link(at(e.ms), 0, true)
			}
			for e.ms < start+600 {
				if a := e.b.Snapshot().Active; a != last {
					l = append(l, fmt.Sprintf("%d@%d", a, e.ms-start))
					last = a
				}
				e.ms += 10
				e.b.Tick(at(e.ms), TickInput{})
			}
			return "active " + strings.Join(l, " ")
		}
	}
	// ARP/NS monitor: member verdicts after 1 s of probing with replies
	// from (member, target) pairs answer gives
	verdicts := func(rx bool, answer func(e *env, ms int)) func(e *env) string {
		return func(e *env) string {
			e.run(1000, rx, func(ms int) { answer(e, ms) })
			var l []string
			for _, s := range e.b.Status().Slaves {
				l = append(l, s.ArpMonitor)
			}
			return fmt.Sprintf("arp monitor %v, %s", l, e.snap())
		}
	}
	probes := map[string]probe{
		"mode": {mode: "balance-xor", value: "active-backup", refused: true,
			observe: func(e *env) string { return e.b.Snapshot().Mode.String() + " " + e.snap() }},
		"fail_over_mac": {mode: ab, value: "active", refused: true,
			observe: func(e *env) string {
				e.failover()
				return fmt.Sprintf("bond MAC %s after a failover", e.b.MAC())
			}},
		// combine_monitors off: the ARP monitor stops (bonding runs one
		// monitor; validation turns arp_interval off), so members are
		// used on carrier alone, without ARP replies
		"combine_monitors": {mode: "balance-xor", base: []string{"combine_monitors: 1", "miimon: 100", "arp_interval: 100", "arp_ip_target: [10.0.0.1]"}, value: "0",
			observe: func(e *env) string {
				sent := e.run(1000, false, nil)
				return fmt.Sprintf("%d probes, %s", count(sent, "arp-probe"), e.snap())
			}, want: "0 probes, TX [0 1 2] RX 111 active 0"},
		"active_slave": {mode: ab, value: "eth2",
			observe: func(e *env) string { return e.snap() }, want: "TX [2] RX 100 active 2"},
		"ad_actor_sys_prio": {mode: "802.3ad", value: "100",
			observe: func(e *env) string { return fmt.Sprintf("actor system priority %d", e.actor().SystemPriority) },
			want:    "actor system priority 100"},
		"ad_actor_system": {mode: "802.3ad", value: "02:aa:bb:cc:dd:ee",
			observe: func(e *env) string {
				s := e.actor().System
				return fmt.Sprintf("actor system %x", s[:])
			}, want: "actor system 02aabbccddee"},
		// one aggregator only with one partner: the selection policy is
		// what the LACP System runs with
		"ad_select": {mode: "802.3ad", value: "count",
			observe: func(e *env) string {
				e.pdus()
				return "ad_select " + e.b.Status().AD.ADSelect
			}, want: "ad_select count"},
		"ad_user_port_key": {mode: "802.3ad", value: "5",
			observe: func(e *env) string {
				a := e.actor()
				return fmt.Sprintf("actor key %d, %s", a.Key, e.snap())
			}, want: fmt.Sprintf("actor key %d, TX [0 1 2] RX 111 active 0", mustKey(1000, 5))},
		"all_slaves_active": {mode: ab, value: "1",
			observe: func(e *env) string { return e.snap() }, want: "TX [0] RX 111 active 0"},
		"arp_interval": {mode: "balance-xor", base: arpBase, value: "300",
			observe: func(e *env) string {
				return fmt.Sprintf("%d probes in 1.2 s", count(e.run(1200, false, nil), "arp-probe"))
			}, want: "12 probes in 1.2 s"},
		"arp_ip_target": {mode: "balance-xor", base: arpBase, value: "10.0.0.3",
			observe: func(e *env) string {
				sent := e.run(100, false, nil)
				return fmt.Sprintf("%d probes for 10.0.0.1, %d for 10.0.0.3", count(sent, "arp-probe 10.0.0.1"), count(sent, "arp-probe 10.0.0.3"))
			}, want: "0 probes for 10.0.0.1, 3 for 10.0.0.3"},
		"ns_ip6_target": {mode: "balance-xor", base: arpBase, value: "fd00::1",
			observe: func(e *env) string {
				sent := e.run(100, false, nil)
				return fmt.Sprintf("%d ARP probes, %d neighbour solicitations", count(sent, "arp-probe"), count(sent, "ns"))
			}, want: "3 ARP probes, 3 neighbour solicitations"},
		// arp_validate all: other traffic no longer keeps members up
		"arp_validate": {mode: ab, base: arpBase, value: "all",
			observe: verdicts(true, func(e *env, ms int) {}), want: "arp monitor [going down going back going down], TX [] RX 0 active -1"},
		// replies come from target 1 only: all targets must answer
		"arp_all_targets": {mode: ab, base: []string{"miimon: 0", "arp_interval: 100", "arp_ip_target: [10.0.0.1, 10.0.0.3]", "arp_validate: all"}, value: "all",
			observe: verdicts(false, func(e *env, ms int) {
				if ms%50 == 0 {
					for m := 0; m < 3; m++ {
						e.arpReply(m, target1)
					}
				}
			}), want: "arp monitor [going down going back going down], TX [] RX 0 active -1"},
		// replies stop at 300 ms: when does the verdict come
		"arp_missed_max": {mode: "balance-xor", base: arpBase, value: "6",
			observe: func(e *env) string {
				start := e.ms
				down := -1
				e.run(1500, false, func(ms int) {
					if ms-start < 300 && ms%50 == 0 {
						for m := 0; m < 3; m++ {
							e.arpReply(m, target1)
						}
					}
					if down < 0 && ms-start > 300 && len(e.b.Snapshot().TX) == 0 {
						down = (ms - start) / 100 * 100
					}
				})
				return fmt.Sprintf("members down by %d ms", down)
			}, want: "members down by 1000 ms"},
		"broadcast_neighbor": {mode: "802.3ad", value: "1",
			observe: func(e *env) string {
				e.pdus()
				return fmt.Sprintf("snapshot broadcasts neighbour frames %v, %s", e.b.Snapshot().BroadcastNeighbor, e.snap())
			}, want: "snapshot broadcasts neighbour frames true, TX [0 1 2] RX 111 active 0"},
		"coupled_control": {mode: "802.3ad", value: "0",
			observe: func(e *env) string {
				e.pdus()
				return "coupled_control " + e.b.Status().AD.CoupledControl + ", " + e.snap()
			}, want: "coupled_control off, TX [0 1 2] RX 111 active 0"},
		"downdelay": {mode: ab, base: []string{"primary: eth0"}, value: "200",
			observe: activeOverTime(false), want: "active 0@10 1@210"},
		"lacp_active": {mode: "802.3ad", value: "0",
			observe: func(e *env) string {
				return fmt.Sprintf("actor active %v", e.actor().State.Has(lacp.StateActivity))
			}, want: "actor active false"},
		"lacp_rate": {mode: "802.3ad", value: "fast",
			observe: func(e *env) string {
				return fmt.Sprintf("actor short timeout %v", e.actor().State.Has(lacp.StateTimeout))
			}, want: "actor short timeout true"},
		// the peer notifications after a failover repeat at miimon
		"miimon": {mode: ab, base: []string{"num_grat_arp: 3"}, value: "300",
			observe: notif("garp"), want: "garp at [10 300 600]"},
		"min_links": {mode: "802.3ad", value: "4",
			observe: func(e *env) string {
				e.pdus()
				return fmt.Sprintf("carrier %v, %s", e.b.Carrier(), e.snap())
			}, want: "carrier false, TX [] RX 111 active -1"},
		"num_grat_arp": {mode: ab, value: "3", observe: notif("garp"), want: "garp at [10 100 200]"},
		"num_unsol_na": {mode: ab, value: "3", observe: notif("na"), want: "na at [10 100 200]"},
		"packets_per_slave": {mode: "balance-rr", value: "3",
			observe: func(e *env) string { return fmt.Sprintf("packets per slave %d", e.b.Snapshot().PacketsPerSlave) },
			want:    "packets per slave 3"},
		"peer_notif_delay": {mode: ab, base: []string{"num_grat_arp: 3"}, value: "300",
			observe: notif("garp"), want: "garp at [10 300 600]"},
		"primary": {mode: ab, value: "eth1",
			observe: func(e *env) string { return e.snap() }, want: "TX [1] RX 10 active 1"},
		"primary_reselect": {mode: ab, base: []string{"primary: eth0"}, value: "failure",
			observe: activeOverTime(true), want: "active 1@20"},
		"tlb_dynamic_lb": {mode: "balance-tlb", value: "0",
			observe: func(e *env) string { return fmt.Sprintf("dynamic %v", e.b.Snapshot().ALB.Dynamic) },
			want:    "dynamic false"},
		"updelay": {mode: ab, base: []string{"primary: eth0"}, value: "200",
			observe: activeOverTime(true), want: "active 1@20 0@220"},
		// bondsm does not read use_carrier: the control loop does
		// (Config().UseCarrier): 1 takes netlink carrier events, 0 ignores
		// them and asks ethtool's link state at every miimon poll.
		"use_carrier": {mode: ab, value: "0",
			observe: func(e *env) string {
				return fmt.Sprintf("caller reads carrier from netlink %v; reconfigure output: %d frames, snapshot %v",
					e.b.Config().UseCarrier, len(e.out.Frames), e.out.Snapshot != nil)
			}, want: "caller reads carrier from netlink false; reconfigure output: 0 frames, snapshot false"},
		"xmit_hash_policy": {mode: "balance-xor", value: "layer3+4",
			observe: func(e *env) string {
				s := e.b.Snapshot()
				var l []int
				for port := uint16(1); port <= 8; port++ {
					l = append(l, policy.SlaveIndex(policy.Hash(udpTestFrame(port), s.Hash), len(s.TX)))
				}
				return fmt.Sprintf("hash %v: 8 flows on members %v", s.Hash, l)
			}, want: "hash layer3+4: 8 flows on members [0 0 1 0 1 1 2 1]"},
		"resend_igmp": {mode: ab, value: "3", observe: notif("igmp"), want: "igmp at [10 200 400]"},
		"lp_interval": {mode: "balance-tlb", value: "3",
			observe: func(e *env) string {
				sent := e.run(6000, false, nil)
				return fmt.Sprintf("learning packets on member 1 at %v", times(onMember(sent, 1), "other"))
			}, want: "learning packets on member 1 at [3010]"},
	}
	seen := map[string]bool{}
	for _, o := range config.Options() {
		if o.Section != config.SectionBond || !o.RuntimeChangeable() {
			continue
		}
		seen[o.Name] = true
		t.Run(o.Name, func(t *testing.T) {
			p, ok := probes[o.Name]
			if !ok {
				t.Fatalf("runtime option %s (effect %v) has no behaviour probe: add one", o.Name, o.Effect)
			}
			if p.refused != o.Effect.Has(config.EffectRestart) {
				t.Fatalf("%s: effect %v, probe refused %v", o.Name, o.Effect, p.refused)
			}
			before, _ := runProbe(t, o, p, "")
			after, err := runProbe(t, o, p, p.value)
			if p.refused {
				if err == nil || !strings.Contains(err.Error(), o.Name) {
					t.Fatalf("%s %s: Reconfigure error %v, want a refusal naming the option", o.Name, p.value, err)
				}
				if after != before {
					t.Fatalf("%s %s refused but behaviour changed:\n before: %s\n after:  %s", o.Name, p.value, before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s %s: %v", o.Name, p.value, err)
			}
			t.Logf("%s: before %q, after %s=%s %q", o.Name, before, o.Name, p.value, after)
			if after == before {
				t.Fatalf("%s %s changes nothing observable: %s", o.Name, p.value, after)
			}
			if after != p.want {
				t.Fatalf("%s %s:\n got  %s\n want %s\n (before: %s)", o.Name, p.value, after, p.want, before)
			}
		})
	}
	for name := range probes {
		if !seen[name] {
			t.Errorf("probe %s names no runtime-changeable bond option", name)
		}
	}
}

// runProbe starts p's bond, sets o to value as `set` does ("": its
// current value, a Reconfigure that changes nothing) and observes.
func runProbe(t *testing.T, o config.Option, p probe, value string) (string, error) {
	t.Helper()
	c := parseBond(t, p.mode, 3, p.base...)
	if !o.Modes.Has(c.Mode) {
		t.Fatalf("%s is not supported in mode %s", o.Name, p.mode)
	}
	b, _ := newBond(t, c)
	e := &env{t: t, b: b}
	b.HostAddrs(at(0), []monitor.Addr{{Prefix: hostV4}, {Prefix: hostV6}})
	b.HostGroups(at(0), []monitor.Group{{Addr: hostGroup}})
	if p.mode == "802.3ad" {
		e.peer = newPeer(t, 3)
		e.peer.run(t, b, 5*time.Second)
		e.ms = e.peer.ms
		if !b.Carrier() {
			t.Fatal("802.3ad bond not aggregated with its partner")
		}
	}
	cfg := config.Defaults()
	cfg.Bonds = []config.Bond{b.Config()}
	if value == "" {
		value = o.Format(o.Current(&cfg.Bonds[0]))
	}
	v, err := o.Parse(value)
	if err != nil {
		t.Fatalf("%s %q: %v", o.Name, value, err)
	}
	if err := o.Apply(&cfg.Bonds[0], v); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Validate(); err != nil {
		t.Fatalf("%s %q: %v", o.Name, value, err)
	}
	e.ms += 10
	if e.peer != nil {
		e.peer.ms = e.ms
	}
	e.out, err = b.Reconfigure(at(e.ms), cfg.Bonds[0])
	return p.observe(e), err
}

func onMember(sent []timed, m int) []timed {
	var l []timed
	for _, s := range sent {
		if s.f.Member == m {
			l = append(l, s)
		}
	}
	return l
}

func mustKey(speed int, userKey uint16) uint16 {
	k, _ := lacp.PortKey(speed, true, userKey)
	return k
}

// udpTestFrame is an IPv4/UDP frame between two fixed hosts from source
// port sport.
func udpTestFrame(sport uint16) []byte {
	f := make([]byte, 64)
	copy(f, []byte{2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1})
	f[34], f[35] = byte(sport>>8), byte(sport)
	f[37] = 80
	return f
}
