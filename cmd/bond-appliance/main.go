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
	"sync/atomic"
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
	fmt.Fprint(w, clientNotes)
}

// clientNotes ends the usage text.
const clientNotes = `
status, set, slave, bond and reload take --timeout DURATION: how long to wait
for the answer (reload, bond, slave: 2m; status, set: 10s; 0: no limit). A
timeout does not cancel the operation: it may still be in progress.
`

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
	check := fs.Bool("check", false, "check the configuration and what the start would refuse on this machine (members, queues, XDP programs, names, MTU), read-only, and exit")
	checkConfig := fs.Bool("check-config", false, "check the configuration file only (syntax, values, option rules) and exit")
	var overrides []string
	fs.Func(strings.TrimPrefix(config.OverrideFlag, "--"),
		"override a dataplane, control, log or metrics key: SECTION.KEY=VALUE (repeatable; beats the file and BOND_APPLIANCE_<SECTION>_<KEY>)",
		func(s string) error { overrides = append(overrides, s); return nil })
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		if fs.Arg(0) == args[0] {
			fmt.Fprintf(stderr, "bond-appliance: unknown command %q\n", args[0])
		} else {
			fmt.Fprintf(stderr, "bond-appliance: unexpected argument %q\n", fs.Arg(0))
		}
		usage(stderr)
		return 2
	}
	if *cfgPath == "" {
		usage(stderr)
		return 2
	}
	cfg, warnings, err := config.LoadWith(*cfgPath, environ(), overrides)
	if err != nil {
		fail(stderr, *cfgPath+": ", err)
		return 1
	}
	log, flushLog := newLogger(cfg, stderr)
	defer flushLog(time.Second)
	for _, w := range warnings {
		log.Warn(w)
	}
	if *checkConfig {
		fmt.Fprintf(stdout, "%s: configuration OK (%d bond(s))\n", *cfgPath, len(cfg.Bonds))
		return 0
	}
	if *check {
		// what the start would refuse, read-only
		if err := appliance.Check(cfg); err != nil {
			fail(stderr, *cfgPath+": ", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: configuration OK (%d bond(s)), and the machine can run it\n", *cfgPath, len(cfg.Bonds))
		return 0
	}
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(term)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := appliance.Start(cfg, log)
	if err != nil {
		fail(stderr, "", err)
		return 1
	}
	a.SetConfigSource(*cfgPath, environ(), overrides)
	metricsCtx, stopMetrics := context.WithCancel(context.Background())
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
	return supervise(a, term, hup, log, stderr, func() {
		stopMetrics()
		<-metricsDone // no scrape reads the appliance while it closes
	})
}

// daemon is what supervise needs of a running appliance.
type daemon interface {
	Reload(path string) ([]string, error)
	Close() error
	EmergencyRestore(wait time.Duration) error
	Crashed() <-chan struct{}
	CrashErr() error
}

// shutdownGrace bounds a shutdown: when Close has not returned this long
// after the signal, the devices are restored directly and the process
// exits (a variable for the tests).
var shutdownGrace = 3 * time.Second

// supervise runs the appliance until SIGINT/SIGTERM on term or a crash,
// and returns the exit code.
//
// SIGHUP on hup reloads the configuration on its own goroutine, one reload
// at a time; SIGHUPs during a reload make one more reload after it. A
// termination signal starts shutdown at once, even during a reload (the
// reload is abandoned by Close). Shutdown is bounded: a second signal, or
// Close not returning within shutdownGrace, restores the devices directly
// (EmergencyRestore) and exits non-zero ("forced"). A panic in the
// appliance (Crashed) shuts down the same way and exits non-zero, so
// systemd restarts it.
func supervise(a daemon, term, hup <-chan os.Signal, log *slog.Logger, stderr io.Writer, beforeClose func()) int {
	reloads := make(chan struct{}, 1) // a pending reload; more coalesce into it
	quit := make(chan struct{})
	var stopping atomic.Bool
	go func() {
		for {
			select {
			case <-quit:
				return
			case <-reloads:
			}
			_ = sdnotify.Reloading()
			changes, err := a.Reload("")
			switch {
			case err != nil && stopping.Load():
				log.Info("reload abandoned: shutting down", "err", err)
			case err != nil:
				log.Error("reload failed; the running configuration is unchanged", "err", err)
			default:
				log.Info("reload applied", "changes", len(changes), "detail", changes)
			}
			if !stopping.Load() {
				_ = sdnotify.Ready()
			}
		}
	}()
	var reason string
	crashed := false
loop:
	for {
		select {
		case <-hup:
			select {
			case reloads <- struct{}{}:
			default: // one is pending already
			}
		case sig := <-term:
			reason = sig.String()
			break loop
		case <-a.Crashed():
			reason, crashed = fmt.Sprint(a.CrashErr()), true
			break loop
		}
	}
	stopping.Store(true)
	close(quit)
	_ = sdnotify.Stopping()
	if crashed {
		log.Error("shutting down after a panic; exiting non-zero", "reason", reason)
	} else {
		log.Info("shutting down", "reason", reason)
	}
	closed := make(chan error, 1)
	go func() {
		beforeClose()
		closed <- a.Close()
	}()
	grace := time.NewTimer(shutdownGrace)
	defer grace.Stop()
	select {
	case err := <-closed:
		if err != nil {
			fail(stderr, "shutdown: ", err)
			return 1
		}
		if crashed {
			return 1
		}
		return 0
	case sig := <-term:
		log.Error("forced exit: second signal during shutdown; restoring the devices now", "signal", sig.String())
	case <-grace.C:
		log.Error("forced exit: shutdown did not finish in time; restoring the devices now", "after", shutdownGrace)
	}
	if err := a.EmergencyRestore(time.Second); err != nil {
		fail(stderr, "forced shutdown: ", err)
	}
	return 1
}

// fail prints an error to w, every line of it with the program's name and
// prefix (an error can span lines: errors.Join).
func fail(w io.Writer, prefix string, err error) {
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintln(w, "bond-appliance: "+prefix+line)
	}
}

