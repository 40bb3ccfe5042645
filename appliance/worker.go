package appliance

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance/bondsm"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
	"github.com/bond-appliance/bond-appliance/appliance/xdpprog"
	"github.com/bond-appliance/bond-appliance/appliance/xsk"
	"github.com/bond-appliance/bond-appliance/policy"
	"github.com/bond-appliance/bond-appliance/umem"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// worker owns every device-side resource: the change journal, the XDP
// programs and their attachments, the AF_XDP sockets and the TAP queues.
// Before the appliance runs, Start uses it directly; afterwards only the
// worker goroutine touches it, running the jobs the control loop sends in
// order (device changes, attaching, binding, retiring sockets), so slow
// device work never holds up the control loop's timers.
type worker struct {
	dp          config.Dataplane
	log         logger
	journal     netdev.Journal
	progs       []*xdpprog.Program
	attach      []*xdpprog.Attachment
	sockets     []*xsk.Socket
	taps        []*tapDevice
	lanes       []*lane.Lane  // set once at start
	laneFirst   []*xsk.Socket // the socket that registered each lane's UMEM
	lostReclaim uint64        // frames of retired sockets not handed back before a deadline
	slowFDs     map[int]bool  // open slow-protocol packet sockets
	// sg: the lanes run multi-buffer (a bond's MTU was jumbo at start):
	// sockets bound with XDP_USE_SG, XDP programs xdp.frags.
	sg bool
	// fast: the fast path's maps (dataplane.fast_path auto, veth host,
	// single-buffer lanes), created by the worker at the first bond; the
	// control loop writes the bonds' forwarding state into them.
	fast atomic.Pointer[xdpprog.FastMaps]
	// fastErr: why the fast path is off although configured (logged once)
	fastErr error
	// tcHost, tcMember: the fast path's TC programs (loaded with the maps;
	// nil when the kernel refused them: the XDP-only fast path remains).
	tcHost, tcMember *xdpprog.TCProgram
	tcAttach         []*xdpprog.TCAttachment
}

// fastMaps returns the fast path's maps, creating them at the first call;
// nil when the fast path is off (dataplane.fast_path off, host_device
// tap, multi-buffer lanes: the fast path steps aside for jumbo frames) or
// the kernel refused the maps.
func (w *worker) fastMaps() *xdpprog.FastMaps {
	if f := w.fast.Load(); f != nil {
		return f
	}
	if w.dp.FastPath == "off" || w.dp.HostDevice == "tap" || w.sg || w.fastErr != nil {
		return nil
	}
	f, err := xdpprog.NewFastMaps()
	if err != nil {
		w.fastErr = err
		w.log.Warn("fast path off: the kernel refused its maps", "err", err)
		return nil
	}
	w.fast.Store(f)
	w.tcHost, w.tcMember = nil, nil
	if h, err := f.NewTCHost(); err != nil {
		w.log.Warn("fast path without TC programs: XDP redirects only (no offloads on the host device)", "err", err)
	} else if m, err := f.NewTCMember(); err != nil {
		h.Close()
		w.log.Warn("fast path without TC programs: XDP redirects only (no offloads on the host device)", "err", err)
	} else {
		w.tcHost, w.tcMember = h, m
	}
	return f
}

// attachTC attaches one of the fast path's TC programs; nil (logged) when
// the kernel refuses (no TCX before Linux 6.6).
func (w *worker) attachTC(p *xdpprog.TCProgram, dev string, ifindex int, ingress bool) *xdpprog.TCAttachment {
	if p == nil || ifindex == 0 {
		return nil
	}
	at, err := p.AttachTC(ifindex, ingress)
	if err != nil {
		w.log.Warn("fast path: TC program not attached; the device keeps the XDP path", "dev", dev, "err", err)
		return nil
	}
	w.tcAttach = append(w.tcAttach, at)
	return at
}

// detachTC removes a TC attachment.
func (w *worker) detachTC(at *xdpprog.TCAttachment) error {
	if at == nil {
		return nil
	}
	w.tcAttach = slices.DeleteFunc(w.tcAttach, func(x *xdpprog.TCAttachment) bool { return x == at })
	return at.Detach()
}

