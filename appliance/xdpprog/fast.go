package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The fast path: frames that need no user-space decision move between the
// members and the host veth inside the kernel. A member's program redirects
// what it may deliver to the host veth's appliance end through a DEVMAP
// (transmitting there hands the frame to the host end, whose NAPI/GRO
// coalesces TCP segments), drops what it may not deliver, and sends the
// rest to the lane's AF_XDP socket as before; the host veth's program picks
// the member for active-backup and for balance-xor/802.3ad with layer2,
// layer2+3 and layer3+4 (bond_xmit_hash, bit for bit with policy.Hash) and
// redirects through a DEVMAP of the bond's transmitting members. The
// control loop writes each bond's forwarding state into the maps when its
// snapshot changes; every program of the process shares the maps.

// Fast-path flags (FastCfg.Flags).
const (
	FastRX uint32 = 1 << 0 // members deliver to the host in the kernel
	FastTX uint32 = 1 << 1 // the host veth picks the member in the kernel
)

// Transmit kinds (FastCfg.Kind).
const (
	FastActive uint32 = 1 // the first transmitting member (active-backup)
	FastHash   uint32 = 2 // bond_xmit_hash over the transmitting members
	FastRR     uint32 = 3 // balance-rr (TC only)
)

// FastMaxMembers is the number of member slots per bond (lane.MaxMembers).
const FastMaxMembers = 64

// FastHostMember is FastIf.Member of a host veth's appliance end.
const FastHostMember = 0xffff

// FastCfg is one bond's forwarding state as the programs read it.
type FastCfg struct {
	Flags  uint32
	NTX    uint32 // transmitting members (slots of TX used)
	Kind   uint32 // FastActive or FastHash
	Policy uint32 // policy.HashPolicy: Layer2, Layer34 or Layer23
	RXMask uint64 // bit i: frames received on member i go to the host
	// TXMember is the member index of each transmitting slot (the
	// snapshot's TX order), for the counters.
	TXMember [FastMaxMembers]uint8
	// PPS is balance-rr's packets_per_slave (0: a random member).
	PPS uint32
}

// FastIfTC is set in FastIf.Member of a member whose TC ingress program
// (TCMember) is attached: its XDP program then passes the frames the bond
// delivers to the kernel stack, where the TC program redirects them (as
// skbs, after GRO) to the bond's device, instead of redirecting them to
// the host veth's appliance end through the DEVMAP.
const FastIfTC = 1 << 16

// FastIf says which bond (and member) a device serves.
type FastIf struct {
	Bond   uint32
	Member uint32 // member index | FastIfTC; FastHostMember for a host veth end
}

// FastCounters are one member's fast-path counters (per CPU in the map).
type FastCounters struct {
	RxPackets, RxBytes uint64 // delivered to the host by the kernel
	DropInactive       uint64 // received where the bond may not deliver
	TxPackets, TxBytes uint64 // sent from the host by the kernel
}

// FastKey is the counters' key of member m of bond b.
func FastKey(b, m int) uint32 { return uint32(b)<<8 | uint32(m) }

// FastTXKey is the TX devmap's key of slot s of bond b.
func FastTXKey(b, s int) uint32 { return uint32(b)*FastMaxMembers + uint32(s) }

// FastMaps are the maps every fast-path program of the process shares.
type FastMaps struct {
	Ifs  *ebpf.Map // ifindex → FastIf
	Cfg  *ebpf.Map // bond index → FastCfg
	Host *ebpf.Map // bond index → host veth appliance end (DEVMAP_HASH)
	TX   *ebpf.Map // FastTXKey → member ifindex (DEVMAP_HASH)
	Cnt  *ebpf.Map // FastKey → FastCounters per CPU
	// HostIf and TXIf hold the same devices as Host and TX as plain
	// ifindexes, for the TC programs (bpf_redirect takes an ifindex; a
	// DEVMAP serves XDP redirects only).
	HostIf *ebpf.Map // bond index → host veth's host end (the bond's device)
	TXIf   *ebpf.Map // FastTXKey → member ifindex
	RR     *ebpf.Map // bond index → balance-rr's transmit counter, per CPU (rr_tx_counter)
	// dbg, in tests only, receives the transmit slot + 1 the host program
	// chose (0 when it handed the frame to the lane).
	dbg *ebpf.Map
}

