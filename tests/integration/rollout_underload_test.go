package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// rolloutReplicas is the burner's size during the rolling update.
	rolloutReplicas = 3
	// rolloutWait bounds the rolling update itself.
	rolloutWait = 3 * time.Minute
	// rolloutLoadWorkers send light requests throughout the update.
	rolloutLoadWorkers = 4
	// rolloutRequestPause spaces each worker's requests.
	rolloutRequestPause = 20 * time.Millisecond
	// readyPollInterval is how often the ready count is sampled.
	readyPollInterval = 250 * time.Millisecond
	// pdbMinAvailable is the burner PDB's minAvailable.
	pdbMinAvailable = 1
	// newVersionWait bounds how long the load continues after the rollout
	// until the new version is seen answering.
	newVersionWait = 30 * time.Second
	// serviceAnswersRetries × serviceAnswersInterval bounds the wait for a
	// new Service's rules.
	serviceAnswersRetries  = 60
	serviceAnswersInterval = 500 * time.Millisecond
)

// waitServiceAnswers waits until url answers 200 five times in a row.
func waitServiceAnswers(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	ok := 0
	_, err := retry.DoWithRetryContextE(t, context.Background(), "Service answers "+url, serviceAnswersRetries, serviceAnswersInterval, func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			ok = 0
			return "", err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			ok = 0
			return "", fmt.Errorf("%s", resp.Status)
		}
		if ok++; ok < 5 {
			return "", fmt.Errorf("answered %d times in a row", ok)
		}
		return "", nil
	})
	require.NoError(t, err, "the Service answers through its cluster IP")
}

// TestRollingUpdateUnderLoad deploys the burner (3 replicas, maxUnavailable
// 0, preStop sleep, readiness flip and drain on SIGTERM, a PDB with
// minAvailable 1) on the embedded node, keeps requests flowing through its
// Service, changes its version (a new pod template, as an image change
// does) and asserts that the rollout completes, no request fails, the
// ready count never drops below the PDB's minAvailable, and the new version
// answers afterwards.
func TestRollingUpdateUnderLoad(t *testing.T) {
	s := needNode(t)
	ns := uniqueName("it-rollout")
	o := s.kubectlOptions(ns)
	v1 := burnerManifest(ns, "v1", rolloutReplicas, 0, 0)
	v2 := burnerManifest(ns, "v2", rolloutReplicas, 0, 0)
	ctx := context.Background()

	defer test_structure.RunTestStage(t, "teardown", func() {
		assert.NoError(t, k8s.KubectlDeleteFromStringContextE(t, ctx, o, v2), "deleting namespace %s", ns)
	})
	test_structure.RunTestStage(t, "deploy", func() {
		k8s.KubectlApplyFromStringContext(t, ctx, o, v1)
		k8s.WaitUntilDeploymentAvailableContext(t, ctx, o, "burner", availableRetries, availableInterval)
	})
	test_structure.RunTestStage(t, "validate", func() {
		base := serviceURL(t, o, "burner")
		// kube-proxy programs a new Service's rules some seconds after
		// the Deployment is available on a busy node: wait until the
		// Service answers, so only the update itself is measured.
		waitServiceAnswers(t, base+"/readyz")
		loadCtx, stop := context.WithCancel(ctx)
		res := load(loadCtx, base+"/work?ms=1", rolloutLoadWorkers, rolloutRequestPause)
		time.Sleep(2 * time.Second) // traffic established before the change

		minReady := rolloutReplicas
		sampleCtx, stopSampling := context.WithCancel(ctx)
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for sampleCtx.Err() == nil {
				if _, ready := replicas(t, o, "burner"); ready < minReady {
					minReady = ready
				}
				time.Sleep(readyPollInterval)
			}
		}()

		begin := time.Now()
		t.Logf("rollout starts %s after the load", begin.Sub(res.start).Round(10*time.Millisecond))
		k8s.KubectlApplyFromStringContext(t, ctx, o, v2)
		_, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, o, "rollout", "status", "deployment/burner", "--timeout", rolloutWait.String())
		took := time.Since(begin)
		// Requests keep flowing until the new version answers (the old
		// pods' endpoints leave kube-proxy's rules with some delay), and a
		// little beyond.
		for deadline := time.Now().Add(newVersionWait); time.Now().Before(deadline) && res.seen("v2") == 0; {
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		stop()
		res.wait()
		stopSampling()
		<-sampled

		require.NoError(t, err, "the rolling update completes")
		t.Logf("rolling update: %s; %d requests ok, %d failed; versions seen %v; fewest ready pods %d",
			took.Round(time.Second), res.ok.Load(), res.failed.Load(), res.versions, minReady)
		assert.Zero(t, res.failed.Load(), "no request fails during the rolling update: %v", res.errors)
		assert.Greater(t, res.versions["v1"], int64(0), "the old version served during the update")
		assert.Greater(t, res.versions["v2"], int64(0), "the new version serves after it")
		assert.GreaterOrEqual(t, minReady, pdbMinAvailable, "the ready pods never drop below the PDB's minAvailable")
	})
}