// SetHostOffloads turns the host end's transmit offloads (checksum, SG,
// TSO, GSO) on when the bond's TC program decides every frame it sends
// (the lane, which copies bytes, then sees no super-frame or partial
// checksum), off otherwise.
func (w *worker) setHostOffloads(host string, on bool) error {
	if on {
		return netdev.EnableTxOffloads(host)
	}
	return netdev.DisableTxOffloads(host)
}

// logger is the part of slog the worker uses.
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// device is one AF_XDP-served device: a member or the host veth's appliance end.
type device struct {
	name    string
	ifindex int
	prog    *xdpprog.Program
	attach  *xdpprog.Attachment   // nil while not attached (a member whose frames the kernel delivers)
	tc      *xdpprog.TCAttachment // the fast path's TC program, if attached
	mode    xdpprog.AttachMode
	force   bool
	// xdpOn: the program was attached when the worker handed the device
	// over (the control loop's starting point for setMemberXDP).
	xdpOn bool
	gone  bool // released: late setMemberXDP jobs do nothing
}

// memberDev is what the worker made of a member: its device and its socket
// (and lane port) in each lane.
type memberDev struct {
	name   string
	dev    *device
	socks  []*xsk.Socket
	ports  []*lane.Port
	slowFD int    // packet socket receiving the member's slow-protocol frames, -1 none
	slowRx uint64 // frames read from it (the control loop counts)
}

// bondDevs is what the worker made of a bond at start or bond add.
type bondDevs struct {
	setup     bondsm.Setup
	dp        string // appliance end of the host veth ("" for tap)
	hostIndex int
	hostDev   *device
	hostTC    *xdpprog.TCAttachment // the fast path's TC program on the host end's egress
	hostSocks []*xsk.Socket
	hostPorts []*lane.Port // per lane
	tap       *tapDevice
	members   []*memberDev
}

// dpName is the appliance-side end of a bond's host veth.
func dpName(bond string) string {
	if len(bond) > 12 {
		bond = bond[:12]
	}
	return bond + "-dp"
}

// prepareMember records and changes what a member needs: MTU, IPv6 off,
// the bond MAC (unless the mode keeps members' own MACs), channel count,
// allmulti, up.
func (w *worker) prepareMember(bc *config.Bond, mac net.HardwareAddr, mtu int, s config.Slave, first bool) (bondsm.Member, error) {
	in, err := netdev.Get(s.Name)
	if err != nil {
		return bondsm.Member{}, err
	}
	m := bondsm.Member{Name: s.Name, Ifindex: in.Index, PermMAC: in.MAC, CurMAC: in.MAC, Carrier: in.Carrier, Duplex: "unknown", Slave: s}
	if err := w.journal.SetMTU(s.Name, mtu); err != nil {
		return m, err
	}
	// the member's own stack must not speak with the bond's MAC
	if err := w.journal.DisableIPv6(s.Name); err != nil {
		return m, err
	}
	if !bondsm.UsesOwnMACs(*bc) && !macEqual(in.MAC, mac) {
		if err := w.journal.SetMAC(s.Name, mac); err != nil {
			if first && policy.Mode(bc.Mode) == policy.ActiveBackup {
				// as bonding: a first slave that cannot change its MAC
				// switches an active-backup bond to fail_over_mac active
				w.log.Warn("the first slave cannot change its MAC; setting fail_over_mac to active", "bond", bc.Name, "slave", s.Name, "err", err)
				bc.FailOverMAC = config.FailOverMACActive
			} else {
				return m, err
			}
		} else {
			m.CurMAC = append(net.HardwareAddr(nil), mac...)
		}
	}
	if err := w.journal.SetQueues(s.Name, w.dp.Queues); err != nil {
		return m, err
	}
	if err := w.journal.SetAllmulti(s.Name, true); err != nil {
		return m, err
	}
	if err := w.journal.SetUp(s.Name, true); err != nil {
		return m, err
	}
	if c, err := netdev.CarrierNow(s.Name); err == nil {
		m.Carrier = c
	}
	m.Speed, m.Duplex, _ = netdev.LinkMode(s.Name)
	return m, nil
}

