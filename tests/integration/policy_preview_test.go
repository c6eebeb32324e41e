package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/pulumicli"
)

// minReplicasRule is the id of the policy rule that bounds HPA minReplicas
// (policies/rules/hpa_replicas.go).
const minReplicasRule = "hpa-replicas"

// redisShardsRule is the id of the stack rule that bounds the Redis
// Cluster's masters (policies/rules/redis_cluster_mode.go).
const redisShardsRule = "redis-cluster-mode"

// TestPolicyPackThroughRealCLI compiles the policy pack (policies/) and
// runs `preview` of the local stack through the real Pulumi CLI with it:
// the stack as written passes, and the same stack with gatewayMinReplicas
// set to 1 fails, naming the rule, and the stack as written fails when the
// stack rule redis-cluster-mode gets minRedisShards 10 in its own policy
// config (--policy-pack-config). Nothing is deployed (preview only).
// Skips, saying so, while the pack does not exist or does not build.
func TestPolicyPackThroughRealCLI(t *testing.T) {
	s := need(t)
	if _, err := os.Stat(filepath.Join(s.root, "policies", "PulumiPolicy.yaml")); err != nil {
		t.Skip("no policy pack in policies/ yet (the policy issue builds it)")
	}
	bin := filepath.Join(t.TempDir(), "scaleplane-policy")
	cmd := exec.Command("go", "build", "-o", bin, "./policies")
	cmd.Dir = s.root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("the policy pack does not build yet: %v\n%s", err, out)
	}
	ctx := context.Background()
	stack := uniqueName("it-policy")
	o := s.engine(stack, "sp-"+stack, nil)
	o.PolicyPacks = []string{bin}
	defer func() {
		assert.NoError(t, pulumicli.RemoveStack(ctx, o), "removing stack %s", stack)
	}()

	res, err := pulumicli.Preview(ctx, o)
	require.NoError(t, err, "the local stack passes its own policy pack:\n%s", res.Stdout)

	bad := o
	bad.Overrides = map[string]string{"namespace": "sp-" + stack, "gatewayMinReplicas": "1"}
	res, err = pulumicli.Preview(ctx, bad)
	require.Error(t, err, "gatewayMinReplicas: 1 fails the preview")
	assert.Contains(t, err.Error()+res.Stdout, minReplicasRule, "the failure names the rule")

	// Each policy reads its thresholds from its own config, the stack
	// rules too (a resource policy of the same name carries it to them).
	configured := o
	configured.PolicyPackConfigs = []string{filepath.Join(t.TempDir(), "policy-config.json")}
	require.NoError(t, os.WriteFile(configured.PolicyPackConfigs[0],
		[]byte(`{"`+redisShardsRule+`": {"minRedisShards": 10}}`), 0o644), "writing the policy config")
	res, err = pulumicli.Preview(ctx, configured)
	require.Error(t, err, "minRedisShards: 10 in %s's own config fails the stack as written", redisShardsRule)
	out := err.Error() + res.Stdout
	assert.Contains(t, out, redisShardsRule, "the failure names the stack rule whose config changed")
	assert.NotContains(t, out, minReplicasRule, "no other policy's verdict changes")
}
