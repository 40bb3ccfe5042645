package lane

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/bond-appliance/bond-appliance/appliance/vnet"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/umem"
	"golang.org/x/sys/unix"
)

// tcpSuper builds an Ethernet/IPv4/TCP super-frame of payload bytes the
// way the host stack hands it to a TAP with TSO: lengths of the whole,
// the pseudo-header sum in the TCP checksum field, and its vnet header.
func tcpSuper(payload, gso int, seq uint32) (vnet.Hdr, []byte) {
	f := make([]byte, 14+20+20+payload)
	copy(f, []byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00})
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(40+payload))
	ip[6], ip[8], ip[9] = 0x40, 64, 6
	copy(ip[12:], []byte{10, 7, 0, 1, 10, 7, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], ^vnet.Fold(vnet.Sum(ip[:20], 0)))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp, 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5001)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12], tcp[13] = 5<<4, 0x18 // ACK PSH
	binary.BigEndian.PutUint16(tcp[14:], 512)
	for i := range payload {
		tcp[20+i] = byte(i * 13)
	}
	ps := vnet.Sum(ip[12:20], 6+uint64(20+payload))
	binary.BigEndian.PutUint16(tcp[16:], vnet.Fold(ps))
	return vnet.Hdr{Flags: vnet.FlagNeedsCsum, GSOType: vnet.GSOTCPv4, HdrLen: 54, GSOSize: uint16(gso), CsumStart: 34, CsumOffset: 16}, f
}

// tcpOK verifies the IPv4 header and TCP checksums of frame f.
func tcpOK(f []byte) bool {
	ip := f[14:]
	l4 := len(f) - 34
	return vnet.Fold(vnet.Sum(ip[:20], 0)) == 0xffff &&
		vnet.Fold(vnet.Sum(ip[20:], vnet.Sum(ip[12:20], 6+uint64(l4)))) == 0xffff
}

// tapRig is a lane whose host port is a TAP with offloads, simulated by
// a SOCK_SEQPACKET socketpair (one message per read or write, as a TAP
// queue): the lane has fd[0], the test plays the kernel on fd[1].
type tapRig struct {
	u    *umem.UMEM
	host *Port
	m    *simPort
	lane *Lane
	fd   int
}