// prepareBond creates the bond's host device and prepares its members.
// Nothing is attached yet.
func (w *worker) prepareBond(bc config.Bond) (*bondDevs, error) {
	mac := bc.MAC
	if len(mac) == 0 {
		in, err := netdev.Get(bc.Slaves[0].Name)
		if err != nil {
			return nil, err
		}
		mac = in.MAC
	}
	mtu := bc.MTU
	if mtu == 0 {
		mtu = 1500
	}
	if config.Jumbo(mtu, w.dp.FrameSize) && !w.sg {
		return nil, fmt.Errorf("bond %s: mtu %d needs multi-buffer AF_XDP sockets, and the lanes started single-buffer (no bond was above %d at start): restart the appliance with this bond in the configuration",
			bc.Name, mtu, config.MaxMTU(w.dp.FrameSize))
	}
	bd := &bondDevs{}
	switch w.dp.HostDevice {
	case "tap":
		if err := w.journal.CreatingTap(bc.Name); err != nil {
			return nil, fmt.Errorf("bond %s: %w", bc.Name, err)
		}
		t, err := openTap(bc.Name, w.dp.Queues, mac, mtu, &w.journal)
		if err != nil {
			return nil, fmt.Errorf("bond %s: host_device tap: %w", bc.Name, err)
		}
		w.taps = append(w.taps, t)
		bd.tap = t
	default:
		bd.dp = dpName(bc.Name)
		if err := w.journal.CreateVeth(bc.Name, bd.dp, w.dp.Queues, mac, mtu); err != nil {
			return nil, fmt.Errorf("bond %s: %w", bc.Name, err)
		}
		if err := netdev.DisableTxOffloads(bc.Name); err != nil {
			w.log.Warn("could not disable offloads on host device", "bond", bc.Name, "err", err)
		}
		if w.fastMaps() != nil {
			// GRO turns on the host end's NAPI rings: frames the members'
			// programs redirect to the appliance end arrive there and TCP
			// segments are coalesced. The device is ours (deleted at exit).
			if _, err := netdev.SetGRO(bc.Name, true); err != nil {
				w.log.Warn("could not enable GRO on host device", "bond", bc.Name, "err", err)
			}
		}
		if err := w.journal.SetUp(bd.dp, true); err != nil {
			return nil, err
		}
		if err := w.journal.SetUp(bc.Name, true); err != nil {
			return nil, err
		}
	}
	if in, err := netdev.Get(bc.Name); err == nil {
		bd.hostIndex = in.Index
	}
	var members []bondsm.Member
	for j, s := range bc.Slaves {
		m, err := w.prepareMember(&bc, mac, mtu, s, j == 0)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	bd.setup = bondsm.Setup{Config: bc, MAC: mac, MTU: mtu, HostDevice: w.dp.HostDevice, Members: members}
	w.log.Info("bond prepared", "bond", bc.Name, "mode", policy.Mode(bc.Mode).String(), "mac", mac.String(), "mtu", mtu, "slaves", len(members))
	return bd, nil
}

// fastRX: a member of a bond whose received frames can all be delivered
// by the kernel (see fastRXConfig).
func (w *worker) attachDevice(name string, force, member, fastRX bool) (*device, error) {
	in, err := netdev.Get(name)
	if err != nil {
		return nil, err
	}
	if force && in.XDPProg != 0 {
		// the program force replaces goes back on at restore
		if err := w.journal.ReplacingXDP(name); err != nil {
			return nil, err
		}
	}
	mode := xdpprog.AttachMode(w.dp.XDPAttach)
	fast := w.fastMaps()
	if !member && fast != nil {
		// The host veth's program redirects to members. Natively that is
		// ndo_xdp_xmit, which a veth member (or a driver without XDP
		// transmit) refuses unless its peer runs NAPI; in generic mode it
		// is an skb handed to the member's transmit, which every device
		// takes. With xdp_attach native, transmit stays in the lane.
		if mode == xdpprog.AttachAuto {
			mode = xdpprog.AttachGeneric
		} else if mode == xdpprog.AttachNative {
			fast = nil
		}
	}
	p, err := xdpprog.NewWithOptions(w.dp.Queues, xdpprog.Options{PassSlowProtocols: member, Frags: w.sg, Fast: fast, FastHost: !member})
	if err != nil {
		return nil, err
	}
	w.progs = append(w.progs, p)
	d := &device{name: name, ifindex: in.Index, prog: p, mode: mode, force: force}
	if member && fast != nil && fastRX && w.tcMember != nil && in.XDPProg == 0 {
		// The kernel delivers this bond's received frames: the member's
		// TC program does it (after GRO), and no XDP program runs until
		// the bond needs received frames in the lane (setMemberXDP). A
		// device that already carries a program gets ours at once.
		w.log.Info("XDP program loaded, not attached: the kernel delivers received frames", "dev", name, "mtu", in.MTU)
		return d, nil
	}
	if err := w.attachXDP(d, in.MTU); err != nil {
		return nil, err
	}
	return d, nil
}

// attachXDP attaches device d's program.
func (w *worker) attachXDP(d *device, mtu int) error {
	at, err := d.prog.Attach(d.ifindex, d.mode, d.force)
	if err != nil {
		return fmt.Errorf("%s: %w", d.name, w.attachErr(d.name, mtu, err))
	}
	d.attach = at
	w.attach = append(w.attach, at)
	if at.NativeErr != nil {
		w.log.Warn("XDP program attached in generic mode: native mode refused", "dev", d.name, "mode", string(at.Mode), "mtu", mtu,
			"multi_buffer", w.sg, "why", w.attachErr(d.name, mtu, at.NativeErr).Error())
	} else {
		w.log.Info("XDP program attached", "dev", d.name, "mode", string(at.Mode), "mtu", mtu, "multi_buffer", w.sg, "fast_path", w.fast.Load() != nil)
	}
	return nil
}

// setMemberXDP attaches (on) or detaches a member's XDP program: attached
// while its bond needs received frames in the lane (balance-tlb/alb, the
// ARP/NS monitor), detached while the kernel delivers them (the TC
// program). The AF_XDP sockets stay bound either way (transmit needs no
// program).
func (w *worker) setMemberXDP(d *device, on bool) error {
	if d == nil || d.gone || (d.attach != nil) == on {
		return nil
	}
	if on {
		mtu := 0
		if in, err := netdev.Get(d.name); err == nil {
			mtu = in.MTU
		}
		return w.attachXDP(d, mtu)
	}
	at := d.attach
	d.attach = nil
	w.attach = slices.DeleteFunc(w.attach, func(x *xdpprog.Attachment) bool { return x == at })
	w.log.Info("XDP program detached: the kernel delivers received frames", "dev", d.name)
	return at.Detach()
}

// attachErr explains a refused XDP attach: the kernel's bare "numerical
// result out of range" (ERANGE) means the device's MTU is above what its
// driver runs a native XDP program at.
func (w *worker) attachErr(name string, mtu int, err error) error {
	if !errors.Is(err, unix.ERANGE) {
		return err
	}
	limit := "the driver's native XDP limit"
	if l, lerr := netlink.LinkByName(name); lerr == nil && l.Type() == "veth" && !w.sg {
		limit = fmt.Sprintf("veth's native XDP limit %d for a single-buffer program", vethNativeMTU())
	}
	return fmt.Errorf("native XDP refused at MTU %d, above %s (use xdp_attach auto or generic, or a smaller mtu): %w", mtu, limit, err)
}

// openSocket opens the AF_XDP socket of device d's queue q on lane q's
// UMEM, sharing it with the lane's first socket (or registering it).
func (w *worker) openSocket(q int, d *device) (*lane.Port, *xsk.Socket, error) {
	opt := xsk.Options{RingSize: uint32(w.dp.RingSize), Bind: xsk.BindMode(w.dp.XDPBind), TxBudget: uint32(w.dp.Batch), SG: w.sg}
	s, err := xsk.Open(w.lanes[q].U, d.ifindex, q, opt, w.laneFirst[q])
	// The kernel releases a closed socket's hold on a device queue in
	// deferred work: a queue given up a moment ago can still be busy.
	for deadline := time.Now().Add(time.Second); errors.Is(err, unix.EBUSY) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		s, err = xsk.Open(w.lanes[q].U, d.ifindex, q, opt, w.laneFirst[q])
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s queue %d: %w", d.name, q, err)
	}
	w.sockets = append(w.sockets, s)
	if w.laneFirst[q] == nil {
		w.laneFirst[q] = s
	}
	if err := d.prog.SetSocket(q, s.FD); err != nil {
		return nil, nil, err
	}
	mode := "copy"
	if s.ZeroCopy {
		mode = "zero-copy"
	}
	w.log.Info("AF_XDP socket bound", "dev", d.name, "queue", q, "bind", mode, "lane", q, "tx_budget", s.TxBudget, "multi_buffer", w.sg)
	return newPort(d.name, s), s, nil
}

