package appliance

import (
	"errors"
	"strings"
	"testing"

	"github.com/bond-appliance/bond-appliance/appliance/config"
)

// TestCheckJumbo: a jumbo bond on a kernel without multi-buffer AF_XDP
// sockets or xdp.frags programs is refused naming the bond, its MTU and
// the missing capability; single-buffer bonds never ask the kernel.
func TestCheckJumbo(t *testing.T) {
	noSG := errors.New("no XDP_USE_SG here")
	noFrags := errors.New("no xdp.frags here")
	tests := []struct {
		name       string
		mtus       []int
		sg, frags  error
		wantJumbo  bool
		wantErrors []string
	}{
		{"single-buffer", []int{1500, 1774}, noSG, noFrags, false, nil},
		{"jumbo supported", []int{1500, 9000}, nil, nil, true, nil},
		{"jumbo without SG", []int{9000}, noSG, nil, true, []string{"bond b0 (mtu 9000): an MTU above 1774 (dataplane.frame_size 2048 - 274) needs multi-buffer AF_XDP: no XDP_USE_SG here"}},
		{"jumbo without frags", []int{1775, 9000}, nil, noFrags, true, []string{"bond b0 (mtu 1775), b1 (mtu 9000): an MTU above 1774 (dataplane.frame_size 2048 - 274) needs multi-buffer AF_XDP: no xdp.frags here"}},
	}
	defer func(s, f func() error) { probeSG, probeFrags = s, f }(probeSG, probeFrags)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			probeSG = func() error { return tc.sg }
			probeFrags = func() error { return tc.frags }
			cfg := &config.Config{Dataplane: config.Dataplane{FrameSize: 2048}}
			for i, m := range tc.mtus {
				cfg.Bonds = append(cfg.Bonds, config.Bond{Name: "b" + string(rune('0'+i)), MTU: m})
			}
			if got := jumbo(cfg); got != tc.wantJumbo {
				t.Fatalf("jumbo = %v", got)
			}
			var err error
			if tc.wantJumbo {
				err = checkJumbo(cfg)
			}
			if len(tc.wantErrors) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, w := range tc.wantErrors {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("error %v, want %q", err, w)
				}
			}
		})
	}
}

// TestCheckNativeVeth: xdp_attach native with a single-buffer MTU above
// veth's native limit is refused naming the host veth; auto is not.
func TestCheckNativeVeth(t *testing.T) {
	b := config.Bond{Name: "bond9", MTU: 3600}
	if err := checkNativeVeth(config.Dataplane{XDPAttach: "auto", HostDevice: "veth", FrameSize: 4096}, b); err != nil {
		t.Fatal(err)
	}
	if err := checkNativeVeth(config.Dataplane{XDPAttach: "native", HostDevice: "veth", FrameSize: 4096}, config.Bond{Name: "bond9", MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	err := checkNativeVeth(config.Dataplane{XDPAttach: "native", HostDevice: "veth", FrameSize: 4096}, b)
	if err == nil || !strings.Contains(err.Error(), "bond bond9: mtu 3600 is above veth's native XDP limit 3506 for a single-buffer program (bond9-dp)") {
		t.Fatalf("got %v", err)
	}
}
