package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/require"
)

// burnerPort is the port testdata/burner serves on.
const burnerPort = 8080

// preStopSeconds is how long a terminating burner pod keeps serving before
// SIGTERM: the platform's default (stacks knob preStopSeconds), long enough
// for the endpoint removal to reach kube-proxy's rules on a busy node (3 s
// was measured too short: connections refused right after a cold start).
const preStopSeconds = 5

// burnerManifest is a restricted-profile namespace with the burner as a
// Deployment (preStop sleep, readiness probe, graceful drain), its Service,
// a PodDisruptionBudget and, when hpaMax > 0, a CPU HPA.
func burnerManifest(ns, version string, replicas, hpaMax, scaleDownSeconds int) string {
	m := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels:
    pod-security.kubernetes.io/enforce: restricted
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
  namespace: %[1]s
spec:
  replicas: %[3]d
  selector:
    matchLabels: {app: burner}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  template:
    metadata:
      labels: {app: burner}
    spec:
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: burner
        image: %[4]s
        imagePullPolicy: Never
        env:
        - {name: VERSION, value: %[2]q}
        ports:
        - {name: http, containerPort: %[5]d}
        resources:
          requests: {cpu: 50m, memory: 16Mi}
          limits: {cpu: 500m, memory: 64Mi}
        readinessProbe:
          httpGet: {path: /readyz, port: http}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            sleep: {seconds: %[6]d}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: ["ALL"]}
---
apiVersion: v1
kind: Service
metadata:
  name: burner
  namespace: %[1]s
spec:
  selector: {app: burner}
  ports:
  - {name: http, port: %[5]d, targetPort: http}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: burner
  namespace: %[1]s
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: burner}
`, ns, version, replicas, burnerImage, burnerPort, preStopSeconds)
	if hpaMax > 0 {
		m += fmt.Sprintf(`---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burner
  namespace: %[1]s
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burner}
  minReplicas: %[2]d
  maxReplicas: %[3]d
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 70}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
    scaleDown:
      stabilizationWindowSeconds: %[4]d
      policies:
      - {type: Percent, value: 100, periodSeconds: 15}
`, ns, replicas, hpaMax, scaleDownSeconds)
	}
	return m
}

// serviceURL is the burner Service's address: from this machine the
// embedded node's kube-proxy rules route a Service IP to its pods, which
// run in network namespaces on this machine.
func serviceURL(t *testing.T, o *k8s.KubectlOptions, name string) string {
	svc := k8s.GetServiceContext(t, context.Background(), o, name)
	require.NotEmpty(t, svc.Spec.ClusterIP, "Service %s has a cluster IP", name)
	return fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, burnerPort)
}

// loadResult counts what a load run saw.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errors     []string
	versions   map[string]int64
	// wait blocks until every worker has stopped (after ctx ends).
	wait func()
	// start is when the load began; failures are reported relative to it.
	start time.Time
}

func (r *loadResult) fail(msg string) {
	r.failed.Add(1)
	r.mu.Lock()
	if len(r.errors) < 10 {
		r.errors = append(r.errors, fmt.Sprintf("at %s: %s", time.Since(r.start).Round(10*time.Millisecond), msg))
	}
	r.mu.Unlock()
}

// load sends requests to url from workers goroutines until ctx ends, each
// waiting pause between requests. Bounded: it stops with ctx, and only ever
// targets this machine's own node.
func load(ctx context.Context, url string, workers int, pause time.Duration) *loadResult {
	res := &loadResult{versions: map[string]int64{}, start: time.Now()}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers, IdleConnTimeout: 2 * time.Second}}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						res.fail(err.Error())
					}
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					res.fail(resp.Status + ": " + strings.TrimSpace(string(body)))
				} else {
					res.ok.Add(1)
					v := strings.Fields(string(body))
					if len(v) > 0 {
						res.mu.Lock()
						res.versions[v[0]]++
						res.mu.Unlock()
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	res.wait = wg.Wait
	return res
}

// replicas returns the Deployment's status replica count and ready count.
func replicas(t *testing.T, o *k8s.KubectlOptions, name string) (spec, ready int) {
	out := kubectlJSONPath(t, o, "get", "deployment", name, "-o", `jsonpath={.spec.replicas} {.status.readyReplicas}`)
	f := strings.Fields(out)
	if len(f) > 0 {
		spec, _ = strconv.Atoi(f[0])
	}
	if len(f) > 1 {
		ready, _ = strconv.Atoi(f[1])
	}
	return spec, ready
}

// seen returns how many answers came from version v.
func (r *loadResult) seen(v string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.versions[v]
}
