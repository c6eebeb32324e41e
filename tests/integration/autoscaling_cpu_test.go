package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// autoscaleMin/Max are the burner HPA's replica bounds.
	autoscaleMin = 1
	autoscaleMax = 3
	// autoscaleScaleDownWindow is the HPA's scale-down stabilization
	// window: short, so the suite sees the scale-in within minutes.
	autoscaleScaleDownWindow = 30
	// scaleOutRetries × scalePollInterval bounds the wait for the scale-out
	// (metrics-server resolution 15 s + HPA sync 10 s + pod start).
	scaleOutRetries   = 48
	scalePollInterval = 5 * time.Second
	// scaleInRetries × scalePollInterval bounds the wait for the scale-in
	// after the load stops (window + metrics lag).
	scaleInRetries = 48
	// availableRetries × availableInterval bounds a Deployment's first
	// rollout.
	availableRetries  = 60
	availableInterval = 2 * time.Second
	// loadWorkers × (80 ms of CPU per request) keeps several cores' worth
	// of demand on pods requesting 50m each.
	loadWorkers = 4
)

// TestAutoscalingOnRealMetrics deploys the suites' burner workload (a
// restricted-profile Deployment requesting 50m CPU, with a CPU HPA
// 1→3 at 70 %) on the embedded node, drives real CPU load through its
// Service, and asserts that the HPA, fed by metrics-server from the
// kubelet's real usage numbers, scales out while the load lasts and back in
// after the stabilization window once it stops. It records how long each
// took (logged; see docs/local.md).
func TestAutoscalingOnRealMetrics(t *testing.T) {
	s := needNode(t)
	ns := uniqueName("it-autoscale")
	o := s.kubectlOptions(ns)
	manifest := burnerManifest(ns, "v1", autoscaleMin, autoscaleMax, autoscaleScaleDownWindow)
	ctx := context.Background()

	defer test_structure.RunTestStage(t, "teardown", func() {
		assert.NoError(t, k8s.KubectlDeleteFromStringContextE(t, ctx, o, manifest), "deleting namespace %s", ns)
	})
	test_structure.RunTestStage(t, "deploy", func() {
		k8s.KubectlApplyFromStringContext(t, ctx, o, manifest)
		k8s.WaitUntilDeploymentAvailableContext(t, ctx, o, "burner", availableRetries, availableInterval)
	})
	test_structure.RunTestStage(t, "validate", func() {
		base := serviceURL(t, o, "burner")
		waitServiceAnswers(t, base+"/readyz")
		url := base + "/work?ms=80"
		loadCtx, stop := context.WithCancel(ctx)
		begin := time.Now()
		res := load(loadCtx, url, loadWorkers, 0)
		_, err := retry.DoWithRetryContextE(t, ctx, "HPA scales burner out", scaleOutRetries, scalePollInterval, func() (string, error) {
			spec, ready := replicas(t, o, "burner")
			cpu := kubectlJSONPath(t, o, "get", "hpa", "burner", "-o", `jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}`)
			if spec <= autoscaleMin || ready < 2 {
				return "", fmt.Errorf("replicas %d (ready %d), CPU %s%%", spec, ready, cpu)
			}
			return fmt.Sprint(spec), nil
		})
		scaleOut := time.Since(begin)
		stop()
		res.wait()
		require.NoError(t, err, "the HPA adds pods under real CPU load")
		t.Logf("scale-out: %s after load started (%d requests served, %d failed)", scaleOut.Round(time.Second), res.ok.Load(), res.failed.Load())
		assert.Greater(t, res.ok.Load(), int64(0), "the load reached the pods through the Service")

		idle := time.Now()
		_, err = retry.DoWithRetryContextE(t, ctx, "HPA scales burner in", scaleInRetries, scalePollInterval, func() (string, error) {
			spec, _ := replicas(t, o, "burner")
			if spec != autoscaleMin {
				return "", fmt.Errorf("still %d replicas", spec)
			}
			return "", nil
		})
		require.NoError(t, err, "the HPA removes pods once the load stops")
		scaleIn := time.Since(idle)
		assert.GreaterOrEqual(t, scaleIn, time.Duration(autoscaleScaleDownWindow)*time.Second, "scale-in waits for the stabilization window")
		t.Logf("scale-in: %s after load stopped (window %ds)", scaleIn.Round(time.Second), autoscaleScaleDownWindow)
	})
}
