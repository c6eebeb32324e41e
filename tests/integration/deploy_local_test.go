package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/scaleplane/scaleplane/components/observability"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scaleplane/scaleplane/internal/pulumicli"
	"github.com/scaleplane/scaleplane/internal/rollout"
)

const (
	// rolloutTimeout bounds the wait for the expected workloads.
	rolloutTimeout = 4 * time.Minute
	// hpaMetricsRetries × hpaMetricsInterval bounds the wait for an HPA's
	// first metrics: metrics-server scrapes every 15 s and the HPA
	// controller syncs every 10 s.
	hpaMetricsRetries  = 24
	hpaMetricsInterval = 5 * time.Second
	// endpointsRetries × endpointsInterval bounds the wait for a ready
	// pod's address to appear in its Service's endpoints.
	endpointsRetries  = 20
	endpointsInterval = 3 * time.Second
	// redisFormRetries × redisFormInterval bounds the wait for the
	// formation Job to join the six Redis pods into one cluster.
	redisFormRetries  = 60
	redisFormInterval = 3 * time.Second
	// jaegerRetries × jaegerInterval bounds the wait for Jaeger's query API
	// to answer through its Service.
	jaegerRetries  = 20
	jaegerInterval = 3 * time.Second
)

// TestDeployLocalStack deploys the local stack with the real `pulumi up`
// (Automation API, real CLI and kubernetes provider) into a unique
// namespace under a unique stack name, then asserts what is real:
//   - every Deployment and StatefulSet whose prerequisites exist (images on
//     the node, the Secrets it references) becomes available; each other one
//     is blocked for exactly a named reason, and a service image built by
//     `images build` is never among those reasons;
//   - every HPA of an available workload reports current CPU metrics;
//   - every Service of an available workload has ready endpoints;
//   - the Redis pods (Debian's redis-server, an image `images build` makes)
//     form a Redis Cluster: cluster_state:ok with every slot assigned;
//   - Jaeger (built from the module proxy) answers its query API through
//     its Service;
//   - a pod that breaks the restricted profile is rejected by the API server;
//   - each Deployment carries the skipAwait annotation the program's resource
//     transform adds in the real engine;
//   - the request path, the nginx edge as outside clients see it (HTTPS
//     with the stack's CA, per-client rate limits: checkEdgeFromOutside)
//     and the failure scenarios.
//
// Stages (SKIP_deploy, SKIP_validate, SKIP_teardown) let validation re-run
// against a deployment kept from an earlier run (set SCALEPLANE_IT_STACK to
// its stack name).
func TestDeployLocalStack(t *testing.T) {
	s := need(t)
	stack := uniqueName("it-deploy")
	if v := envOr("SCALEPLANE_IT_STACK", ""); v != "" {
		stack = v
	}
	ns := "sp-" + stack
	o := s.engine(stack, ns, nil)
	ctx := context.Background()

	defer test_structure.RunTestStage(t, "teardown", func() {
		_, err := pulumicli.Destroy(ctx, o)
		assert.NoError(t, err, "pulumi destroy of %s", stack)
		assert.NoError(t, pulumicli.RemoveStack(ctx, o), "removing stack %s", stack)
	})

	var res pulumicli.Result
	test_structure.RunTestStage(t, "deploy", func() {
		begin := time.Now()
		var err error
		res, err = pulumicli.Up(ctx, o)
		require.NoError(t, err, "pulumi up of the local stack")
		t.Logf("pulumi up of local: %s, %d resource kinds, changes %v", time.Since(begin).Round(time.Second), len(res.Kinds), res.Changes)
		assert.Greater(t, res.Changes["create"], 0, "the first up creates resources")
		assert.Equal(t, ns, res.Outputs["namespace"], "the stack exports its namespace")
		assert.Equal(t, float64(1), res.Outputs["kafkaReplication"], "local runs one Kafka node, and the summary says so")
	})

	test_structure.RunTestStage(t, "validate", func() {
		workloads := res.Workloads
		if len(workloads) == 0 {
			workloads = listWorkloads(t, s, ns)
		}
		require.NotEmpty(t, workloads, "the local stack declares workloads")
		states, err := s.rollouts().Wait(ctx, workloads, rolloutTimeout, testWriter{})
		require.NoError(t, err, "every workload whose prerequisites exist becomes available")

		built := map[string]bool{}
		for _, svc := range s.services {
			built[svc.Ref] = true
		}
		// `images build` makes every image of local: every workload starts.
		var available []rollout.State
		for _, st := range states {
			if !assert.True(t, st.Expected(), "%s has everything it needs on the node (blocked by: %s)", st, strings.Join(st.Blockers, "; ")) {
				for _, b := range st.Blockers {
					for ref := range built {
						assert.NotContains(t, b, ref, "%s: an image `images build` loaded is on the node", st)
					}
				}
				continue
			}
			assert.True(t, st.Done(), "%s is rolled out (%d/%d)", st, st.Available, st.Desired)
			available = append(available, st)
		}
		t.Logf("%d of %d workloads available", len(available), len(states))

		kopts := s.kubectlOptions(ns)
		for _, st := range available {
			// The observability namespace's one Deployment is
			// kube-state-metrics: a singleton by design (one instance owns
			// the cluster's object metrics), selected by no Service, so the
			// policy pack does not require it to autoscale.
			if st.Kind != "Deployment" || st.Namespace != ns {
				continue
			}
			assertHPAReportsMetrics(t, kopts, st.Name)
			// The real engine ran the program's resource transform: the
			// provider was told not to wait, scaleplane waited instead.
			assert.Equal(t, "true", kubectlJSONPath(t, kopts, "get", "deployment", st.Name, "-o", `jsonpath={.metadata.annotations.pulumi\.com/skipAwait}`),
				"deployment %s carries the skipAwait annotation the resource transform adds", st.Name)
		}
		assertServicesOfAvailableWorkloadsHaveEndpoints(t, kopts, available)
		assertRedisClusterFormed(t, kopts, available)
		assertJaegerAnswers(t, s.kubectlOptions(ns+"-observability"), available)
		assertRestrictedRejects(t, kopts)
		if len(available) != len(states) {
			t.Fatalf("the request path and failure scenarios need the whole stack: %d of %d workloads available", len(available), len(states))
		}
		c := newStackClient(t, s, ns)
		assertTopicsJobCompleted(t, kopts)
		assertReplicaStreams(t, c)
		assertPrometheusTargetsUp(t, c)
		// The failure scenarios run one after another on the one
		// deployment, each after the stack has recovered from the last.
		for _, sc := range []struct {
			name string
			run  func(*testing.T, *stackClient)
		}{
			{"registration path", checkRegistrationPath},
			{"edge from outside", func(t *testing.T, c *stackClient) {
				checkEdgeFromOutside(t, newEdgeAccess(t, c, "nginx", c.domain, c.caPEM), newOutsideClients(t, 3))
			}},
			{"postgres primary killed", checkPostgresPrimaryKilled},
			{"redis master deleted", checkRedisMasterDeleted},
			{"kafka restarted", checkKafkaRestarted},
		} {
			t.Run(sc.name, func(t *testing.T) {
				c := *c
				c.t = t
				sc.run(t, &c)
			})
		}
	})
}

