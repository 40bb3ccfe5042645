package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/bond-appliance/bond-appliance/appliance/config"
	"github.com/bond-appliance/bond-appliance/appliance/netdev"
)

// cmdCleanup restores, by hand, what an appliance that did not stop
// cleanly (SIGKILL, a panic, power loss) left changed on the devices of
// the current network namespace, from its state file in control.state_dir
// (the file of the -c configuration's control.socket), reporting each step.
// It refuses while a running appliance owns the file.
func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file of the appliance (control.state_dir, control.socket); default: the built-in defaults")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cleanup: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := config.Defaults()
	if *cfgPath != "" {
		c, _, err := config.LoadWith(*cfgPath, environ(), nil)
		if err != nil {
			fmt.Fprintf(stderr, "cleanup: %s: %v\n", *cfgPath, err)
			return 1
		}
		cfg = c
	}
	path, err := netdev.StatePath(cfg.Control.StateDir, cfg.Control.Socket)
	if err != nil {
		fmt.Fprintf(stderr, "cleanup: %v\n", err)
		return 1
	}
	found, err := netdev.Cleanup(path, func(s netdev.Step) { fmt.Fprintln(stdout, s.String()) })
	if err != nil {
		fmt.Fprintf(stderr, "cleanup: %v\n", err)
		return 1
	}
	if !found {
		fmt.Fprintf(stdout, "no state file %s: nothing to restore\n", path)
		return 0
	}
	fmt.Fprintf(stdout, "restored; removed %s\n", path)
	return 0
}