// NewFastMaps creates the shared maps.
func NewFastMaps() (*FastMaps, error) {
	f := &FastMaps{}
	specs := []struct {
		m    **ebpf.Map
		spec ebpf.MapSpec
	}{
		{&f.Ifs, ebpf.MapSpec{Name: "fp_ifs", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4096}},
		{&f.Cfg, ebpf.MapSpec{Name: "fp_cfg", Type: ebpf.Hash, KeySize: 4, ValueSize: 28 + FastMaxMembers, MaxEntries: 1024}},
		{&f.RR, ebpf.MapSpec{Name: "fp_rr", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1024}},
		{&f.Host, ebpf.MapSpec{Name: "fp_host", Type: ebpf.DevMapHash, KeySize: 4, ValueSize: 4, MaxEntries: 1024}},
		{&f.TX, ebpf.MapSpec{Name: "fp_tx", Type: ebpf.DevMapHash, KeySize: 4, ValueSize: 4, MaxEntries: 16384}},
		{&f.Cnt, ebpf.MapSpec{Name: "fp_cnt", Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 40, MaxEntries: 4096}},
		{&f.HostIf, ebpf.MapSpec{Name: "fp_hostif", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1024}},
		{&f.TXIf, ebpf.MapSpec{Name: "fp_txif", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 16384}},
	}
	for _, s := range specs {
		m, err := ebpf.NewMap(&s.spec)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("xdpprog: create %s: %w", s.spec.Name, err)
		}
		*s.m = m
	}
	return f, nil
}

// Close releases the maps.
func (f *FastMaps) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{f.Ifs, f.Cfg, f.Host, f.TX, f.Cnt, f.HostIf, f.TXIf, f.RR, f.dbg} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// Counters sums the per-CPU counters of key k (zero when absent).
func (f *FastMaps) Counters(k uint32) FastCounters {
	var per []FastCounters
	var c FastCounters
	if err := f.Cnt.Lookup(k, &per); err != nil {
		return c
	}
	for _, p := range per {
		c.RxPackets += p.RxPackets
		c.RxBytes += p.RxBytes
		c.DropInactive += p.DropInactive
		c.TxPackets += p.TxPackets
		c.TxBytes += p.TxBytes
	}
	return c
}

// offsets in struct xdp_md and FastCfg
const (
	xdpMDIngressIfindex = 12
	cfgFlags            = 0
	cfgNTX              = 4
	cfgKind             = 8
	cfgPolicy           = 12
	cfgRXMask           = 16
	cfgTXMember         = 24
	cfgPPS              = 24 + FastMaxMembers
	cntRxPackets        = 0
	cntRxBytes          = 8
	cntDropInactive     = 16
	cntTxPackets        = 24
	cntTxBytes          = 32
	xdpDrop             = 1
)

// addMem adds src to the u64 at dst+off (a per-CPU value: no atomics).
func addMem(dst asm.Register, off int16, src asm.Register) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R1, dst, off, asm.DWord),
		asm.Add.Reg(asm.R1, src),
		asm.StoreMem(dst, off, asm.R1, asm.DWord),
	}
}

func incMem(dst asm.Register, off int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R1, dst, off, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(dst, off, asm.R1, asm.DWord),
	}
}

