package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/pulumicli"
)

// devOnTheNode are the only changes to dev's stack file when it runs on
// the embedded node, one machine of two cores: CPU requests small enough
// for every pod of dev's production shape (3 Kafka nodes, 6 Redis pods, a
// Postgres replica, two of each service, cert-manager) to fit beside the
// node's own CoreDNS and metrics-server (about 1.6 cores requested
// instead of about 3.4; limits are unchanged, so pods still burst), and
// no second metrics-server: the node runs one, and the metrics API is
// served by exactly one APIService per cluster.
var devOnTheNode = map[string]string{
	"metricsServer":        "off",
	"edgeCpuRequest":       "50m",
	"gatewayCpuRequest":    "50m",
	"usersCpuRequest":      "25m",
	"workerCpuRequest":     "50m",
	"kafkaCpuRequest":      "100m",
	"redisCpuRequest":      "25m",
	"postgresCpuRequest":   "100m",
	"collectorCpuRequest":  "50m",
	"prometheusCpuRequest": "100m",
}

// devRolloutTimeout bounds the wait for dev's workloads: three Kafka
// nodes, six Redis pods and cert-manager on one node of two cores.
const devRolloutTimeout = 8 * time.Minute

// TestDeployDevStack deploys the dev stack, which is prod's wiring run
// in-cluster: the HAProxy edge over HTTPS with a certificate cert-manager
// issues from the stack's CA, the gateway trusting X-Forwarded-For only
// from the pod network, three Kafka nodes, a Redis cluster and Postgres
// with a streaming replica. Its images are dev's own references (its
// registry's names, built and loaded on the node by TestMain); only its
// CPU requests shrink to fit one node (devOnTheNode). It asserts:
//   - every workload becomes available;
//   - from three outside clients (network namespaces with addresses of
//     their own, through the edge Service's node ports): HTTPS with the
//     stack's CA, HSTS, TLS 1.1 refused, plain HTTP redirected, internal
//     paths 404, a Secure session cookie that works, one rate-limit bucket
//     per client address, a forged X-Forwarded-For limited as its sender;
//   - HAProxy's least connections sends a gateway pod slowed to 2 % of a
//     CPU markedly fewer requests than its even half.
//
// Stages (SKIP_deploy, SKIP_validate, SKIP_teardown) as in the local
// suite; SCALEPLANE_IT_DEV_STACK names a kept deployment.
func TestDeployDevStack(t *testing.T) {
	s := needNode(t)
	stack := uniqueName("it-dev")
	if v := envOr("SCALEPLANE_IT_DEV_STACK", ""); v != "" {
		stack = v
	}
	ns := "sp-" + stack
	o := s.engineFor("dev", stack, ns, devOnTheNode)
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
		require.NoError(t, err, "pulumi up of the dev stack")
		t.Logf("pulumi up of dev: %s, changes %v", time.Since(begin).Round(time.Second), res.Changes)
	})

	test_structure.RunTestStage(t, "validate", func() {
		workloads := res.Workloads
		if len(workloads) == 0 {
			workloads = listWorkloads(t, s, ns)
		}
		states, err := s.rollouts().Wait(ctx, workloads, devRolloutTimeout, testWriter{})
		require.NoError(t, err, "every dev workload becomes available")
		for _, st := range states {
			require.True(t, st.Done(), "%s is rolled out (%d/%d; blocked by: %s)", st, st.Available, st.Desired, strings.Join(st.Blockers, "; "))
		}
		c := newStackClient(t, s, ns)
		a := newEdgeAccess(t, c, "haproxy", c.domain, c.caPEM)
		// One set of clients for both checks: each holds its addresses
		// (and their routes) until the test ends.
		clients := newOutsideClients(t, 3)
		checkEdgeFromOutside(t, a, clients)
		t.Run("least connections with a slowed pod", func(t *testing.T) {
			cc := *c
			cc.t = t
			checkLeastConnWithSlowedPod(t, &cc, a, clients)
		})
	})
}
