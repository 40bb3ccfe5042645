// Package arch checks the module's import graph against the dependency
// direction documented in docs/ARCHITECTURE.md ("Packages and dependency
// direction"):
//
//	cmd/bond-appliance ─► appliance ─► {policy, lacp, rings, umem}
//
// When a rule here and the document disagree, fix one of them in the same
// change. `go test -v ./arch` prints the actual graph (package → module
// imports, then third-party imports) to check the document against.
package arch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// module is the module path; packages below are named relative to it.
const module = "github.com/bond-appliance/bond-appliance"

// core are the packages that must stay free of the rest of the module and of
// third-party code (docs/ARCHITECTURE.md: "policy, lacp, rings and umem
// import only the standard library and golang.org/x/sys").
var core = []string{"policy", "lacp", "rings", "umem"}

// rules is the architecture. Each rule applies to the (non-test) imports of
// the packages `from` selects; an import for which `ok` is false breaks it.
var rules = []rule{
	{
		name: "policy, lacp, rings, umem import only the standard library, golang.org/x/sys and each other",
		from: under(core...),
		ok:   anyOf(stdlib, prefix("golang.org/x/sys"), under(core...)),
	},
	{
		name: "appliance/lane (the data path) imports only policy, rings, umem and appliance/vnet of the module",
		from: under("appliance/lane"),
		ok:   anyOf(notModule, under("appliance/lane", "policy", "rings", "umem", "appliance/vnet")),
	},
	{
		name: "appliance/vnet (TAP offloads: segmentation, coalescing) imports only the standard library",
		from: under("appliance/vnet"),
		ok:   stdlib,
	},
	{
		name: "nothing under appliance/ or in the core imports cmd/",
		from: under(append([]string{"appliance"}, core...)...),
		ok:   not(under("cmd")),
	},
	{
		name: "product code does not import the test support package appliance/lab/labtest",
		from: product,
		ok:   not(under("appliance/lab/labtest")),
	},
	{
		name: "product code does not import perf/",
		from: product,
		ok:   not(under("perf")),
	},
}

// product is everything the appliance ships: not the perf tools, not the
// test support package, not this test.
func product(p *pkg) bool {
	return p.inModule() && !under("perf", "appliance/lab/labtest", "arch")(p)
}

type rule struct {
	name string
	from func(*pkg) bool
	ok   func(*pkg) bool
}

// pkg is the part of `go list -json` used here.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

func (p *pkg) inModule() bool { return p.Module != nil && p.Module.Path == module }

// rel is the path relative to the module ("" for the module root).
func (p *pkg) rel() string {
	if p.ImportPath == module {
		return ""
	}
	return strings.TrimPrefix(p.ImportPath, module+"/")
}

// under selects module packages at or below any of the relative paths.
func under(paths ...string) func(*pkg) bool {
	return func(p *pkg) bool {
		if !p.inModule() {
			return false
		}
		r := p.rel()
		for _, d := range paths {
			if r == d || strings.HasPrefix(r, d+"/") {
				return true
			}
		}
		return false
	}
}

func prefix(path string) func(*pkg) bool {
	return func(p *pkg) bool { return p.ImportPath == path || strings.HasPrefix(p.ImportPath, path+"/") }
}

func stdlib(p *pkg) bool    { return p.Standard }
func notModule(p *pkg) bool { return !p.inModule() }

func not(f func(*pkg) bool) func(*pkg) bool { return func(p *pkg) bool { return !f(p) } }

func anyOf(fs ...func(*pkg) bool) func(*pkg) bool {
	return func(p *pkg) bool {
		for _, f := range fs {
			if f(p) {
				return true
			}
		}
		return false
	}
}

// load returns every package the module's packages depend on, by import path.
func load(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Standard,Imports,Module,Error", "-deps", "./...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs[p.ImportPath] = &p
	}
	if len(pkgs) == 0 || pkgs[module+"/cmd/bond-appliance"] == nil {
		t.Fatalf("go list found no cmd/bond-appliance (%d packages)", len(pkgs))
	}
	return pkgs
}

func sortedModulePkgs(pkgs map[string]*pkg) []*pkg {
	var out []*pkg
	for _, p := range pkgs {
		if p.inModule() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ImportPath < out[j].ImportPath })
	return out
}

func TestImportRules(t *testing.T) {
	pkgs := load(t)
	for _, r := range rules {
		t.Run(strings.ReplaceAll(r.name, " ", "_"), func(t *testing.T) {
			for _, p := range sortedModulePkgs(pkgs) {
				if !r.from(p) {
					continue
				}
				for _, path := range p.Imports {
					imp := pkgs[path]
					if imp == nil {
						imp = &pkg{ImportPath: path}
					}
					if !r.ok(imp) {
						t.Errorf("%s imports %s", p.rel(), name(imp))
					}
				}
			}
		})
	}
}

// TestBinaryDoesNotLinkTestSupport: the product binary's whole dependency
// closure (not only direct imports) is free of the test support and perf code.
func TestBinaryDoesNotLinkTestSupport(t *testing.T) {
	pkgs := load(t)
	seen := map[string]bool{}
	var walk func(path string, via []string)
	walk = func(path string, via []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		p := pkgs[path]
		if p == nil {
			return
		}
		if under("appliance/lab/labtest", "perf")(p) {
			t.Errorf("cmd/bond-appliance links %s (via %s)", p.rel(), strings.Join(via, " → "))
		}
		for _, imp := range p.Imports {
			walk(imp, append(via[:len(via):len(via)], name(p)))
		}
	}
	walk(module+"/cmd/bond-appliance", nil)
}

// TestPrintGraph prints package → module imports | third-party imports.
func TestPrintGraph(t *testing.T) {
	pkgs := load(t)
	var b strings.Builder
	for _, p := range sortedModulePkgs(pkgs) {
		var mod, third []string
		for _, path := range p.Imports {
			imp := pkgs[path]
			switch {
			case imp != nil && imp.Standard:
			case imp != nil && imp.inModule():
				mod = append(mod, imp.rel())
			default:
				third = append(third, path)
			}
		}
		fmt.Fprintf(&b, "%-28s → %s", p.rel(), strings.Join(mod, ", "))
		if len(third) > 0 {
			fmt.Fprintf(&b, "  | %s", strings.Join(third, ", "))
		}
		b.WriteByte('\n')
	}
	t.Logf("module import graph (non-test imports; module packages, then | third-party):\n%s", b.String())
}

func name(p *pkg) string {
	if p.inModule() {
		return p.rel()
	}
	return p.ImportPath
}