// lookupIf looks the device whose ifindex is at ctx+ifOff up: on success
// r7 is the bond, r9 the member index, and the stack holds the bond
// (fp-8), the counters' key (fp-12) and FastIf.Member as stored, with its
// flags (fp-16). r6 is the context.
func (f *FastMaps) lookupIf(ifOff int16, lane string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R6, ifOff, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, f.Ifs.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, lane),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.Word),
		asm.LoadMem(asm.R9, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.RFP, -16, asm.R9, asm.Word),
		asm.And.Imm(asm.R9, 0xffff),
		asm.StoreMem(asm.RFP, -8, asm.R7, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.LSh.Imm(asm.R1, 8),
		asm.Or.Reg(asm.R1, asm.R9),
		asm.StoreMem(asm.RFP, -12, asm.R1, asm.Word),
	}
}

// lookupCfg loads the bond's FastCfg pointer into r0 (lane when absent).
func (f *FastMaps) lookupCfg(lane string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, f.Cfg.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, lane),
	}
}

// rxMaskInsns checks the bond's FastCfg (r0) for kernel delivery and
// leaves in r1 whether member r9 may deliver (its RXMask bit); no fast
// RX, or a member beyond the mask, goes to skip.
func rxMaskInsns(skip string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R1, asm.R0, cfgFlags, asm.Word),
		asm.And.Imm(asm.R1, int32(FastRX)),
		asm.JEq.Imm(asm.R1, 0, skip),
		asm.JGE.Imm(asm.R9, FastMaxMembers, skip),
		asm.LoadMem(asm.R1, asm.R0, cfgRXMask, asm.DWord),
		asm.RSh.Reg(asm.R1, asm.R9),
		asm.And.Imm(asm.R1, 1),
	}
}

// lookupCnt loads this CPU's counters of the key at fp-12 into r0 (or
// jumps to skip).
func (f *FastMaps) lookupCnt(skip string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, f.Cnt.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -12),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, skip),
	}
}

// memberInsns is a member's program with the fast path: slow protocols
// to the kernel stack (when asked), frames the bond delivers to the host
// veth, frames it may not deliver dropped, the rest (no fast RX for the
// bond, runts) to the lane's socket.
func (f *FastMaps) memberInsns(xsk *ebpf.Map, passSlow bool) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "lane"),
	}
	if passSlow {
		insns = append(insns,
			asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
			asm.JNE.Imm(asm.R5, slowProtocolsLE, "fast"),
			asm.Mov.Imm(asm.R0, xdpPass),
			asm.Return(),
		)
	}
	insns = append(insns,
		// r8 = frame length (first buffer)
		asm.Mov.Reg(asm.R8, asm.R3).WithSymbol("fast"),
		asm.Sub.Reg(asm.R8, asm.R2),
	)
	insns = append(insns, f.lookupIf(xdpMDIngressIfindex, "lane")...)
	insns = append(insns, f.lookupCfg("lane")...)
	insns = append(insns, rxMaskInsns("lane")...)
	insns = append(insns,
		asm.Mov.Reg(asm.R9, asm.R1), // r9: deliver
		// delivered through the member's TC program: pass (it counts)
		asm.JEq.Imm(asm.R9, 0, "count"),
		asm.LoadMem(asm.R1, asm.RFP, -16, asm.Word),
		asm.And.Imm(asm.R1, FastIfTC),
		asm.JEq.Imm(asm.R1, 0, "count"),
		asm.Mov.Imm(asm.R0, xdpPass),
		asm.Return(),
	)
	cnt := f.lookupCnt("counted")
	cnt[0] = cnt[0].WithSymbol("count")
	insns = append(insns, cnt...)
	insns = append(insns, asm.JEq.Imm(asm.R9, 0, "count_drop"))
	insns = append(insns, incMem(asm.R0, cntRxPackets)...)
	insns = append(insns, addMem(asm.R0, cntRxBytes, asm.R8)...)
	insns = append(insns, asm.Ja.Label("counted"))
	insns = append(insns, incMem(asm.R0, cntDropInactive)...)
	insns[len(insns)-3] = insns[len(insns)-3].WithSymbol("count_drop")
	insns = append(insns,
		asm.JNE.Imm(asm.R9, 0, "deliver").WithSymbol("counted"),
		asm.Mov.Imm(asm.R0, xdpDrop),
		asm.Return(),
		asm.LoadMapPtr(asm.R1, f.Host.FD()).WithSymbol("deliver"),
		asm.LoadMem(asm.R2, asm.RFP, -8, asm.Word),
		asm.Mov.Imm(asm.R3, xdpDrop),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	return append(insns, laneInsns(xsk, asm.R6)...)
}

