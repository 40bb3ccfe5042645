// Package monitor is the ARP/NS link monitor and the peer-notification
// planner of the appliance, modelled on Linux bonding
// (drivers/net/bonding/bond_main.c, Documentation/networking/bonding.rst).
//
// Everything here is pure and deterministic: no sockets, no goroutines, no
// clock. The control goroutine injects a monotonic time (`now`, a
// time.Duration since any fixed origin), hands received frames in
// (Monitor.Rx, Monitor.Traffic) and sends the frames the package hands out
// (Action with Kind ActionSend, Frame).
//
// The package has three parts:
//
//   - frame codecs (arp.go, nd.go, igmp.go): ARP request/reply, gratuitous
//     ARP, IPv6 Neighbor Solicitation and (unsolicited) Neighbor
//     Advertisement, IGMPv2/IGMPv3 membership reports. Parsers do not
//     allocate; builders write into a caller buffer and return the length.
//   - Monitor (monitor.go): bonding's ARP monitor with IPv6 NS targets,
//     active-backup (bond_activebackup_arp_mon) and load-balancing
//     (bond_loadbalance_arp_mon) variants, arp_validate, arp_all_targets
//     and arp_missed_max.
//   - Notifier (notifier.go): what bonding does after a failover:
//     num_grat_arp/num_unsol_na peer notifications spaced peer_notif_delay,
//     and resend_igmp membership reports every 200 ms.
//
// Slaves are numbered by their position in Config.Slaves.
package monitor
