package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bond-appliance/bond-appliance/appliance"
)

// testStatus is a hand-built status: an 802.3ad bond with ARP monitoring
// (two slaves, one collecting and distributing), an active-backup bond with
// its active slave, and two lanes.
func testStatus() *appliance.Status {
	return &appliance.Status{
		Version: "1.2.3",
		Uptime:  42.5,
		Bonds: []appliance.BondStatus{
			{
				Name: "bond0", Mode: "802.3ad", MIIStatus: "up", CurrentlyActiveSlave: "None",
				Host: appliance.Counters{RxPackets: 100, RxBytes: 6400, TxPackets: 200, TxBytes: 12800, DropNoSlave: 3,
					XSKRxDropped: 1, XSKRxRingFull: 2, XSKFillRingEmpty: 4, XSKRxInvalidDescs: 5, XSKTxInvalidDescs: 6, XSKTxRingEmptyDesc: 7},
				AD: &appliance.ADInfo{
					ActiveAggregator: &appliance.AggregatorInfo{ID: 1, Active: true, NumberOfPorts: 1},
					TickJitterMeanMs: 0.25, TickJitterMaxMs: 3, PDUTxQueueDrops: 9,
				},
				Monitor: &appliance.MonitorInfo{ProbesSent: 11, NotificationsSent: 12, TxQueueDrops: 13},
				Slaves: []appliance.SlaveStatus{
					{
						Name: "eth0", MIIStatus: "up", Speed: 10000, LinkFailureCount: 2, ArpMonitor: "up",
						Counters: appliance.Counters{RxPackets: 150, RxBytes: 9600, TxPackets: 90, TxBytes: 5760,
							DropTxFull: 1, DropInactive: 2, DropNoFrame: 3, CtrlRx: 20, CtrlDrop: 4, CtrlTx: 21},
						AD: &appliance.SlaveAD{
							AggregatorID: 1, Collecting: true, Distributing: true,
							ActorChurnState: "none", PartnerChurnState: "churned", ActorChurnedCount: 1, PartnerChurnedCount: 2,
							Actor:   appliance.LACPInfo{PortState: 0x3d, Key: 15},
							Partner: appliance.LACPInfo{PortState: 0x3f, Key: 33},
							Counters: appliance.ADCounters{LACPDUsRx: 30, LACPDUsTx: 31, MarkersRx: 1, MarkersTx: 2,
								MarkerResponsesRx: 3, MarkerResponsesTx: 4, BadPDUs: 5, UnknownRx: 6, LoopbackRx: 7, StateTransitions: 8},
						},
					},
					{
						Name: "eth1", MIIStatus: "going back", ArpMonitor: "down",
						AD: &appliance.SlaveAD{AggregatorID: 2, ActorChurnState: "churned", PartnerChurnState: "monitoring",
							Actor: appliance.LACPInfo{PortState: 0x45}, Partner: appliance.LACPInfo{PortState: 0x02}},
					},
				},
			},
			{
				Name: "bond1", Mode: "active-backup", MIIStatus: "down", CurrentlyActiveSlave: "eth3",
				Slaves: []appliance.SlaveStatus{
					{Name: "eth2", MIIStatus: "down", LinkFailureCount: 5},
					{Name: "eth3", MIIStatus: "up", Speed: 1000},
				},
			},
		},
		Lanes: []appliance.LaneStatus{
			{ID: 0, CPU: 2, Iterations: 1000, Busy: 250, BusyNanos: 2500000000, BusyRatio: 0.25, Sleeps: 0,
				UMEM: appliance.LaneUMEM{Frames: 4096, Free: 1000, Fill: 2048, RX: 10, InFlight: 30, TX: 7, Completion: 1, LostToReclaim: 1000},
				Ports: []appliance.PortStatus{
					{Name: "bond0", Counters: appliance.Counters{RxPackets: 60, TxPackets: 70, DropBadVnet: 5}},
					{Name: "eth0", Counters: appliance.Counters{RxPackets: 80, RxBytes: 5120, XSKFillRingEmpty: 3}},
				}},
			{ID: 1, CPU: 3, Ports: []appliance.PortStatus{
				{Name: "eth0", Counters: appliance.Counters{RxPackets: 70}},
				// a duplicate name is summed, not exported twice
				{Name: "dup", Counters: appliance.Counters{TxBytes: 1}},
				{Name: "dup", Counters: appliance.Counters{TxBytes: 2, DropTxFull: 1}},
			}},
		},
	}
}

