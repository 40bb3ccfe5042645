package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bond-appliance/bond-appliance/appliance"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
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

func TestHandler(t *testing.T) {
	h, err := Handler(NewCollector(func() (*appliance.Status, error) { return testStatus(), nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, text := get(t, srv.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, s := range []string{
		`bond_appliance_info{version="1.2.3"} 1`,
		`bond_appliance_bond_active_slave_info{bond="bond1",slave="eth3"} 1`,
		"go_goroutines ",
		"promhttp_metric_handler_requests_total",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
	if code, text := get(t, srv.URL+"/"); code != http.StatusOK || !strings.Contains(text, `href="metrics"`) {
		t.Errorf("/: %d %s", code, text)
	}
	if code, _ := get(t, srv.URL+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d", code)
	}
}

func TestHandlerDuplicate(t *testing.T) {
	// A collector exporting go_* metrics clashes with the Go collector.
	if _, err := Handler(dupCollector{}, nil); err == nil {
		t.Error("no error for a collector clashing with the Go collector")
	}
}

type dupCollector struct{}

func (dupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc("go_goroutines", "Number of goroutines that currently exist.", nil, nil)
}
func (dupCollector) Collect(chan<- prometheus.Metric) {}

// addrHandler records the addr attribute Serve logs once it listens.
type addrHandler struct {
	slog.Handler
	addr chan string
}

func (addrHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h addrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "addr" {
			select {
			case h.addr <- a.Value.String():
			default:
			}
		}
		return true
	})
	return nil
}

func TestServe(t *testing.T) {
	addr := make(chan string, 1)
	log := slog.New(addrHandler{Handler: slog.DiscardHandler, addr: addr})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveErr = Serve(ctx, "127.0.0.1:0", NewCollector(func() (*appliance.Status, error) { return testStatus(), nil }), log)
	}()
	var a string
	select {
	case a = <-addr:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not listen")
	}
	code, text := get(t, "http://"+a+"/metrics")
	if code != http.StatusOK || !strings.Contains(text, "bond_appliance_uptime_seconds 42.5") {
		t.Fatalf("/metrics: %d %s", code, text)
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ShutdownTimeout + 5*time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if serveErr != nil {
		t.Errorf("Serve: %v", serveErr)
	}
	if _, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		t.Error("still listening after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := NewCollector(func() (*appliance.Status, error) { return testStatus(), nil })
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), ln.Addr().String(), c, nil) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("no error for an address in use")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not fail on an address in use")
	}
	if err := Serve(context.Background(), "not an address", c, nil); err == nil {
		t.Error("no error for a bad address")
	}
}
