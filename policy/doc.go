// Package policy is the transmit-policy core of the bonding appliance: it
// decides, per frame, which slave a frame leaves on, with the same numbers
// the Linux bonding driver (drivers/net/bonding/bond_main.c) would compute.
//
// Everything here runs on the per-packet hot path: no allocation, no lock, no
// system call, and no panic on any input (truncated or garbage frames
// included). Values are reproduced bit for bit, not approximated, so that
// replacing a kernel bond by the appliance (or checking one against the
// other) keeps every flow on the same slave index.
//
// # What is emulated
//
// [Hash] is bond_xmit_hash() for the six xmit_hash_policy values
// (layer2, layer3+4, layer2+3, encap2+3, encap3+4, vlan+srcmac), including:
//
//   - bond_eth_hash: h_dest[5] ^ h_source[5] ^ be16_to_cpu(h_proto).
//   - bond_flow_ip / bond_flow_dissect for layer2+3 and layer3+4: the
//     bonding driver's own minimal parser (not the generic flow dissector).
//     IPv4 fragments (MF set or offset != 0, so the first fragment too)
//     contribute addresses but no ports; IPv6 extension headers are NOT
//     walked (nexthdr is used as the L4 protocol as is, so e.g. a TCP
//     segment behind a hop-by-hop header hashes with ports 0); under
//     layer3+4, ICMP/ICMPv6 echo and timestamp messages hash their type, code
//     and identifier instead of ports; ICMP errors (both policies) are hashed
//     on the addresses (and ports) of the packet they quote.
//   - __skb_flow_dissect with bonding's key set for encap2+3 and encap3+4:
//     VLAN (any depth), PPPoE session, MPLS (stops), TIPC, FCoE, ARP/RARP,
//     batman-adv unicast, PTP (1588), HSR/PRP, CFM; IPv4/IPv6 with the
//     IPv6 hop-by-hop, routing, destination-options and fragment headers;
//     GRE version 0 (checksum/key/sequence options, transparent Ethernet
//     bridging 0x6558) and version 1 (PPTP), IPIP/SIT/IPv6-in-IPv6
//     (IPPROTO_IPIP and IPPROTO_IPV6 in either IPv4 or IPv6), MPLS-in-IP,
//     ICMP identifiers, and the 15-header budget (MAX_FLOW_DISSECT_HDRS).
//     UDP tunnels (VXLAN, Geneve, GUE, ...) are not looked into by the
//     dissector, so encap3+4 hashes a VXLAN packet on its outer addresses
//     and outer UDP ports, exactly like layer3+4 does.
//   - bond_ip_hash: hash ^= dst ^ src; hash ^= hash>>16; hash ^= hash>>8;
//     and >>1 for the 3+4 policies. Addresses are the __be32 words read as
//     a host-order u32 on a little-endian CPU (x86-64/arm64), IPv6 addresses
//     are folded with ipv6_addr_hash (XOR of the four 32-bit words) and the
//     L4 ports are the four raw bytes at the transport header read the same
//     way (memcpy of a __be32 into a u32).
//   - bond_vlan_srcmac_hash: (TCI) ^ (source MAC bytes 0-2) ^ (bytes 3-5).
//
// [SlaveIndex] is the "hash % count" of bond_xmit_3ad_xor_slave_get, and
// [RoundRobin] is bond_rr_gen_slave_id (packets_per_slave 0, 1 and N,
// including the kernel's reciprocal division), one instance per lane just as
// the kernel keeps one rr_tx_counter per CPU. [IsIGMP] is the special case
// in bond_xmit_roundrobin_slave_get that sends IGMP through the active slave.
//
// [ALBTable] is the per-frame half of balance-tlb and balance-alb
// (bond_xmit_tlb_slave_get, bond_xmit_alb_slave_get, bond_do_alb_xmit,
// bond_should_deliver_exact_match): an immutable table built by control
// (package appliance/alb) that a lane reads, and the lane's own byte
// counters ([ALBCounters]).
//
// # The frame model (VLAN tags)
//
// Hash takes the frame as it goes on the wire, starting at the destination
// MAC. A bond device advertises NETIF_F_HW_VLAN_CTAG_TX and
// NETIF_F_HW_VLAN_STAG_TX (bond_setup), so in the kernel the outermost
// 802.1Q (0x8100) or 802.1ad (0x88a8) tag is not in the packet data when
// bond_xmit_hash runs: it is out of band in skb->vlan_tci, h_proto and
// skb->protocol are the ethertype that follows the tag, and the network
// header follows the 14-byte Ethernet header. Hash emulates that skb:
//
//   - single tag: every policy sees the inner ethertype (layer2 hashes
//     dst[5]^src[5]^0x0800 for tagged IPv4, not ^0x8100) and the L3 header
//     behind the tag;
//   - vlan+srcmac XORs in the whole 16-bit TCI of that outer tag, exactly
//     what skb_vlan_tag_get() returns: PCP (3 bits), DEI (1 bit) and VID
//     (12 bits), not the VID alone (the documentation says "vlan ID" but the
//     code uses the TCI); untagged frames use 0;
//   - QinQ: only the outer tag is out of band; the inner tag stays in the
//     data (skb->protocol = 0x8100), as when a QinQ frame is bridged or
//     forwarded onto the bond (VLAN untagging on receive only ever removes
//     the outer tag). layer2, layer2+3 and layer3+4 therefore hash it as a
//     non-IP frame with h_proto 0x8100 (layer2 fallback), while
//     encap2+3/encap3+4 walk the in-band tag like the flow dissector does;
//   - a frame too short to hold the tag it announces (14..17 bytes) keeps
//     the tag in band (h_proto 0x8100, TCI 0), since such a tag could not
//     have been taken out of band.
//
// # Not emulated (documented deviations)
//
//   - encap3+4 returns skb->hash when skb->l4_hash is set (the socket's
//     random txhash for local TCP, or the NIC's RSS hash on forwarded
//     traffic); neither is derivable from the frame, so Hash always computes
//     the dissector path, which is what the kernel does for skbs without an
//     L4 hash and in its XDP path.
//   - TIPC link keepalive/probe messages get a random key in the kernel
//     (tipc_hdr_rps_key); Hash uses word 3 as for every other TIPC message.
//   - Attached BPF flow-dissector programs and DSA switch tags are ignored.
//   - bond_xmit_hash_xdp (the kernel's native-XDP bond path, which sees VLAN
//     tags in band) is not what Hash models; see the frame model above.
//   - Frames shorter than 14 bytes hash to 0 for every policy.
//
// Mode and HashPolicy carry the kernel's numeric values and names so that
// configuration and status output can be copied from / compared with
// /proc/net/bonding and sysfs.
package policy
