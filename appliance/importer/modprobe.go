package importer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// moduleParams are the bonding module's parameters (module_param in
// drivers/net/bonding/bond_main.c). Other bonding options exist only
// through sysfs and netlink: modprobe passes them on and the kernel ignores
// them ("unknown parameter").
var moduleParams = map[string]bool{
	"max_bonds": true, "tx_queues": true, "num_grat_arp": true, "num_unsol_na": true,
	"miimon": true, "updelay": true, "downdelay": true, "use_carrier": true, "mode": true,
	"primary": true, "primary_reselect": true, "lacp_rate": true, "ad_select": true,
	"min_links": true, "xmit_hash_policy": true, "arp_interval": true, "arp_ip_target": true,
	"arp_validate": true, "arp_all_targets": true, "fail_over_mac": true,
	"all_slaves_active": true, "resend_igmp": true, "packets_per_slave": true, "lp_interval": true,
}

// FromModprobe reads modprobe configuration (modprobe.d(5)) and imports
// the bonding module's parameters:
//
//   - "options bonding mode=4 miimon=100": parameters of the module, the
//     defaults of every bond; the module creates max_bonds bonds (default
//     1: bond0) with them;
//   - "alias bond0 bonding" with "options bond0 [-o bond0] mode=1 ...": the
//     older per-bond form, parameters of bond0 only;
//   - "install bond1 /sbin/modprobe --ignore-install bonding -o bond1 mode=...":
//     the same for bond1.
//
// Lines for other modules are ignored. modprobe options do not name
// slaves: merge with FromInterfaces or FromIfcfg to get them.
func FromModprobe(r io.Reader) (*Result, error) {
	res := newResult()
	p := &modprobeParser{res: res, aliases: map[string]bool{}}
	if err := p.read("modprobe", r); err != nil {
		return nil, err
	}
	p.apply()
	res.finish()
	return res, nil
}

// FromModprobePath is FromModprobe for a file, or for a directory such as
// /etc/modprobe.d (its *.conf files, in name order, as modprobe reads
// them).
func FromModprobePath(path string) (*Result, error) {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	} else if st.IsDir() {
		files, err = filepath.Glob(filepath.Join(path, "*.conf"))
		if err != nil {
			return nil, fmt.Errorf("importer: %w", err)
		}
		slices.Sort(files)
	}
	res := newResult(path)
	p := &modprobeParser{res: res, aliases: map[string]bool{}}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("importer: %w", err)
		}
		err = p.read(f, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	p.apply()
	res.finish()
	return res, nil
}

type modprobeParser struct {
	res     *Result
	aliases map[string]bool // names aliased to the bonding module
	lines   []modprobeLine  // options and install lines, in order
}

type modprobeLine struct {
	module string   // options NAME / install NAME
	params []string // key=value words (and -o NAME)
	src    string
}

