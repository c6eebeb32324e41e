package kube

import (
	"strings"
	"sync"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/internal/children"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/internal/plainvalue"
)

// mocks records every declared resource's inputs by its Pulumi name.
type mocks struct {
	mu     sync.Mutex
	inputs map[string]map[string]any
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inputs == nil {
		m.inputs = map[string]map[string]any{}
	}
	m.inputs[args.Name] = args.Inputs.Mappable()
	return args.Name + "-id", args.Inputs, nil
}

func (m *mocks) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func run(t *testing.T, f func(ctx *pulumi.Context) error) *mocks {
	t.Helper()
	m := &mocks{}
	require.NoError(t, pulumi.RunErr(f, pulumi.WithMocks("project", "stack", m)), "declare")
	return m
}

// get is plainvalue.Get, the walk the policy rules read resources with.
var get = plainvalue.Get

func q(s string) k8sresource.Quantity { return k8sresource.MustParse(s) }

func TestLabels(t *testing.T) {
	l := Labels("gateway", "api", "1.2.3")
	assert.Equal(t, map[string]string{
		"app.kubernetes.io/name":       "gateway",
		"app.kubernetes.io/instance":   "gateway",
		"app.kubernetes.io/component":  "api",
		"app.kubernetes.io/part-of":    PartOf,
		"app.kubernetes.io/managed-by": ManagedBy,
		"app.kubernetes.io/version":    "1.2.3",
	}, l, "the recommended labels")
	assert.NotContains(t, Labels("gateway", "api", ""), "app.kubernetes.io/version", "no version label when unknown")
	assert.Equal(t, SelectorLabels("gateway"), SelectorOf(l), "the selector is the name and instance labels")
	l["app.kubernetes.io/instance"] = "prometheus-1"
	assert.Equal(t, "prometheus-1", SelectorOf(l)["app.kubernetes.io/instance"], "an instance that differs from the name selects")
	SelectorLabels("x")["extra"] = "y"
	assert.Len(t, SelectorLabels("x"), 2, "each call returns a fresh map")
}

func TestConfigChecksum(t *testing.T) {
	assert.Len(t, ConfigChecksum("a"), 16, "short enough for an annotation")
	assert.Equal(t, ConfigChecksum("a", "b"), ConfigChecksum("a", "b"), "stable")
	assert.NotEqual(t, ConfigChecksum("ab"), ConfigChecksum("a", "b"), "file boundaries count")
	assert.NotEqual(t, ConfigChecksum("a", "b"), ConfigChecksum("b", "a"), "order counts")
}

func TestValidators(t *testing.T) {
	for ref, want := range map[string]bool{
		"gateway:1.0":                               true,
		"registry:5000/team/gateway:1.0":            true,
		"gateway@sha256:" + strings.Repeat("a", 64): true,
		"gateway":               false,
		"gateway:latest":        false,
		"registry:5000/gateway": false,
		"gateway:":              false,
		"":                      false,
	} {
		assert.Equal(t, want, ImageTagged(ref), "ImageTagged(%q)", ref)
	}
	for s, want := range map[string]bool{"apps": true, "a-1": true, "A": false, "-a": false, "a-": false, "": false, "a.b": false} {
		assert.Equal(t, want, DNSLabel(s), "DNSLabel(%q)", s)
	}

	require.NoError(t, CheckName("redis", 40), "a short label")
	assert.EqualError(t, CheckName(strings.Repeat("a", 41), 40), `name "`+strings.Repeat("a", 41)+`": must be a DNS label of at most 40 characters`, "too long")
	assert.EqualError(t, CheckName("Redis", 40), `name "Redis": must be a DNS label of at most 40 characters`, "not a label")
	require.NoError(t, CheckLabel("namespace", "apps"), "a label")
	assert.EqualError(t, CheckLabel("allowFrom", "Edge"), `allowFrom "Edge": must be a DNS label`, "names the field")
	require.NoError(t, CheckImage("image", "redis:7.4"), "a tagged image")
	assert.EqualError(t, CheckImage("pooler.image", "pgbouncer"), `pooler.image "pgbouncer": must carry an explicit tag or digest other than latest`, "names the field")
}

func TestResources(t *testing.T) {
	ok := Resources{CPURequest: q("250m"), CPULimit: q("1500m"), MemoryRequest: q("128Mi"), MemoryLimit: q("256Mi")}
	require.NoError(t, ok.Validate(), "valid resources")
	for name, tc := range map[string]struct {
		mutate func(*Resources)
		want   string
	}{
		"no cpu request":  {func(r *Resources) { r.CPURequest = k8sresource.Quantity{} }, "resources.cpuRequest"},
		"no mem request":  {func(r *Resources) { r.MemoryRequest = k8sresource.Quantity{} }, "resources.memoryRequest"},
		"limit < request": {func(r *Resources) { r.MemoryLimit = q("64Mi") }, `resources.memoryLimit "64Mi"`},
		"cpu limit < req": {func(r *Resources) { r.CPULimit = q("100m") }, `resources.cpuLimit "100m"`},
	} {
		r := ok
		tc.mutate(&r)
		err := r.Validate()
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, "%s: names the field and value", name)
	}
	noCPULimit := ok
	noCPULimit.CPULimit = k8sresource.Quantity{}
	require.NoError(t, noCPULimit.Validate(), "no CPU limit is allowed")

	assert.Equal(t, 30, Shutdown{PreStopSeconds: 5, DrainSeconds: 20}.GracePeriodSeconds(), "grace = preStop 5 + drain 20 + margin 5")
}

