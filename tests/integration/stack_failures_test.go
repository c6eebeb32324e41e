package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// flowRate is the registrations per second the failure scenarios send
	// through the edge: well under its per-client limit (100/s), enough to
	// have records in flight at the moment of the failure.
	flowRate = 20
	// flowBefore and flowAfter are how long the flow runs before the
	// failure and after the failed pod is Ready again.
	flowBefore = 10 * time.Second
	flowAfter  = 10 * time.Second
	// podBackRetries × podBackInterval bounds a StatefulSet pod's return
	// (a JVM or Postgres start on its volume).
	podBackRetries  = 60
	podBackInterval = 3 * time.Second
	// drainRetries × drainInterval bounds the worker's catching up with
	// every accepted registration after a failure.
	drainRetries  = 90
	drainInterval = 2 * time.Second
	// minReadsAfterFailover is the fewest profile reads the flowAfter
	// window must serve once the Redis cluster is ok again (about 150 at
	// the loop's pace; 8 were measured before the client refreshed its
	// slot map).
	minReadsAfterFailover = 50
)

// checkPostgresPrimaryKilled kills the primary Postgres pod while
// registrations flow through the edge: Kafka keeps accepting them, the
// worker retries its inserts with jittered backoff until the primary is
// back on its volume, and every accepted registration ends up stored
// exactly once.
//
// The kill is a delete with a one-second grace: SIGTERM, then SIGKILL
// mid-transaction. Not --force: that removes the pod object at once, the
// StatefulSet starts the replacement while the old postmaster still runs,
// and two postmasters on one volume (each PID 1 in its container, so the
// lock file cannot tell them apart) lost 24 committed rows in this
// scenario — the at-most-one guarantee Kubernetes documents for
// StatefulSets is what a force delete gives up.
func checkPostgresPrimaryKilled(t *testing.T, c *stackClient) {
	domain := fmt.Sprintf("pgkill-%d.it.example.com", time.Now().UnixNano())
	flow := duringFailure(t, c, domain, func() {
		k8s.RunKubectlContext(t, t.Context(), c.app, "delete", "pod", "postgres-primary-0", "--grace-period=1", "--wait=false")
		waitPodBack(t, c, "postgres-primary-0")
	})
	assertAllStored(t, c, flow)
}

// checkKafkaRestarted deletes the Kafka pod (local runs one node) while
// registrations flow: while it is down the gateway answers 503 (not
// accepted, the client retries with its Idempotency-Key); every
// registration answered 202 is stored exactly once after it is back.
func checkKafkaRestarted(t *testing.T, c *stackClient) {
	domain := fmt.Sprintf("kafkarestart-%d.it.example.com", time.Now().UnixNano())
	flow := duringFailure(t, c, domain, func() {
		k8s.RunKubectlContext(t, t.Context(), c.app, "delete", "pod", "kafka-0", "--wait=false")
		waitPodBack(t, c, "kafka-0")
	})
	assertAllStored(t, c, flow)
}

// checkRedisMasterDeleted deletes the pod of one Redis master while the
// edge serves cached profiles and registrations: its replica is promoted,
// the cluster returns to cluster_state:ok, and the gateway keeps serving
// (the rate limiter fails open and the cache falls back to the users
// service while a slot has no master). The errors clients saw are
// recorded; after the failover every request succeeds.
func checkRedisMasterDeleted(t *testing.T, c *stackClient) {
	ctx := t.Context()
	domain := fmt.Sprintf("redis-%d.it.example.com", time.Now().UnixNano())
	// Not in the flow's domain: the flow counts only what it sent.
	email := "grace@profile-" + domain
	status, id, err := register(ctx, c.edge, email, nil)
	require.NoError(t, err, "register the profile the reads ask for")
	require.Equal(t, http.StatusAccepted, status, "registration accepted")
	_, err = retry.DoWithRetryContextE(t, ctx, "the profile is readable", storedRetries, storedInterval, func() (string, error) {
		code, _, err := getUser(ctx, c.edge, id, "")
		if err != nil || code != http.StatusOK {
			return "", fmt.Errorf("%d (%v)", code, err)
		}
		return "", nil
	})
	require.NoError(t, err, "the profile is served before the failure")

	master := redisMasterPod(t, c)
	rctx, stop := context.WithCancel(ctx)
	reads := readProfiles(rctx, c.edge, id)
	flow := flowRegistrations(rctx, c.edge, domain, flowRate/2)
	time.Sleep(flowBefore)
	failedAt := time.Now()
	k8s.RunKubectlContext(t, t.Context(), c.app, "delete", "pod", master, "--wait=false")
	_, err = retry.DoWithRetryContextE(t, ctx, "the Redis cluster fails over", redisFormRetries, redisFormInterval, func() (string, error) {
		if time.Since(failedAt) < 5*time.Second {
			return "", fmt.Errorf("the deleted master's node timeout has not passed")
		}
		out, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, c.app, "exec", "redis-0", "--", "sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli cluster info`)
		if err != nil || !strings.Contains(out, "cluster_state:ok") {
			return "", fmt.Errorf("cluster not ok yet: %v %s", err, firstLines(out, 1))
		}
		return out, nil
	})
	require.NoError(t, err, "a replica takes over the deleted master's slots")
	waitPodBack(t, c, master)
	failover := time.Since(failedAt)
	reads.mark()
	time.Sleep(flowAfter)
	stop()
	flow.Wait()
	reads.wait()
	t.Logf("deleted Redis master %s: cluster ok and pod back after %s; reads %s; registrations %s", master, failover.Round(time.Second), reads, flow)
	// A read every 50 ms plus its latency: a stalled client (waiting out
	// timeouts on a dead address) manages a handful in flowAfter.
	assert.GreaterOrEqual(t, reads.okAfter, minReadsAfterFailover, "the gateway serves profiles at its usual pace after the failover (%s)", reads)
	assert.Zero(t, reads.failedAfter, "every profile read after the failover succeeds (%s)", reads)
	assert.Positive(t, reads.ok, "the gateway kept serving reads (%s)", reads)
	assertAllStored(t, c, flow)
}

