package analyzer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/policies/rules"
	"github.com/scaleplane/scaleplane/stacks"
)

// packBinary is built once per test process by TestMain.
var packBinary string

const moduleRoot = "../.."

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scaleplane-policy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	packBinary, err = Build(ctx, moduleRoot, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// TestShippedStacksPass: every stack file passes every mandatory rule
// through the gRPC path, as `scaleplane check` runs it.
func TestShippedStacksPass(t *testing.T) {
	names, err := stacks.StackNames(moduleRoot)
	if err != nil || len(names) < 4 {
		t.Fatalf("stack names: %v %v; want at least local, dev, staging, prod", names, err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			values, err := stacks.ReadStackConfig(moduleRoot, name)
			if err != nil {
				t.Fatalf("read stack %s: %v", name, err)
			}
			g, env, err := render.Values(name, values)
			if err != nil {
				t.Fatalf("render stack %s: %v", name, err)
			}
			ds, err := Check(ctx(t), packBinary, g, env, values)
			if err != nil {
				t.Fatalf("check stack %s: %v", name, err)
			}
			for _, d := range ds {
				if d.Mandatory {
					t.Errorf("stack %s: mandatory %s on %s: %s", name, d.Policy, d.URN, d.Problem)
				}
			}
		})
	}
}

// TestAnalyzerInfo: the pack names every rule with its level, and the
// thresholds carrier.
func TestAnalyzerInfo(t *testing.T) {
	p, err := Start(ctx(t), packBinary)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = p.Close() }()
	if err := p.Configure(ctx(t), Stack{Name: "dev", Project: stacks.Project, Config: map[string]string{"scaleplane:environment": "dev"}}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	got := map[string]pulumirpc.EnforcementLevel{}
	for _, pol := range p.Info.GetPolicies() {
		got[pol.GetName()] = pol.GetEnforcementLevel()
	}
	if _, ok := got[ThresholdsPolicy]; !ok {
		t.Errorf("pack policies %v lack %q", got, ThresholdsPolicy)
	}
	for _, r := range rules.All() {
		want := pulumirpc.EnforcementLevel_ADVISORY
		if r.Level == rules.Mandatory {
			want = pulumirpc.EnforcementLevel_MANDATORY
		}
		if lvl, ok := got[r.ID]; !ok || lvl != want {
			t.Errorf("rule %s: pack reports level %v (present %v), want %v", r.ID, lvl, ok, want)
		}
	}
	if len(got) != len(rules.All())+1 {
		t.Errorf("pack has %d policies, want %d rules + thresholds", len(got), len(rules.All()))
	}
}

