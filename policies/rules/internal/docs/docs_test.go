package docs

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scaleplane/scaleplane/policies/rules"
)

var update = flag.Bool("update", false, "rewrite docs/policies.md from the rules")

const docsPath = "../../../../docs/policies.md"

// TestDocs: docs/policies.md is what Markdown renders from the rules.
func TestDocs(t *testing.T) {
	want := Markdown()
	if *update {
		if err := os.MkdirAll(filepath.Dir(docsPath), 0o755); err != nil {
			t.Fatalf("mkdir docs: %v", err)
		}
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatalf("write %s: %v", docsPath, err)
		}
	}
	got, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatalf("read %s: %v (generate it: go test ./policies/rules/internal/docs -run TestDocs -update)", docsPath, err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date with the rules; run: go test ./policies/rules/internal/docs -run TestDocs -update", docsPath)
	}
	for _, r := range rules.All() {
		if !strings.Contains(want, "### "+r.ID+"\n") {
			t.Errorf("rendered docs lack a section for rule %s", r.ID)
		}
	}
}
