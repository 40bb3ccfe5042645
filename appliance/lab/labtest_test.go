package lab

import (
	"testing"

	"github.com/bond-appliance/bond-appliance/appliance/lab/labtest"
)

// The test-only scaffolding lives in appliance/lab/labtest, which the product
// binary does not link; these aliases let the tests of this package use it
// under the names they always had.
type (
	PacketSocket = labtest.PacketSocket
	Blackhole    = labtest.Blackhole
)

var (
	OpenPacket   = labtest.OpenPacket
	UDPFrame     = labtest.UDPFrame
	TestSeq      = labtest.TestSeq
	InNetns      = labtest.InNetns
	DialInNetns  = labtest.DialInNetns
	NewBlackhole = labtest.NewBlackhole
)

// TestLabtestAddresses: labtest cannot import lab (import cycle through
// these tests), so it repeats the two addresses it writes into frames.
func TestLabtestAddresses(t *testing.T) {
	if labtest.HostIP != HostIP || labtest.PeerIP != PeerIP {
		t.Fatalf("labtest addresses %s/%s differ from lab's %s/%s", labtest.HostIP, labtest.PeerIP, HostIP, PeerIP)
	}
}
