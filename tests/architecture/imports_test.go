// Package architecture holds the tests that keep the layout of
// docs/architecture.md true: which package may import which.
package architecture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is this repository's module path; rules name packages relative to it.
const module = "github.com/scaleplane/scaleplane"

// rule forbids the packages under From (a module-relative path; a trailing
// "/" means the whole subtree) to depend, directly or through others, on
// any package under Forbid (module-relative, or a standard-library path
// prefixed with "std:").
type rule struct {
	From   string
	Forbid []string
	Why    string
}

// rules are the import rules that matter (docs/architecture.md):
var rules = []rule{
	{From: "internal/images", Forbid: []string{"stacks", "components/", "apps/"},
		Why: "image builders take references; the stack-aware plan sits above them"},
	{From: "internal/cluster/", Forbid: []string{"stacks", "components/", "apps/"},
		Why: "the embedded node runs a cluster; it knows nothing of what is deployed on it"},
	{From: "internal/toolchain", Forbid: []string{"stacks", "components/", "apps/"},
		Why: "the tool cache builds tools by name and version"},
	{From: "components/", Forbid: []string{"apps/", "stacks"},
		Why: "components know nothing of the services they run or of stacks"},
	{From: "stacks", Forbid: []string{"apps/", "components/kafka/topicadmin"},
		Why: "the Pulumi program links no service code (pgx) and no Kafka client"},
	{From: "policies/", Forbid: []string{"stacks", "components/"},
		Why: "rules judge what was declared, from the outside"},
	{From: "internal/rollout", Forbid: []string{"internal/cluster/"},
		Why: "readiness is judged from the API's objects, whoever runs the cluster"},
	{From: "internal/pulumicli", Forbid: []string{"internal/cluster/"},
		Why: "the engine runner works against any cluster, the embedded node or KUBECONFIG's"},
	{From: "internal/supervise", Forbid: []string{"stacks", "components/", "apps/", "std:testing"},
		Why: "the one process supervisor knows processes, not what they serve"},
	{From: "cmd/", Forbid: []string{"std:testing"},
		Why: "the commands never link the test harness"},
	{From: "internal/realserver", Forbid: []string{"std:testing"},
		Why: "the real-server harness returns errors; its Must wrappers for tests live in a subpackage"},
	{From: "internal/preflight", Forbid: []string{"std:testing"},
		Why: "make up's and make test's first step is a small program"},
	{From: "internal/progress", Forbid: []string{"std:testing"},
		Why: "long work's progress is shown by every command"},
	{From: "internal/plainvalue", Forbid: []string{"apps/", "components/", "stacks", "policies/"},
		Why: "a reader of plain values serves the rules and the tests alike"},
	{From: "topology", Forbid: []string{"apps/", "components/", "stacks"},
		Why: "the topology's names are a contract both sides import; it imports neither"},
}

// pkg is one package of the module as `go list` sees it.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	// Error and DepsErrors are set when the package or a dependency does
	// not load; its Deps are then incomplete and the rules cannot judge it.
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// listPackages runs `go list -deps`-style listing of the whole module (test
// files excluded: a test may import anything), with an optional overlay.
func listPackages(t *testing.T, overlay string) map[string]pkg {
	t.Helper()
	args := []string{"list", "-e", "-json=ImportPath,Imports,Deps,Error,DepsErrors"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("%s does not load, so its imports cannot be judged: %s", p.ImportPath, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Fatalf("a dependency of %s does not load, so its imports cannot be judged: %s", p.ImportPath, e.Err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// repoRoot is the module's root, two directories above this test.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// matches reports whether the package path is under the rule pattern.
func matches(path, pattern string) bool {
	if std, ok := strings.CutPrefix(pattern, "std:"); ok {
		return path == std
	}
	full := module + "/" + strings.TrimSuffix(pattern, "/")
	if strings.HasSuffix(pattern, "/") {
		return path == full || strings.HasPrefix(path, full+"/")
	}
	return path == full
}

// violations lists, for every rule, each module package that breaks it:
// the forbidden package nearest to it, with the chain of imports that
// leads there, and how many other forbidden packages it reaches.
func violations(pkgs map[string]pkg) []string {
	var out []string
	names := make([]string, 0, len(pkgs))
	for name := range pkgs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, r := range rules {
		for _, name := range names {
			if !matches(name, r.From) {
				continue
			}
			var nearest []string
			n := 0
			for _, dep := range pkgs[name].Deps {
				if !slices.ContainsFunc(r.Forbid, func(f string) bool { return matches(dep, f) }) {
					continue
				}
				n++
				if c := chain(pkgs, name, dep); nearest == nil || len(c) < len(nearest) {
					nearest = c
				}
			}
			if n == 0 {
				continue
			}
			more := ""
			switch {
			case n == 2:
				more = " and 1 more forbidden package"
			case n > 2:
				more = fmt.Sprintf(" and %d more forbidden packages", n-1)
			}
			out = append(out, fmt.Sprintf("%s imports %s (%s)%s: %s",
				nearest[0], nearest[len(nearest)-1], strings.Join(nearest, " → "), more, r.Why))
		}
	}
	return out
}

// chain is one shortest import path from one package to another (breadth
// first over the Imports of module packages), module prefix trimmed.
func chain(pkgs map[string]pkg, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var path []string
			for p := cur; p != ""; p = prev[p] {
				path = append([]string{strings.TrimPrefix(p, module+"/")}, path...)
			}
			return path
		}
		for _, next := range pkgs[cur].Imports {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return []string{strings.TrimPrefix(from, module+"/"), "…", strings.TrimPrefix(to, module+"/")}
}

// TestImportRules: no module package depends on what its place in the
// architecture forbids.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the whole module's dependency graph (seconds); -short skips it")
	}
	for _, v := range violations(listPackages(t, "")) {
		t.Error(v)
	}
}

// TestImportRulesCatchADeliberateViolation adds, through a `go list`
// overlay (nothing on disk changes), one file per rule that imports a
// forbidden package, and expects the rules to name each one.
func TestImportRulesCatchADeliberateViolation(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the whole module's dependency graph (seconds); -short skips it")
	}
	root := repoRoot(t)
	planted := map[string]string{
		"internal/images":     "github.com/scaleplane/scaleplane/stacks",
		"internal/cluster":    "github.com/scaleplane/scaleplane/components/redis",
		"components/edge":     "github.com/scaleplane/scaleplane/apps/kit",
		"cmd/scaleplane":      "testing",
		"internal/realserver": "testing",
	}
	replace := map[string]string{}
	dir := t.TempDir()
	for pkgDir, imp := range planted {
		src := filepath.Join(dir, strings.ReplaceAll(pkgDir, "/", "_")+".go")
		name := filepath.Base(pkgDir)
		if pkgDir == "cmd/scaleplane" {
			name = "main"
		}
		code := fmt.Sprintf("package %s\n\nimport _ %q\n", name, imp)
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatalf("writing the planted file: %v", err)
		}
		replace[filepath.Join(root, pkgDir, "zz_violation.go")] = src
	}
	overlay, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatalf("encoding the overlay: %v", err)
	}
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatalf("writing the overlay: %v", err)
	}
	found := strings.Join(violations(listPackages(t, overlayFile)), "\n")
	for pkgDir, imp := range planted {
		want := fmt.Sprintf("%s imports %s", pkgDir, strings.TrimPrefix(imp, module+"/"))
		if !strings.Contains(found, want) {
			t.Errorf("the planted import in %s of %s is not reported; reported:\n%s", pkgDir, imp, found)
		}
	}
}