// newLogger is the daemon's logger (log.level, log.format) writing to w
// through a bounded queue (logq.go); flush writes what is queued.
func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, func(time.Duration)) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	ah, flush := newAsyncHandler(h)
	return slog.New(ah), flush
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

// timeoutFlag adds --timeout to a client command: how long to wait for
// the appliance's answer (the default follows the command; 0 waits as long
// as it takes).
func timeoutFlag(fs *flag.FlagSet, cmd string) *time.Duration {
	return fs.Duration("timeout", appliance.DefaultTimeout(cmd),
		"how long to wait for the answer (0: no limit); on timeout the operation may still be in progress")
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
	timeout := timeoutFlag(fs, "status")
	asJSON := fs.Bool("json", false, "print JSON")
	watch := fs.Bool("watch", false, "refresh in place until interrupted")
	interval := fs.Duration("interval", time.Second, "refresh interval for --watch")
	sockFn := socketFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 {
		fail(stderr, "status: ", errors.New("at most one BOND"))
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
		fail(stderr, "status: ", err)
		return 1
	}
	req := appliance.Request{Cmd: "status"}
	if len(pos) == 1 {
		req.Bond = pos[0]
	}
	resp, err := appliance.CallTimeout(sock, req, *timeout)
	if err != nil {
		fail(stderr, "status: ", err)
		return 1
	}
	if !resp.OK {
		fail(stderr, "status: ", errors.New(resp.Error))
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
	timeout := timeoutFlag(fs, "set")
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
		fail(stderr, "set: ", err)
		return 1
	}
	val := ""
	if len(pos) == 3 {
		val = pos[2]
	}
	resp, err := appliance.CallTimeout(sock, appliance.Request{Cmd: "set", Bond: pos[0], Option: pos[1], Value: val}, *timeout)
	if err != nil {
		fail(stderr, "set: ", err)
		return 1
	}
	if !resp.OK {
		fail(stderr, "set: ", errors.New(resp.Error))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s = %q\n", pos[0], pos[1], resp.Value)
	return 0
}

func cmdSlave(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("slave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := timeoutFlag(fs, "slave")
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
		fail(stderr, "slave: ", err)
		return 1
	}
	resp, err := appliance.CallTimeout(sock, appliance.Request{Cmd: "slave", Bond: pos[0], Option: pos[1], Value: pos[2]}, *timeout)
	if err != nil {
		fail(stderr, "slave: ", err)
		return 1
	}
	if !resp.OK {
		fail(stderr, "slave: ", errors.New(resp.Error))
		return 1
	}
	fmt.Fprintf(stdout, "%s: slave %s %s\n", pos[0], pos[2], map[string]string{"add": "added", "del": "removed"}[pos[1]])
	return 0
}

func cmdBond(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bond", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := timeoutFlag(fs, "bond")
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
		fail(stderr, "bond: ", err)
		return 1
	}
	path := *file
	if path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	resp, err := appliance.CallTimeout(sock, appliance.Request{Cmd: "bond", Option: pos[0], Bond: pos[1], Path: path}, *timeout)
	if err != nil {
		fail(stderr, "bond: ", err)
		return 1
	}
	if !resp.OK {
		fail(stderr, "bond: ", errors.New(resp.Error))
		return 1
	}
	fmt.Fprintf(stdout, "bond %s %s\n", pos[1], map[string]string{"add": "added", "del": "removed"}[pos[0]])
	return 0
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := timeoutFlag(fs, "reload")
	sockFn := socketFlags(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return 2
	}
	sock, err := sockFn()
	if err != nil {
		fail(stderr, "reload: ", err)
		return 1
	}
	resp, err := appliance.CallTimeout(sock, appliance.Request{Cmd: "reload"}, *timeout)
	if err != nil {
		fail(stderr, "reload: ", err)
		return 1
	}
	if !resp.OK {
		fail(stderr, "reload: ", errors.New(resp.Error))
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
		fail(stderr, "events: ", err)
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
		fail(stderr, "events: ", err)
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
		fail(stderr, "lab: ", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = lab.Run(ctx, lab.Options{Binary: exe, Mode: *mode, Seconds: *secs, HostDevice: *hostDev, Out: stdout})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fail(stderr, "lab: ", errors.New("interrupted; everything removed"))
			return 130
		}
		fail(stderr, "lab: ", err)
		return 1
	}
	return 0
}
