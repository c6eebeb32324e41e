package analyzer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// TestAnalyzerInfo: the pack names every rule with its level, and each
// policy's config schema declares exactly the rule's thresholds.
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
	schemas := map[string][]string{}
	for _, pol := range p.Info.GetPolicies() {
		name := pol.GetName()
		if lvl, seen := got[name]; seen && lvl != pol.GetEnforcementLevel() {
			t.Errorf("policy %s is listed twice with levels %v and %v", name, lvl, pol.GetEnforcementLevel())
		}
		got[name] = pol.GetEnforcementLevel()
		var props []string
		for k := range pol.GetConfigSchema().GetProperties().GetFields() {
			props = append(props, k)
		}
		slices.Sort(props)
		if prev, seen := schemas[name]; seen && !slices.Equal(prev, props) {
			t.Errorf("policy %s is listed twice with config schemas %v and %v", name, prev, props)
		}
		schemas[name] = props
	}
	for _, r := range rules.All() {
		want := pulumirpc.EnforcementLevel_ADVISORY
		if r.Level == rules.Mandatory {
			want = pulumirpc.EnforcementLevel_MANDATORY
		}
		if lvl, ok := got[r.ID]; !ok || lvl != want {
			t.Errorf("rule %s: pack reports level %v (present %v), want %v", r.ID, lvl, ok, want)
		}
		own := slices.Sorted(slices.Values(r.Thresholds))
		if !slices.Equal(schemas[r.ID], own) {
			t.Errorf("rule %s: config schema declares %v, want its thresholds %v", r.ID, schemas[r.ID], own)
		}
	}
	if len(got) != len(rules.All()) {
		t.Errorf("pack has %d policy names %v, want one per rule (%d)", len(got), got, len(rules.All()))
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

// withRedis is the local stack plus a Redis of 3 pods in cluster mode:
// enough for one master per shard with the default minRedisShards 3 and
// minRedisReplicasPerShard 1 (6 pods) to fail, so redis-cluster-mode (a
// stack rule) shows which thresholds it was given.
func withRedis(t *testing.T) (*render.Graph, *stacks.Env) {
	t.Helper()
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
	return g, env
}

// checkStack is the Stack `scaleplane check` sends for env, with policies
// adjusted on top.
func checkStack(t *testing.T, env *stacks.Env, policies map[string]PolicyConfig) Stack {
	t.Helper()
	th, err := ThresholdsConfig(Thresholds(env))
	if err != nil {
		t.Fatalf("thresholds: %v", err)
	}
	return Stack{Name: env.Environment, Project: stacks.Project, Config: map[string]string{"scaleplane:environment": env.Environment}, Thresholds: th, Policies: policies}
}

// TestThresholdsReachStackRules: policyx gives stack policies no config;
// a value in the stack rule's own policy config must still reach it.
func TestThresholdsReachStackRules(t *testing.T) {
	g, env := withRedis(t)
	for _, tc := range []struct {
		config map[string]any
		want   bool
	}{{nil, true}, {map[string]any{"minRedisShards": 3}, true}, {map[string]any{"minRedisShards": 1}, false}} {
		ds := analyzeWith(t, g, checkStack(t, env, map[string]PolicyConfig{"redis-cluster-mode": {Properties: tc.config}}))
		if got := has(ds, "redis-cluster-mode", "StatefulSet"); got != tc.want {
			t.Errorf("redis-cluster-mode config %v with 3 Redis pods: violation %v, want %v (%v)", tc.config, got, tc.want, ds)
		}
	}
}

// TestPolicyConfigReachesOnlyItsRule: a non-default threshold in one
// policy's config changes that rule's verdict on the check path, and no
// other rule's.
func TestPolicyConfigReachesOnlyItsRule(t *testing.T) {
	g, env, err := render.Stack(moduleRoot, "local")
	if err != nil {
		t.Fatalf("render local: %v", err)
	}
	plain := analyzeWith(t, g, checkStack(t, env, nil))
	raised := analyzeWith(t, g, checkStack(t, env, map[string]PolicyConfig{"hpa-replicas": {Properties: map[string]any{"minReplicas": 50}}}))
	if n := count(plain, "hpa-replicas"); n != 0 {
		t.Fatalf("local stack with default thresholds: %d hpa-replicas violations, want 0 (%v)", n, plain)
	}
	if n := count(raised, "hpa-replicas"); n == 0 || !has(raised, "hpa-replicas", "below 50") {
		t.Errorf("hpa-replicas minReplicas 50: %d violations, want one per HPA saying \"below 50\" (%v)", n, raised)
	}
	if a, b := others(plain, "hpa-replicas"), others(raised, "hpa-replicas"); !slices.Equal(a, b) {
		t.Errorf("hpa-replicas' config changed other rules' verdicts:\nbefore %v\nafter  %v", a, b)
	}
}

// TestDisablingAPolicyKeepsOthersThresholds: what a rule sees comes from
// its own config alone, so disabling every other policy (the first in the
// pack's order among them, where a shared carrier would sit) changes
// neither the thresholds a resource rule nor a stack rule sees.
func TestDisablingAPolicyKeepsOthersThresholds(t *testing.T) {
	g, env := withRedis(t)
	kept := []string{"redis-cluster-mode", "hpa-replicas"}
	own := map[string]PolicyConfig{
		"redis-cluster-mode": {Properties: map[string]any{"minRedisShards": 1}},
		"hpa-replicas":       {Properties: map[string]any{"minReplicas": 50}},
	}
	allOthersOff := map[string]PolicyConfig{}
	for _, r := range rules.All() {
		allOthersOff[r.ID] = PolicyConfig{Disabled: true}
	}
	for _, id := range kept {
		allOthersOff[id] = own[id]
	}
	for name, policies := range map[string]map[string]PolicyConfig{"none disabled": own, "all others disabled": allOthersOff} {
		ds := analyzeWith(t, g, checkStack(t, env, policies))
		if has(ds, "redis-cluster-mode", "StatefulSet") {
			t.Errorf("%s: redis-cluster-mode flags 3 pods although its config says minRedisShards 1 (%v)", name, ds)
		}
		if !has(ds, "hpa-replicas", "below 50") {
			t.Errorf("%s: hpa-replicas does not apply its configured minReplicas 50 (%v)", name, ds)
		}
		for _, d := range ds {
			if !slices.Contains(kept, d.Policy) && policies[d.Policy].Disabled {
				t.Errorf("%s: disabled policy %s reported %s", name, d.Policy, d.Problem)
			}
		}
	}
}

// TestBadThresholdsFail: a misspelt threshold, or one the policy does not
// read, is an error, not a silent default.
func TestBadThresholdsFail(t *testing.T) {
	g, env := withRedis(t)
	for _, tc := range []struct {
		policy string
		config map[string]any
		want   string
	}{
		{"hpa-replicas", map[string]any{"minReplica": 2}, `threshold "minReplica": unknown`},
		{"hpa-replicas", map[string]any{"minRedisShards": 1}, `threshold "minRedisShards": unknown to policy hpa-replicas`},
		{"redis-cluster-mode", map[string]any{"minReplicas": 1}, `threshold "minReplicas": unknown to policy redis-cluster-mode`},
	} {
		p, err := Start(ctx(t), packBinary)
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		if err := p.Configure(ctx(t), checkStack(t, env, map[string]PolicyConfig{tc.policy: {Properties: tc.config}})); err != nil {
			t.Fatalf("configure: %v", err)
		}
		_, err = p.Analyze(ctx(t), g.Resources)
		_ = p.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("analyze with %s config %v: err %v, want one containing %q", tc.policy, tc.config, err, tc.want)
		}
	}
	p, err := Start(ctx(t), packBinary)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = p.Close() }()
	err = p.Configure(ctx(t), Stack{Name: "local", Project: stacks.Project, Thresholds: map[string]any{"minReplica": 2}})
	if err == nil || !strings.Contains(err.Error(), `threshold "minReplica": unknown`) {
		t.Errorf("configure with thresholds {minReplica: 2}: err %v, want one naming the unknown threshold", err)
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

// count is how many diagnostics the policy reported.
func count(ds []Diagnostic, policy string) int {
	n := 0
	for _, d := range ds {
		if d.Policy == policy {
			n++
		}
	}
	return n
}

// others lists the diagnostics of every policy but one, comparably.
func others(ds []Diagnostic, policy string) []string {
	var out []string
	for _, d := range ds {
		if d.Policy != policy {
			out = append(out, d.Policy+" "+d.URN+" "+d.Problem)
		}
	}
	slices.Sort(out)
	return out
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