// moduleName normalizes a module name: modprobe treats - and _ alike.
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func (p *modprobeParser) read(name string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n, start := 0, 0
	var cont strings.Builder
	for sc.Scan() {
		n++
		line := sc.Text()
		if cont.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cont.WriteString(line)
		line = strings.TrimSpace(cont.String())
		cont.Reset()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		src := name + ":" + strconv.Itoa(start)
		f := splitWords(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "alias":
			if len(f) >= 3 && moduleName(f[2]) == "bonding" {
				p.aliases[f[1]] = true
			}
		case "options":
			p.lines = append(p.lines, modprobeLine{module: f[1], params: f[2:], src: src})
		case "install":
			// install bond1 /sbin/modprobe --ignore-install bonding -o bond1 mode=...
			for cmd := range strings.SplitSeq(strings.Join(f[2:], " "), ";") {
				w := strings.Fields(strings.ReplaceAll(cmd, "&&", " "))
				i := slices.IndexFunc(w, func(s string) bool { return moduleName(s) == "bonding" })
				if i < 0 || !slices.ContainsFunc(w[:i], func(s string) bool { return filepath.Base(s) == "modprobe" }) {
					continue
				}
				p.aliases[f[1]] = true
				p.lines = append(p.lines, modprobeLine{module: f[1], params: w[i+1:], src: src})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("importer: %s: %w", name, err)
	}
	return nil
}

// apply turns the collected lines into bonds and module parameters.
func (p *modprobeParser) apply() {
	r := p.res
	maxBonds, maxSrc := 1, ""
	sawModule := false
	var module []given
	for _, l := range p.lines {
		mod := moduleName(l.module)
		perBond := mod != "bonding"
		if perBond && !p.aliases[l.module] && !strings.HasPrefix(l.module, "bond") {
			continue // another module
		}
		if !perBond {
			sawModule = true
		}
		bondName := l.module
		params := l.params
		if i := slices.Index(params, "-o"); i >= 0 && i+1 < len(params) {
			if perBond {
				bondName = params[i+1]
			}
			params = slices.Delete(slices.Clone(params), i, i+2)
		}
		var b *rawBond
		if perBond {
			b = r.bond(bondName, l.src)
		}
		for _, w := range params {
			if strings.HasPrefix(w, "-") {
				continue // modprobe flags (--ignore-install, -v, ...)
			}
			key, value, ok := strings.Cut(w, "=")
			text := w
			who := bondName
			if !perBond {
				who = "bonding"
			}
			if !ok {
				r.skip(who, "option "+text, "no value given", l.src)
				continue
			}
			key = strings.ToLower(key)
			if key == "max_bonds" {
				n, err := strconv.Atoi(unquote(value))
				switch {
				case err != nil || n < 0:
					r.skip(who, "option "+text, fmt.Sprintf("invalid value %q (allowed 0..%d)", value, 1<<31-1), l.src)
				case perBond:
					r.note(who, "option "+text, "ignored: the bond is named by the alias", l.src)
				default:
					maxBonds, maxSrc = n, l.src
				}
				continue
			}
			if _, why := bondOption(key); why == "" && !moduleParams[key] {
				r.skip(who, "option "+text, "not a parameter of the bonding module: the kernel ignores it at module load (it is set through sysfs or netlink); give it in the YAML if it is wanted", l.src)
				continue
			}
			if perBond {
				r.setOption(b, key, value, text, l.src, false)
				continue
			}
			// A module parameter: parse it through a scratch bond.
			scratch := &rawBond{name: "bonding", opts: map[string]given{}}
			r.setOption(scratch, key, value, text, l.src, false)
			for _, g := range scratch.opts {
				module = slices.DeleteFunc(module, func(x given) bool { return x.name == g.name })
				module = append(module, g)
			}
		}
	}
	r.module = module
	if !sawModule {
		return
	}
	if maxBonds > 1024 {
		r.note("bonding", "max_bonds="+strconv.Itoa(maxBonds), "only the first 1024 bonds are imported", maxSrc)
		maxBonds = 1024
	}
	for i := range maxBonds {
		name := "bond" + strconv.Itoa(i)
		if r.lookup(name) != nil {
			continue
		}
		src := maxSrc
		if src == "" {
			src = "bonding module, max_bonds=1 (default)"
		}
		b := r.bond(name, src)
		b.implicit = true
	}
}

// splitWords splits a line into words; double quotes group a value with
// spaces (param="a b") and are kept.
func splitWords(s string) []string {
	var out []string
	var w strings.Builder
	inQ, have := false, false
	for _, c := range s {
		switch {
		case c == '"':
			inQ = !inQ
			w.WriteRune(c)
			have = true
		case (c == ' ' || c == '\t') && !inQ:
			if have {
				out = append(out, w.String())
				w.Reset()
				have = false
			}
		default:
			w.WriteRune(c)
			have = true
		}
	}
	if have {
		out = append(out, w.String())
	}
	return out
}
