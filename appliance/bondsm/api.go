// Package bondsm is one bond's control state as a pure state machine, in the
// style of lacp, alb and monitor: an injected clock, no netlink, no
// goroutines, no locks. It owns the members' MII states (updelay and
// downdelay), active-slave selection (primary, primary_reselect, runtime
// active_slave), fail_over_mac, promiscuity following the host device, the
// bond's LACP System (802.3ad), its tlb/alb state and its ARP/NS monitor and
// peer notifier.
//
// Inputs are link observations, ticks, control frames the lanes passed up
// and operator requests; every input returns an Output: the forwarding
// snapshot to publish (when it changed), frames to send on members, device
// actions for the appliance to carry out (and journal), and events to log.
// The control loop of package appliance is the only caller.
package bondsm

import (
	"net"

	"github.com/bond-appliance/bond-appliance/appliance/alb"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lane"
)

// HostMember is the member index of a frame the host device sent (an ARP
// frame rlb may rewrite), as lane.HostMember.
const HostMember = int(lane.HostMember)

// Member describes a device joining the bond.
type Member struct {
	Name    string
	Ifindex int
	PermMAC net.HardwareAddr // the MAC it had before the appliance touched it
	CurMAC  net.HardwareAddr // the MAC it carries now
	Carrier bool
	Speed   int    // Mb/s, 0 unknown
	Duplex  string // "full", "half", "unknown"
	Slave   config.Slave
}

// Setup is what New needs.
type Setup struct {
	Config     config.Bond // validated
	MAC        net.HardwareAddr
	MTU        int
	HostDevice string // "veth" or "tap" (status only)
	Members    []Member
}

// Class is the control traffic class of a frame to send.
type Class uint8

// Classes: slow-protocol frames (LACPDU, marker) travel on their own ring,
// never behind ARP/ND frames.
const (
	ClassSlow  Class = iota // LACPDU, marker
	ClassNeigh              // ARP/NS probes, gratuitous ARP, NA, IGMP, alb learning and updates
)

// Frame is a frame control asks a lane to send on a member. Data is valid
// until the next call into the Bond: the Bond reuses the memory, so a
// caller that keeps a frame longer copies it (queueing it on a lane's
// control ring does).
type Frame struct {
	Member int
	Class  Class
	Data   []byte
	origin origin // which part of the bond built it (Dropped counts there)
}

// ActionKind is a device change the appliance carries out.
type ActionKind uint8

// Device actions.
const (
	SetMemberMAC     ActionKind = iota // Member gets MAC (journaled: restored on exit)
	SetMemberPromisc                   // Member's promiscuity the appliance adds (On) or takes back
	SetHostMAC                         // the host device takes MAC (fail_over_mac active)
	SetHostCarrier                     // the host device's carrier follows the bond (On)
)

// Action is one device change.
type Action struct {
	Kind   ActionKind
	Member int    // member index (SetMember*)
	Device string // the member's name, or the host device's
	MAC    net.HardwareAddr
	On     bool
}

// Event is a state change to log and stream; Args are slog-style key/value
// pairs and always carry "bond".
type Event struct {
	Msg  string
	Args []any
}

// Output is what one input produced.
type Output struct {
	Snapshot *lane.Snapshot // non-nil: publish it to every lane
	Frames   []Frame
	Actions  []Action
	Events   []Event
}

// TickInput is what Tick reads besides the clock.
type TickInput struct {
	// RxPackets are the frames received so far on each member (by member
	// index), summed over lanes; nil when unknown. The ARP/NS monitor
	// counts a change as traffic.
	RxPackets []uint64
	// ALBLoads are the lanes' tlb/alb transmit byte counters summed
	// (balance-tlb and balance-alb; nil when there are none).
	ALBLoads *alb.Loads
}

// MemberState is one member as the bond sees it.
type MemberState struct {
	Index   int
	Name    string
	Ifindex int
	Removed bool // hot-removed: a tombstone keeping indices stable
	Carrier bool // the last carrier observed
	State   string
	// CurMAC is the MAC the member carries (after the actions returned so
	// far); Promisc whether the appliance made it promiscuous.
	CurMAC  net.HardwareAddr
	Promisc bool
}