func newRegistry(t *testing.T, src func() (*appliance.Status, error)) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(src)); err != nil {
		t.Fatal(err)
	}
	return reg
}

func scrape(t *testing.T, reg *prometheus.Registry) (int, string) {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// samples parses exposition text into "name{labels}" -> value, with the
// labels sorted, as text.
func samples(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad line %q", line)
		}
		out[line[:i]] = line[i+1:]
	}
	return out
}

func TestScrape(t *testing.T) {
	reg := newRegistry(t, func() (*appliance.Status, error) { return testStatus(), nil })
	code, text := scrape(t, reg)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, text)
	}
	got := samples(t, text)
	want := map[string]string{
		`bond_appliance_info{version="1.2.3"}`: "1",
		`bond_appliance_uptime_seconds`:        "42.5",

		`bond_appliance_bond_info{bond="bond0",mode="802.3ad"}`:                     "1",
		`bond_appliance_bond_up{bond="bond0"}`:                                      "1",
		`bond_appliance_bond_up{bond="bond1"}`:                                      "0",
		`bond_appliance_bond_active_slave_info{bond="bond1",slave="eth3"}`:          "1",
		`bond_appliance_host_receive_packets_total{bond="bond0"}`:                   "100",
		`bond_appliance_host_receive_bytes_total{bond="bond0"}`:                     "6400",
		`bond_appliance_host_transmit_packets_total{bond="bond0"}`:                  "200",
		`bond_appliance_host_transmit_bytes_total{bond="bond0"}`:                    "12800",
		`bond_appliance_host_dropped_packets_total{bond="bond0",reason="no_slave"}`: "3",
		`bond_appliance_host_dropped_packets_total{bond="bond0",reason="tx_full"}`:  "0",
		`bond_appliance_host_xsk_rx_dropped_packets_total{bond="bond0"}`:            "1",
		`bond_appliance_host_xsk_rx_ring_full_total{bond="bond0"}`:                  "2",
		`bond_appliance_host_xsk_fill_ring_empty_total{bond="bond0"}`:               "4",
		`bond_appliance_host_xsk_rx_invalid_descriptors_total{bond="bond0"}`:        "5",
		`bond_appliance_host_xsk_tx_invalid_descriptors_total{bond="bond0"}`:        "6",
		`bond_appliance_host_xsk_tx_ring_empty_descriptors_total{bond="bond0"}`:     "7",

		`bond_appliance_slave_mii_up{bond="bond0",slave="eth0"}`:                                                  "1",
		`bond_appliance_slave_mii_up{bond="bond0",slave="eth1"}`:                                                  "0",
		`bond_appliance_slave_mii_up{bond="bond1",slave="eth2"}`:                                                  "0",
		`bond_appliance_slave_arp_monitor_up{bond="bond0",slave="eth0"}`:                                          "1",
		`bond_appliance_slave_arp_monitor_up{bond="bond0",slave="eth1"}`:                                          "0",
		`bond_appliance_slave_link_failures_total{bond="bond0",slave="eth0"}`:                                     "2",
		`bond_appliance_slave_link_failures_total{bond="bond1",slave="eth2"}`:                                     "5",
		`bond_appliance_slave_speed_bytes{bond="bond0",slave="eth0"}`:                                             "1.25e+09",
		`bond_appliance_slave_speed_bytes{bond="bond1",slave="eth3"}`:                                             "1.25e+08",
		`bond_appliance_slave_receive_packets_total{bond="bond0",slave="eth0"}`:                                   "150",
		`bond_appliance_slave_receive_bytes_total{bond="bond0",slave="eth0"}`:                                     "9600",
		`bond_appliance_slave_transmit_packets_total{bond="bond0",slave="eth0"}`:                                  "90",
		`bond_appliance_slave_transmit_bytes_total{bond="bond0",slave="eth0"}`:                                    "5760",
		`bond_appliance_slave_dropped_packets_total{bond="bond0",reason="tx_full",slave="eth0"}`:                  "1",
		`bond_appliance_slave_dropped_packets_total{bond="bond0",reason="no_slave",slave="eth0"}`:                 "0",
		`bond_appliance_slave_dropped_packets_total{bond="bond0",reason="inactive_slave",slave="eth0"}`:           "2",
		`bond_appliance_slave_dropped_packets_total{bond="bond0",reason="no_frame",slave="eth0"}`:                 "3",
		`bond_appliance_slave_dropped_packets_total{bond="bond0",reason="slow_protocol_queue_full",slave="eth0"}`: "4",
		`bond_appliance_slave_control_receive_packets_total{bond="bond0",slave="eth0"}`:                           "20",
		`bond_appliance_slave_control_transmit_packets_total{bond="bond0",slave="eth0"}`:                          "21",

		`bond_appliance_lacp_active_aggregator_id{bond="bond0"}`:           "1",
		`bond_appliance_lacp_active_aggregator_ports{bond="bond0"}`:        "1",
		`bond_appliance_lacp_tick_jitter_mean_seconds{bond="bond0"}`:       "0.00025",
		`bond_appliance_lacp_tick_jitter_max_seconds{bond="bond0"}`:        "0.003",
		`bond_appliance_lacp_tx_queue_dropped_packets_total{bond="bond0"}`: "9",

		`bond_appliance_lacp_port_actor_state{bond="bond0",slave="eth0"}`:                        "61",
		`bond_appliance_lacp_port_partner_state{bond="bond0",slave="eth0"}`:                      "63",
		`bond_appliance_lacp_port_actor_state{bond="bond0",slave="eth1"}`:                        "69",
		`bond_appliance_lacp_port_actor_key{bond="bond0",slave="eth0"}`:                          "15",
		`bond_appliance_lacp_port_partner_key{bond="bond0",slave="eth0"}`:                        "33",
		`bond_appliance_lacp_port_collecting{bond="bond0",slave="eth0"}`:                         "1",
		`bond_appliance_lacp_port_distributing{bond="bond0",slave="eth0"}`:                       "1",
		`bond_appliance_lacp_port_collecting{bond="bond0",slave="eth1"}`:                         "0",
		`bond_appliance_lacp_port_distributing{bond="bond0",slave="eth1"}`:                       "0",
		`bond_appliance_lacp_port_aggregator_id{bond="bond0",slave="eth0"}`:                      "1",
		`bond_appliance_lacp_port_aggregator_id{bond="bond0",slave="eth1"}`:                      "2",
		`bond_appliance_lacp_port_actor_churned{bond="bond0",slave="eth0"}`:                      "0",
		`bond_appliance_lacp_port_partner_churned{bond="bond0",slave="eth0"}`:                    "1",
		`bond_appliance_lacp_port_actor_churned{bond="bond0",slave="eth1"}`:                      "1",
		`bond_appliance_lacp_port_actor_churns_total{bond="bond0",slave="eth0"}`:                 "1",
		`bond_appliance_lacp_port_partner_churns_total{bond="bond0",slave="eth0"}`:               "2",
		`bond_appliance_lacp_port_lacpdus_received_total{bond="bond0",slave="eth0"}`:             "30",
		`bond_appliance_lacp_port_lacpdus_transmitted_total{bond="bond0",slave="eth0"}`:          "31",
		`bond_appliance_lacp_port_markers_received_total{bond="bond0",slave="eth0"}`:             "1",
		`bond_appliance_lacp_port_markers_transmitted_total{bond="bond0",slave="eth0"}`:          "2",
		`bond_appliance_lacp_port_marker_responses_received_total{bond="bond0",slave="eth0"}`:    "3",
		`bond_appliance_lacp_port_marker_responses_transmitted_total{bond="bond0",slave="eth0"}`: "4",
		`bond_appliance_lacp_port_bad_pdus_received_total{bond="bond0",slave="eth0"}`:            "5",
		`bond_appliance_lacp_port_unknown_pdus_received_total{bond="bond0",slave="eth0"}`:        "6",
		`bond_appliance_lacp_port_loopback_pdus_received_total{bond="bond0",slave="eth0"}`:       "7",
		`bond_appliance_lacp_port_state_transitions_total{bond="bond0",slave="eth0"}`:            "8",

		`bond_appliance_monitor_probes_sent_total{bond="bond0"}`:              "11",
		`bond_appliance_monitor_notifications_sent_total{bond="bond0"}`:       "12",
		`bond_appliance_monitor_tx_queue_dropped_packets_total{bond="bond0"}`: "13",

		`bond_appliance_lane_info{cpu="2",lane="0",queue="0"}`: "1",
		`bond_appliance_lane_info{cpu="3",lane="1",queue="1"}`: "1",
		`bond_appliance_lane_iterations_total{lane="0"}`:       "1000",
		`bond_appliance_lane_busy_iterations_total{lane="0"}`:  "250",
		`bond_appliance_lane_sleeps_total{lane="0"}`:           "0",
		`bond_appliance_lane_busy_ratio{lane="0"}`:             "0.25",
		`bond_appliance_lane_busy_ratio{lane="1"}`:             "0",

		`bond_appliance_lane_umem_frames{lane="0"}`:                                                    "4096",
		`bond_appliance_lane_umem_place_frames{lane="0",place="free"}`:                                 "1000",
		`bond_appliance_lane_umem_place_frames{lane="0",place="fill"}`:                                 "2048",
		`bond_appliance_lane_umem_place_frames{lane="0",place="rx"}`:                                   "10",
		`bond_appliance_lane_umem_place_frames{lane="0",place="in_flight"}`:                            "30",
		`bond_appliance_lane_umem_place_frames{lane="0",place="tx"}`:                                   "7",
		`bond_appliance_lane_umem_place_frames{lane="0",place="completion"}`:                           "1",
		`bond_appliance_lane_umem_lost_to_reclaim_frames_total{lane="0"}`:                              "1000",
		`bond_appliance_lane_umem_place_frames{lane="1",place="in_flight"}`:                            "0",
		`bond_appliance_port_dropped_packets_total{lane="0",port="bond0",queue="0",reason="too_long"}`: "0",
		`bond_appliance_port_dropped_packets_total{lane="0",port="bond0",queue="0",reason="bad_vnet"}`: "5",

		`bond_appliance_port_receive_packets_total{lane="0",port="bond0",queue="0"}`:                                 "60",
		`bond_appliance_port_transmit_packets_total{lane="0",port="bond0",queue="0"}`:                                "70",
		`bond_appliance_port_receive_packets_total{lane="0",port="eth0",queue="0"}`:                                  "80",
		`bond_appliance_port_receive_bytes_total{lane="0",port="eth0",queue="0"}`:                                    "5120",
		`bond_appliance_port_xsk_fill_ring_empty_total{lane="0",port="eth0",queue="0"}`:                              "3",
		`bond_appliance_port_receive_packets_total{lane="1",port="eth0",queue="1"}`:                                  "70",
		`bond_appliance_port_transmit_bytes_total{lane="1",port="dup",queue="1"}`:                                    "3",
		`bond_appliance_port_dropped_packets_total{lane="1",port="dup",queue="1",reason="tx_full"}`:                  "1",
		`bond_appliance_port_dropped_packets_total{lane="1",port="dup",queue="1",reason="slow_protocol_queue_full"}`: "0",
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %s", k)
		} else if g != v {
			t.Errorf("%s = %s, want %s", k, g, v)
		}
	}
	// Series that must be absent: no active slave on bond0 (802.3ad, "None"),
	// no ARP verdict, 802.3ad or monitor metrics on bond1, no speed when
	// unknown.
	for _, re := range []string{
		`^bond_appliance_bond_active_slave_info\{bond="bond0"`,
		`^bond_appliance_slave_arp_monitor_up\{bond="bond1"`,
		`^bond_appliance_lacp_.*\{bond="bond1"`,
		`^bond_appliance_monitor_.*\{bond="bond1"`,
		`^bond_appliance_slave_speed_bytes\{bond="bond0",slave="eth1"`,
	} {
		r := regexp.MustCompile(re)
		for k := range got {
			if r.MatchString(k) {
				t.Errorf("unexpected %s", k)
			}
		}
	}
	// Every series is labelled only with the documented label names.
	allowed := map[string]bool{"bond": true, "slave": true, "lane": true, "queue": true, "port": true,
		"reason": true, "version": true, "mode": true, "cpu": true, "place": true}
	lab := regexp.MustCompile(`([a-z_]+)="`)
	for k := range got {
		for _, m := range lab.FindAllStringSubmatch(k, -1) {
			if !allowed[m[1]] {
				t.Errorf("%s: unexpected label %s", k, m[1])
			}
		}
	}
}