// TestEnvironmentFromStackConfig: without thresholds config (as with the
// real CLI and no --policy-pack-config) the pack picks its defaults from
// the stack's scaleplane:environment.
func TestEnvironmentFromStackConfig(t *testing.T) {
	values, err := stacks.ReadStackConfig(moduleRoot, "prod")
	if err != nil {
		t.Fatalf("read prod: %v", err)
	}
	values["usersMinReplicas"] = "2"
	g, _, err := render.Values("prod", values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	for env, wantViolation := range map[string]bool{"prod": true, "staging": false} {
		cfg := StackConfig(values)
		cfg["scaleplane:environment"] = env
		ds := analyzeWith(t, g, Stack{Name: "prod", Project: stacks.Project, Config: cfg})
		if got := has(ds, "hpa-replicas", "users"); got != wantViolation {
			t.Errorf("environment %s, usersMinReplicas 2: hpa-replicas violation %v, want %v (%v)", env, got, wantViolation, ds)
		}
	}
}

// TestThresholdsReachStackRules: policyx gives stack policies no config;
// the thresholds carrier must still make a configured value reach them.
func TestThresholdsReachStackRules(t *testing.T) {
	g, env, err := render.Stack(moduleRoot, "local")
	if err != nil {
		t.Fatalf("render local: %v", err)
	}
	ns := env.Namespace
	g.Resources = append(g.Resources,
		render.Resource{URN: "urn:pulumi:local::scaleplane::kubernetes:core/v1:ConfigMap::redis-config", Type: "kubernetes:core/v1:ConfigMap", Name: "redis-config", Custom: true,
			Inputs: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "redis", "namespace": ns},
				"data": map[string]any{"redis.conf": "cluster-enabled yes\nmaxmemory 100mb\n"}}},
		render.Resource{URN: "urn:pulumi:local::scaleplane::kubernetes:apps/v1:StatefulSet::redis", Type: "kubernetes:apps/v1:StatefulSet", Name: "redis", Custom: true,
			Inputs: map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": map[string]any{"name": "redis", "namespace": ns},
				"spec": map[string]any{"replicas": 3, "template": map[string]any{"spec": map[string]any{
					"volumes": []any{map[string]any{"name": "config", "configMap": map[string]any{"name": "redis"}}}}}}}},
	)
	for _, tc := range []struct {
		shards int
		want   bool
	}{{3, true}, {1, false}} {
		th := Thresholds(env)
		th.MinRedisShards = tc.shards
		cfg, err := ThresholdsConfig(th)
		if err != nil {
			t.Fatalf("thresholds: %v", err)
		}
		ds := analyzeWith(t, g, Stack{Name: "local", Project: stacks.Project, Config: map[string]string{"scaleplane:environment": "local"}, Thresholds: cfg})
		if got := has(ds, "redis-cluster-mode", "StatefulSet"); got != tc.want {
			t.Errorf("minRedisShards %d with 3 Redis pods: redis-cluster-mode violation %v, want %v (%v)", tc.shards, got, tc.want, ds)
		}
	}
}

// TestBadThresholdsFail: a misspelt threshold is an error, not a silent default.
func TestBadThresholdsFail(t *testing.T) {
	g, _, err := render.Stack(moduleRoot, "local")
	if err != nil {
		t.Fatalf("render local: %v", err)
	}
	p, err := Start(ctx(t), packBinary)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = p.Close() }()
	if err := p.Configure(ctx(t), Stack{Name: "local", Project: stacks.Project, Thresholds: map[string]any{"minReplica": 2}}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	_, err = p.Analyze(ctx(t), g.Resources)
	if err == nil || !strings.Contains(err.Error(), `threshold "minReplica": unknown`) {
		t.Errorf("analyze with a misspelt threshold: err %v, want one naming the unknown threshold", err)
	}
}

// TestStartRefusesNonPlugin: a binary that does not print a port is reported, not waited on forever.
func TestStartRefusesNonPlugin(t *testing.T) {
	echo := filepath.Join("/bin", "echo")
	if _, err := os.Stat(echo); err != nil {
		t.Skipf("no %s to stand in for a broken plugin: %v", echo, err)
	}
	p, err := Start(ctx(t), echo)
	if err == nil {
		_ = p.Close()
		t.Fatal("Start(/bin/echo) succeeded; want an error about the missing port")
	}
	if !strings.Contains(err.Error(), "instead of a port") {
		t.Errorf("Start(/bin/echo): %v; want it to say no port was printed", err)
	}
}

func analyzeWith(t *testing.T, g *render.Graph, s Stack) []Diagnostic {
	t.Helper()
	p, err := Start(ctx(t), packBinary)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = p.Close() }()
	if err := p.Configure(ctx(t), s); err != nil {
		t.Fatalf("configure: %v", err)
	}
	ds, err := p.Analyze(ctx(t), g.Resources)
	if err != nil {
		t.Fatalf("analyze: %v", err)
	}
	return ds
}

// has reports a mandatory diagnostic of the policy whose problem mentions fragment.
func has(ds []Diagnostic, policy, fragment string) bool {
	for _, d := range ds {
		if d.Policy == policy && d.Mandatory && strings.Contains(d.Problem, fragment) && d.Remediation != "" {
			return true
		}
	}
	return false
}