// assertRedisClusterFormed waits, when the Redis StatefulSet runs, for
// its formation Job to have joined the pods: redis-0 reports
// cluster_state:ok, all 16384 slots assigned and every pod known.
func assertRedisClusterFormed(t *testing.T, o *k8s.KubectlOptions, available []rollout.State) {
	t.Helper()
	var nodes int
	for _, st := range available {
		if st.Kind == "StatefulSet" && st.Name == "redis" {
			nodes = st.Desired
		}
	}
	if nodes == 0 {
		t.Log("the Redis StatefulSet is not running: no cluster to check")
		return
	}
	info, err := retry.DoWithRetryContextE(t, t.Context(), "the Redis pods form a cluster", redisFormRetries, redisFormInterval, func() (string, error) {
		out, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), o, "exec", "redis-0", "--", "sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli cluster info`)
		if err != nil {
			return "", err
		}
		if !strings.Contains(out, "cluster_state:ok") {
			return "", fmt.Errorf("not formed yet: %s", firstLines(out, 2))
		}
		return out, nil
	})
	require.NoError(t, err, "the formation Job joins the Redis pods into one cluster")
	assert.Contains(t, info, "cluster_slots_assigned:16384", "every hash slot has a master")
	assert.Contains(t, info, fmt.Sprintf("cluster_known_nodes:%d", nodes), "every Redis pod is a cluster node")
	t.Logf("Redis Cluster formed: %s", firstLines(info, 3))
}

// assertJaegerAnswers asks Jaeger's query API, through the Service's
// cluster IP (routed to this machine by kube-proxy), for the services it
// knows: a JSON answer means the query side serves over its storage.
func assertJaegerAnswers(t *testing.T, o *k8s.KubectlOptions, available []rollout.State) {
	t.Helper()
	running := slices.ContainsFunc(available, func(st rollout.State) bool { return st.Kind == "StatefulSet" && st.Name == "jaeger" })
	if !running {
		t.Log("Jaeger is not running: no query API to check")
		return
	}
	ip, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), o, "get", "service", "jaeger", "-o", "jsonpath={.spec.clusterIP}")
	require.NoError(t, err, "Jaeger's Service")
	url := fmt.Sprintf("http://%s:%d/api/services", ip, observability.JaegerQueryHTTPPort)
	body, err := retry.DoWithRetryContextE(t, t.Context(), "Jaeger answers "+url, jaegerRetries, jaegerInterval, func() (string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %d %s", url, resp.StatusCode, firstLines(string(b), 1))
		}
		return string(b), nil
	})
	require.NoError(t, err, "Jaeger's query API answers through its Service")
	assert.Contains(t, body, `"data"`, "the query API answers its JSON envelope")
	t.Logf("Jaeger answers %s: %s", url, firstLines(body, 1))
}

// firstLines keeps the first n lines of s, joined by "; ".
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\r", "")), "\n")
	return strings.Join(lines[:min(n, len(lines))], "; ")
}

