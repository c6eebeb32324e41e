package stacks_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/observability"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/scaleplane/scaleplane/stacks"
)

// workloadDeployments are the Deployments of the bundled workloads (the
// observability and cluster add-ons have their own tests below).
func workloadDeployments(g *render.Graph) []render.Resource {
	var out []render.Resource
	for _, d := range g.ByType("kubernetes:apps/v1:Deployment") {
		if slices.Contains(stacks.Workloads, str(get(d.Inputs, "metadata", "name"))) {
			out = append(out, d)
		}
	}
	return out
}

func TestEveryStackRunsTheObservabilityStack(t *testing.T) {
	for _, stack := range shipped {
		t.Run(stack, func(t *testing.T) {
			g, env := renderStack(t, stack)
			deps := byName(g.ByType("kubernetes:apps/v1:Deployment"))
			sets := byName(g.ByType("kubernetes:apps/v1:StatefulSet"))
			collector, ok := deps[observability.CollectorName]
			require.True(t, ok, "%s runs the collector", stack)
			assert.Equal(t, env.Namespace, str(get(collector.Inputs, "metadata", "namespace")), "collector beside the services")
			svc := byName(g.ByType("kubernetes:core/v1:Service"))[observability.CollectorName]
			assert.Equal(t, env.CollectorEndpoint(), fmt.Sprintf("http://%s.%s.svc.cluster.local:%d",
				str(get(svc.Inputs, "metadata", "name")), str(get(svc.Inputs, "metadata", "namespace")), observability.OTLPGRPCPort),
				"the services' OTLP endpoint is the collector's Service")
			hpa := byName(g.ByType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"))[observability.CollectorName]
			assert.GreaterOrEqual(t, num(get(hpa.Inputs, "spec", "minReplicas")), map[bool]int{true: 3, false: 2}[env.Environment == "prod"], "collector HPA floor")
			assert.NotEmpty(t, byName(g.ByType("kubernetes:policy/v1:PodDisruptionBudget"))[observability.CollectorName].URN, "collector PDB")

			_, jaegerSet := sets["jaeger"]
			_, jaegerDep := deps["jaeger"]
			assert.True(t, jaegerSet != jaegerDep, "%s runs one Jaeger workload", stack)
			prom, ok := sets["prometheus"]
			require.True(t, ok, "%s runs Prometheus", stack)
			assert.Equal(t, env.Observability.Namespace, str(get(prom.Inputs, "metadata", "namespace")), "Prometheus in the observability namespace")
			cm := byName(g.ByType("kubernetes:core/v1:ConfigMap"))["prometheus"]
			rules := str(get(cm.Inputs, "data", observability.RulesFile))
			for _, a := range observability.Alerts(observability.DefaultThresholds()) {
				assert.Contains(t, rules, "alert: "+a.Name, "%s Prometheus evaluates %s", stack, a.Name)
			}
			_, ms := deps[observability.MetricsServerName]
			assert.Equal(t, env.Environment != "local", ms, "%s: metrics-server unless the embedded cluster brings its own", stack)
		})
	}
}

func TestAWSStacksRunOnTheirOwnCluster(t *testing.T) {
	for _, stack := range shipped {
		t.Run(stack, func(t *testing.T) {
			g, env := renderStack(t, stack)
			clusters := g.ByType("aws:eks/cluster:Cluster")
			providers := g.ByType("pulumi:providers:kubernetes")
			if env.Flavour != stacks.FlavourAWS {
				assert.Empty(t, clusters, "%s declares no EKS cluster", stack)
				assert.Empty(t, g.ByType("aws:ec2/vpc:Vpc"), "%s declares no VPC", stack)
				assert.Empty(t, providers, "%s uses the current kubeconfig", stack)
				for _, r := range g.Kubernetes() {
					assert.Empty(t, r.Provider, "%s: %s goes through the default (current kubeconfig) provider", stack, r.URN)
				}
				return
			}
			require.Len(t, clusters, 1, "%s declares its EKS cluster", stack)
			require.Len(t, providers, 1, "%s builds one Kubernetes provider from the cluster", stack)
			// Every Kubernetes object goes through that provider: a
			// Deployment on the ambient kubeconfig would land on whatever
			// cluster the operator's shell points at.
			eks := providers[0].URN
			for _, r := range g.Kubernetes() {
				assert.Truef(t, strings.HasPrefix(r.Provider, eks+"::"), "%s goes through the EKS provider, not %q", r.URN, r.Provider)
			}
			nats := g.ByType("aws:ec2/natGateway:NatGateway")
			want := map[bool]int{true: 3, false: 1}[env.Environment == "prod"]
			assert.Len(t, nats, want, "%s NAT gateways", stack)
		})
	}
}

func TestProdWorkloadsAndNodesLiveInPrivateSubnets(t *testing.T) {
	g, _ := renderStack(t, "prod")
	private := map[string]bool{}
	for _, s := range g.ByType("aws:ec2/subnet:Subnet") {
		tags, _ := get(s.Inputs, "tags").(map[string]any)
		assert.Equal(t, false, get(s.Inputs, "mapPublicIpOnLaunch"), "%s gives no public addresses", s.Name)
		if tags["scaleplane.dev/tier"] == "private" {
			private[s.Name+"-id"] = true
		}
	}
	require.Len(t, private, 3, "three private subnets in prod")
	ids := func(v any) []string {
		var out []string
		list, _ := v.([]any)
		for _, x := range list {
			out = append(out, str(x))
		}
		return out
	}
	cl := g.ByType("aws:eks/cluster:Cluster")[0]
	for _, id := range ids(get(cl.Inputs, "vpcConfig", "subnetIds")) {
		assert.True(t, private[id], "EKS control plane subnet %s is private", id)
	}
	assert.Equal(t, true, get(cl.Inputs, "vpcConfig", "endpointPrivateAccess"), "prod API endpoint reachable from inside the VPC")
	assert.NotContains(t, ids(get(cl.Inputs, "vpcConfig", "publicAccessCidrs")), "0.0.0.0/0", "prod API endpoint never open to the internet")
	groups := g.ByType("aws:eks/nodeGroup:NodeGroup")
	require.Len(t, groups, 2, "system and worker node groups")
	for _, ng := range groups {
		subnets := ids(get(ng.Inputs, "subnetIds"))
		require.Len(t, subnets, 3, "%s spans the three zones", ng.Name)
		for _, id := range subnets {
			assert.True(t, private[id], "node group %s subnet %s is private", ng.Name, id)
		}
	}
}

func TestPlatformKnobsAreChecked(t *testing.T) {
	base, err := stacks.ReadStackConfig("..", "prod")
	require.NoError(t, err, "read prod")
	for key, v := range map[string]string{
		"jaegerStorage":          "opensearch", // without servers
		"observabilityNamespace": "scaleplane", // same as the app namespace
		"natGateways":            "single",     // prod needs one per zone
		"awsZones":               "us-east-1a,us-east-1b",
		"workerNodeMaxSize":      "1",
	} {
		values := map[string]string{}
		for k, x := range base {
			values[k] = x
		}
		values[key] = v
		_, err := stacks.Parse("prod", values)
		var ce *stacks.ConfigError
		require.ErrorAs(t, err, &ce, "%s=%s is refused with a ConfigError", key, v)
		assert.Contains(t, err.Error(), key, "the error names %s", key)
	}
}

// TestEveryStacksPrometheusConfigPassesPromtool checks the files exactly as
// each stack renders them into the Prometheus ConfigMap: the rules with
// Debian's promtool, the config (Kubernetes discovery) with the upstream
// promtool of the deployed release.
func TestEveryStacksPrometheusConfigPassesPromtool(t *testing.T) {
	if _, cached, err := toolchain.PromtoolDir(); err != nil {
		t.Fatalf("promtool cache: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("the upstream promtool is not cached and building it takes minutes; run without -short to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	upstream, err := toolchain.Promtool(ctx)
	require.NoError(t, err, "build promtool")
	for _, stack := range shipped {
		g, _ := renderStack(t, stack)
		cm := byName(g.ByType("kubernetes:core/v1:ConfigMap"))["prometheus"]
		conf, rules := str(get(cm.Inputs, "data", "prometheus.yml")), str(get(cm.Inputs, "data", observability.RulesFile))
		require.NotEmpty(t, conf, "%s renders prometheus.yml", stack)
		dir := realservertest.MustWritePrometheusFiles(t, conf, map[string]string{observability.RulesFile: rules})
		out, err := realservertest.Promtool(t, dir, "check", "rules", observability.RulesFile)
		require.NoError(t, err, "%s: promtool check rules:\n%s", stack, out)
		cmd := exec.CommandContext(ctx, upstream, "check", "config", "--syntax-only", "prometheus.yml")
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: promtool %s check config:\n%s", stack, toolchain.PrometheusRelease, b)
		assert.Contains(t, conf, "environment: "+stack, "%s labels its series with its environment", stack)
	}
}