// podSpec declares a Pod carrying the given spec and returns its inputs
// as the engine sees them.
func podSpec(t *testing.T, spec *corev1.PodSpecArgs) map[string]any {
	t.Helper()
	m := run(t, func(ctx *pulumi.Context) error {
		_, err := corev1.NewPod(ctx, "probe", &corev1.PodArgs{Metadata: Meta("probe", "apps", nil), Spec: spec})
		return err
	})
	return get(m.inputs["probe"], "spec").(map[string]any)
}

func TestRequirementsAndSecurity(t *testing.T) {
	limited := Resources{CPURequest: q("250m"), CPULimit: q("1500m"), MemoryRequest: q("128Mi"), MemoryLimit: q("256Mi")}
	unlimited := limited
	unlimited.CPULimit = k8sresource.Quantity{}
	spec := podSpec(t, &corev1.PodSpecArgs{
		SecurityContext: RestrictedPodSecurity(999),
		Containers: corev1.ContainerArray{
			corev1.ContainerArgs{Name: pulumi.String("limited"), Resources: limited.Requirements(), SecurityContext: RestrictedContainerSecurity()},
			corev1.ContainerArgs{Name: pulumi.String("unlimited"), Resources: unlimited.Requirements()},
			corev1.ContainerArgs{Name: pulumi.String("fixed"), Resources: Requirements("10m", "32Mi", "", "64Mi")},
		},
	})
	assert.Equal(t, map[string]any{"cpu": "250m", "memory": "128Mi"}, get(spec, "containers", 0, "resources", "requests"), "requests")
	assert.Equal(t, map[string]any{"cpu": "1500m", "memory": "256Mi"}, get(spec, "containers", 0, "resources", "limits"), "limits")
	assert.Equal(t, map[string]any{"memory": "256Mi"}, get(spec, "containers", 1, "resources", "limits"), "no CPU limit when it is zero")
	assert.Equal(t, map[string]any{"memory": "64Mi"}, get(spec, "containers", 2, "resources", "limits"), "an empty CPU limit string leaves CPU unlimited")

	assert.Equal(t, map[string]any{
		"runAsNonRoot": true, "runAsUser": 999.0, "runAsGroup": 999.0, "fsGroup": 999.0,
		"seccompProfile": map[string]any{"type": "RuntimeDefault"},
	}, get(spec, "securityContext"), "the restricted standard's pod half, as the given uid")
	assert.Equal(t, map[string]any{
		"allowPrivilegeEscalation": false, "privileged": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
		"capabilities":   map[string]any{"drop": []any{"ALL"}},
		"seccompProfile": map[string]any{"type": "RuntimeDefault"},
	}, get(spec, "containers", 0, "securityContext"), "the restricted standard's container half")
}