// duringFailure runs a registration flow through the edge, applies the
// failure after flowBefore, keeps the flow going flowAfter past its
// recovery and returns what the flow saw.
func duringFailure(t *testing.T, c *stackClient, domain string, failure func()) *registrations {
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	flow := flowRegistrations(ctx, c.edge, domain, flowRate)
	time.Sleep(flowBefore)
	begin := time.Now()
	failure()
	t.Logf("failure and recovery took %s", time.Since(begin).Round(time.Second))
	time.Sleep(flowAfter)
	stop()
	flow.Wait()
	t.Logf("registrations during the failure: %s", flow)
	require.NotEmpty(t, flow.accepted, "registrations were accepted around the failure")
	return flow
}

// assertAllStored waits until every accepted registration of the flow is
// a row on the primary, and requires that no row exists for an email the
// flow never sent.
func assertAllStored(t *testing.T, c *stackClient, flow *registrations) {
	t.Helper()
	ctx := t.Context()
	var stored map[string]int
	_, err := retry.DoWithRetryContextE(t, ctx, "every accepted registration is stored", drainRetries, drainInterval, func() (string, error) {
		var err error
		stored, err = c.storedEmails(ctx, flow.domain)
		if err != nil {
			return "", err
		}
		missing := 0
		for e := range flow.accepted {
			if stored[e] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return "", fmt.Errorf("%d of %d accepted registrations not stored yet", missing, len(flow.accepted))
		}
		return "", nil
	})
	require.NoError(t, err, "no accepted registration is lost (%s)", flow)
	// A second row per email or idempotency key cannot exist (UNIQUE
	// constraints; a redelivered record is ON CONFLICT DO NOTHING): what
	// can go wrong is a lost one (above) or one from nowhere (here).
	for e := range stored {
		assert.True(t, flow.tried[e], "%s is stored but was never sent", e)
	}
	t.Logf("%d accepted, %d stored (a 503'd request may still have been written: its client retries with the same key)", len(flow.accepted), len(stored))
}

// waitPodBack waits for a deleted StatefulSet pod to be recreated and Ready.
func waitPodBack(t *testing.T, c *stackClient, pod string) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), pod+" is Ready again", podBackRetries, podBackInterval, func() (string, error) {
		ready := kubectlJSONPath(t, c.app, "get", "pod", pod, "-o", `jsonpath={.metadata.deletionTimestamp}{"/"}{.status.conditions[?(@.type=="Ready")].status}`)
		if ready != "/True" {
			return "", fmt.Errorf("%s: %q", pod, ready)
		}
		return "", nil
	})
	require.NoError(t, err, "%s comes back on its volume", pod)
}

// redisMasterPod names the pod of one Redis master (not redis-0, which the
// tests exec into).
func redisMasterPod(t *testing.T, c *stackClient) string {
	t.Helper()
	nodes, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), c.app, "exec", "redis-0", "--", "sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli cluster nodes`)
	require.NoError(t, err, "redis-cli cluster nodes")
	ips := map[string]string{}
	for _, line := range strings.Split(kubectlJSONPath(t, c.app, "get", "pods", "-l", "app.kubernetes.io/name=redis",
		"-o", `jsonpath={range .items[*]}{.status.podIP}{" "}{.metadata.name}{"\n"}{end}`), "\n") {
		if ip, name, ok := strings.Cut(line, " "); ok {
			ips[ip] = name
		}
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "myself") {
			continue
		}
		ip, _, _ := strings.Cut(f[1], ":")
		if pod := ips[ip]; pod != "" {
			return pod
		}
	}
	t.Fatalf("no Redis master other than redis-0 in:\n%s", nodes)
	return ""
}

// profileReads is a loop of cached profile reads through the edge,
// counting answers before and after mark.
type profileReads struct {
	mu                                       sync.Mutex
	ok, failed, okAfter, failedAfter, errors int
	statuses                                 map[int]int
	after                                    bool
	done                                     chan struct{}
}

func readProfiles(ctx context.Context, base, id string) *profileReads {
	r := &profileReads{statuses: map[int]int{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			code, _, err := getUser(ctx, base, id, "")
			r.mu.Lock()
			switch {
			case err != nil && ctx.Err() != nil:
			case err == nil && code == http.StatusOK:
				r.ok++
				if r.after {
					r.okAfter++
				}
			default:
				r.failed++
				if err != nil {
					r.errors++
				} else {
					r.statuses[code]++
				}
				if r.after {
					r.failedAfter++
				}
			}
			r.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return r
}

// mark starts counting the reads after the failover.
func (r *profileReads) mark() { r.mu.Lock(); r.after = true; r.mu.Unlock() }

func (r *profileReads) wait() { <-r.done }

func (r *profileReads) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d ok, %d failed (transport errors %d, statuses %v); after the failover %d ok, %d failed",
		r.ok, r.failed, r.errors, r.statuses, r.okAfter, r.failedAfter)
}
