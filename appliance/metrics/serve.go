package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ShutdownTimeout bounds how long Serve waits for scrapes in progress when
// its context ends.
const ShutdownTimeout = 5 * time.Second

// Handler returns the HTTP handler of Serve: /metrics exposes c together
// with the Go runtime (go_*), process (process_*) and handler
// (promhttp_metric_handler_*) metrics from a registry of its own; / is a
// short page linking to /metrics. log may be nil.
func Handler(c prometheus.Collector, log *slog.Logger) (http.Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	h := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.HTTPErrorOnError,
		Registry:            reg,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>bond-appliance</title></head><body><h1>bond-appliance</h1><p><a href="metrics">Metrics</a></p></body></html>`+"\n")
	})
	return mux, nil
}

// promLogger sends promhttp's errors (a failed status read, a failed
// write to the client) to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: scrape", "err", fmt.Sprint(v...)) }

// Serve listens on listen (host:port) and serves Handler(c, log) until ctx
// ends, then shuts the server down, letting scrapes in progress finish for
// up to ShutdownTimeout. It returns nil after a shutdown caused by ctx and
// an error when it cannot listen or the server fails. log may be nil.
func Serve(ctx context.Context, listen string, c prometheus.Collector, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := Handler(c, log)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("metrics: listening", "addr", ln.Addr().String(), "path", "/metrics")
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("metrics: shutdown: %w", err), srv.Close())
	}
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("metrics: %w", serr))
	}
	log.Info("metrics: stopped")
	return err
}