// ethPSlow is ETH_P_SLOW (IEEE 802.3 slow protocols) in network order.
var ethPSlow = uint16(0x8809>>8 | 0x8809&0xff<<8)

// openSlowSocket opens the packet socket on which a member's slow-protocol
// frames arrive: the member's XDP program passes them to the kernel stack
// rather than to the AF_XDP socket, so that they never share a ring with
// data (a flood that fills the AF_XDP RX ring does not take LACPDUs with
// it). Non-blocking: the control loop reads it at every tick.
func openSlowSocket(name string) (int, error) {
	in, err := netdev.Get(name)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(ethPSlow))
	if err != nil {
		return -1, fmt.Errorf("%s: slow-protocol packet socket: %w", name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPSlow, Ifindex: in.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: bind slow-protocol packet socket: %w", name, err)
	}
	// our own LACPDUs leave through AF_XDP; never read them back
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	return fd, nil
}

// newPort makes the lane port of a socket.
func newPort(name string, s *xsk.Socket) *lane.Port {
	return &lane.Port{Name: name, FD: s.FD, RX: s.RX, TX: s.TX, Fill: s.Fill, Comp: s.Comp, Kick: s, TxBudget: s.TxBudget}
}

// openMember attaches a prepared member and opens its socket in every lane.
func (w *worker) openMember(name string, force, fastRX bool) (*memberDev, error) {
	fd, err := openSlowSocket(name)
	if err != nil {
		return nil, err
	}
	if w.slowFDs == nil {
		w.slowFDs = map[int]bool{}
	}
	w.slowFDs[fd] = true
	md := &memberDev{name: name, slowFD: fd}
	d, err := w.attachDevice(name, force, true, fastRX)
	if err != nil {
		return md, err
	}
	md.dev = d
	d.xdpOn = d.attach != nil
	if w.fast.Load() != nil {
		d.tc = w.attachTC(w.tcMember, name, d.ifindex, true)
		if d.tc == nil && d.attach == nil {
			// no TC program: the XDP program delivers (DEVMAP)
			if err := w.attachXDP(d, 0); err != nil {
				return md, err
			}
			d.xdpOn = true
		}
		if d.tc != nil {
			// GRO coalesces what the TC program hands to the host (on a
			// veth it also turns on the NAPI path that runs GRO)
			if err := w.journal.SetGRO(name, true); err != nil {
				w.log.Warn("fast path: could not enable GRO on member", "dev", name, "err", err)
			}
		}
	}
	for q := range w.lanes {
		p, s, err := w.openSocket(q, d)
		if err != nil {
			return md, err
		}
		md.socks = append(md.socks, s)
		md.ports = append(md.ports, p)
	}
	return md, nil
}

