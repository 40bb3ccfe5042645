package labtest

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Blackhole drops the slow-protocol frames (ethertype 0x8809: LACPDUs,
// markers) a device in namespace ns transmits, while its carrier stays up:
// a TCX egress program (Linux ≥ 6.6, no tc classifier modules needed).
// Close removes it.
type Blackhole struct {
	l link.Link
	p *ebpf.Program
}

// offset of protocol in struct __sk_buff (len, pkt_type, mark, queue_mapping, protocol)
const skbProtocol = 16

// NewBlackhole attaches the drop program to ifname's egress in ns.
func NewBlackhole(ns, ifname string) (*Blackhole, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "drop_slow", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, skbProtocol, asm.Word),
			asm.Mov.Imm(asm.R0, -1), // TCX_NEXT
			asm.JNE.Imm(asm.R2, 0x0988, "out"),
			asm.Mov.Imm(asm.R0, 2), // TCX_DROP
			asm.Return().WithSymbol("out"),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("blackhole program: %w", err)
	}
	var l link.Link
	err = InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: prog, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return fmt.Errorf("attach TCX egress on %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &Blackhole{l: l, p: prog}, nil
}

// Close detaches the program.
func (b *Blackhole) Close() error {
	err := b.l.Close()
	b.p.Close()
	return err
}
