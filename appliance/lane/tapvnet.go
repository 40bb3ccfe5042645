package lane

import (
	"unsafe"

	"github.com/bond-appliance/bond-appliance/appliance/vnet"
	"github.com/bond-appliance/bond-appliance/rings"
	"golang.org/x/sys/unix"
)

// A TAP with offloads (Port.VnetHdr: IFF_VNET_HDR, TUNSETOFFLOAD with
// checksum, TSO and, when the kernel takes it, USO) hands the lane
// super-frames of up to 64 KiB behind a virtio_net_hdr and takes them
// back the same way: the lane segments what the host sends into UMEM
// frames (vnet.Segment) and coalesces what the members receive into
// super-frames (vnet.Coalescer), one read(2) or write(2) per super-frame
// instead of one per wire frame, and the host stack builds and checksums
// 64 KiB packets instead of 1500-byte ones.
const (
	// tapReadLen is the per-lane read buffer: a vnet header, the
	// longest super-frame, and spare bytes: a read that fills the buffer
	// is a frame too long, dropped (drop_too_long), never passed on cut.
	tapReadLen = vnet.HdrLen + vnet.MaxSuper + 256
	// tapMaxSegs is the most wire frames one super-frame may make (64 KiB
	// of TCP at the smallest MSS Linux sends, 88 bytes, is 745); one that
	// makes more is dropped (drop_too_long).
	tapMaxSegs = 1024
	// tapCoalBufs is the number of super-frame buffers per lane
	// (HdrLen+MaxSuper bytes each) and tapCoalItems the items of one
	// write batch.
	tapCoalBufs  = 8
	tapCoalItems = 256
)

// tapVnet is a lane's state for TAP hosts with offloads, made at first use.
type tapVnet struct {
	buf   []byte       // one super-frame read
	out   [][]byte     // the UMEM frames of its segments
	sizes []int        // their lengths
	addrs []uint64     // their addresses
	descs []rings.Desc // a read batch: Batch + tapMaxSegs
	coal  *vnet.Coalescer
	zero  [vnet.HdrLen]byte // the vnet header of a frame written alone
	iov   [2]unix.Iovec
}

func (l *Lane) tapVnetState() *tapVnet {
	if l.tv == nil {
		l.tv = &tapVnet{
			buf:   make([]byte, tapReadLen),
			out:   make([][]byte, tapMaxSegs),
			sizes: make([]int, tapMaxSegs),
			addrs: make([]uint64, tapMaxSegs),
			descs: make([]rings.Desc, l.cfg.Batch+tapMaxSegs),
			coal:  vnet.NewCoalescer(tapCoalBufs, tapCoalItems),
		}
	}
	return l.tv
}

// tapReadVnetFn reads one super-frame (vnet header first) from a TAP
// queue (a test hook).
var tapReadVnetFn = func(fd int, p []byte) (int, error) { return unix.Read(fd, p) }

