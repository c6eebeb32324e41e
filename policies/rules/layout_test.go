package rules

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// registered finds a rule file's registrations and the ids they declare.
var (
	registration = regexp.MustCompile(`(?m)^var \w+ = register\(&Rule\{`)
	ruleID       = regexp.MustCompile(`(?m)^\tID:\s+"([^"]+)"`)
)

// packageFiles are the package's own API, not rules.
var packageFiles = []string{"rules.go", "thresholds.go"}

// TestOneRulePerFile: every rule is registered alone in the file named
// after its id (kebab id, snake file), and the package holds nothing else
// but its API; shared readers belong in internal/.
func TestOneRulePerFile(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatalf("glob: %v", err)
	}
	seen := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || slices.Contains(packageFiles, f) {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		regs, ids := registration.FindAll(src, -1), ruleID.FindAllSubmatch(src, -1)
		if len(regs) != 1 || len(ids) != 1 {
			t.Errorf("%s registers %d rules with %d ids; want exactly one rule per file", f, len(regs), len(ids))
			continue
		}
		id := string(ids[0][1])
		if want := strings.ReplaceAll(id, "-", "_") + ".go"; f != want {
			t.Errorf("%s holds rule %s; name the file %s", f, id, want)
		}
		seen[id] = f
	}
	for _, r := range All() {
		if _, ok := seen[r.ID]; !ok {
			t.Errorf("rule %s is not registered in a file of its own", r.ID)
		}
	}
}