func newTapRig(t *testing.T) *tapRig {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	u, err := umem.New(umem.Config{NumFrames: 512, FrameSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	u.EnableLedger()
	r := &tapRig{u: u, fd: fds[1], host: &Port{Name: "tap", FD: fds[0], Tap: true, VnetHdr: true}, m: newSimPort(u, "m0", 256)}
	b := &Bond{Host: r.host, Members: []*Port{r.m.port}}
	b.Publish(&Snapshot{Mode: policy.ActiveBackup, TX: []int{0}, Active: 0, RX: 1})
	r.lane = New(Config{ID: 0, CPU: -1, Batch: 64, RingSize: 256}, u, []*Bond{b})
	r.lane.Prime()
	return r
}

func (r *tapRig) send(t *testing.T, h vnet.Hdr, f []byte) {
	t.Helper()
	b := make([]byte, vnet.HdrLen+len(f))
	_ = h.Encode(b)
	copy(b[vnet.HdrLen:], f)
	if _, err := unix.Write(r.fd, b); err != nil {
		t.Fatal(err)
	}
}

func (r *tapRig) recv() [][]byte {
	var out [][]byte
	buf := make([]byte, 1<<17)
	for {
		n, err := unix.Read(r.fd, buf)
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

func TestLaneTapVnetHostToMember(t *testing.T) {
	r := newTapRig(t)
	h, f := tcpSuper(10000, 1448, 1000)
	r.send(t, h, f)
	// a frame without GSO, its checksum to complete
	h1, f1 := tcpSuper(333, 1448, 1)
	h1.GSOType = vnet.GSONone
	r.send(t, h1, f1)
	// malformed: GSO on a frame that is not IP
	r.send(t, vnet.Hdr{GSOType: vnet.GSOTCPv4, GSOSize: 100}, make([]byte, 60))
	// a segment longer than a UMEM frame's room
	h2, f2 := tcpSuper(5000, 1900, 1)
	r.send(t, h2, f2)
	r.lane.Step()
	r.m.DrainTX()
	sent := r.m.Sent()
	r.lane.Step()
	if len(sent) != 8 {
		t.Fatalf("member sent %d frames, want 7 segments and 1 frame", len(sent))
	}
	var pay []byte
	for i, g := range sent {
		if !tcpOK(g) {
			t.Fatalf("frame %d: bad checksum", i)
		}
		if i < 7 {
			if seq := binary.BigEndian.Uint32(g[38:]); seq != 1000+uint32(len(pay)) {
				t.Fatalf("segment %d: seq %d", i, seq)
			}
			pay = append(pay, g[54:]...)
		}
	}
	if !bytes.Equal(pay, f[54:]) {
		t.Fatal("payload differs")
	}
	st := &r.host.Stats
	if st.RxPackets.Load() != 8 || st.DropBadVnet.Load() != 1 || st.DropTooLong.Load() != 1 {
		t.Fatalf("rx %d, bad vnet %d, too long %d; want 8, 1, 1", st.RxPackets.Load(), st.DropBadVnet.Load(), st.DropTooLong.Load())
	}
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

func TestLaneTapVnetNoFrame(t *testing.T) {
	r := newTapRig(t)
	var held []uint64
	for r.u.Available() > 3 {
		a, _ := r.u.Alloc()
		held = append(held, a)
	}
	h, f := tcpSuper(10000, 1448, 1)
	r.send(t, h, f)
	r.lane.Step()
	r.m.DrainTX()
	if got := r.host.Stats.DropNoFrame.Load(); got != 1 || len(r.m.Sent()) != 0 {
		t.Fatalf("drop_no_frame %d, sent %d; want the super-frame dropped whole", got, len(r.m.Sent()))
	}
	if r.u.Available() != 3 {
		t.Fatalf("%d frames free, want the 3 taken back", r.u.Available())
	}
	r.u.FreeBatch(held)
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

func TestLaneTapVnetMemberToHost(t *testing.T) {
	r := newTapRig(t)
	h, f := tcpSuper(10*1448, 1448, 5)
	out := make([][]byte, 10)
	sizes := make([]int, 10)
	for i := range out {
		out[i] = make([]byte, 1514)
	}
	if n, err := vnet.Segment(h, f, out, sizes); n != 10 || err != nil {
		t.Fatal(n, err)
	}
	var frames [][]byte
	for i := range out {
		frames = append(frames, out[i][:sizes[i]])
	}
	frames = append(frames, udpFrame(1, 2, 3))
	r.m.Deliver(frames...)
	r.lane.Step()
	got := r.recv()
	if len(got) != 2 {
		t.Fatalf("host got %d writes, want a super-frame and a frame", len(got))
	}
	var gh vnet.Hdr
	_ = gh.Decode(got[0])
	if gh.GSOType != vnet.GSOTCPv4 || gh.GSOSize != 1448 || gh.CsumStart != 34 || gh.CsumOffset != 16 || gh.Flags != vnet.FlagNeedsCsum {
		t.Fatalf("super-frame header %+v", gh)
	}
	if !bytes.Equal(got[0][vnet.HdrLen+54:], f[54:]) || !bytes.Equal(got[0][vnet.HdrLen:vnet.HdrLen+16], f[:16]) {
		t.Fatal("super-frame differs from the original")
	}
	if !bytes.Equal(got[1][:vnet.HdrLen], make([]byte, vnet.HdrLen)) || !bytes.Equal(got[1][vnet.HdrLen:], udpFrame(1, 2, 3)) {
		t.Fatal("single frame not written behind a zero header")
	}
	st := &r.host.Stats
	wire := uint64(0)
	for _, g := range frames {
		wire += uint64(len(g))
	}
	if st.TxPackets.Load() != 11 || st.TxBytes.Load() != wire {
		t.Fatalf("tx %d frames %d bytes, want 11, %d", st.TxPackets.Load(), st.TxBytes.Load(), wire)
	}
	// the host's queue full: every frame is counted, sent or dropped
	if err := unix.SetsockoptInt(r.host.FD, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		var batch [][]byte
		for j := 0; j < 50; j++ {
			batch = append(batch, udpFrame(1, 2, uint32(j)))
		}
		r.m.Deliver(batch...)
		r.lane.Step()
	}
	if st.DropTxFull.Load() == 0 || st.TxPackets.Load()+st.DropTxFull.Load() != 211 {
		t.Fatalf("tx %d, drop_tx_full %d: want drops and 211 in all", st.TxPackets.Load(), st.DropTxFull.Load())
	}
	r.lane.Step()
	if err := r.u.CheckLedger(); err != nil {
		t.Fatal(err)
	}
}

func TestLaneTapVnetNoAllocs(t *testing.T) {
	r := newTapRig(t)
	r.m.Record = false
	r.lane.Step() // the offload state is made at first use
	h, f := tcpSuper(44*1448, 1448, 5)
	b := make([]byte, vnet.HdrLen+len(f))
	_ = h.Encode(b)
	copy(b[vnet.HdrLen:], f)
	if a := testing.AllocsPerRun(20, func() {
		_, _ = unix.Write(r.fd, b)
		r.lane.Step()
		r.m.DrainTX()
	}); a != 0 {
		t.Fatalf("%v allocations per super-frame", a)
	}
}