// tapReadVnet reads super-frames from a TAP with offloads until it has a
// batch of wire frames (or more: a super-frame is taken whole) and
// segments each into UMEM frames. A super-frame the UMEM cannot hold
// whole is dropped (drop_no_frame) and reading stops; with no free frame
// at all it does not read (the frames wait in the TAP queue). A frame
// longer than the read buffer, or with a segment longer than a UMEM
// frame's room, is dropped (drop_too_long); one the lane cannot segment
// (malformed headers, a GSO type it does not know) is dropped and counted
// in DropBadVnet.
func (l *Lane) tapReadVnet(h *Port) []rings.Desc {
	tv := l.tapVnetState()
	room := l.U.FrameSize() - headroom
	n := 0
	for n < l.cfg.Batch && l.U.Available() > 0 {
		r, err := tapReadVnetFn(h.FD, tv.buf)
		if err != nil || r <= 0 {
			break
		}
		if r >= len(tv.buf) {
			h.Stats.DropTooLong.Add(1)
			continue
		}
		var hdr vnet.Hdr
		if hdr.Decode(tv.buf[:r]) != nil {
			h.Stats.DropBadVnet.Add(1)
			continue
		}
		pkt := tv.buf[vnet.HdrLen:r]
		segs, maxLen, err := vnet.Count(hdr, pkt)
		switch {
		case err != nil:
			h.Stats.DropBadVnet.Add(1)
			continue
		case maxLen > int(room) || segs > tapMaxSegs:
			h.Stats.DropTooLong.Add(1)
			continue
		}
		if got := l.U.AllocBatch(tv.addrs[:segs]); got < segs {
			l.U.FreeBatch(tv.addrs[:got])
			h.Stats.DropNoFrame.Add(1)
			break
		}
		for i := 0; i < segs; i++ {
			tv.addrs[i] += headroom
			tv.out[i] = l.U.Frame(tv.addrs[i], room)
		}
		if _, err := vnet.Segment(hdr, pkt, tv.out[:segs], tv.sizes[:segs]); err != nil {
			l.U.FreeBatch(tv.addrs[:segs])
			h.Stats.DropBadVnet.Add(1)
			continue
		}
		for i := 0; i < segs; i++ {
			tv.descs[n] = rings.Desc{Addr: tv.addrs[i], Len: uint32(tv.sizes[i])}
			n++
		}
	}
	return tv.descs[:n]
}

// tapWriteVnet writes the pending frames to a TAP with offloads: chains
// are dropped whole (a TAP host carries single-buffer frames), the rest
// coalesced (vnet.Coalescer) and written one item per write(2): a
// super-frame with its vnet header, or a frame alone behind a zero one
// (writev). TxPackets counts wire frames, TxBytes their bytes; a write
// the TAP refuses (EAGAIN: its queue is full) drops the item's frames
// (drop_tx_full).
func (l *Lane) tapWriteVnet(p *Port) {
	tv := l.tapVnetState()
	c := tv.coal
	c.UDP = p.TapUSO
	c.Reset()
	k := 0
	for i := 0; i < p.npend; i++ {
		d := p.pend[i]
		if l.tapChainDrop(p, i) {
			continue
		}
		p.pend[k] = d
		k++
	}
	for i := 0; i < k; i++ {
		f := l.U.Frame(p.pend[i].Addr, p.pend[i].Len)
		if !c.Add(f) {
			l.tapEmit(p, tv)
			c.Reset()
			c.Add(f)
		}
	}
	l.tapEmit(p, tv)
	c.Reset()
	for i := 0; i < k; i++ {
		l.U.Free(p.pend[i].Addr)
	}
	p.npend = 0
}

// tapEmit writes the coalescer's items to p.
func (l *Lane) tapEmit(p *Port, tv *tapVnet) {
	c := tv.coal
	var frames, bytes uint64
	for i := 0; i < c.Len(); i++ {
		b, super, segs := c.Item(i)
		var err error
		wire := uint64(len(b))
		if super {
			_, err = unix.Write(p.FD, b)
			var h vnet.Hdr
			_ = h.Decode(b)
			wire = uint64(len(b)-vnet.HdrLen) + uint64(segs-1)*uint64(h.HdrLen)
		} else {
			err = writev2(p.FD, &tv.iov, tv.zero[:], b)
		}
		if err != nil {
			p.Stats.DropTxFull.Add(uint64(segs))
			continue
		}
		frames += uint64(segs)
		bytes += wire
	}
	p.Stats.TxPackets.Add(frames)
	p.Stats.TxBytes.Add(bytes)
}

// writev2 writes a then b with one writev(2) over iov (the caller's, so
// nothing is allocated).
func writev2(fd int, iov *[2]unix.Iovec, a, b []byte) error {
	iov[0].Base = unsafe.SliceData(a)
	iov[0].SetLen(len(a))
	iov[1].Base = unsafe.SliceData(b)
	iov[1].SetLen(len(b))
	_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return e
	}
	return nil
}