func TestSpreadAndPlacement(t *testing.T) {
	sel := SelectorLabels("gateway")
	affinity, zoneOnly := Placement(sel, true)
	spec := podSpec(t, &corev1.PodSpecArgs{
		Containers:                corev1.ContainerArray{corev1.ContainerArgs{Name: pulumi.String("c")}},
		TopologySpreadConstraints: append(append(Spread(sel, false), Spread(sel, true, RolloutKey)...), zoneOnly...),
		Affinity:                  affinity,
	})
	c := func(i int, path ...any) any {
		return get(spec, append([]any{"topologySpreadConstraints", i}, path...)...)
	}
	assert.Equal(t, ZoneKey, c(0, "topologyKey"), "zones first")
	assert.Equal(t, "ScheduleAnyway", c(0, "whenUnsatisfiable"), "a preference where zones are not required")
	assert.Equal(t, NodeKey, c(1, "topologyKey"), "then nodes")
	assert.Equal(t, "ScheduleAnyway", c(1, "whenUnsatisfiable"), "nodes are always a preference")
	assert.Nil(t, c(0, "matchLabelKeys"), "no match label keys unless asked")
	assert.Equal(t, "DoNotSchedule", c(2, "whenUnsatisfiable"), "a hard rule where zones are required")
	assert.Equal(t, []any{RolloutKey}, c(2, "matchLabelKeys"), "counted per rollout when asked")
	assert.Equal(t, "ScheduleAnyway", c(3, "whenUnsatisfiable"), "nodes stay a preference")
	assert.Equal(t, "gateway", c(3, "labelSelector", "matchLabels", "app.kubernetes.io/name"), "selects the workload")

	assert.Equal(t, ZoneKey, c(4, "topologyKey"), "placement spreads over zones")
	assert.Equal(t, "DoNotSchedule", c(4, "whenUnsatisfiable"), "a hard rule where zones are required")
	assert.Nil(t, c(5), "placement leaves nodes to the anti-affinity")
	term := get(spec, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", 0)
	assert.Equal(t, 100.0, get(term, "weight"), "a strong preference")
	assert.Equal(t, NodeKey, get(term, "podAffinityTerm", "topologyKey"), "apart on nodes")
	assert.Equal(t, "gateway", get(term, "podAffinityTerm", "labelSelector", "matchLabels", "app.kubernetes.io/name"), "from its own set")
}

func TestBudgetAutoscalerAndChildOptions(t *testing.T) {
	var parentURN, depURN string
	m := &mocks{}
	rpc := map[string][]string{}
	parents := map[string]string{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		comp := &struct{ pulumi.ResourceState }{}
		if err := ctx.RegisterComponentResource("test:index:Component", "comp", comp); err != nil {
			return err
		}
		dep, err := corev1.NewNamespace(ctx, "ns", &corev1.NamespaceArgs{Metadata: Meta("apps", "", nil)})
		if err != nil {
			return err
		}
		child, err := children.Options(comp, []pulumi.ResourceOption{pulumi.DependsOn([]pulumi.Resource{dep})})
		if err != nil {
			return err
		}
		pulumi.All(comp.URN(), dep.URN()).ApplyT(func(v []any) error {
			parentURN, depURN = string(v[0].(pulumi.URN)), string(v[1].(pulumi.URN))
			return nil
		})
		a := Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80, ScaleUpWindowSeconds: 0, ScaleDownWindowSeconds: 300}
		if _, err := NewHPA(ctx, "gateway-hpa", Meta("gateway", "apps", nil), pulumi.String("gateway"), Replicas{Min: 2, Max: 10}, a, a.Stabilization(), child); err != nil {
			return err
		}
		_, err = NewPDB(ctx, "gateway-pdb", Meta("gateway", "apps", nil), SelectorLabels("gateway"), child)
		return err
	}, pulumi.WithMocks("project", "stack", mockRPC{m, rpc, parents}))
	require.NoError(t, err, "declare")

	pdb := m.inputs["gateway-pdb"]
	assert.Equal(t, 1.0, get(pdb, "spec", "maxUnavailable"), "one pod at a time, so a drain progresses")
	assert.Equal(t, "gateway", get(pdb, "spec", "selector", "matchLabels", "app.kubernetes.io/name"), "selects the pods")
	assert.Equal(t, "apps", get(pdb, "metadata", "namespace"), "in the namespace")
	assert.Equal(t, "gateway", get(pdb, "metadata", "name"), "an explicit name")

	hpa := m.inputs["gateway-hpa"]
	assert.Equal(t, "gateway", get(hpa, "spec", "scaleTargetRef", "name"), "targets the Deployment")
	assert.Equal(t, "Deployment", get(hpa, "spec", "scaleTargetRef", "kind"), "a Deployment")
	assert.Equal(t, 2.0, get(hpa, "spec", "minReplicas"), "min")
	assert.Equal(t, 10.0, get(hpa, "spec", "maxReplicas"), "max")
	assert.Equal(t, "cpu", get(hpa, "spec", "metrics", 0, "resource", "name"), "CPU first")
	assert.Equal(t, 70.0, get(hpa, "spec", "metrics", 0, "resource", "target", "averageUtilization"), "CPU target")
	assert.Equal(t, 80.0, get(hpa, "spec", "metrics", 1, "resource", "target", "averageUtilization"), "memory target")
	assert.Equal(t, 300.0, get(hpa, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds"), "scale-down window")
	assert.Nil(t, get(hpa, "spec", "behavior", "scaleDown", "policies"), "Kubernetes' default policies")

	assert.Nil(t, get(m.inputs["ns"], "metadata", "namespace"), "an empty namespace is left out (cluster-scoped objects)")
	require.NotEmpty(t, parentURN, "the component has a URN")
	for _, child := range []string{"gateway-hpa", "gateway-pdb"} {
		assert.Equal(t, parentURN, parents[child], "%s is the component's child", child)
		assert.Contains(t, rpc[child], depURN, "%s waits for what the component waits for", child)
	}
}

// mockRPC also records each resource's parent and dependencies.
type mockRPC struct {
	*mocks
	deps    map[string][]string
	parents map[string]string
}

func (m mockRPC) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if r := args.RegisterRPC; r != nil {
		m.mu.Lock()
		m.deps[args.Name] = r.GetDependencies()
		m.parents[args.Name] = r.GetParent()
		m.mu.Unlock()
	}
	return m.mocks.NewResource(args)
}