// openBond attaches a prepared bond's devices and opens their sockets.
func (w *worker) openBond(bd *bondDevs) error {
	if bd.dp != "" {
		d, err := w.attachDevice(bd.dp, false, false, false)
		if err != nil {
			return err
		}
		bd.hostDev = d
		if w.fast.Load() != nil {
			bd.hostTC = w.attachTC(w.tcHost, bd.setup.Config.Name, bd.hostIndex, false)
		}
		for q := range w.lanes {
			p, s, err := w.openSocket(q, d)
			if err != nil {
				return err
			}
			bd.hostSocks = append(bd.hostSocks, s)
			bd.hostPorts = append(bd.hostPorts, p)
		}
	} else if bd.tap != nil {
		for q := range w.lanes {
			bd.hostPorts = append(bd.hostPorts, bd.tap.port(q, nil))
		}
	}
	for _, m := range bd.setup.Members {
		md, err := w.openMember(m.Name, bd.setup.Config.Force, fastRXConfig(&bd.setup.Config))
		if md != nil {
			bd.members = append(bd.members, md)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// releaseMember retires a member no lane uses any more (every lane
// acknowledged a layout without it): its XDP program stops redirecting,
// its sockets' frames go back to their lanes, the sockets close and the
// device is restored as it was found.
func (w *worker) releaseMember(md *memberDev) error {
	if md == nil {
		return nil
	}
	var errs []error
	if md.slowFD >= 0 && w.slowFDs[md.slowFD] {
		errs = append(errs, unix.Close(md.slowFD))
		delete(w.slowFDs, md.slowFD)
	}
	md.slowFD = -1
	if md.dev != nil {
		md.dev.gone = true
		errs = append(errs, w.detachTC(md.dev.tc))
		md.dev.tc = nil
		w.fastForget(md.dev.ifindex)
		for q := range md.socks {
			_ = md.dev.prog.ClearSocket(q)
		}
		errs = append(errs, md.dev.attach.Detach())
	}
	time.Sleep(5 * time.Millisecond) // frames the kernel is copying land before the rings are read
	w.reclaimSockets(md.socks)
	md.socks = nil
	if md.dev != nil {
		errs = append(errs, md.dev.prog.Close())
		w.dropDevice(md.dev)
		md.dev = nil
	}
	errs = append(errs, w.journal.RestoreDevice(md.name))
	return errors.Join(errs...)
}

// releaseBond retires a whole bond no lane uses any more.
func (w *worker) releaseBond(host string, bd *bondDevs, members []*memberDev) error {
	var errs []error
	for _, md := range members {
		errs = append(errs, w.releaseMember(md))
	}
	errs = append(errs, w.detachTC(bd.hostTC))
	bd.hostTC = nil
	if bd.hostDev != nil {
		w.fastForget(bd.hostDev.ifindex)
		for q := range bd.hostSocks {
			_ = bd.hostDev.prog.ClearSocket(q)
		}
		errs = append(errs, bd.hostDev.attach.Detach())
	}
	w.reclaimSockets(bd.hostSocks)
	bd.hostSocks = nil
	if bd.hostDev != nil {
		errs = append(errs, bd.hostDev.prog.Close())
		w.dropDevice(bd.hostDev)
		bd.hostDev = nil
	}
	if bd.tap != nil {
		errs = append(errs, bd.tap.close())
		w.taps = slices.DeleteFunc(w.taps, func(x *tapDevice) bool { return x == bd.tap })
	}
	if bd.dp != "" {
		errs = append(errs, w.journal.RestoreDevice(bd.dp))
	}
	errs = append(errs, w.journal.RestoreDevice(host))
	return errors.Join(errs...)
}

// fastForget removes a retired device from the fast path's device map
// (the devmaps let go of deleted devices by themselves).
func (w *worker) fastForget(ifindex int) {
	if f := w.fast.Load(); f != nil {
		_ = f.Ifs.Delete(uint32(ifindex))
	}
}

// reclaimSockets hands the frames still on retired sockets' rings back to
// their lanes (socket i is on lane i) and closes them. A lane that does
// not take a frame within a second loses it (counted).
func (w *worker) reclaimSockets(socks []*xsk.Socket) {
	deadline := time.Now().Add(time.Second)
	var addrs []uint64
	for q, s := range socks {
		if s == nil || q >= len(w.lanes) {
			continue
		}
		for _, r := range socketRings(s) {
			addrs = r.get(addrs[:0])
			for _, ad := range addrs {
				for !w.lanes[q].Reclaim(ad, r.place) {
					if time.Now().After(deadline) {
						w.lostReclaim++
						w.lanes[q].ReclaimLost(1) // published for the status
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		_ = s.Close()
		w.sockets = slices.DeleteFunc(w.sockets, func(x *xsk.Socket) bool { return x == s })
	}
}

// socketRing reads the frames on one ring of a socket.
type socketRing struct {
	place umem.Place
	get   func([]uint64) []uint64
}

// socketRings are a socket's four rings with the place the lane's ledger
// has their frames in: the lane records a frame as Fill from when it puts
// it on the fill ring until it reads it from the RX ring, and as TX from
// when it puts it on the TX ring until it reads it from the completion
// ring (the kernel's moves between rings are not recorded).
func socketRings(s *xsk.Socket) [4]socketRing {
	return [4]socketRing{{umem.Fill, s.Fill.Unconsumed}, {umem.Fill, s.RX.Pending}, {umem.TX, s.TX.Unconsumed}, {umem.TX, s.Comp.Pending}}
}

// dropDevice forgets a retired device's program and attachment.
func (w *worker) dropDevice(d *device) {
	w.progs = slices.DeleteFunc(w.progs, func(x *xdpprog.Program) bool { return x == d.prog })
	w.attach = slices.DeleteFunc(w.attach, func(x *xdpprog.Attachment) bool { return x == d.attach })
}

// apply carries out a device action of a bond's state machine.
func (w *worker) apply(host, dp string, tap *tapDevice, act bondsm.Action) error {
	switch act.Kind {
	case bondsm.SetMemberMAC:
		return w.journal.SetMAC(act.Device, act.MAC)
	case bondsm.SetMemberPromisc:
		return w.journal.SetPromisc(act.Device, act.On)
	case bondsm.SetHostMAC:
		l, err := netlink.LinkByName(host)
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(l, act.MAC)
	case bondsm.SetHostCarrier:
		if tap != nil {
			tap.setCarrier(act.On)
			return nil
		}
		// The host end's carrier follows the appliance end's admin state.
		l, err := netlink.LinkByName(dp)
		if err != nil {
			return err
		}
		if act.On {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	}
	return fmt.Errorf("unknown device action %d", act.Kind)
}

// teardown detaches every program, closes every socket and TAP queue and
// undoes every recorded change. The lanes must have stopped.
func (w *worker) teardown() error {
	var errs []error
	for _, at := range w.tcAttach {
		errs = append(errs, at.Detach())
	}
	for _, at := range w.attach {
		errs = append(errs, at.Detach())
	}
	for _, p := range []*xdpprog.TCProgram{w.tcHost, w.tcMember} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	w.tcAttach, w.tcHost, w.tcMember = nil, nil, nil
	for _, s := range w.sockets {
		errs = append(errs, s.Close())
	}
	for _, p := range w.progs {
		errs = append(errs, p.Close())
	}
	for _, t := range w.taps {
		errs = append(errs, t.close())
	}
	for fd := range w.slowFDs {
		errs = append(errs, unix.Close(fd))
	}
	w.slowFDs = nil
	if f := w.fast.Swap(nil); f != nil {
		errs = append(errs, f.Close())
	}
	errs = append(errs, w.journal.Restore())
	w.attach, w.sockets, w.progs, w.taps = nil, nil, nil, nil
	return errors.Join(errs...)
}

func macEqual(a, b net.HardwareAddr) bool { return string(a) == string(b) }

// fastRXConfig reports a bond whose received frames the kernel can
// deliver to the host by its configuration: not balance-tlb/alb (receive
// rules, MAC rewrites) and no ARP/NS monitor (copies to the lane).
func fastRXConfig(bc *config.Bond) bool {
	m := policy.Mode(bc.Mode)
	return m != policy.BalanceTLB && m != policy.BalanceALB && bc.ArpInterval == 0
}
