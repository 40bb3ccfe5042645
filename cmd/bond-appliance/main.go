// Command bond-appliance runs the user-space AF_XDP bonding appliance and
// talks to a running one.
//
//	bond-appliance -c configs/bond.yaml [--check] [--set SECTION.KEY=VALUE]...
//	                                                 run (or only validate) a configuration
//
// The dataplane, control, log and metrics keys are layered: defaults <
// file < environment BOND_APPLIANCE_<SECTION>_<KEY> < --set (see
// config.LoadWith).
//
//	bond-appliance status [BOND] [--json]            live state, /proc/net/bonding layout
//	bond-appliance set BOND OPTION VALUE             change a runtime option (active_slave)
//	bond-appliance cleanup [-c FILE]                 restore what a crashed appliance left changed
//	bond-appliance lab [--mode MODE] [--seconds N]   self-contained demo in network namespaces
//	bond-appliance import ...                        kernel bonding configuration to YAML
//	bond-appliance version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/lab"
	"github.com/bond-appliance/bond-appliance/appliance/metrics"
	"github.com/bond-appliance/bond-appliance/appliance/sdnotify"
)

const defaultSocket = "/run/bond-appliance/control.sock"

// environ is the environment the configuration layers read (a variable
// for the tests).
var environ = os.Environ

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  bond-appliance -c FILE [--check] [--set SECTION.KEY=VALUE]...
                                            run the appliance (foreground), or only validate FILE;
                                            dataplane/control/log/metrics keys: defaults < FILE <
                                            BOND_APPLIANCE_<SECTION>_<KEY> < --set (bonds: FILE only)
  bond-appliance status [BOND] [--json] [--socket PATH | -c FILE]
  bond-appliance status ... --watch [--interval 1s]   refresh in place
  bond-appliance set BOND OPTION VALUE [--socket PATH | -c FILE]
  bond-appliance slave BOND add|del IFACE [--socket PATH | -c FILE]   hot-add or remove a member
  bond-appliance bond add|del BOND [--file FILE] [--socket PATH | -c FILE]
                                                       bring up BOND as FILE defines it, or take it down
  bond-appliance reload [--socket PATH | -c FILE]      re-read the configuration, apply the difference
  bond-appliance events [--json] [--socket PATH | -c FILE]
  bond-appliance cleanup [-c FILE]                     after a crash: restore the devices as the state file
                                                       (control.state_dir) recorded them, remove the file
  bond-appliance lab [--mode MODE] [--seconds N] [--host-device veth|tap]
  bond-appliance import [--modprobe FILE|DIR] [--interfaces FILE] [--ifcfg DIR|FILE] [--kernel BOND] [-o FILE [--force]]
  bond-appliance version
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return cmdStatus(args[1:], stdout, stderr)
		case "set":
			return cmdSet(args[1:], stdout, stderr)
		case "lab":
			return cmdLab(args[1:], stdout, stderr)
		case "import":
			return cmdImport(args[1:], stdout, stderr)
		case "reload":
			return cmdReload(args[1:], stdout, stderr)
		case "slave":
			return cmdSlave(args[1:], stdout, stderr)
		case "bond":
			return cmdBond(args[1:], stdout, stderr)
		case "events":
			return cmdEvents(args[1:], stdout, stderr)
		case "cleanup":
			return cmdCleanup(args[1:], stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, "bond-appliance", appliance.Version)
			return 0
		case "help", "-h", "--help":
			usage(stdout)
			return 0
		}
	}
	fs := flag.NewFlagSet("bond-appliance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file (YAML)")
	check := fs.Bool("check", false, "validate the configuration and exit without touching any interface")
	var overrides []string
	fs.Func(strings.TrimPrefix(config.OverrideFlag, "--"),
		"override a dataplane, control, log or metrics key: SECTION.KEY=VALUE (repeatable; beats the file and BOND_APPLIANCE_<SECTION>_<KEY>)",
		func(s string) error { overrides = append(overrides, s); return nil })
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		usage(stderr)
		return 2
	}
	cfg, warnings, err := config.LoadWith(*cfgPath, environ(), overrides)
	if err != nil {
		fmt.Fprintf(stderr, "bond-appliance: %s: %v\n", *cfgPath, err)
		return 1
	}
	log := newLogger(cfg, stderr)
	for _, w := range warnings {
		log.Warn(w)
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration OK (%d bond(s))\n", *cfgPath, len(cfg.Bonds))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := appliance.Start(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "bond-appliance: %v\n", err)
		return 1
	}
	a.SetConfigSource(*cfgPath, environ(), overrides)
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	metricsDone := make(chan struct{})
	if cfg.Metrics.Listen != "" {
		go func() {
			defer close(metricsDone)
			c := metrics.NewCollector(func() (*appliance.Status, error) { return a.Status("") })
			if err := metrics.Serve(metricsCtx, cfg.Metrics.Listen, c, log); err != nil {
				log.Error("metrics exporter stopped", "err", err)
			}
		}()
	} else {
		close(metricsDone)
	}
	if err := sdnotify.Ready(); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	_ = sdnotify.Status(fmt.Sprintf("%d bond(s) up", len(cfg.Bonds)))