// listWorkloads finds the stack's workloads from the cluster (when the
// deploy stage was skipped).
func listWorkloads(t *testing.T, s *suite, ns string) []rollout.Workload {
	var out []rollout.Workload
	for _, d := range k8s.ListDeploymentsContext(t, context.Background(), s.kubectlOptions(ns), metav1.ListOptions{}) {
		out = append(out, rollout.Workload{Kind: "Deployment", Namespace: ns, Name: d.Name})
	}
	return out
}

// assertHPAReportsMetrics waits until the HPA targeting the Deployment
// reports a current CPU utilisation.
func assertHPAReportsMetrics(t *testing.T, o *k8s.KubectlOptions, deployment string) {
	t.Helper()
	hpa := hpaFor(t, o, deployment)
	if !assert.NotEmpty(t, hpa, "Deployment %s has an HPA", deployment) {
		return
	}
	_, err := retry.DoWithRetryContextE(t, context.Background(), "HPA "+hpa+" reports CPU", hpaMetricsRetries, hpaMetricsInterval, func() (string, error) {
		cur := kubectlJSONPath(t, o, "get", "hpa", hpa, "-o", `jsonpath={.status.currentMetrics[?(@.type=="Resource")].resource.current.averageUtilization}`)
		if cur == "" {
			return "", fmt.Errorf("no current metrics yet")
		}
		return cur, nil
	})
	assert.NoError(t, err, "HPA %s reports current CPU utilisation from metrics-server", hpa)
}

// hpaFor returns the name of the HPA whose scaleTargetRef is the Deployment.
func hpaFor(t *testing.T, o *k8s.KubectlOptions, deployment string) string {
	out, err := k8s.RunKubectlAndGetOutputContextE(t, context.Background(), o, "get", "hpa", "-o", "json")
	require.NoError(t, err, "listing HPAs")
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				ScaleTargetRef struct{ Kind, Name string } `json:"scaleTargetRef"`
			} `json:"spec"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list), "HPA list is JSON")
	for _, h := range list.Items {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == deployment {
			return h.Metadata.Name
		}
	}
	return ""
}

// assertServicesOfAvailableWorkloadsHaveEndpoints checks every Service
// whose selector picks the pods of an available workload.
func assertServicesOfAvailableWorkloadsHaveEndpoints(t *testing.T, o *k8s.KubectlOptions, available []rollout.State) {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputContextE(t, context.Background(), o, "get", "services", "-o", "json")
	require.NoError(t, err, "listing Services")
	var svcs struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				Selector map[string]string `json:"selector"`
			} `json:"spec"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &svcs), "Service list is JSON")
	running := map[string]bool{}
	for _, st := range available {
		running[st.Name] = true
	}
	checked := 0
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		pods := podsMatching(t, o, svc.Spec.Selector)
		if len(pods) == 0 || !anyOwnedBy(pods, running) {
			continue
		}
		checked++
		_, err := retry.DoWithRetryContextE(t, context.Background(), "endpoints of "+svc.Metadata.Name, endpointsRetries, endpointsInterval, func() (string, error) {
			ips := kubectlJSONPath(t, o, "get", "endpointslices", "-l", "kubernetes.io/service-name="+svc.Metadata.Name,
				"-o", `jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}`)
			if ips == "" {
				return "", fmt.Errorf("no ready endpoints")
			}
			return ips, nil
		})
		assert.NoError(t, err, "Service %s of a running workload has ready endpoints", svc.Metadata.Name)
	}
	t.Logf("%d Services of running workloads checked for endpoints", checked)
}

// podsMatching returns "owner-prefix" names of pods matching a selector.
func podsMatching(t *testing.T, o *k8s.KubectlOptions, sel map[string]string) []string {
	var parts []string
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	out := kubectlJSONPath(t, o, "get", "pods", "-l", strings.Join(parts, ","), "-o", `jsonpath={.items[*].metadata.name}`)
	return strings.Fields(out)
}

// anyOwnedBy reports whether a pod name starts with a running Deployment's
// name (pods of Deployment d are named d-<hash>-<id>).
func anyOwnedBy(pods []string, running map[string]bool) bool {
	for _, p := range pods {
		for d := range running {
			if strings.HasPrefix(p, d+"-") {
				return true
			}
		}
	}
	return false
}

// assertRestrictedRejects submits a privileged, root pod to the namespace:
// the API server's PodSecurity admission must refuse it.
func assertRestrictedRejects(t *testing.T, o *k8s.KubectlOptions) {
	t.Helper()
	name := uniqueName("breaks-restricted")
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  containers:
  - name: c
    image: %s
    securityContext:
      privileged: true
      runAsUser: 0
`, name, burnerImage)
	err := k8s.KubectlApplyFromStringContextE(t, context.Background(), o, manifest)
	if err == nil {
		_ = k8s.KubectlDeleteFromStringContextE(t, context.Background(), o, manifest)
	}
	require.Error(t, err, "a privileged root pod is rejected in the stack's namespace")
	assert.Contains(t, err.Error(), "violates PodSecurity", "the rejection comes from PodSecurity admission")
	assert.Contains(t, err.Error(), "restricted", "at the restricted level")
}
