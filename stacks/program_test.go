package stacks_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/internal/cluster"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"

	"github.com/scaleplane/scaleplane/internal/plainvalue"
)

var shipped = []string{"local", "dev", "staging", "prod"}

func renderStack(t *testing.T, name string) (*render.Graph, *stacks.Env) {
	t.Helper()
	g, env, err := render.Stack("..", name)
	require.NoError(t, err, "render stack %s under mocks", name)
	return g, env
}

// get is plainvalue.Get, the walk the policy rules read resources with.
var get = plainvalue.Get

func str(v any) string { s, _ := v.(string); return s }

func num(v any) int { f, _ := v.(float64); return int(f) }

func byName(rs []render.Resource) map[string]render.Resource {
	out := map[string]render.Resource{}
	for _, r := range rs {
		out[str(get(r.Inputs, "metadata", "name"))] = r
	}
	return out
}

func envVars(container any) map[string]string {
	out := map[string]string{}
	list, _ := get(container, "env").([]any)
	for _, e := range list {
		out[str(get(e, "name"))] = str(get(e, "value"))
	}
	return out
}

// TestEveryDeploymentInEveryStackFollowsTheScalingRules renders each
// shipped stack and checks every Deployment against the articles' rules.
func TestEveryDeploymentInEveryStackFollowsTheScalingRules(t *testing.T) {
	for _, stack := range shipped {
		t.Run(stack, func(t *testing.T) {
			g, env := renderStack(t, stack)
			deployments := workloadDeployments(g)
			require.Len(t, deployments, len(stacks.Workloads), "one Deployment per workload")
			hpas := byName(g.ByType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"))
			pdbs := byName(g.ByType("kubernetes:policy/v1:PodDisruptionBudget"))
			minFloor := 2
			if env.Environment == "prod" {
				minFloor = 3
			}
			for _, d := range deployments {
				name := str(get(d.Inputs, "metadata", "name"))
				require.NotEmpty(t, name, "explicit metadata.name on %s", d.URN)
				assert.Equal(t, env.Namespace, str(get(d.Inputs, "metadata", "namespace")), "%s namespace", name)

				hpa, ok := hpas[name]
				require.True(t, ok, "%s/%s has an HPA", stack, name)
				assert.Equal(t, name, str(get(hpa.Inputs, "spec", "scaleTargetRef", "name")), "%s HPA targets it", name)
				assert.GreaterOrEqual(t, num(get(hpa.Inputs, "spec", "minReplicas")), minFloor, "%s minReplicas floor", name)
				assert.Less(t, num(get(hpa.Inputs, "spec", "minReplicas")), num(get(hpa.Inputs, "spec", "maxReplicas"))+1, "%s min <= max", name)
				assert.LessOrEqual(t, num(get(hpa.Inputs, "spec", "metrics", 0, "resource", "target", "averageUtilization")), 70, "%s CPU target <= 70", name)
				assert.LessOrEqual(t, num(get(hpa.Inputs, "spec", "metrics", 1, "resource", "target", "averageUtilization")), 80, "%s memory target <= 80", name)
				assert.Positive(t, num(get(hpa.Inputs, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds")), "%s scale-down window", name)

				pdb, ok := pdbs[name]
				require.True(t, ok, "%s/%s has a PDB", stack, name)
				assert.Equal(t, 1, num(get(pdb.Inputs, "spec", "maxUnavailable")), "%s PDB allows a drain", name)

				pod := get(d.Inputs, "spec", "template", "spec")
				assert.Equal(t, true, get(pod, "securityContext", "runAsNonRoot"), "%s runs as non-root", name)
				assert.Equal(t, "RuntimeDefault", str(get(pod, "securityContext", "seccompProfile", "type")), "%s seccomp", name)
				assert.Equal(t, false, get(pod, "automountServiceAccountToken"), "%s mounts no token", name)
				spread := "ScheduleAnyway"
				if env.ZoneSpreadRequired {
					spread = "DoNotSchedule"
				}
				assert.Equal(t, "topology.kubernetes.io/zone", str(get(pod, "topologySpreadConstraints", 0, "topologyKey")), "%s zone spread", name)
				assert.Equal(t, spread, str(get(pod, "topologySpreadConstraints", 0, "whenUnsatisfiable")), "%s zone spread strength", name)

				containers, _ := get(pod, "containers").([]any)
				require.NotEmpty(t, containers, "%s has containers", name)
				for _, c := range containers {
					assertContainer(t, stack+"/"+name, c, num(get(pod, "terminationGracePeriodSeconds")), name != "edge")
				}
			}
		})
	}
}

func assertContainer(t *testing.T, who string, c any, grace int, goService bool) {
	t.Helper()
	for _, path := range [][]any{
		{"resources", "requests", "cpu"}, {"resources", "requests", "memory"}, {"resources", "limits", "memory"},
	} {
		assert.NotEmpty(t, str(get(c, path...)), "%s sets %v", who, path)
	}
	assert.NotNil(t, get(c, "livenessProbe"), "%s liveness probe", who)
	assert.NotNil(t, get(c, "readinessProbe"), "%s readiness probe", who)
	assert.NotNil(t, get(c, "startupProbe"), "%s startup probe", who)
	preStop := num(get(c, "lifecycle", "preStop", "sleep", "seconds"))
	assert.Positive(t, preStop, "%s preStop sleep", who)
	env := envVars(c)
	drainTime, err := time.ParseDuration(env["SHUTDOWN_TIMEOUT"])
	require.NoError(t, err, "%s SHUTDOWN_TIMEOUT %q is a duration", who, env["SHUTDOWN_TIMEOUT"])
	drain := int(drainTime.Seconds())
	assert.Positive(t, drain, "%s knows its drain budget", who)
	assert.Greater(t, grace, preStop+drain, "%s grace period exceeds preStop + drain", who)

	sc := get(c, "securityContext")
	assert.Equal(t, false, get(sc, "allowPrivilegeEscalation"), "%s no privilege escalation", who)
	assert.Equal(t, true, get(sc, "readOnlyRootFilesystem"), "%s read-only root", who)
	assert.Equal(t, []any{"ALL"}, get(sc, "capabilities", "drop"), "%s drops all capabilities", who)
	assert.True(t, microservice.ImageTagged(str(get(c, "image"))), "%s image %q is pinned", who, get(c, "image"))

	if !goService {
		return
	}
	limit := k8sresource.MustParse(str(get(c, "resources", "limits", "memory")))
	goMem, err := k8sresource.ParseQuantity(strings.TrimSuffix(env["GOMEMLIMIT"], "B"))
	require.NoError(t, err, "%s GOMEMLIMIT %q parses", who, env["GOMEMLIMIT"])
	assert.Positive(t, goMem.Value(), "%s sets GOMEMLIMIT", who)
	assert.LessOrEqual(t, float64(goMem.Value()), 0.9*float64(limit.Value()), "%s GOMEMLIMIT <= 90 %% of the memory limit", who)
	assert.NotEmpty(t, env["GOMAXPROCS"], "%s sets GOMAXPROCS", who)
	assert.NotEmpty(t, env["OTEL_EXPORTER_OTLP_ENDPOINT"], "%s exports traces", who)
}

func TestNamespacesEnforceRestrictedPodSecurity(t *testing.T) {
	for _, stack := range shipped {
		g, _ := renderStack(t, stack)
		nss := g.ByType("kubernetes:core/v1:Namespace")
		require.NotEmpty(t, nss, "%s declares its namespace", stack)
		for _, ns := range nss {
			assert.Equal(t, "restricted", str(get(ns.Inputs, "metadata", "labels", "pod-security.kubernetes.io/enforce")),
				"%s namespace %v enforces restricted", stack, get(ns.Inputs, "metadata", "name"))
		}
		assert.NotEmpty(t, byName(g.ByType("kubernetes:networking.k8s.io/v1:NetworkPolicy"))["default-deny-ingress"].URN,
			"%s denies ingress by default", stack)
	}
}

func TestEdgeConfigInEveryStack(t *testing.T) {
	for _, stack := range shipped {
		g, env := renderStack(t, stack)
		cm := byName(g.ByType("kubernetes:core/v1:ConfigMap"))["edge"]
		require.NotEmpty(t, cm.URN, "%s has the edge ConfigMap", stack)
		data, _ := get(cm.Inputs, "data").(map[string]any)
		require.Len(t, data, 1, "%s edge ConfigMap holds one config file", stack)
		for file, text := range data {
			conf := str(text)
			switch env.Edge.Kind {
			case "nginx":
				assert.Equal(t, "nginx.conf", file, "%s nginx file", stack)
				assert.Contains(t, conf, fmt.Sprintf("client_max_body_size %d;", env.Edge.BodyLimitBytes), "%s body limit from config", stack)
				assert.Contains(t, conf, fmt.Sprintf("rate=%dr/s", env.Edge.RateLimitPerSecond), "%s rate limit from config", stack)
				assert.NotContains(t, conf, "least_conn;", "%s nginx claims no balancing it cannot do", stack)
			case "haproxy":
				assert.Equal(t, "haproxy.cfg", file, "%s haproxy file", stack)
				assert.Contains(t, conf, fmt.Sprintf("gt %d }", env.Edge.BodyLimitBytes), "%s body limit from config", stack)
				assert.Contains(t, conf, "balance leastconn", "%s least connections", stack)
				gw := env.Workloads["gateway"].Replicas.Max
				assert.Contains(t, conf, fmt.Sprintf("server-template gateway- %d ", gw), "%s one HAProxy slot per possible gateway pod", stack)
			}
		}
		svc := byName(g.ByType("kubernetes:core/v1:Service"))["edge"]
		assert.Equal(t, "LoadBalancer", str(get(svc.Inputs, "spec", "type")), "%s edge is the way in", stack)
		assert.Equal(t, "Local", str(get(svc.Inputs, "spec", "externalTrafficPolicy")), "%s keeps the client's address through kube-proxy", stack)
		ports := map[string]string{}
		for _, p := range get(svc.Inputs, "spec", "ports").([]any) {
			ports[str(get(p, "name"))] = fmt.Sprint(get(p, "port")) + "->" + str(get(p, "targetPort"))
		}
		assert.Equal(t, map[string]string{"https": "443->https", "http": "80->http"}, ports, "%s edge Service: https and http only, never the status port", stack)
		for _, text := range data {
			conf := str(text)
			aws := env.Flavour == stacks.FlavourAWS
			assert.Equal(t, aws, strings.Contains(conf, "proxy_protocol") || strings.Contains(conf, "accept-proxy"),
				"%s: PROXY protocol exactly on the AWS stacks", stack)
			assert.Equal(t, !aws, strings.Contains(conf, "/etc/edge-tls/edge.pem"), "%s: TLS at the edge exactly in-cluster", stack)
			if aws {
				assert.Contains(t, conf, env.Foundation.VPCCIDR, "%s: PROXY headers believed from the VPC only", stack)
			}
			assert.Contains(t, conf, "/v1/", "%s routes the gateway's public API", stack)
		}
		dep := byName(g.ByType("kubernetes:apps/v1:Deployment"))["edge"]
		vols := fmt.Sprint(get(dep.Inputs, "spec", "template", "spec", "volumes"))
		assert.Equal(t, env.Flavour != stacks.FlavourAWS, strings.Contains(vols, stacks.EdgeTLSSecret), "%s mounts the TLS Secret exactly in-cluster: %s", stack, vols)
	}
}

func TestRenderIsStable(t *testing.T) {
	a, _ := renderStack(t, "prod")
	b, _ := renderStack(t, "prod")
	require.Equal(t, len(a.Resources), len(b.Resources), "same resource count on every run")
	for i := range a.Resources {
		assert.Equal(t, a.Resources[i].URN, b.Resources[i].URN, "same order on every run")
	}
	assert.Equal(t, a.DOT(), b.DOT(), "the picture is the same on every run")
}

// localNodeCPU is what local's pods may request of the embedded cluster's
// one node: 2 cores less CoreDNS, metrics-server and room for a test
// workload beside the stack.
var localNodeCPU = k8sresource.MustParse("1750m")

// TestLocalStackFitsOneNode adds up the CPU requests of every pod local
// starts (HPA minimums, StatefulSet replicas, Jobs; a pod requests the
// larger of its containers' sum and its largest init container): a pod the
// scheduler cannot fit stays Pending, and on the embedded node that is the
// whole stack.
func TestLocalStackFitsOneNode(t *testing.T) {
	g, _ := renderStack(t, "local")
	minReplicas := map[string]int{}
	for _, h := range g.ByType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") {
		minReplicas[str(get(h.Inputs, "spec", "scaleTargetRef", "name"))] = num(get(h.Inputs, "spec", "minReplicas"))
	}
	podCPU := func(spec any) k8sresource.Quantity {
		sum := k8sresource.Quantity{}
		cs, _ := get(spec, "containers").([]any)
		for _, c := range cs {
			sum.Add(k8sresource.MustParse(str(get(c, "resources", "requests", "cpu"))))
		}
		inits, _ := get(spec, "initContainers").([]any)
		for _, c := range inits {
			if q := k8sresource.MustParse(str(get(c, "resources", "requests", "cpu"))); q.Cmp(sum) > 0 {
				sum = q
			}
		}
		return sum
	}
	total := k8sresource.Quantity{}
	var lines []string
	add := func(kind, name string, n int, pod k8sresource.Quantity) {
		for range n {
			total.Add(pod)
		}
		lines = append(lines, fmt.Sprintf("%s %s: %d x %s", kind, name, n, pod.String()))
	}
	for _, d := range g.ByType("kubernetes:apps/v1:Deployment") {
		name := str(get(d.Inputs, "metadata", "name"))
		n, ok := minReplicas[name]
		if !ok {
			n = max(1, num(get(d.Inputs, "spec", "replicas")))
		}
		add("Deployment", name, n, podCPU(get(d.Inputs, "spec", "template", "spec")))
	}
	for _, s := range g.ByType("kubernetes:apps/v1:StatefulSet") {
		add("StatefulSet", str(get(s.Inputs, "metadata", "name")), num(get(s.Inputs, "spec", "replicas")), podCPU(get(s.Inputs, "spec", "template", "spec")))
	}
	for _, j := range g.ByType("kubernetes:batch/v1:Job") {
		add("Job", str(get(j.Inputs, "metadata", "name")), 1, podCPU(get(j.Inputs, "spec", "template", "spec")))
	}
	assert.LessOrEqual(t, total.MilliValue(), localNodeCPU.MilliValue(),
		"local requests %s of CPU, more than the %s its one node has for it:\n%s", total.String(), localNodeCPU.String(), strings.Join(lines, "\n"))
	t.Logf("local requests %s of CPU", total.String())
}

// TestGatewayTrustsOnlyTheEdgesNetwork: every stack tells the gateway
// whose X-Forwarded-For to believe: in-cluster the embedded cluster's pod
// network, named in the stack file (stacks link nothing of the node, so a
// test keeps the two equal); on aws the VPC's block, where the edge pods
// take their addresses; and the knob, when set, wins over both.
func TestGatewayTrustsOnlyTheEdgesNetwork(t *testing.T) {
	gatewayVars := func(g *render.Graph, stack string) map[string]string {
		d, ok := byName(g.ByType("kubernetes:apps/v1:Deployment"))["gateway"]
		require.True(t, ok, "%s declares the gateway Deployment", stack)
		return envVars(get(d.Inputs, "spec", "template", "spec", "containers", 0))
	}
	for _, stack := range shipped {
		g, env := renderStack(t, stack)
		want := cluster.ClusterCIDR
		if env.Flavour == stacks.FlavourAWS {
			want = env.Foundation.VPCCIDR
		}
		assert.Equal(t, want, gatewayVars(g, stack)["TRUSTED_PROXY_CIDRS"], "%s: the gateway trusts the edge pods' network", stack)
	}
	values, err := stacks.ReadStackConfig("..", "prod")
	require.NoError(t, err, "read stack prod")
	values["trustedProxyCidrs"] = "10.0.32.0/19, 10.0.64.0/19"
	g, _, err := render.Values("prod", values)
	require.NoError(t, err, "render prod with its edge's subnets named")
	assert.Equal(t, "10.0.32.0/19,10.0.64.0/19", gatewayVars(g, "prod")["TRUSTED_PROXY_CIDRS"], "the knob wins over the VPC's block")
	g, _, err = render.Values("scratch", nil)
	require.NoError(t, err, "render the defaults")
	assert.Equal(t, "", gatewayVars(g, "scratch")["TRUSTED_PROXY_CIDRS"], "an in-cluster stack that names no network trusts nobody")
}