loop:
	for {
		select {
		case <-hup:
			_ = sdnotify.Reloading()
			if changes, err := a.Reload(""); err != nil {
				log.Error("reload failed; the running configuration is unchanged", "err", err)
			} else {
				log.Info("reload applied", "changes", len(changes), "detail", changes)
			}
			_ = sdnotify.Ready()
		case <-ctx.Done():
			break loop
		}
	}
	_ = sdnotify.Stopping()
	log.Info("shutting down", "reason", context.Cause(ctx))
	stopMetrics()
	<-metricsDone // no scrape reads the appliance while it closes
	if err := a.Close(); err != nil {
		fmt.Fprintf(stderr, "bond-appliance: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// socketFlags adds --socket and -c to a client command.
func socketFlags(fs *flag.FlagSet) func() (string, error) {
	sock := fs.String("socket", "", "control socket path (default: from -c FILE, else "+defaultSocket+")")
	cfgPath := fs.String("c", "", "configuration file to read control.socket from (BOND_APPLIANCE_CONTROL_SOCKET overrides it)")
	return func() (string, error) {
		if *sock != "" {
			return *sock, nil
		}
		if *cfgPath != "" {
			cfg, _, err := config.LoadWith(*cfgPath, environ(), nil)
			if err != nil {
				return "", fmt.Errorf("%s: %w", *cfgPath, err)
			}
			return cfg.Control.Socket, nil
		}
		return defaultSocket, nil
	}
}

// parseInterleaved parses flags that may come before or after positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	watch := fs.Bool("watch", false, "refresh in place until interrupted")
	interval := fs.Duration("interval", time.Second, "refresh interval for --watch")
	sockFn := socketFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "status: at most one BOND")
		return 2
	}
	if *watch {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		rest := append([]string(nil), args...)
		for i, a := range rest {
			if a == "--watch" || a == "-watch" {
				rest = append(rest[:i], rest[i+1:]...)
				break
			}
		}
		for {
			var buf strings.Builder
			code := cmdStatus(rest, &buf, stderr)
			fmt.Fprint(stdout, "\033[H\033[2J"+time.Now().Format(time.RFC3339)+"\n"+buf.String())
			if code != 0 {
				return code
			}
			select {
			case <-ctx.Done():
				return 0
			case <-time.After(*interval):
			}
		}
	}
	sock, err := sockFn()
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	req := appliance.Request{Cmd: "status"}
	if len(pos) == 1 {
		req.Bond = pos[0]
	}
	resp, err := appliance.Call(sock, req)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintln(stderr, "status:", resp.Error)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp.Status)
		return 0
	}
	fmt.Fprint(stdout, appliance.FormatText(resp.Status))
	return 0
}

