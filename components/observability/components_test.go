package observability

import (
	"strings"
	"sync"
	"testing"
	"time"

	presource "github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

type declared struct {
	typ, name string
	inputs    map[string]any
}

type recorder struct {
	mu  sync.Mutex
	all []declared
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, presource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, declared{args.TypeToken, args.Name, args.Inputs.Mappable()})
	return args.Name + "-id", args.Inputs, nil
}

func (r *recorder) Call(args pulumi.MockCallArgs) (presource.PropertyMap, error) {
	return presource.PropertyMap{}, nil
}

func (r *recorder) ofType(typ string) []declared {
	var out []declared
	for _, d := range r.all {
		if d.typ == typ {
			out = append(out, d)
		}
	}
	return out
}

func run(t *testing.T, program func(ctx *pulumi.Context) error) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	err := pulumi.RunErr(program, pulumi.WithMocks("scaleplane", "test", r))
	return r, err
}

func at(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func collectorArgs() *CollectorArgs {
	return &CollectorArgs{
		Namespace: "shop", TracesEndpoint: OTLPHost("jaeger", "observability"), AllowFrom: []string{"gateway", "users"},
		Replicas: kube.Replicas{Min: 2, Max: 4},
		Resources: kube.Resources{CPURequest: resource.MustParse("100m"), MemoryRequest: resource.MustParse("128Mi"),
			MemoryLimit: resource.MustParse("256Mi")},
		Autoscaling: kube.Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80, ScaleDownWindowSeconds: 300},
		Shutdown:    kube.Shutdown{PreStopSeconds: 5, DrainSeconds: 10},
	}
}

func scaling(lo, hi int) Scaling {
	return Scaling{Replicas: kube.Replicas{Min: lo, Max: hi},
		Autoscaling: kube.Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80, ScaleDownWindowSeconds: 300}}
}

func everything(ctx *pulumi.Context) error {
	if _, err := NewCollector(ctx, CollectorName, collectorArgs()); err != nil {
		return err
	}
	if _, err := NewJaeger(ctx, "jaeger", &JaegerArgs{Namespace: "observability", CollectorNamespace: "shop",
		Storage:    JaegerStorage{Kind: StorageBadger, Retention: 72 * time.Hour, Dir: "/badger", VolumeSize: "20Gi"},
		CPURequest: "100m", MemoryRequest: "256Mi", MemoryLimit: "1Gi"}); err != nil {
		return err
	}
	if _, err := NewPrometheus(ctx, "prometheus", &PrometheusArgs{Namespace: "observability", Replicas: 2,
		Retention: 15 * 24 * time.Hour, VolumeSize: "50Gi", CPURequest: "250m", MemoryRequest: "1Gi", MemoryLimit: "2Gi",
		Config: inCluster(), Thresholds: DefaultThresholds()}); err != nil {
		return err
	}
	if _, err := NewKubeStateMetrics(ctx, "kube-state-metrics", &KubeStateMetricsArgs{Namespace: "observability"}); err != nil {
		return err
	}
	_, err := NewMetricsServer(ctx, "metrics-server", &MetricsServerArgs{Namespace: "kube-system", Scaling: scaling(2, 4)})
	return err
}

func TestEveryPodIsRestricted(t *testing.T) {
	r, err := run(t, everything)
	require.NoError(t, err, "declare every observability component")
	var pods int
	for _, typ := range []string{"kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"} {
		for _, d := range r.ofType(typ) {
			pods++
			pod := at(d.inputs, "spec", "template", "spec")
			assert.Equal(t, true, at(pod, "securityContext", "runAsNonRoot"), "%s runs as non-root", d.name)
			assert.Equal(t, "RuntimeDefault", at(pod, "securityContext", "seccompProfile", "type"), "%s seccomp", d.name)
			for _, c := range at(pod, "containers").([]any) {
				assert.Equal(t, false, at(c, "securityContext", "allowPrivilegeEscalation"), "%s no escalation", d.name)
				assert.Equal(t, true, at(c, "securityContext", "readOnlyRootFilesystem"), "%s read-only root", d.name)
				assert.Equal(t, []any{"ALL"}, at(c, "securityContext", "capabilities", "drop"), "%s drops capabilities", d.name)
				assert.True(t, kube.ImageTagged(at(c, "image").(string)), "%s image pinned", d.name)
				assert.NotNil(t, at(c, "resources", "limits", "memory"), "%s memory limit", d.name)
				assert.NotNil(t, at(c, "readinessProbe"), "%s readiness probe", d.name)
			}
			assert.NotEmpty(t, at(d.inputs, "metadata", "name"), "%s explicit metadata.name", d.name)
		}
	}
	assert.Equal(t, 5, pods, "collector, jaeger, prometheus, kube-state-metrics and metrics-server workloads")
}

func TestCollectorScalesLikeAService(t *testing.T) {
	r, err := run(t, everything)
	require.NoError(t, err, "declare")
	hpas := r.ofType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
	var targets []any
	for _, h := range hpas {
		targets = append(targets, at(h.inputs, "spec", "scaleTargetRef", "name"))
	}
	assert.ElementsMatch(t, []any{CollectorName, MetricsServerName}, targets, "the collector and metrics-server are autoscaled")
	var cm map[string]any
	for _, d := range r.ofType("kubernetes:core/v1:ConfigMap") {
		if at(d.inputs, "metadata", "name") == CollectorName {
			cm = d.inputs
		}
	}
	require.NotNil(t, cm, "collector ConfigMap")
	var conf map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(at(cm, "data", "config.yaml").(string)), &conf), "collector config parses")
	assert.Equal(t, "jaeger.observability.svc.cluster.local:4317", at(conf, "exporters", "otlp/jaeger", "endpoint"), "traces go to Jaeger")
	// 80 % of 256Mi, and a quarter of that for spikes.
	assert.EqualValues(t, 204, at(conf, "processors", "memory_limiter", "limit_mib"), "limiter below GOMEMLIMIT")
	assert.EqualValues(t, 51, at(conf, "processors", "memory_limiter", "spike_limit_mib"), "spike share")
	pipeline := at(conf, "service", "pipelines", "traces", "processors").([]any)
	assert.Equal(t, []any{"memory_limiter", "batch"}, pipeline, "memory_limiter runs first")
}

