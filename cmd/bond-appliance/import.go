package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bond-appliance/bond-appliance/appliance/importer"
)

// importSources collects a repeatable path flag.
type importSources []string

func (s *importSources) String() string { return strings.Join(*s, ",") }

func (s *importSources) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*s = append(*s, v)
	return nil
}

func importUsage(w io.Writer) {
	fmt.Fprint(w, `usage: bond-appliance import [--modprobe FILE|DIR] [--interfaces FILE] [--ifcfg DIR|FILE]
                             [--kernel BOND] [-o FILE [--force]]

Reads Linux bonding configuration and writes the equivalent bond-appliance
configuration (YAML), listing what could not be carried over. Every source
flag may be repeated; sources combine as the kernel combines them
("options bonding" parameters are every bond's defaults, per-bond settings
win, a bond read from the running kernel replaces what files say about it).

  --modprobe FILE|DIR   modprobe configuration, e.g. /etc/modprobe.d (its *.conf files)
  --interfaces FILE     ifupdown configuration, e.g. /etc/network/interfaces (follows source directives)
  --ifcfg DIR|FILE      initscripts/NetworkManager ifcfg files, e.g. /etc/sysconfig/network-scripts
  --kernel BOND         a bond of the running kernel, read over netlink
  -o FILE               write the YAML to FILE (default: standard output)
  --force               overwrite FILE if it exists
`)
}

// cmdImport implements "bond-appliance import".
func cmdImport(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("import", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { importUsage(stderr) }
	var modprobe, interfaces, ifcfg, kernel importSources
	flags.Var(&modprobe, "modprobe", "modprobe configuration file or directory")
	flags.Var(&interfaces, "interfaces", "ifupdown interfaces file")
	flags.Var(&ifcfg, "ifcfg", "directory of ifcfg-* files, or one ifcfg file")
	flags.Var(&kernel, "kernel", "name of a running kernel bond")
	out := flags.String("o", "", "output file (default: standard output)")
	force := flags.Bool("force", false, "overwrite the output file")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() > 0 || len(modprobe)+len(interfaces)+len(ifcfg)+len(kernel) == 0 {
		importUsage(stderr)
		return 2
	}
	if *out != "" && !*force {
		if _, err := os.Lstat(*out); err == nil {
			fmt.Fprintf(stderr, "import: %s exists (use --force to overwrite it)\n", *out)
			return 1
		}
	}

	var results []*importer.Result
	add := func(r *importer.Result, err error) bool {
		if err != nil {
			fmt.Fprintln(stderr, "import:", strings.TrimPrefix(err.Error(), "importer: "))
			return false
		}
		results = append(results, r)
		return true
	}
	for _, p := range modprobe {
		if !add(importer.FromModprobePath(p)) {
			return 1
		}
	}
	for _, p := range interfaces {
		if !add(importer.FromInterfacesPath(p)) {
			return 1
		}
	}
	for _, p := range ifcfg {
		if !add(importIfcfg(p)) {
			return 1
		}
	}
	for _, b := range kernel {
		if !add(importer.FromKernel(b)) {
			return 1
		}
	}
	res := importer.Merge(results...)

	report := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(stderr, "import: %s (%d):\n", title, len(lines))
		for _, l := range lines {
			fmt.Fprintf(stderr, "  %s\n", l)
		}
	}
	report("not carried over", res.Skipped)
	report("notes", res.Notes)
	report("warnings bonding gives for the result", res.Warnings)

	y, err := res.YAML()
	if err != nil {
		fmt.Fprintln(stderr, "import:", strings.TrimPrefix(err.Error(), "importer: "))
		return 1
	}
	names := make([]string, len(res.Bonds))
	for i, b := range res.Bonds {
		names[i] = b.Name
	}
	if *out == "" {
		if _, err := stdout.Write(y); err != nil {
			fmt.Fprintln(stderr, "import:", err)
			return 1
		}
	} else if err := writeFileAtomic(*out, y); err != nil {
		fmt.Fprintln(stderr, "import:", err)
		return 1
	}
	dest := "standard output"
	if *out != "" {
		dest = *out
	}
	fmt.Fprintf(stderr, "import: %d bond(s) (%s) written to %s; %d item(s) not carried over; check it with: bond-appliance -c FILE --check\n",
		len(names), strings.Join(names, ", "), dest, len(res.Skipped))
	return 0
}

// importIfcfg reads a directory of ifcfg files, or one file.
func importIfcfg(path string) (*importer.Result, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return importer.FromIfcfgDir(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return importer.FromIfcfg(map[string][]byte{path: b})
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so that a failed write leaves no half-written configuration.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if err := f.Chmod(0o644); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}
