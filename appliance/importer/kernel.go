package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/bond-appliance/bond-appliance/appliance/config"
)

// FromKernel reads the running kernel bond name over netlink (its bonding
// attributes, its slaves and the VLANs above it) and imports it. Options
// that the netlink library does not decode (ns_ip6_target,
// peer_notif_delay, lacp_active, arp_missed_max, coupled_control,
// broadcast_neighbor) are read from /sys/class/net/NAME/bonding when it is
// there. It fails when there is no such interface, or when it is not a
// bond.
func FromKernel(name string) (*Result, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("importer: no bond %q: no interface of that name in this network namespace (is the bonding module loaded and the bond created?)", name)
		}
		return nil, fmt.Errorf("importer: reading %s over netlink: %w", name, err)
	}
	bond, ok := link.(*netlink.Bond)
	if !ok {
		return nil, fmt.Errorf("importer: %s is a device of type %q, not a bond", name, link.Type())
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("importer: listing links over netlink: %w", err)
	}
	var sysfs fs.FS
	dir := "/sys/class/net/" + name + "/bonding"
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		sysfs = os.DirFS(dir)
	}
	return FromNetlink(bond, links, sysfs)
}

// sysfsOnly are the bonding options the netlink library does not decode,
// by their sysfs file names (which are their configuration keys).
var sysfsOnly = []string{"ns_ip6_target", "peer_notif_delay", "lacp_active", "arp_missed_max", "coupled_control", "broadcast_neighbor"}

