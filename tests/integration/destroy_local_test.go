package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/pulumicli"
)

const (
	// namespaceGoneRetries × namespaceGoneInterval bounds the wait for the
	// namespace's finalizers after destroy.
	namespaceGoneRetries  = 60
	namespaceGoneInterval = 2 * time.Second
)

// TestDestroyLeavesNothingAndSecondUpIsNoop deploys the local stack with
// the real engine into a unique namespace, runs `up` again and asserts it
// changes nothing (Pulumi's expect-no-changes: no diff), then destroys it
// and asserts the namespace and every object in it are gone, the stack's
// state holds no resource, and a preview would create everything again.
func TestDestroyLeavesNothingAndSecondUpIsNoop(t *testing.T) {
	s := need(t)
	stack := uniqueName("it-destroy")
	ns := "sp-" + stack
	o := s.engine(stack, ns, nil)
	ctx := context.Background()

	defer test_structure.RunTestStage(t, "teardown", func() {
		_, _ = pulumicli.Destroy(ctx, o) // no-op when validate destroyed it
		assert.NoError(t, pulumicli.RemoveStack(ctx, o), "removing stack %s", stack)
	})
	test_structure.RunTestStage(t, "deploy", func() {
		_, err := pulumicli.Up(ctx, o)
		require.NoError(t, err, "first pulumi up")
	})
	test_structure.RunTestStage(t, "validate", func() {
		again := o
		again.ExpectNoChanges = true
		begin := time.Now()
		res, err := pulumicli.Up(ctx, again)
		require.NoError(t, err, "a second up with nothing changed has no diff")
		t.Logf("second up: %s, changes %v", time.Since(begin).Round(time.Second), res.Changes)
		for op, n := range res.Changes {
			assert.True(t, op == "same" || n == 0, "second up only keeps resources (%s: %d)", op, n)
		}

		begin = time.Now()
		d, err := pulumicli.Destroy(ctx, o)
		require.NoError(t, err, "pulumi destroy")
		t.Logf("destroy: %s, changes %v", time.Since(begin).Round(time.Second), d.Changes)
		assert.Greater(t, d.Changes["delete"], 0, "destroy deleted resources")

		_, err = retry.DoWithRetryContextE(t, ctx, "namespace "+ns+" gone", namespaceGoneRetries, namespaceGoneInterval, func() (string, error) {
			out, err := kubectlOutput(t, s, "get", "namespace", ns, "--ignore-not-found", "-o", "name")
			if err != nil {
				return "", err
			}
			if strings.TrimSpace(out) != "" {
				return "", fmt.Errorf("namespace still exists: %s", out)
			}
			return "", nil
		})
		require.NoError(t, err, "the stack's namespace is deleted")
		out, err := kubectlOutput(t, s, "get", "all,configmaps,secrets,networkpolicies,poddisruptionbudgets,hpa", "-n", ns, "--ignore-not-found", "-o", "name")
		require.NoError(t, err, "listing what is left in %s", ns)
		assert.Empty(t, strings.TrimSpace(out), "nothing is left in the namespace")

		p, err := pulumicli.Preview(ctx, o)
		require.NoError(t, err, "preview after destroy")
		assert.Greater(t, p.Changes["create"], 0, "after destroy the state is empty: a preview would create everything again")
	})
}

// kubectlOutput runs kubectl against the suite's cluster without a
// namespace and returns its output.
func kubectlOutput(t *testing.T, s *suite, args ...string) (string, error) {
	return k8s.RunKubectlAndGetOutputContextE(t, context.Background(), s.kubectlOptions(""), args...)
}
