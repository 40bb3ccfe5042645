package monitor

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// describe turns a notification frame into a short comparable string.
func describe(t *testing.T, f Frame) string {
	t.Helper()
	if a, err := ParseARP(f.Data); err == nil {
		if a.Op != ARPRequest || a.SenderIP != a.TargetIP || a.Dst != BroadcastMAC || a.SenderMAC != a.Src {
			t.Fatalf("not a gratuitous ARP: %+v", a)
		}
		return fmt.Sprintf("s%d garp %v vlan%d %v", f.Slave, a.SenderIP, a.VLAN, a.Src)
	}
	if na, err := ParseNA(f.Data); err == nil {
		if na.IPDst != AllNodes || na.IPSrc != na.Target || !na.Override || na.Solicited ||
			!na.HasLinkAddr || na.LinkAddr != na.Src || !na.ChecksumOK || na.HopLimit != 255 {
			t.Fatalf("not an unsolicited NA: %+v", na)
		}
		return fmt.Sprintf("s%d una %v vlan%d %v r%v", f.Slave, na.Target, na.VLAN, na.Src, na.Router)
	}
	et, off := l3(f.Data)
	if et != EtherTypeIPv4 || f.Data[off+9] != 2 {
		t.Fatalf("unexpected frame %x", f.Data)
	}
	checkIGMPSums(t, f.Data)
	ip := f.Data[off:]
	m := ip[24:]
	vlan := 0
	if off == 18 {
		vlan = int(f.Data[15]) | int(f.Data[14]&0x0f)<<8
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	switch m[0] {
	case IGMPv2MembershipReport:
		return fmt.Sprintf("s%d igmpv2 %v from %v vlan%d", f.Slave, netip.AddrFrom4([4]byte(m[4:8])), src, vlan)
	case IGMPv3MembershipReport:
		if m[7] != 1 || m[8] != IGMPv3ModeIsExclude {
			t.Fatalf("IGMPv3 report %x", m)
		}
		return fmt.Sprintf("s%d igmpv3 %v from %v vlan%d", f.Slave, netip.AddrFrom4([4]byte(m[12:16])), src, vlan)
	}
	t.Fatalf("unexpected IGMP %x", m)
	return ""
}

func TestNotifierCountsAndSpacing(t *testing.T) {
	newMAC := MAC{0x02, 0xaa, 0, 0, 0, 0x02}
	cfg := NotifierConfig{
		NumPeerNotif: 3, Interval: 100 * time.Millisecond, PeerNotifDelay: 350 * time.Millisecond,
		ResendIGMP: 2, IGMPVersion: 2, VLANs: []uint16{10},
		Addrs: []Addr{
			{Prefix: netip.MustParsePrefix("192.0.2.10/24")},
			{Prefix: netip.MustParsePrefix("2001:db8::10/64")},
			{Prefix: netip.MustParsePrefix("198.51.100.1/24"), VLAN: 20},
		},
		Groups: []Group{
			{Addr: netip.MustParseAddr("224.0.0.1")}, // all-hosts: never reported
			{Addr: netip.MustParseAddr("239.1.1.1")},
			{Addr: netip.MustParseAddr("239.2.2.2"), VLAN: 20},
		},
	}
	n, err := NewNotifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n.Spacing() != 300*time.Millisecond { // 350 ms rounds down to 3 intervals
		t.Fatalf("spacing %v", n.Spacing())
	}
	if _, ok := n.Next(); ok {
		t.Fatal("pending before failover")
	}
	t0 := 5 * time.Second
	n.Failover(1, newMAC, t0)
	round := []string{
		"s1 garp 192.0.2.10 vlan0 02:aa:00:00:00:02",
		"s1 una 2001:db8::10 vlan0 02:aa:00:00:00:02 rfalse",
		"s1 garp 192.0.2.10 vlan10 02:aa:00:00:00:02",
		"s1 una 2001:db8::10 vlan10 02:aa:00:00:00:02 rfalse",
		"s1 garp 198.51.100.1 vlan20 02:aa:00:00:00:02",
	}
	igmp := []string{
		"s1 igmpv2 239.1.1.1 from 192.0.2.10 vlan0",
		"s1 igmpv2 239.2.2.2 from 198.51.100.1 vlan20",
	}
	want := map[time.Duration][]string{
		t0:                        append(append([]string{}, round...), igmp...),
		t0 + 200*time.Millisecond: igmp,
		t0 + 300*time.Millisecond: round,
		t0 + 600*time.Millisecond: round,
	}
	got := map[time.Duration][]string{}
	for now := t0; now < t0+2*time.Second; now += 10 * time.Millisecond {
		for _, f := range n.Tick(now) {
			got[now] = append(got[now], describe(t, f))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notifications\n got %v\nwant %v", got, want)
	}
	if p, i := n.Pending(); p != 0 || i != 0 {
		t.Fatalf("pending %d %d", p, i)
	}
}

func TestNotifierDefaults(t *testing.T) {
	n, err := NewNotifier(NotifierConfig{NumPeerNotif: 2, ResendIGMP: 3, Interval: 50 * time.Millisecond,
		Router: true, SkipLinkLocalGroups: true,
		Addrs:  []Addr{{Prefix: netip.MustParsePrefix("fe80::1/64")}},
		Groups: []Group{{Addr: netip.MustParseAddr("224.0.0.251")}, {Addr: netip.MustParseAddr("239.9.9.9")}}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spacing() != 50*time.Millisecond { // peer_notif_delay 0: one interval
		t.Fatalf("spacing %v", n.Spacing())
	}
	n.Failover(0, testMAC, 0)
	var times []time.Duration
	var kinds []string
	for {
		next, ok := n.Next()
		if !ok {
			break
		}
		for _, f := range n.Tick(next) {
			times = append(times, next)
			kinds = append(kinds, describe(t, f))
		}
	}
	want := "[0s 0s 50ms 200ms 400ms] [s0 una fe80::1 vlan0 02:00:00:00:00:01 rtrue " +
		"s0 igmpv3 239.9.9.9 from 0.0.0.0 vlan0 s0 una fe80::1 vlan0 02:00:00:00:00:01 rtrue " +
		"s0 igmpv3 239.9.9.9 from 0.0.0.0 vlan0 s0 igmpv3 239.9.9.9 from 0.0.0.0 vlan0]"
	if got := fmt.Sprint(times, kinds); got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestNotifierRestartAndCancel(t *testing.T) {
	n, err := NewNotifier(NotifierConfig{NumPeerNotif: 3, ResendIGMP: 0, Interval: 100 * time.Millisecond,
		Addrs: []Addr{{Prefix: netip.MustParsePrefix("192.0.2.10/24")}}})
	if err != nil {
		t.Fatal(err)
	}
	n.Failover(0, testMAC, 0)
	if len(n.Tick(0)) != 1 {
		t.Fatal("first notification")
	}
	// A second failover restarts the count on the new slave.
	n.Failover(1, testMAC, 50*time.Millisecond)
	for _, now := range []time.Duration{50, 150, 250} {
		fs := n.Tick(now * time.Millisecond)
		if len(fs) != 1 || fs[0].Slave != 1 {
			t.Fatalf("at %dms: %v", now, fs)
		}
	}
	if p, _ := n.Pending(); p != 0 {
		t.Fatalf("pending %d", p)
	}
	n.Failover(1, testMAC, time.Second)
	n.Failover(-1, testMAC, time.Second)
	if len(n.Tick(time.Second)) != 0 {
		t.Fatal("sent after cancel")
	}
	// A late Tick sends one notification, not a burst.
	n.Failover(0, testMAC, 2*time.Second)
	n.Tick(10 * time.Second)
	if next, _ := n.Next(); next != 10*time.Second+100*time.Millisecond {
		t.Fatalf("next %v", next)
	}
}

func TestNotifierErrors(t *testing.T) {
	for name, cfg := range map[string]NotifierConfig{
		"num":      {NumPeerNotif: 256, Interval: time.Second},
		"igmp":     {ResendIGMP: -1, Interval: time.Second},
		"interval": {},
		"delay":    {Interval: time.Second, PeerNotifDelay: 301 * time.Second},
		"version":  {Interval: time.Second, IGMPVersion: 1},
		"vlan":     {Interval: time.Second, VLANs: []uint16{0}},
		"group":    {Interval: time.Second, Groups: []Group{{Addr: netip.MustParseAddr("10.0.0.1")}}},
		"addr":     {Interval: time.Second, Addrs: []Addr{{}}},
	} {
		if _, err := NewNotifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNotifierAllocs(t *testing.T) {
	n, err := NewNotifier(NotifierConfig{NumPeerNotif: 255, ResendIGMP: 255, Interval: 100 * time.Millisecond,
		VLANs: []uint16{5, 6}, Addrs: ourAddr, Groups: []Group{{Addr: netip.MustParseAddr("239.1.1.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	n.Failover(0, testMAC, 0)
	n.Tick(0) // buffers grow once
	now := time.Duration(0)
	if a := testing.AllocsPerRun(100, func() {
		now += 100 * time.Millisecond
		n.Tick(now)
	}); a != 0 {
		t.Fatalf("%v allocs per Tick", a)
	}
}