func TestMetricsServerRegistersTheResourceMetricsAPI(t *testing.T) {
	r, err := run(t, everything)
	require.NoError(t, err, "declare")
	api := r.ofType("kubernetes:apiregistration.k8s.io/v1:APIService")
	require.Len(t, api, 1, "one APIService")
	assert.Equal(t, "v1beta1.metrics.k8s.io", at(api[0].inputs, "metadata", "name"), "the name HPAs read")
	assert.Equal(t, "kube-system", at(api[0].inputs, "spec", "service", "namespace"), "served from kube-system")
	var bindings []string
	for _, d := range append(r.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"), r.ofType("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")...) {
		bindings = append(bindings, at(d.inputs, "roleRef", "name").(string))
	}
	for _, want := range []string{"system:auth-delegator", "extension-apiserver-authentication-reader", "system:metrics-server"} {
		assert.Contains(t, bindings, want, "metrics-server is bound to %s", want)
	}
}

func TestInvalidArgsDeclareNothing(t *testing.T) {
	cases := map[string]func(ctx *pulumi.Context) error{
		"collector latest image": func(ctx *pulumi.Context) error {
			a := collectorArgs()
			a.Image = "otel/opentelemetry-collector-contrib:latest"
			_, err := NewCollector(ctx, CollectorName, a)
			return err
		},
		"collector without a traces endpoint": func(ctx *pulumi.Context) error {
			a := collectorArgs()
			a.TracesEndpoint = "jaeger"
			_, err := NewCollector(ctx, CollectorName, a)
			return err
		},
		"jaeger opensearch without servers": func(ctx *pulumi.Context) error {
			_, err := NewJaeger(ctx, "jaeger", &JaegerArgs{Namespace: "o", CollectorNamespace: "shop",
				Storage: JaegerStorage{Kind: StorageOpenSearch}, CPURequest: "1", MemoryRequest: "1Gi", MemoryLimit: "1Gi"})
			return err
		},
		"prometheus with static targets": func(ctx *pulumi.Context) error {
			c := inCluster()
			c.Static = []StaticTarget{{Address: "127.0.0.1:1"}}
			_, err := NewPrometheus(ctx, "prometheus", &PrometheusArgs{Namespace: "o", Replicas: 1, Retention: time.Hour * 24,
				VolumeSize: "1Gi", CPURequest: "1", MemoryRequest: "1Gi", MemoryLimit: "1Gi", Config: c, Thresholds: DefaultThresholds()})
			return err
		},
		"metrics-server max below min": func(ctx *pulumi.Context) error {
			_, err := NewMetricsServer(ctx, "metrics-server", &MetricsServerArgs{Namespace: "kube-system", Scaling: scaling(2, 1)})
			return err
		},
	}
	for name, program := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := run(t, program)
			require.Error(t, err, "invalid args are refused")
			assert.Empty(t, r.all, "nothing is declared before validation passes")
		})
	}
}

func TestJaegerStorageShapesTheWorkload(t *testing.T) {
	for _, tc := range []struct {
		storage  JaegerStorage
		workload string
		replicas float64
	}{
		{JaegerStorage{Kind: StorageMemory, MaxTraces: 10}, "kubernetes:apps/v1:Deployment", 1},
		{JaegerStorage{Kind: StorageBadger, Retention: time.Hour, Dir: "/badger"}, "kubernetes:apps/v1:StatefulSet", 1},
		// The HPA owns the size: no spec.replicas.
		{JaegerStorage{Kind: StorageOpenSearch, Servers: []string{"https://search.example:443"}, IndexPrefix: "prod"}, "kubernetes:apps/v1:Deployment", 0},
	} {
		r, err := run(t, func(ctx *pulumi.Context) error {
			_, err := NewJaeger(ctx, "jaeger", &JaegerArgs{Namespace: "o", CollectorNamespace: "shop", Storage: tc.storage, Scaling: scaling(2, 6),
				CPURequest: "100m", MemoryRequest: "128Mi", MemoryLimit: "256Mi"})
			return err
		})
		require.NoError(t, err, "%s jaeger", tc.storage.Kind)
		w := r.ofType(tc.workload)
		require.Len(t, w, 1, "%s runs as %s", tc.storage.Kind, tc.workload)
		if tc.replicas == 0 {
			assert.Nil(t, at(w[0].inputs, "spec", "replicas"), "%s leaves the size to the HPA", tc.storage.Kind)
		} else {
			assert.EqualValues(t, tc.replicas, at(w[0].inputs, "spec", "replicas"), "%s replicas", tc.storage.Kind)
		}
		conf := RenderJaegerConfig(DefaultJaegerConfig(tc.storage))
		assert.True(t, strings.Contains(conf, string(tc.storage.Kind)+":"), "%s config names its backend:\n%s", tc.storage.Kind, conf)
		assert.Equal(t, tc.storage.Kind.External(), len(r.ofType("kubernetes:policy/v1:PodDisruptionBudget")) == 1, "%s PDB only with several pods", tc.storage.Kind)
		assert.Equal(t, tc.storage.Kind.External(), len(r.ofType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")) == 1, "%s autoscaled only when stateless", tc.storage.Kind)
	}
}