func TestTypesAndHelp(t *testing.T) {
	reg := newRegistry(t, func() (*appliance.Status, error) { return testStatus(), nil })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "bond_appliance_") {
			t.Errorf("%s: not in the bond_appliance namespace", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s: no help", name)
		}
		isCounter := mf.GetType().String() == "COUNTER"
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %s", name, mf.GetType())
		}
	}
}

func TestTestutil(t *testing.T) {
	c := NewCollector(func() (*appliance.Status, error) { return testStatus(), nil })
	const want = `
# HELP bond_appliance_bond_up Whether the bond has carrier (1) or not (0).
# TYPE bond_appliance_bond_up gauge
bond_appliance_bond_up{bond="bond0"} 1
bond_appliance_bond_up{bond="bond1"} 0
# HELP bond_appliance_bond_active_slave_info The bond's currently active slave; the value is always 1 and the series is absent when there is none.
# TYPE bond_appliance_bond_active_slave_info gauge
bond_appliance_bond_active_slave_info{bond="bond1",slave="eth3"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"bond_appliance_bond_up", "bond_appliance_bond_active_slave_info"); err != nil {
		t.Error(err)
	}
	// 10 drop reasons for the host side of 2 bonds, 4 slaves and 4 distinct
	// lane ports.
	if n := testutil.CollectAndCount(c, "bond_appliance_host_dropped_packets_total"); n != 20 {
		t.Errorf("host drops: %d series", n)
	}
	if n := testutil.CollectAndCount(c, "bond_appliance_slave_dropped_packets_total"); n != 40 {
		t.Errorf("slave drops: %d series", n)
	}
	if n := testutil.CollectAndCount(c, "bond_appliance_port_dropped_packets_total"); n != 40 {
		t.Errorf("port drops: %d series", n)
	}
}

func TestLint(t *testing.T) {
	c := NewCollector(func() (*appliance.Status, error) { return testStatus(), nil })
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestDescribe checks that every collected metric was described, which a
// pedantic registry verifies, and that every described metric shows up
// for the test status (so that Describe lists no stale name).
func TestDescribe(t *testing.T) {
	c := NewCollector(func() (*appliance.Status, error) { return testStatus(), nil })
	ch := make(chan *prometheus.Desc, 1000)
	c.Describe(ch)
	close(ch)
	described := map[string]bool{}
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := name.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot parse %s", d)
		}
		described[m[1]] = true
	}
	reg := newRegistry(t, func() (*appliance.Status, error) { return testStatus(), nil })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	collected := map[string]bool{}
	for _, mf := range mfs {
		collected[mf.GetName()] = true
	}
	var missing []string
	for n := range described {
		if !collected[n] && n != "bond_appliance_status_error" {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("described but not collected: %v", missing)
	}
}

func TestStatusError(t *testing.T) {
	reg := newRegistry(t, func() (*appliance.Status, error) { return nil, errors.New("boom") })
	code, text := scrape(t, reg)
	if code != http.StatusInternalServerError || !strings.Contains(text, "boom") {
		t.Errorf("status %d: %s", code, text)
	}
	reg = newRegistry(t, func() (*appliance.Status, error) { return nil, nil })
	if code, text := scrape(t, reg); code != http.StatusInternalServerError {
		t.Errorf("nil status: %d: %s", code, text)
	}
}

func TestBadLabelValue(t *testing.T) {
	st := testStatus()
	st.Bonds[1].Slaves[0].Name = "eth\xff"
	reg := newRegistry(t, func() (*appliance.Status, error) { return st, nil })
	if code, text := scrape(t, reg); code != http.StatusInternalServerError {
		t.Errorf("invalid UTF-8 label: %d: %s", code, text)
	}
}

func TestEmptyStatus(t *testing.T) {
	reg := newRegistry(t, func() (*appliance.Status, error) { return &appliance.Status{Version: "dev"}, nil })
	code, text := scrape(t, reg)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, text)
	}
	got := samples(t, text)
	if len(got) != 2 || got[`bond_appliance_info{version="dev"}`] != "1" || got["bond_appliance_uptime_seconds"] != "0" {
		t.Errorf("got %v", got)
	}
}

// TestReadsEachScrape checks that the status is read once per scrape and
// never in between.
func TestReadsEachScrape(t *testing.T) {
	var calls atomic.Int64
	reg := newRegistry(t, func() (*appliance.Status, error) {
		n := calls.Add(1)
		st := testStatus()
		st.Lanes[0].Iterations = uint64(1000 * n)
		return st, nil
	})
	if calls.Load() != 0 {
		t.Fatalf("status read at registration: %d", calls.Load())
	}
	for i := 1; i <= 3; i++ {
		_, text := scrape(t, reg)
		if n := calls.Load(); n != int64(i) {
			t.Fatalf("scrape %d: %d status reads", i, n)
		}
		want := map[int]string{1: "1000", 2: "2000", 3: "3000"}[i]
		if got := samples(t, text)[`bond_appliance_lane_iterations_total{lane="0"}`]; got != want {
			t.Errorf("scrape %d: iterations %s, want %s", i, got, want)
		}
	}
}
