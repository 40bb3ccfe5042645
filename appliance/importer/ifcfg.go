package importer

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// FromIfcfg reads sysconfig/initscripts interface files (ifcfg-NAME, as in
// /etc/sysconfig/network-scripts; NetworkManager's ifcfg-rh uses the same
// format), keyed by file name or path, and imports their bonds:
//
//   - a bond: DEVICE=bond0 with BONDING_OPTS="mode=4 miimon=100 ..."
//     (sysfs option names and values), BONDING_MASTER=yes or TYPE=Bond,
//     MTU= and MACADDR=;
//   - its slaves: MASTER=bond0 (or MASTER_UUID= the bond's UUID=) with
//     SLAVE=yes;
//   - VLANs above it: VLAN=yes with DEVICE=bond0.100, or PHYSDEV=bond0
//     and VLAN_ID=100.
//
// Files whose name does not start with "ifcfg-" are ignored. IP
// configuration of the bond stays with the host and is listed in Notes.
func FromIfcfg(files map[string][]byte) (*Result, error) {
	res := newResult()
	importIfcfg(res, files)
	res.finish()
	return res, nil
}

// FromIfcfgDir is FromIfcfg for the ifcfg-* files of a directory such as
// /etc/sysconfig/network-scripts.
func FromIfcfgDir(dir string) (*Result, error) {
	names, err := filepath.Glob(filepath.Join(dir, "ifcfg-*"))
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	files := map[string][]byte{}
	for _, n := range names {
		if strings.HasSuffix(n, "~") || strings.HasSuffix(n, ".bak") || strings.HasSuffix(n, ".orig") || strings.HasSuffix(n, ".rpmsave") || strings.HasSuffix(n, ".rpmnew") {
			continue // initscripts skips backup files too
		}
		if st, err := os.Stat(n); err != nil || st.IsDir() {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("importer: %w", err)
		}
		files[n] = b
	}
	res := newResult(dir)
	importIfcfg(res, files)
	res.finish()
	return res, nil
}

type ifcfgFile struct {
	file   string
	device string
	vars   map[string]string
	line   map[string]int // line of each variable
}

func (f *ifcfgFile) src(key string) string {
	if n, ok := f.line[key]; ok {
		return fmt.Sprintf("%s:%d", f.file, n)
	}
	return f.file
}

func (f *ifcfgFile) yes(key string) bool {
	v := strings.ToLower(f.vars[key])
	return v == "yes" || v == "y" || v == "true" || v == "1"
}

// ifcfgIPKeys are IP settings of an interface.
var ifcfgIPKeys = []string{"BOOTPROTO", "IPADDR", "PREFIX", "NETMASK", "GATEWAY", "DNS1", "DNS2", "DOMAIN",
	"IPV6INIT", "IPV6ADDR", "IPV6_DEFAULTGW", "IPV6_AUTOCONF", "DHCPV6C", "DEFROUTE", "IPADDR0", "PREFIX0"}

func importIfcfg(r *Result, files map[string][]byte) {
	var all []*ifcfgFile
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		base := path.Base(filepath.ToSlash(n))
		if !strings.HasPrefix(base, "ifcfg-") {
			continue
		}
		vars, lines := parseShellVars(string(files[n]))
		f := &ifcfgFile{file: n, vars: vars, line: lines, device: vars["DEVICE"]}
		if f.device == "" {
			f.device = strings.TrimPrefix(base, "ifcfg-")
		}
		all = append(all, f)
	}

	isBond := func(f *ifcfgFile) bool {
		return f.vars["BONDING_OPTS"] != "" || f.yes("BONDING_MASTER") || strings.EqualFold(f.vars["TYPE"], "bond")
	}
	uuid := map[string]string{} // UUID -> device of bonds
	for _, f := range all {
		if isBond(f) {
			r.bond(f.device, f.src("DEVICE"))
			if u := f.vars["UUID"]; u != "" {
				uuid[u] = f.device
			}
		}
	}
	for _, f := range all {
		if !isBond(f) {
			continue
		}
		b := r.lookup(f.device)
		for _, w := range strings.Fields(f.vars["BONDING_OPTS"]) {
			key, value, ok := strings.Cut(w, "=")
			if !ok {
				r.skip(f.device, "option "+w+" in BONDING_OPTS", "no value given", f.src("BONDING_OPTS"))
				continue
			}
			r.setOption(b, strings.ToLower(key), value, w, f.src("BONDING_OPTS"), false)
		}
		if v := f.vars["MTU"]; v != "" {
			r.setOption(b, "mtu", v, "MTU="+v, f.src("MTU"), true)
		}
		if v := f.vars["MACADDR"]; v != "" {
			r.setOption(b, "mac", v, "MACADDR="+v, f.src("MACADDR"), true)
		}
		if v := f.vars["HWADDR"]; v != "" {
			r.note(f.device, "HWADDR="+v, "binds the file to a device by its address; not carried over (MACADDR= sets the bond's address)", f.src("HWADDR"))
		}
		var ip []string
		for _, k := range ifcfgIPKeys {
			if v, ok := f.vars[k]; ok && !(k == "BOOTPROTO" && (v == "none" || v == "static" || v == "")) {
				ip = append(ip, k)
			}
		}
		if len(ip) > 0 {
			r.note(f.device, "IP configuration ("+strings.Join(ip, ", ")+")", "not bonding configuration: keep it in the host's network configuration, for the host device "+f.device+" the appliance creates", f.src(ip[0]))
		}
	}
	for _, f := range all {
		if isBond(f) {
			continue
		}
		master, key := f.vars["MASTER"], "MASTER"
		if master == "" && f.vars["MASTER_UUID"] != "" {
			master, key = uuid[f.vars["MASTER_UUID"]], "MASTER_UUID"
			if master == "" {
				r.skip(f.device, "MASTER_UUID="+f.vars["MASTER_UUID"], "no bond file has this UUID", f.src(key))
				continue
			}
		}
		if master != "" {
			b := r.lookup(master)
			if b == nil {
				b = r.bond(master, f.src(key))
			}
			if !f.yes("SLAVE") && key == "MASTER" {
				r.note(f.device, key+"="+master+" without SLAVE=yes", "taken as a slave of "+master+" (NetworkManager enslaves it; initscripts would not)", f.src(key))
			}
			r.addSlave(b, f.device, f.src(key))
			continue
		}
		// VLANs above a bond.
		if f.yes("VLAN") || f.vars["VLAN_ID"] != "" || strings.EqualFold(f.vars["TYPE"], "vlan") {
			phys, id := f.vars["PHYSDEV"], f.vars["VLAN_ID"]
			if base, n, ok := strings.Cut(f.device, "."); ok {
				if phys == "" {
					phys = base
				}
				if id == "" {
					id = n
				}
			}
			if b := r.lookup(phys); b != nil && id != "" {
				r.addVLAN(b, id, f.file, f.src("DEVICE"))
			}
		}
	}
}

// parseShellVars reads KEY=value assignments as a shell would for the
// simple forms ifcfg files use: 'single', "double" (with \ escapes) and
// bare values, "export KEY=value", # comments.
func parseShellVars(s string) (map[string]string, map[string]int) {
	vars, lines := map[string]string{}, map[string]int{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "export ")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		vars[k] = shellValue(v)
		lines[k] = i + 1
	}
	return vars, lines
}

func shellValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				b.WriteString(v[i+1:])
				return b.String()
			}
			b.WriteString(v[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			i++
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				b.WriteByte(v[i])
			}
		case c == '\\' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		case c == ' ' || c == '\t' || c == '#' || c == ';':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
