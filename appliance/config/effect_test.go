package config

import (
	"slices"
	"testing"
)

// Every option says where it takes effect: the control loop dispatches
// set and reload by it.
func TestEveryOptionHasEffects(t *testing.T) {
	for _, o := range Options() {
		if o.Effect == 0 {
			t.Errorf("%s: no effect", o.Key())
			continue
		}
		if o.Effect >= effectEnd {
			t.Errorf("%s: unknown effect bits in %v", o.Key(), o.Effect)
		}
		startOnly := !o.RuntimeChangeable()
		// FlagNoSlaves: bonding allows the change only on a bond
		// without slaves, and every bond here has at least one, so the
		// bond must be re-created.
		noSlaves := o.Flags&FlagNoSlaves != 0
		switch {
		case startOnly || noSlaves:
			if o.Effect != EffectRestart {
				t.Errorf("%s: start-only (or no-slaves) option has effects %v, want restart only", o.Key(), o.Effect)
			}
		case o.Effect&^EffectRestart == 0 || o.Effect.Has(EffectRestart):
			t.Errorf("%s: runtime-changeable option has effects %v, want at least one other than restart and not restart", o.Key(), o.Effect)
		}
		if o.Section == SectionSlave && !startOnly && o.Effect != EffectPort {
			t.Errorf("%s: per-slave option has effects %v, want port", o.Key(), o.Effect)
		}
	}
}

func TestOptionEffects(t *testing.T) {
	tests := []struct {
		key     string
		want    []Effect
		runtime bool
	}{
		{"xmit_hash_policy", []Effect{EffectSnapshot}, true},
		{"packets_per_slave", []Effect{EffectSnapshot}, true},
		{"all_slaves_active", []Effect{EffectSnapshot, EffectALB}, true},
		{"primary", []Effect{EffectSnapshot, EffectMonitor}, true},
		{"active_slave", []Effect{EffectSnapshot}, true},
		{"miimon", []Effect{EffectMII, EffectMonitor}, true},
		{"updelay", []Effect{EffectMII}, true},
		{"downdelay", []Effect{EffectMII}, true},
		{"use_carrier", []Effect{EffectMII}, true},
		{"lacp_rate", []Effect{EffectLACP}, true},
		{"ad_select", []Effect{EffectLACP}, true},
		{"ad_actor_sys_prio", []Effect{EffectLACP}, true},
		{"ad_actor_system", []Effect{EffectLACP}, true},
		{"ad_user_port_key", []Effect{EffectLACP}, true},
		{"lacp_active", []Effect{EffectLACP}, true},
		{"min_links", []Effect{EffectLACP}, true},
		{"coupled_control", []Effect{EffectLACP}, true},
		{"arp_interval", []Effect{EffectMonitor}, true},
		{"arp_ip_target", []Effect{EffectMonitor}, true},
		{"ns_ip6_target", []Effect{EffectMonitor}, true},
		{"num_grat_arp", []Effect{EffectMonitor}, true},
		{"num_unsol_na", []Effect{EffectMonitor}, true},
		{"peer_notif_delay", []Effect{EffectMonitor}, true},
		{"resend_igmp", []Effect{EffectMonitor}, true},
		{"tlb_dynamic_lb", []Effect{EffectALB}, true},
		{"lp_interval", []Effect{EffectALB}, true},
		{"bonds[].slaves[].prio", []Effect{EffectPort}, true},
		{"bonds[].slaves[].actor_port_prio", []Effect{EffectPort}, true},
		{"mode", []Effect{EffectRestart}, true}, // needs the bond without slaves
		{"fail_over_mac", []Effect{EffectRestart}, true},
		{"slaves", []Effect{EffectRestart}, false},
		{"mtu", []Effect{EffectRestart}, false},
		{"dataplane.poll", []Effect{EffectRestart}, false},
		{"control.socket", []Effect{EffectRestart}, false},
		{"metrics.listen", []Effect{EffectRestart}, false},
		{"log.level", []Effect{EffectRestart}, false},
	}
	for _, tc := range tests {
		o, ok := LookupOption(tc.key)
		if !ok {
			t.Errorf("no option %s", tc.key)
			continue
		}
		if got := o.Effects(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Effects() = %v, want %v", tc.key, got, tc.want)
		}
		if o.RuntimeChangeable() != tc.runtime {
			t.Errorf("%s: RuntimeChangeable() = %v, want %v", tc.key, o.RuntimeChangeable(), tc.runtime)
		}
	}
}

func TestEffectString(t *testing.T) {
	tests := []struct {
		e    Effect
		want string
		list int
	}{
		{0, "none", 0},
		{EffectSnapshot, "snapshot", 1},
		{EffectSnapshot | EffectMonitor, "snapshot+monitor", 2},
		{EffectRestart, "restart", 1},
		{EffectMII | EffectLACP | EffectALB | EffectPort, "mii+lacp+alb+port", 4},
		{1 << 7, "effect(128)", 0},
	}
	for _, tc := range tests {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("Effect(%d).String() = %q, want %q", tc.e, got, tc.want)
		}
		if got := len(tc.e.List()); got != tc.list {
			t.Errorf("Effect(%d).List() has %d effects, want %d", tc.e, got, tc.list)
		}
	}
	if !(EffectSnapshot | EffectMonitor).Has(EffectMonitor) || EffectSnapshot.Has(EffectMonitor) || EffectSnapshot.Has(0) {
		t.Error("Effect.Has is wrong")
	}
}
