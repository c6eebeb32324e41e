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

// TestPolicyPackThroughRealCLI compiles the policy pack (policies/) and
// runs `preview` of the local stack through the real Pulumi CLI with it:
// the stack as written passes, and the same stack with gatewayMinReplicas
// set to 1 fails, naming the rule. Nothing is deployed (preview only).
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
}