// FromNetlink imports a bond as netlink describes it: bond is the bond
// (from netlink.LinkByName), links every link of its network namespace
// (netlink.LinkList: slaves are those whose MasterIndex is the bond's
// index, VLANs those whose ParentIndex is), and sysfs, when not nil, the
// bond's /sys/class/net/NAME/bonding directory for the options the netlink
// library does not decode. Attributes the kernel did not report (-1) keep
// their defaults; options at their default are not written to the YAML
// (but mode and miimon always are).
func FromNetlink(bond *netlink.Bond, links []netlink.Link, sysfs fs.FS) (*Result, error) {
	if bond == nil {
		return nil, errors.New("importer: no bond")
	}
	name := bond.Name
	src := "kernel " + name
	res := newResult("kernel bond " + name + " (netlink)")
	rb := res.bond(name, src)
	rb.complete = true

	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	ifname := func(i int) string {
		if l, ok := byIndex[i]; ok {
			return l.Attrs().Name
		}
		return ""
	}

	// set records a value read from the kernel unless it is the
	// configuration's default (mode and miimon are always written).
	set := func(key, value string) {
		o, why := bondOption(key)
		if why != "" {
			return
		}
		text := key + " " + value
		v, err := o.Parse(normalize(o, value))
		if err != nil {
			res.skip(name, "option "+text, err.Error(), src)
			return
		}
		if key != "mode" && key != "miimon" && o.DefaultDoc == "" {
			if d, err := o.Parse(o.Default); err == nil && o.Format(d) == o.Format(v) {
				return
			}
		}
		res.put(rb, given{name: o.Name, v: v, text: text, src: src})
	}
	num := func(key string, n int) {
		if n >= 0 {
			set(key, strconv.Itoa(n))
		}
	}

	num("mode", int(bond.Mode))
	num("miimon", bond.Miimon)
	num("updelay", bond.UpDelay)
	num("downdelay", bond.DownDelay)
	num("use_carrier", bond.UseCarrier)
	num("arp_interval", bond.ArpInterval)
	if len(bond.ArpIpTargets) > 0 {
		t := make([]string, len(bond.ArpIpTargets))
		for i, ip := range bond.ArpIpTargets {
			t[i] = ip.String()
		}
		set("arp_ip_target", strings.Join(t, ","))
	}
	num("arp_validate", int(bond.ArpValidate))
	num("arp_all_targets", int(bond.ArpAllTargets))
	if bond.Primary > 0 {
		if n := ifname(bond.Primary); n != "" {
			set("primary", n)
		} else {
			res.skip(name, "option primary (ifindex "+strconv.Itoa(bond.Primary)+")", "no link has this index", src)
		}
	}
	num("primary_reselect", int(bond.PrimaryReselect))
	num("fail_over_mac", int(bond.FailOverMac))
	num("xmit_hash_policy", int(bond.XmitHashPolicy))
	num("resend_igmp", bond.ResendIgmp)
	num("num_grat_arp", bond.NumPeerNotif)
	num("all_slaves_active", bond.AllSlavesActive)
	num("min_links", bond.MinLinks)
	num("lp_interval", bond.LpInterval)
	num("packets_per_slave", bond.PacketsPerSlave)
	num("lacp_rate", int(bond.LacpRate))
	num("ad_select", int(bond.AdSelect))
	num("ad_actor_sys_prio", bond.AdActorSysPrio)
	num("ad_user_port_key", bond.AdUserPortKey)
	if len(bond.AdActorSystem) == 6 {
		set("ad_actor_system", bond.AdActorSystem.String())
	}
	num("tlb_dynamic_lb", bond.TlbDynamicLb)
	if bond.ActiveSlave > 0 {
		res.note(name, "active slave "+ifname(bond.ActiveSlave), "the current active slave is runtime state, not configuration: not carried over (primary is)", src)
	}

	if sysfs != nil {
		for _, key := range sysfsOnly {
			b, err := fs.ReadFile(sysfs, key)
			if err != nil {
				continue // an older kernel without the option
			}
			f := strings.Fields(string(bytes.TrimSpace(b)))
			if len(f) == 0 {
				continue
			}
			o, _ := bondOption(key)
			v := f[0] // "on 1": the name
			if o.Kind == config.KindIPv6List || o.Kind == config.KindIPv4List {
				v = strings.Join(f, ",")
			}
			set(key, v)
		}
	} else {
		res.note(name, strings.Join(sysfsOnly, ", "), "not read: the netlink library does not decode them and /sys/class/net/"+name+"/bonding was not available; check them with `ip -d link show "+name+"`", src)
	}

	if bond.MTU > 0 && bond.MTU != 1500 {
		res.setOption(rb, "mtu", strconv.Itoa(bond.MTU), "mtu "+strconv.Itoa(bond.MTU), src, true)
	}

	// Slaves, in ifindex order; VLANs above the bond.
	var slaves, vlans []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex == bond.Index && bond.Index != 0 {
			slaves = append(slaves, l)
		}
		if v, ok := l.(*netlink.Vlan); ok && a.ParentIndex == bond.Index && bond.Index != 0 {
			vlans = append(vlans, v)
		}
	}
	byIdx := func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index }
	slices.SortFunc(slaves, byIdx)
	slices.SortFunc(vlans, byIdx)
	var firstPerm net.HardwareAddr
	for i, l := range slaves {
		a := l.Attrs()
		s := res.addSlave(rb, a.Name, src)
		bs, ok := a.Slave.(*netlink.BondSlave)
		if i == 0 {
			firstPerm = a.HardwareAddr
			if ok && len(bs.PermHardwareAddr) == 6 {
				firstPerm = bs.PermHardwareAddr
			}
		}
		if s != nil && ok && bs.QueueId != 0 {
			res.setSlaveOption(rb, s, "queue_id", strconv.Itoa(int(bs.QueueId)), "queue_id "+strconv.Itoa(int(bs.QueueId)), src)
		}
	}
	if len(slaves) > 0 && (int(bond.Mode) == config.ModeActiveBackup || int(bond.Mode) == config.ModeBalanceTLB ||
		int(bond.Mode) == config.ModeBalanceALB || int(bond.Mode) == config.Mode8023AD) {
		res.note(name, "slave prio and actor_port_prio", "not read: the netlink library does not decode them; check them with `ip -d link show SLAVE` and add them to the slave objects if set", src)
	}
	for _, l := range vlans {
		res.addVLAN(rb, strconv.Itoa(l.(*netlink.Vlan).VlanId), "VLAN "+l.Attrs().Name, src)
	}
	// The bond's MAC is its first slave's unless it was set.
	if mac := bond.HardwareAddr; len(mac) == 6 && !bytes.Equal(mac, firstPerm) && len(slaves) > 0 {
		res.setOption(rb, "mac", mac.String(), "address "+mac.String(), src, true)
	}

	res.finish()
	return res, nil
}
