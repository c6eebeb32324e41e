// Package policy holds the end-to-end policy tests: broken variants of
// the shipped stacks, each of which the compiled pack must reject over the
// Analyzer gRPC protocol with the expected rule id, and the `scaleplane
// check` command's exit codes.
package policy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/internal/analyzer"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/policies/rules"
	"github.com/scaleplane/scaleplane/stacks"
)

const moduleRoot = "../.."

// packBinary and checkBinary are built once per test process by TestMain.
var packBinary, checkBinary string

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "scaleplane-policy-corpus-")
	if err != nil {
		return 0, fmt.Errorf("temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if packBinary, err = analyzer.Build(ctx, moduleRoot, dir); err != nil {
		return 0, err
	}
	checkBinary = filepath.Join(dir, "scaleplane")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", checkBinary, "./cmd/scaleplane")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build scaleplane: %w\n%s", err, out)
	}
	return m.Run(), nil
}

// variant is one entry of testdata/variants.yaml.
type variant struct {
	Name   string            `json:"name"`
	Stack  string            `json:"stack"`
	Config map[string]string `json:"config"`
	Mutate string            `json:"mutate"`
	Want   string            `json:"want"`
	// Level is the wanted violation's level: mandatory unless it says
	// advisory (a rule the shipped stacks still break, see its file).
	Level string `json:"level"`
}

func loadVariants(t *testing.T) []variant {
	t.Helper()
	raw, err := os.ReadFile("testdata/variants.yaml")
	if err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	var vs []variant
	if err := yaml.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("parse corpus: %v", err)
	}
	return vs
}

// TestCorpus: every broken variant is rejected by its expected rule, at
// the rule's level, through the compiled pack and the gRPC protocol; and
// the stack it starts from, as shipped, does not already break that rule,
// so no variant passes on a violation its mutation did not cause.
func TestCorpus(t *testing.T) {
	vs := loadVariants(t)
	if len(vs) < 30 {
		t.Errorf("corpus has %d variants; the issue asks for at least 30", len(vs))
	}
	seen := map[string]bool{}
	covered := map[string]bool{}
	shipped := map[string][]analyzer.Diagnostic{}
	for _, v := range vs {
		if seen[v.Name] {
			t.Errorf("variant %s: duplicate name", v.Name)
		}
		seen[v.Name] = true
		rule := rules.ByID(v.Want)
		if rule == nil {
			t.Errorf("variant %s: want %q is not a rule id", v.Name, v.Want)
			continue
		}
		wantMandatory := v.Level != string(rules.Advisory)
		if wantMandatory != (rule.Level == rules.Mandatory) {
			t.Errorf("variant %s: level %q does not match rule %s's level %s", v.Name, v.Level, rule.ID, rule.Level)
			continue
		}
		covered[v.Want] = true
		t.Run(v.Name, func(t *testing.T) {
			base, ok := shipped[v.Stack]
			if !ok {
				base = analyze(t, v.Stack, nil, "")
				shipped[v.Stack] = base
			}
			for _, d := range base {
				if d.Policy == v.Want {
					t.Fatalf("variant %s: stack %s as shipped already breaks %s (%s: %s); the variant would pass without its mutation", v.Name, v.Stack, v.Want, d.URN, d.Problem)
				}
			}
			var got []string
			for _, d := range analyze(t, v.Stack, v.Config, v.Mutate) {
				if d.Policy == v.Want && d.Mandatory == wantMandatory && d.URN != "" && d.Remediation != "" {
					return
				}
				got = append(got, d.Policy)
			}
			t.Errorf("variant %s (stack %s, config %v, mutation %q): want a %s %s violation with URN and remediation, got %v",
				v.Name, v.Stack, v.Config, v.Mutate, rule.Level, v.Want, got)
		})
	}
	for _, r := range rules.All() {
		if !covered[r.ID] && (r.Level == rules.Mandatory || r.ID == "image-registry") {
			t.Errorf("rule %s: no corpus variant expects it", r.ID)
		}
	}
}

// analyze renders a stack with config overrides and a named mutation and
// returns what the compiled pack reports over gRPC.
func analyze(t *testing.T, stack string, config map[string]string, mutate string) []analyzer.Diagnostic {
	t.Helper()
	values, err := stacks.ReadStackConfig(moduleRoot, stack)
	if err != nil {
		t.Fatalf("read stack %s: %v", stack, err)
	}
	for k, val := range config {
		values[k] = val
	}
	g, env, err := render.Values(stack, values)
	if err != nil {
		t.Fatalf("render %s with %v: %v", stack, config, err)
	}
	if mutate != "" {
		mut, ok := mutations[mutate]
		if !ok {
			t.Fatalf("mutation %q is not defined in mutations_test.go", mutate)
		}
		if err := mut(g); err != nil {
			t.Fatalf("mutation %s: %v", mutate, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ds, err := analyzer.Check(ctx, packBinary, g, env, values)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return ds
}

// TestCheckCommand: `scaleplane check` exits 0 on a shipped stack, 1 on
// a stack with a mandatory violation (naming the rule and the URN) and 2
// on an unknown stack.
func TestCheckCommand(t *testing.T) {
	project := t.TempDir()
	if err := os.MkdirAll(filepath.Join(project, stacks.ConfigDir), 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	prod, err := os.ReadFile(filepath.Join(moduleRoot, stacks.ConfigDir, "Pulumi.prod.yaml"))
	if err != nil {
		t.Fatalf("read prod stack: %v", err)
	}
	broken := strings.Replace(string(prod), "scaleplane:usersMinReplicas: 3", "scaleplane:usersMinReplicas: 2", 1)
	if broken == string(prod) {
		t.Fatal("Pulumi.prod.yaml no longer sets usersMinReplicas: 3; update the test's mutation")
	}
	if err := os.WriteFile(filepath.Join(project, stacks.ConfigDir, "Pulumi.broken.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatalf("write broken stack: %v", err)
	}
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"--stack", "prod", "--project-dir", moduleRoot}, 0, "0 mandatory"},
		{[]string{"--stack", "broken", "--project-dir", project}, 1, "hpa-replicas [mandatory]"},
		{[]string{"--stack", "nope", "--project-dir", moduleRoot}, 2, "unknown stack"},
	} {
		cmd := exec.Command(checkBinary, append([]string{"check", "--pack", packBinary}, tc.args...)...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(string(out), tc.contains) {
			t.Errorf("scaleplane check %v: exit %d, want %d, and output containing %q:\n%s", tc.args, code, tc.code, tc.contains, out)
		}
		if tc.code == 1 && !strings.Contains(string(out), "users-hpa") {
			t.Errorf("scaleplane check %v: output does not name the offending resource's URN:\n%s", tc.args, out)
		}
	}
}
