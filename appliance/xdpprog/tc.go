package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The TC half of the fast path moves skbs, not XDP frames, so that the
// kernel's offloads survive: a TCP sender's 64 KB TSO super-frame leaves
// the host stack, is picked a member for and is sent whole (the member's
// driver or the kernel's GSO segments it at the last moment, as for the
// kernel's bonding driver), and TCP segments a member receives reach the
// host stack coalesced by GRO. Two programs, attached with TCX links
// (Linux ≥ 6.6), which the kernel removes when the process exits:
//
//   - TCHost, on the egress of the host veth's host end (the device
//     carrying the bond's name): the member for active-backup and for
//     balance-xor/802.3ad with layer2, layer2+3 and layer3+4 (the same
//     bond_xmit_hash as the XDP program, plus ICMP echo), then
//     bpf_redirect to the member's egress. What it does not decide goes
//     on to the veth and through the lane as before.
//   - TCMember, on a member's ingress: frames the member's XDP program
//     passed because the bond delivers them (FastIfTC) are redirected to
//     the bond's device's ingress, as if received there; slow protocols
//     stay with the member's stack (the control loop's packet socket).

// offsets in struct __sk_buff
const (
	skbLen      = 0
	skbProtocol = 16
	skbIfindex  = 40
	skbData     = 76
	skbDataEnd  = 80
	skbGSOSegs  = 164
)

// TCX verdicts
const (
	tcxNext = -1 // not ours: the next program, or the device
	tcxDrop = 2
)

const bpfFIngress = 1 // BPF_F_INGRESS

// slowProtocolsBE32 is skb->protocol for ETH_P_SLOW as the program loads
// it (a __be16 in a u32, on a little-endian machine).
const slowProtocolsBE32 = 0x0988

// countSkb adds an skb to this CPU's counters at r0 + pktOff/byteOff:
// gso_segs packets (1 for a frame that is not a super-frame) and skb->len
// bytes. r6 is the context; r1 and r2 are clobbered.
func countSkb(pktOff, byteOff int16) asm.Instructions {
	return countSkbAt(pktOff, byteOff, fmt.Sprintf("segs%d", pktOff))
}

// countSkbAt is countSkb with label as its internal label.
func countSkbAt(pktOff, byteOff int16, label string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R6, skbGSOSegs, asm.Word),
		asm.JNE.Imm(asm.R2, 0, label),
		asm.Mov.Imm(asm.R2, 1),
		asm.LoadMem(asm.R1, asm.R0, pktOff, asm.DWord).WithSymbol(label),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, pktOff, asm.R1, asm.DWord),
		asm.LoadMem(asm.R2, asm.R6, skbLen, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, byteOff, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, byteOff, asm.R1, asm.DWord),
	}
}

// tcHostInsns is TCHost's program. Registers: r6 ctx, r7 bond, r8 slot
// then member ifindex, r9 FastCfg then counters.
func (f *FastMaps) tcHostInsns() asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// headers in the linear part: a forwarded skb may carry them in
		// fragments; pull up to 128 bytes (ignoring failure: the bounds
		// checks below send what is still short to the lane)
		asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word),
		asm.Add.Imm(asm.R2, 128),
		asm.JLE.Reg(asm.R2, asm.R3, "pulled"),
		asm.LoadMem(asm.R2, asm.R6, skbLen, asm.Word),
		asm.JLE.Imm(asm.R2, 128, "pull"),
		asm.Mov.Imm(asm.R2, 128),
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("pull"),
		asm.FnSkbPullData.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("pulled"),
	}
	insns = append(insns, f.lookupIf(skbIfindex, "lane")...)
	insns = append(insns, f.lookupCfg("lane")...)
	insns = append(insns, selectTXInsns(asm.JEq.Imm(asm.R1, int32(FastRR), "rr"))...)
	insns = append(insns, hashInsns(skbData, skbDataEnd, true)...)
	// r0 = slot: the member's ifindex, its counters, the redirect
	insns = append(insns, f.slotInsns()...)
	insns = append(insns,
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.LSh.Imm(asm.R2, 6), // bond * FastMaxMembers
		asm.Add.Reg(asm.R2, asm.R8),
		asm.StoreMem(asm.RFP, -20, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, f.TXIf.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -20),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "lane"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.Word), // r8 = member ifindex
	)
	insns = append(insns, f.lookupCnt("redirect")...)
	insns = append(insns, countSkb(cntTxPackets, cntTxBytes)...)
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R8).WithSymbol("redirect"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
	)
	insns = append(insns, f.rrInsns()...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("lane"),
		asm.Return(),
	)
	return insns
}

