package lab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OVS is a private Open vSwitch instance (its own ovsdb-server and
// ovs-vswitchd, userspace "netdev" datapath) running in the peer namespace
// with a bond "lag" over the peer ports: a real, independent IEEE 802.1AX
// LACP partner (Open vSwitch's lib/lacp.c). The system Open vSwitch service
// is neither used nor touched.
type OVS struct {
	Dir     string
	NS      string
	Members []string
}

// OVSOptions configure the partner.
type OVSOptions struct {
	LACPTime string // fast (default) | slow
	LACPMode string // active (default) | passive
	SysID    string // other_config:lacp-system-id
	SysPrio  int
	Key      int // other_config:lacp-aggregation-key on every member (0: default)
	// Split > 0 puts members[Split:] in a second bond "lag2" (same LACP
	// settings, its own key) on the same bridge.
	Split    int
	IP       string // address with prefix on the bridge port
	BondMode string // balance-tcp (default) | balance-slb | active-backup
	MTU      int    // mtu_request on the members and the bridge (0: leave as is)
}

// StartOVS starts the partner in namespace ns on members (existing links there).
func StartOVS(ctx context.Context, ns string, members []string, o OVSOptions) (ovs *OVS, err error) {
	if o.LACPTime == "" {
		o.LACPTime = "fast"
	}
	if o.LACPMode == "" {
		o.LACPMode = "active"
	}
	if o.BondMode == "" {
		o.BondMode = "balance-tcp"
	}
	dir, err := os.MkdirTemp("/run", "ba-ovs-")
	if err != nil {
		return nil, err
	}
	ovs = &OVS{Dir: dir, NS: ns, Members: members}
	defer func() {
		if err != nil {
			if ovs != nil {
				err = fmt.Errorf("%w\n%s", err, ovs.Log(30))
			}
			ovs.Close()
		}
	}()
	sh := func(args ...string) error { _, err := Sh(ctx, args[0], args[1:]...); return err }
	// The member ports are kernel interfaces of this namespace too: without
	// arp_ignore the kernel answers ARP for the bridge's address on them,
	// with their own MAC, and the peer's neighbour entry points at a port.
	for _, k := range []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"} {
		if err := sh("ip", "netns", "exec", ns, "sysctl", "-qw", k); err != nil {
			return ovs, err
		}
	}
	db := filepath.Join(dir, "conf.db")
	if err := sh("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"); err != nil {
		return ovs, err
	}
	if err := sh("ovsdb-server", db, "--remote=punix:"+dir+"/db.sock", "--pidfile="+dir+"/ovsdb-server.pid",
		"--unixctl="+dir+"/ovsdb-server.ctl", "-vconsole:off", "-vsyslog:off", "--log-file="+dir+"/ovsdb-server.log",
		"--detach", "--no-chdir"); err != nil {
		return ovs, err
	}
	if err := ovs.vsctl(ctx, "--no-wait", "init"); err != nil {
		return ovs, err
	}
	if err := sh("ip", "netns", "exec", ns, "env", "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "ovs-vswitchd",
		"unix:"+dir+"/db.sock", "--pidfile="+dir+"/ovs-vswitchd.pid", "--unixctl="+dir+"/ovs-vswitchd.ctl",
		"-vconsole:off", "-vsyslog:off", "--log-file="+dir+"/ovs-vswitchd.log", "-vfile:info", "-vfile:lacp:dbg",
		"--detach", "--no-chdir"); err != nil {
		return ovs, err
	}
	// A fixed bridge MAC: Open vSwitch otherwise re-derives it from its
	// ports' addresses as they are added, and a peer that already resolved
	// the old one sends frames the bridge's host interface ignores.
	if err := ovs.vsctl(ctx, "add-br", "lpbr", "--", "set", "bridge", "lpbr", "datapath_type=netdev",
		"other-config:hwaddr=\""+PeerMAC+"\""); err != nil {
		return ovs, err
	}
	groups := [][]string{members}
	if o.Split > 0 && o.Split < len(members) {
		groups = [][]string{members[:o.Split], members[o.Split:]}
	}
	for gi, g := range groups {
		port := "lag"
		if gi > 0 {
			port = fmt.Sprintf("lag%d", gi+1)
		}
		args := append([]string{"add-bond", "lpbr", port}, g...)
		args = append(args, "lacp="+o.LACPMode, "bond_mode="+o.BondMode, "other_config:lacp-time="+o.LACPTime)
		if o.SysID != "" {
			args = append(args, "other_config:lacp-system-id="+o.SysID)
		}
		if o.SysPrio != 0 {
			args = append(args, fmt.Sprintf("other_config:lacp-system-priority=%d", o.SysPrio))
		}
		if err := ovs.vsctl(ctx, args...); err != nil {
			return ovs, err
		}
	}
	if o.Key != 0 {
		for _, m := range members {
			if err := ovs.vsctl(ctx, "set", "interface", m, fmt.Sprintf("other_config:lacp-aggregation-key=%d", o.Key)); err != nil {
				return ovs, err
			}
		}
	}
	if o.MTU != 0 {
		for _, ifc := range append([]string{"lpbr"}, members...) {
			if err := ovs.vsctl(ctx, "set", "interface", ifc, fmt.Sprintf("mtu_request=%d", o.MTU)); err != nil {
				return ovs, err
			}
		}
	}
	// wait until the bridge's host interface carries the fixed MAC
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := Sh(ctx, "ip", "netns", "exec", ns, "cat", "/sys/class/net/lpbr/address")
		if strings.TrimSpace(out) == PeerMAC {
			break
		}
		if time.Now().After(deadline) {
			return ovs, fmt.Errorf("lpbr MAC is %q, not %s", strings.TrimSpace(out), PeerMAC)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o.IP != "" {
		if err := sh("ip", "-n", ns, "addr", "add", o.IP, "dev", "lpbr"); err != nil {
			return ovs, err
		}
		if err := sh("ip", "-n", ns, "link", "set", "lpbr", "up"); err != nil {
			return ovs, err
		}
	}
	return ovs, nil
}

func (o *OVS) vsctl(ctx context.Context, args ...string) error {
	_, err := Sh(ctx, "ovs-vsctl", append([]string{"--db=unix:" + o.Dir + "/db.sock", "--timeout=20"}, args...)...)
	return err
}

// AppCtl runs ovs-appctl against the instance.
func (o *OVS) AppCtl(ctx context.Context, args ...string) (string, error) {
	return Sh(ctx, "ovs-appctl", append([]string{"-t", o.Dir + "/ovs-vswitchd.ctl"}, args...)...)
}

// Log returns the last n lines of ovs-vswitchd.log.
func (o *OVS) Log(n int) string {
	b, _ := os.ReadFile(filepath.Join(o.Dir, "ovs-vswitchd.log"))
	return lastLines(string(b), n)
}

// Close stops both daemons and removes the state directory.
func (o *OVS) Close() {
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = o.AppCtl(ctx, "exit", "--cleanup")
	_, _ = Sh(ctx, "ovs-appctl", "-t", o.Dir+"/ovsdb-server.ctl", "exit")
	for _, p := range []string{"ovs-vswitchd.pid", "ovsdb-server.pid"} {
		b, err := os.ReadFile(filepath.Join(o.Dir, p))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
			if i == 20 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.RemoveAll(o.Dir)
}

// LACPMember is Open vSwitch's view of one member (lacp/show + bond/show).
type LACPMember struct {
	Name         string
	Status       string // current | expired | defaulted
	Attached     bool
	Enabled      bool // bond/show: enabled for traffic
	ActorState   uint8
	PartnerSys   string
	PartnerKey   int
	PartnerPort  int
	PartnerState uint8
	PartnerPrio  int
}

// Ready is what the shared harness calls ready: enabled, partner known,
// both sides in sync, collecting and distributing.
func (m LACPMember) Ready() bool {
	const csd = 0x08 | 0x10 | 0x20
	return m.Enabled && m.PartnerSys != "00:00:00:00:00:00" && m.ActorState&csd == csd && m.PartnerState&csd == csd
}

func stateBits(s string) uint8 {
	var v uint8
	for _, w := range strings.Fields(s) {
		switch w {
		case "activity":
			v |= 0x01
		case "timeout":
			v |= 0x02
		case "aggregation":
			v |= 0x04
		case "synchronized":
			v |= 0x08
		case "collecting":
			v |= 0x10
		case "distributing":
			v |= 0x20
		case "defaulted":
			v |= 0x40
		case "expired":
			v |= 0x80
		}
	}
	return v
}

// Members reads lacp/show and bond/show.
func (o *OVS) MembersState(ctx context.Context) (map[string]*LACPMember, error) {
	out, err := o.AppCtl(ctx, "lacp/show", "lag")
	if err != nil {
		return nil, err
	}
	ms := map[string]*LACPMember{}
	var cur *LACPMember
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "member: ") {
			f := strings.Fields(line)
			cur = &LACPMember{Name: strings.TrimSuffix(f[1], ":")}
			if len(f) > 2 {
				cur.Status = f[2]
			}
			cur.Attached = len(f) > 3 && f[3] == "attached"
			ms[cur.Name] = cur
			continue
		}
		if cur == nil {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "actor state":
			cur.ActorState = stateBits(v)
		case "partner state":
			cur.PartnerState = stateBits(v)
		case "partner sys_id":
			cur.PartnerSys = v
		case "partner key":
			cur.PartnerKey, _ = strconv.Atoi(v)
		case "partner port_id":
			cur.PartnerPort, _ = strconv.Atoi(v)
		case "partner port_priority":
			cur.PartnerPrio, _ = strconv.Atoi(v)
		}
	}
	if out, err := o.AppCtl(ctx, "bond/show", "lag"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "member ") {
				f := strings.Fields(line)
				if len(f) >= 3 {
					if m := ms[strings.TrimSuffix(f[1], ":")]; m != nil {
						m.Enabled = f[2] == "enabled"
					}
				}
			}
		}
	}
	return ms, nil
}

// WaitReady waits until want members are ready (or, with want < 0, until
// none is), returning the elapsed time.
func (o *OVS) WaitReady(ctx context.Context, want int, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for {
		ms, err := o.MembersState(ctx)
		n := 0
		if err == nil {
			for _, m := range ms {
				if m.Ready() {
					n++
				}
			}
		}
		if (want >= 0 && n >= want) || (want < 0 && n == 0 && err == nil) {
			// Open vSwitch's userspace datapath can keep flows translated
			// while the bond was still disabled (actions:drop) for seconds
			// after it enables the members; purge them so the next packets
			// are translated with the current bond state.
			_, _ = o.AppCtl(ctx, "revalidator/purge")
			return time.Since(t0), nil
		}
		if time.Since(t0) > timeout {
			var b strings.Builder
			for _, m := range ms {
				fmt.Fprintf(&b, "%+v\n", *m)
			}
			return time.Since(t0), fmt.Errorf("partner: %d members ready after %v, want %d: %v\n%s", n, timeout, want, err, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// JitterWindowSeconds is the window of the appliance's recent LACP tick
// jitter figure (tick_jitter_recent_max_ms covers the last 10 to 20 s).
const JitterWindowSeconds = 10