func cmdSet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("set", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sockFn := socketFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 3 && !(len(pos) == 2 && pos[1] == "active_slave") {
		fmt.Fprintln(stderr, "usage: bond-appliance set BOND OPTION VALUE")
		return 2
	}
	sock, err := sockFn()
	if err != nil {
		fmt.Fprintln(stderr, "set:", err)
		return 1
	}
	val := ""
	if len(pos) == 3 {
		val = pos[2]
	}
	resp, err := appliance.Call(sock, appliance.Request{Cmd: "set", Bond: pos[0], Option: pos[1], Value: val})
	if err != nil {
		fmt.Fprintln(stderr, "set:", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintln(stderr, "set:", resp.Error)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s = %q\n", pos[0], pos[1], resp.Value)
	return 0
}

func cmdSlave(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("slave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sockFn := socketFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 3 || (pos[1] != "add" && pos[1] != "del") {
		fmt.Fprintln(stderr, "usage: bond-appliance slave BOND add|del IFACE")
		return 2
	}
	sock, err := sockFn()
	if err != nil {
		fmt.Fprintln(stderr, "slave:", err)
		return 1
	}
	resp, err := appliance.Call(sock, appliance.Request{Cmd: "slave", Bond: pos[0], Option: pos[1], Value: pos[2]})
	if err != nil {
		fmt.Fprintln(stderr, "slave:", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintln(stderr, "slave:", resp.Error)
		return 1
	}
	fmt.Fprintf(stdout, "%s: slave %s %s\n", pos[0], pos[2], map[string]string{"add": "added", "del": "removed"}[pos[1]])
	return 0
}

func cmdBond(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bond", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "configuration file defining the bond to add (default: the running one's)")
	sockFn := socketFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 || (pos[0] != "add" && pos[0] != "del") {
		fmt.Fprintln(stderr, "usage: bond-appliance bond add|del BOND [--file FILE]")
		return 2
	}
	sock, err := sockFn()
	if err != nil {
		fmt.Fprintln(stderr, "bond:", err)
		return 1
	}
	path := *file
	if path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	resp, err := appliance.Call(sock, appliance.Request{Cmd: "bond", Option: pos[0], Bond: pos[1], Path: path})
	if err != nil {
		fmt.Fprintln(stderr, "bond:", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintln(stderr, "bond:", resp.Error)
		return 1
	}
	fmt.Fprintf(stdout, "bond %s %s\n", pos[1], map[string]string{"add": "added", "del": "removed"}[pos[0]])
	return 0
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sockFn := socketFlags(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return 2
	}
	sock, err := sockFn()
	if err != nil {
		fmt.Fprintln(stderr, "reload:", err)
		return 1
	}
	resp, err := appliance.Call(sock, appliance.Request{Cmd: "reload"})
	if err != nil {
		fmt.Fprintln(stderr, "reload:", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintln(stderr, resp.Error)
		return 1
	}
	if len(resp.Changes) == 0 {
		fmt.Fprintln(stdout, "reload: no change")
	}
	for _, c := range resp.Changes {
		fmt.Fprintln(stdout, "applied:", c)
	}
	return 0
}

func cmdEvents(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON lines")
	sockFn := socketFlags(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return 2
	}
	sock, err := sockFn()
	if err != nil {
		fmt.Fprintln(stderr, "events:", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	err = appliance.Stream(sock, appliance.Request{Cmd: "events"}, func(r *appliance.Response) bool {
		if r.Event == nil {
			return true
		}
		if *asJSON {
			return enc.Encode(r.Event) == nil
		}
		keys := make([]string, 0, len(r.Event.Fields))
		for k := range r.Event.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		line := r.Event.Time.Format(time.RFC3339Nano) + " " + r.Event.Msg
		for _, k := range keys {
			line += " " + k + "=" + r.Event.Fields[k]
		}
		_, err := fmt.Fprintln(stdout, line)
		return err == nil
	})
	if err != nil {
		fmt.Fprintln(stderr, "events:", err)
		return 1
	}
	return 0
}

func cmdLab(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "active-backup", "bonding mode of the lab bond")
	secs := fs.Int("seconds", 3, "iperf3 duration")
	hostDev := fs.String("host-device", "veth", "veth or tap")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "lab:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = lab.Run(ctx, lab.Options{Binary: exe, Mode: *mode, Seconds: *secs, HostDevice: *hostDev, Out: stdout})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "lab: interrupted; everything removed")
			return 130
		}
		fmt.Fprintln(stderr, "lab:", err)
		return 1
	}
	return 0
}