// rrInsns is balance-rr (bond_xmit_roundrobin, bond_rr_gen_slave_id):
// IGMP to the lane (which sends it on the active member), otherwise slot
// = random with packets_per_slave 0, else this CPU's counter, incremented,
// divided by packets_per_slave, modulo the transmitting members. A TSO
// super-frame is one packet, as for the kernel's bond. Goes on at "send".
func (f *FastMaps) rrInsns() asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word).WithSymbol("rr"),
		asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 34),
		asm.JGT.Reg(asm.R4, asm.R3, "rr_pick"),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R4, 0x0008, "rr_pick"), // IPv4, network order
		asm.LoadMem(asm.R4, asm.R2, 23, asm.Byte),
		asm.JEq.Imm(asm.R4, 2, "lane"), // IGMP
		asm.LoadMem(asm.R1, asm.R9, cfgPPS, asm.Word).WithSymbol("rr_pick"),
		asm.JNE.Imm(asm.R1, 0, "rr_count"),
		asm.FnGetPrandomU32.Call(),
		asm.Ja.Label("rr_mod"),
		asm.LoadMapPtr(asm.R1, f.RR.FD()).WithSymbol("rr_count"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "lane"),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R2, 1),
		asm.StoreMem(asm.R0, 0, asm.R2, asm.DWord),
		asm.Mov.Reg32(asm.R0, asm.R2),
		asm.LoadMem(asm.R1, asm.R9, cfgPPS, asm.Word),
		asm.JLE.Imm(asm.R1, 1, "rr_mod"),
		asm.Div.Reg32(asm.R0, asm.R1),
		asm.LoadMem(asm.R1, asm.R9, cfgNTX, asm.Word).WithSymbol("rr_mod"),
		asm.Mod.Reg32(asm.R0, asm.R1),
		asm.Ja.Label("send"),
	}
}

// dbgSlot stores the slot in r8, plus 1, in the test's debug map.
func (f *FastMaps) dbgSlot() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.RFP, -16, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, -20, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, f.dbg.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -20),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
	}
}

// tcMemberInsns is TCMember's program. Registers: r6 ctx, r7 bond, r8 the
// bond's device, r9 member then counters.
func (f *FastMaps) tcMemberInsns() asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R2, slowProtocolsBE32, "next"),
	}
	insns = append(insns, f.lookupIf(skbIfindex, "next")...)
	insns = append(insns, f.lookupCfg("next")...)
	insns = append(insns, rxMaskInsns("next")...)
	insns = append(insns,
		asm.JEq.Imm(asm.R1, 0, "inactive"),
		asm.LoadMapPtr(asm.R1, f.HostIf.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.Word),
	)
	insns = append(insns, f.lookupCnt("redirect")...)
	insns = append(insns, countSkb(cntRxPackets, cntRxBytes)...)
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R8).WithSymbol("redirect"),
		asm.Mov.Imm(asm.R2, bpfFIngress),
		asm.FnRedirect.Call(),
		asm.Return(),
	)
	// a frame the member may not deliver (its XDP program drops those;
	// here when the configuration changed in between)
	cnt := f.lookupCnt("drop")
	cnt[0] = cnt[0].WithSymbol("inactive")
	insns = append(insns, cnt...)
	insns = append(insns, incMem(asm.R0, cntDropInactive)...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, tcxDrop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	)
	return insns
}

// TCProgram is one loaded TC program of the fast path.
type TCProgram struct {
	Prog *ebpf.Program
}

// NewTCHost loads the host end's egress program.
func (f *FastMaps) NewTCHost() (*TCProgram, error) { return f.loadTC(TCHostName, f.tcHostInsns()) }

// NewTCMember loads a member's ingress program.
func (f *FastMaps) NewTCMember() (*TCProgram, error) {
	return f.loadTC(TCMemberName, f.tcMemberInsns())
}

func (f *FastMaps) loadTC(name string, insns asm.Instructions) (*TCProgram, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SchedCLS, Instructions: insns, License: "GPL"})
	if err != nil {
		return nil, fmt.Errorf("xdpprog: load %s: %w", name, err)
	}
	return &TCProgram{Prog: p}, nil
}

// Close releases the program (its attachments keep it until detached).
func (p *TCProgram) Close() error { return p.Prog.Close() }

// TCAttachment is a TC program attached to a device through a TCX link.
type TCAttachment struct {
	Ifindex int
	Ingress bool
	link    link.Link
}

// AttachTC attaches p to the ingress (or egress) of device ifindex,
// after any program already there.
func (p *TCProgram) AttachTC(ifindex int, ingress bool) (*TCAttachment, error) {
	at := ebpf.AttachTCXEgress
	if ingress {
		at = ebpf.AttachTCXIngress
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: p.Prog, Attach: at, Anchor: link.Tail()})
	if err != nil {
		return nil, fmt.Errorf("TCX attach (Linux ≥ 6.6): %w", err)
	}
	return &TCAttachment{Ifindex: ifindex, Ingress: ingress, link: l}, nil
}

// Detach removes the program from the device.
func (a *TCAttachment) Detach() error {
	if a == nil || a.link == nil {
		return nil
	}
	err := a.link.Close()
	a.link = nil
	return err
}

// Names of the fast path's TC programs, as the kernel reports them.
const (
	TCHostName   = "bond_tc_tx"
	TCMemberName = "bond_tc_rx"
)

// TCOwned reports the id of a fast-path TC program of some appliance
// attached to device ifindex (0 when none): a member whose received
// frames the kernel delivers runs no XDP program, and this is what marks
// it as taken. Kernels without TCX report none.
func TCOwned(ifindex int) (uint32, error) {
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		r, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		if err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) {
				return 0, nil
			}
			return 0, fmt.Errorf("query TC programs: %w", err)
		}
		for _, p := range r.Programs {
			prog, err := ebpf.NewProgramFromID(p.ID)
			if err != nil {
				continue // gone meanwhile
			}
			info, err := prog.Info()
			prog.Close()
			if err == nil && (info.Name == TCHostName || info.Name == TCMemberName) {
				return uint32(p.ID), nil
			}
		}
	}
	return 0, nil
}