// laneInsns redirect to the AF_XDP socket of the frame's queue (ctx in r).
func laneInsns(xsk *ebpf.Map, ctx asm.Register) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, ctx, xdpMDRxQueueIndex, asm.Word).WithSymbol("lane"),
		asm.LoadMapPtr(asm.R1, xsk.FD()),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
}

// IP protocol numbers the hash reads ports of (proto_ports_offset).
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoESP     = 50
	protoAH      = 51
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

// hostInsns is the host veth appliance end's program: active-backup's
// active member, or bond_xmit_hash (layer2, layer2+3, layer3+4) over the
// transmitting members, redirected through the TX devmap; anything else
// (no fast TX for the bond, VLAN tags, ICMP, truncated headers) to the
// lane's socket.
//
// Registers: r6 ctx, r7 bond, r8 length, r9 FastCfg; in the hash r2 data,
// r3 data end, r4 proto (host order), r5 the L2 hash.
func (f *FastMaps) hostInsns(xsk *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "lane"),
		asm.Mov.Reg(asm.R8, asm.R3),
		asm.Sub.Reg(asm.R8, asm.R2),
	}
	insns = append(insns, f.lookupIf(xdpMDIngressIfindex, "lane")...)
	insns = append(insns, f.lookupCfg("lane")...)
	insns = append(insns, selectTXInsns()...)
	insns = append(insns, hashInsns(xdpMDData, xdpMDDataEnd, false)...)
	insns = append(insns, f.slotInsns()...)
	insns = append(insns, f.lookupCnt("redirect")...)
	insns = append(insns,
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Sub.Reg(asm.R3, asm.R2),
	)
	insns = append(insns, incMem(asm.R9, cntTxPackets)...)
	insns = append(insns, addMem(asm.R9, cntTxBytes, asm.R3)...)
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, f.TX.FD()).WithSymbol("redirect"),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.LSh.Imm(asm.R2, 6), // bond * FastMaxMembers
		asm.Add.Reg(asm.R2, asm.R8),
		asm.Mov.Imm(asm.R3, xdpDrop),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	return append(insns, laneInsns(xsk, asm.R6)...)
}

// selectTXInsns checks the bond's FastCfg (in r0 after lookupCfg) for
// kernel transmit and dispatches on its kind: r9 = the FastCfg; active
// goes to "send" with slot 0 in r0, extra (jumps of the caller's kinds)
// next, FastHash falls through to the hash, anything else to "lane".
func selectTXInsns(extra ...asm.Instruction) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R1, asm.R9, cfgFlags, asm.Word),
		asm.And.Imm(asm.R1, int32(FastTX)),
		asm.JEq.Imm(asm.R1, 0, "lane"),
		asm.LoadMem(asm.R1, asm.R9, cfgNTX, asm.Word),
		asm.JEq.Imm(asm.R1, 0, "lane"),
		asm.JGT.Imm(asm.R1, FastMaxMembers, "lane"),
		asm.LoadMem(asm.R1, asm.R9, cfgKind, asm.Word),
		asm.Mov.Imm(asm.R0, 0), // slot 0
		asm.JEq.Imm(asm.R1, int32(FastActive), "send"),
	}
	insns = append(insns, extra...)
	return append(insns, asm.JNE.Imm(asm.R1, int32(FastHash), "lane"))
}

