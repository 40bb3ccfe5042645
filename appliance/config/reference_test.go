package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"strings"
	"testing"
)

var updateReference = flag.Bool("update-reference", false, "write docs/config-reference.md from Reference()")

const referencePath = "../../docs/config-reference.md"

func TestReferenceCoversEveryKey(t *testing.T) {
	ref := Reference()
	for _, o := range Options() {
		head := "### " + o.Key() + "\n\n" + o.Desc + "\n\n"
		i := strings.Index(ref, head)
		if i < 0 {
			t.Errorf("reference lacks %s", o.Key())
			continue
		}
		entry := ref[i:]
		if j := strings.Index(entry[len(head):], "### "); j >= 0 {
			entry = entry[:len(head)+j]
		}
		for _, want := range []string{"- Allowed: " + o.Allowed() + "\n", "- Default: " + o.defaultDoc() + "\n",
			"- Takes effect: " + o.effectDoc() + "\n"} {
			if !strings.Contains(entry, want) {
				t.Errorf("%s: entry lacks %q:\n%s", o.Key(), want, entry)
			}
		}
	}
	for k := range notPerBond {
		if !strings.Contains(ref, "- `"+k+"`: ") {
			t.Errorf("reference does not explain %s", k)
		}
	}
}

// The reference depends on the table only, not on the machine.
func TestReferenceDeterministic(t *testing.T) {
	a := Reference()
	saved := defaultCores
	defaultCores = func() []int { return []int{63} }
	defer func() { defaultCores = saved }()
	if b := Reference(); a != b {
		t.Error("Reference differs between calls")
	}
}

// docs/config-reference.md must match Reference(); regenerate it with
//
//	go test ./appliance/config -run TestReferenceFile -update-reference
func TestReferenceFile(t *testing.T) {
	ref := Reference()
	if *updateReference {
		if err := os.WriteFile(referencePath, []byte(ref), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(referencePath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s does not exist yet; create it with -update-reference", referencePath)
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != ref {
		t.Errorf("%s is out of date; regenerate it with: go test ./appliance/config -run TestReferenceFile -update-reference", referencePath)
	}
}
