package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCommandsDoNotLinkTesting keeps package testing (its flags, its
// init, its size) out of the user's commands: real servers reach them
// through internal/realserver's error-returning API, and only tests use the
// realservertest wrappers.
func TestCommandsDoNotLinkTesting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the command's dependencies")
	}
	for _, pkg := range []string{
		"github.com/scaleplane/scaleplane/cmd/scaleplane",
		"github.com/scaleplane/scaleplane/cmd/setup",
		"github.com/scaleplane/scaleplane/internal/preflight",
		"github.com/scaleplane/scaleplane/internal/progress",
	} {
		out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		var importers []string
		for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(line)
			for _, imp := range fields[1:] {
				if imp == "testing" {
					importers = append(importers, fields[0])
				}
			}
		}
		if len(importers) > 0 {
			t.Errorf("%s links package testing, imported by %s", pkg, strings.Join(importers, ", "))
		}
	}
}