// slotInsns ("send") takes the slot in r0: r8 = slot, and the counters'
// key of the slot's member at fp-12 (r7 bond, r9 FastCfg); in tests the
// slot + 1 also goes to the debug map.
func (f *FastMaps) slotInsns() asm.Instructions {
	insns := asm.Instructions{
		asm.And.Imm(asm.R0, FastMaxMembers-1).WithSymbol("send"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.Add.Reg(asm.R1, asm.R0),
		asm.LoadMem(asm.R1, asm.R1, cfgTXMember, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.LSh.Imm(asm.R2, 8),
		asm.Or.Reg(asm.R2, asm.R1),
		asm.StoreMem(asm.RFP, -12, asm.R2, asm.Word),
	}
	if f.dbg != nil {
		insns = append(insns, f.dbgSlot()...)
	}
	return insns
}

// icmpJumps sends ICMP and ICMPv6 (r8, whatever the IP version, as
// bond_flow_dissect) to label.
func icmpJumps(label string) asm.Instructions {
	return asm.Instructions{
		asm.JEq.Imm(asm.R8, protoICMP, label),
		asm.JEq.Imm(asm.R8, protoICMPv6, label),
	}
}

// hashInsns computes bond_xmit_hash (layer2, layer2+3 or layer3+4 as
// FastCfg.Policy says) of the frame at ctx+dataOff .. ctx+endOff and
// leaves the transmitting slot (hash % NTX) in r0, going on at the
// caller's "send" (the instruction after it); frames it cannot decide jump to "lane": VLAN tags
// in the frame, truncated headers, and ICMP/ICMPv6 unless icmp is set,
// in which case only ICMP errors (which hash the packet inside) do, and
// echo and other messages hash as bond_flow_dissect does (type, code and
// identifier for layer3+4).
//
// Registers: r6 ctx, r9 FastCfg; in the hash r1 policy, r2 data, r3 data
// end, r4 proto (host order), then the addresses' fold, r5 the L2 hash,
// r8 scratch.
func hashInsns(dataOff, endOff int16, icmp bool) asm.Instructions {
	insns := asm.Instructions{
		// the data pointers again (the helper calls clobbered them)
		asm.LoadMem(asm.R2, asm.R6, dataOff, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, endOff, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "lane"),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.JEq.Imm(asm.R4, 0x8100, "lane"),
		asm.JEq.Imm(asm.R4, 0x88a8, "lane"),
		// r5 = bond_eth_hash: h_dest[5] ^ h_source[5] ^ proto
		asm.LoadMem(asm.R5, asm.R2, 5, asm.Byte),
		asm.LoadMem(asm.R1, asm.R2, 11, asm.Byte),
		asm.Xor.Reg(asm.R5, asm.R1),
		asm.Xor.Reg(asm.R5, asm.R4),
		asm.LoadMem(asm.R1, asm.R9, cfgPolicy, asm.Word),
		asm.Mov.Reg(asm.R0, asm.R5),
		asm.JEq.Imm(asm.R1, 0, "mod"), // layer2
		// layer2+3 and layer3+4: IPv4, IPv6, else the L2 hash
		asm.JEq.Imm(asm.R4, 0x0800, "ipv4"),
		asm.JEq.Imm(asm.R4, 0x86dd, "ipv6"),
		asm.Ja.Label("mod"),

		// IPv4: r0 = h (ports or L2 hash), r4 = src ^ dst
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R4, 34),
		asm.JGT.Reg(asm.R4, asm.R3, "lane"),
		asm.LoadMem(asm.R4, asm.R2, 26, asm.Word),
		asm.LoadMem(asm.R0, asm.R2, 30, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.Mov.Reg(asm.R0, asm.R5),               // layer2+3 starts from the L2 hash
		asm.LoadMem(asm.R8, asm.R2, 20, asm.Half), // frag_off (network order)
		asm.And.Imm(asm.R8, 0xff3f),               // IP_MF | IP_OFFSET in network order
		asm.JNE.Imm(asm.R8, 0, "fragment"),
		asm.LoadMem(asm.R8, asm.R2, 23, asm.Byte), // protocol
	}
	// ICMP: the lane unless icmp (errors hash the packet inside)
	icmp4, icmp6 := "lane", "lane"
	if icmp {
		icmp4, icmp6 = "thoff4", "thoff6"
	}
	insns = append(insns, icmpJumps(icmp4)...)
	insns = append(insns,
		asm.JNE.Imm(asm.R1, 1, "fold"), // layer2+3: done
		// layer3+4: transport offset 14 + ihl*4
		asm.LoadMem(asm.R0, asm.R2, 14, asm.Byte).WithSymbol("thoff4"),
		asm.And.Imm(asm.R0, 0x0f),
		asm.LSh.Imm(asm.R0, 2),
		asm.Add.Imm(asm.R0, 14),
	)
	if icmp {
		insns = append(insns, icmpJumps("icmp")...)
	}
	insns = append(insns,
		asm.Ja.Label("ports"),
		// a fragment: no ports (layer3+4), the L2 hash (layer2+3)
		asm.JNE.Imm(asm.R1, 1, "fold").WithSymbol("fragment"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Ja.Label("fold"),

		// IPv6
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R4, 54),
		asm.JGT.Reg(asm.R4, asm.R3, "lane"),
		asm.LoadMem(asm.R4, asm.R2, 22, asm.Word),
		asm.LoadMem(asm.R0, asm.R2, 26, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.LoadMem(asm.R0, asm.R2, 30, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.LoadMem(asm.R0, asm.R2, 34, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.LoadMem(asm.R0, asm.R2, 38, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.LoadMem(asm.R0, asm.R2, 42, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.LoadMem(asm.R0, asm.R2, 46, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.LoadMem(asm.R0, asm.R2, 50, asm.Word),
		asm.Xor.Reg32(asm.R4, asm.R0),
		asm.Mov.Reg(asm.R0, asm.R5),
		asm.LoadMem(asm.R8, asm.R2, 20, asm.Byte), // next header
	)
	insns = append(insns, icmpJumps(icmp6)...)
	insns = append(insns,
		asm.JNE.Imm(asm.R1, 1, "fold"),
		asm.Mov.Imm(asm.R0, 54),

		// layer3+4: r0 = transport offset, r8 = protocol → r0 = ports
		asm.JEq.Imm(asm.R8, protoTCP, "poff0").WithSymbol("ports"),
		asm.JEq.Imm(asm.R8, protoUDP, "poff0"),
		asm.JEq.Imm(asm.R8, protoDCCP, "poff0"),
		asm.JEq.Imm(asm.R8, protoESP, "poff0"),
		asm.JEq.Imm(asm.R8, protoSCTP, "poff0"),
		asm.JEq.Imm(asm.R8, protoUDPLite, "poff0"),
		asm.JEq.Imm(asm.R8, protoAH, "poff4"),
		asm.Mov.Imm(asm.R0, 0), // no ports
		asm.Ja.Label("fold"),
		asm.Add.Imm(asm.R0, 4).WithSymbol("poff4"),
		asm.Add.Reg(asm.R0, asm.R2).WithSymbol("poff0"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.Add.Imm(asm.R8, 4),
		asm.JGT.Reg(asm.R8, asm.R3, "noports"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.Word),
		asm.Ja.Label("fold"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("noports"),

		// bond_ip_hash: h ^= src ^ dst; h ^= h >> 16; h ^= h >> 8; layer3+4: h >>= 1
		asm.Xor.Reg32(asm.R0, asm.R4).WithSymbol("fold"),
		asm.Mov.Reg32(asm.R4, asm.R0),
		asm.RSh.Imm32(asm.R4, 16),
		asm.Xor.Reg32(asm.R0, asm.R4),
		asm.Mov.Reg32(asm.R4, asm.R0),
		asm.RSh.Imm32(asm.R4, 8),
		asm.Xor.Reg32(asm.R0, asm.R4),
		asm.JNE.Imm(asm.R1, 1, "mod"),
		asm.RSh.Imm32(asm.R0, 1),

		// slot = h % ntx
		asm.LoadMem(asm.R1, asm.R9, cfgNTX, asm.Word).WithSymbol("mod"),
		asm.Mod.Reg32(asm.R0, asm.R1),
	)
	if icmp {
		insns = append(insns, asm.Ja.Label("send")) // the caller's next instruction
		insns = append(insns, icmpInsns()...)
	}
	return insns
}

// icmpInsns hash an ICMP/ICMPv6 message as bond_flow_dissect and
// skb_flow_get_icmp_tci do (policy.flowGetICMP): r0 is the transport
// offset, r8 the protocol. Errors go to the lane; layer2+3 folds the L2
// hash; layer3+4 hashes type | code<<8 | id<<16 for messages with an
// identifier (0 stored as 1), else the absent ports (0).
func icmpInsns() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R0, 54).WithSymbol("thoff6"),
		// r0: the transport offset (layer2+3 arrives here too)
		asm.Add.Reg(asm.R0, asm.R2).WithSymbol("icmp"),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Add.Imm(asm.R2, 8),
		asm.JGT.Reg(asm.R2, asm.R3, "icmp_short"),
		asm.LoadMem(asm.R3, asm.R0, 0, asm.Byte), // type
		asm.JEq.Imm(asm.R8, protoICMPv6, "icmp6_err"),
		asm.JEq.Imm(asm.R3, 3, "lane"),
		asm.JEq.Imm(asm.R3, 4, "lane"),
		asm.JEq.Imm(asm.R3, 5, "lane"),
		asm.JEq.Imm(asm.R3, 11, "lane"),
		asm.JEq.Imm(asm.R3, 12, "lane"),
		asm.Ja.Label("icmp_ok"),
		asm.JEq.Imm(asm.R3, 0, "icmp_ok").WithSymbol("icmp6_err"),
		asm.JLT.Imm(asm.R3, 5, "lane"),
		asm.JNE.Imm(asm.R1, 1, "icmp_l23").WithSymbol("icmp_ok"),
		// layer3+4: an identifier only for echo and timestamp messages
		asm.JEq.Imm(asm.R3, 0, "icmp_id"),
		asm.JEq.Imm(asm.R3, 8, "icmp_id"),
		asm.JEq.Imm(asm.R3, 13, "icmp_id"),
		asm.JEq.Imm(asm.R3, 14, "icmp_id"),
		asm.JEq.Imm(asm.R3, 128, "icmp_id"),
		asm.JEq.Imm(asm.R3, 129, "icmp_id"),
		asm.Mov.Imm(asm.R0, 0), // no identifier: the ports, none
		asm.Ja.Label("fold"),
		asm.LoadMem(asm.R2, asm.R0, 4, asm.Half).WithSymbol("icmp_id"),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.JNE.Imm(asm.R2, 0, "icmp_id_set"),
		asm.Mov.Imm(asm.R2, 1),
		asm.LoadMem(asm.R8, asm.R0, 1, asm.Byte).WithSymbol("icmp_id_set"), // code
		asm.LSh.Imm(asm.R8, 8),
		asm.LSh.Imm(asm.R2, 16),
		asm.Mov.Reg(asm.R0, asm.R3),
		asm.Or.Reg(asm.R0, asm.R8),
		asm.Or.Reg(asm.R0, asm.R2),
		asm.Ja.Label("fold"),
		// the header is not in the frame: no key (type 0, not an error)
		asm.JNE.Imm(asm.R1, 1, "icmp_l23").WithSymbol("icmp_short"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Ja.Label("fold"),
		asm.Mov.Reg(asm.R0, asm.R5).WithSymbol("icmp_l23"),
		asm.Ja.Label("fold"),
	}
}

// loadFast loads a fast-path program.
func loadFast(name string, insns asm.Instructions, frags bool) (*ebpf.Program, error) {
	spec := &ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, Instructions: insns, License: "GPL"}
	if frags {
		spec.Flags = unix.BPF_F_XDP_HAS_FRAGS
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("xdpprog: load %s: %w", name, err)
	}
	return p, nil
}
