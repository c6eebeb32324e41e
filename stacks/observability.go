package stacks

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/components/namespace"
	"github.com/scaleplane/scaleplane/components/observability"
)

// Auto is the knob value that lets the environment decide.
const Auto = "auto"

// ObservabilitySettings are the observability stack's knobs.
type ObservabilitySettings struct {
	// Namespace holds Jaeger, Prometheus and kube-state-metrics; the
	// collector runs in the application namespace, where the services
	// find it (Env.CollectorEndpoint).
	Namespace             string
	CollectorImage        string
	JaegerImage           string
	PrometheusImage       string
	KubeStateMetricsImage string
	MetricsServerImage    string
	// Collector sizes the collector; zero replicas mean "by environment".
	Collector Workload
	// JaegerStorage is a StorageKind or Auto; JaegerServers are the
	// Elasticsearch/OpenSearch URLs for the external kinds.
	JaegerStorage   string
	JaegerServers   []string
	JaegerRetention time.Duration
	// PrometheusReplicas zero means "by environment" (two in prod).
	PrometheusReplicas   int
	PrometheusRetention  time.Duration
	PrometheusVolumeSize string
	// PrometheusCPURequest is each Prometheus pod's CPU request.
	PrometheusCPURequest string
	// MetricsServer is on, off or Auto (on, except on the local embedded
	// cluster, which runs its own as an add-on).
	MetricsServer string
	// StorageClass names the volumes' class; empty takes the cluster default.
	StorageClass string
}

// observabilityKnobs are the knobs of ObservabilitySettings, appended to Knobs.
func observabilityKnobs() []Knob {
	o := func(e *Env) *ObservabilitySettings { return &e.Observability }
	image := func(key, def, what string, set func(*ObservabilitySettings, string)) Knob {
		return stringKnob(key, def, "Image of "+what+"; never latest.", func(e *Env, v string) error {
			if !microservice.ImageTagged(v) {
				return fmt.Errorf("must carry an explicit tag or digest other than latest")
			}
			set(o(e), v)
			return nil
		})
	}
	q := func(key, def, desc string, set func(*microservice.Resources, resource.Quantity)) Knob {
		return quantityKnob(key, def, desc, func(e *Env, v resource.Quantity) { set(&o(e).Collector.Resources, v) })
	}
	storages := []string{Auto}
	for _, k := range observability.StorageKinds {
		storages = append(storages, string(k))
	}
	return []Knob{
		stringKnob("observabilityNamespace", "observability", "Namespace of Jaeger, Prometheus and kube-state-metrics (restricted Pod Security); the collector runs in the application namespace.",
			func(e *Env, v string) error { o(e).Namespace = v; return nil }),
		image("collectorImage", observability.CollectorImage, "the OpenTelemetry Collector (a distribution with otlp, memory_limiter, batch and prometheus)",
			func(s *ObservabilitySettings, v string) { s.CollectorImage = v }),
		image("jaegerImage", observability.JaegerImage, "Jaeger v2", func(s *ObservabilitySettings, v string) { s.JaegerImage = v }),
		image("prometheusImage", observability.PrometheusImage, "Prometheus", func(s *ObservabilitySettings, v string) { s.PrometheusImage = v }),
		image("kubeStateMetricsImage", observability.KubeStateMetricsImage, "kube-state-metrics", func(s *ObservabilitySettings, v string) { s.KubeStateMetricsImage = v }),
		image("metricsServerImage", observability.MetricsServerImage, "metrics-server", func(s *ObservabilitySettings, v string) { s.MetricsServerImage = v }),
		intKnob("collectorMinReplicas", 0, 0, 1000, "Fewest collector pods (HPA minReplicas); 0 takes the environment's floor (3 in prod, else 2).",
			func(e *Env, v int) { o(e).Collector.Replicas.Min = v }),
		intKnob("collectorMaxReplicas", 0, 0, 1000, "Most collector pods (HPA maxReplicas); 0 means three times the minimum.",
			func(e *Env, v int) { o(e).Collector.Replicas.Max = v }),
		q("collectorCpuRequest", "100m", "CPU request of a collector pod.", func(r *microservice.Resources, v resource.Quantity) { r.CPURequest = v }),
		q("collectorCpuLimit", "1", "CPU limit of a collector pod (0 for none).", func(r *microservice.Resources, v resource.Quantity) { r.CPULimit = v }),
		q("collectorMemoryRequest", "128Mi", "Memory request of a collector pod.", func(r *microservice.Resources, v resource.Quantity) { r.MemoryRequest = v }),
		q("collectorMemoryLimit", "512Mi", "Memory limit of a collector pod; memory_limiter refuses data above 80 % of it, GOMEMLIMIT is 90 %.",
			func(r *microservice.Resources, v resource.Quantity) { r.MemoryLimit = v }),
		enumKnob("jaegerStorage", Auto, "Where Jaeger keeps spans: auto (badger on a volume), memory, badger, or an external elasticsearch/opensearch (then set jaegerStorageServers; Jaeger becomes stateless and autoscaled).",
			storages, func(e *Env, v string) { o(e).JaegerStorage = v }),
		stringKnob("jaegerStorageServers", "", "Comma-separated Elasticsearch/OpenSearch URLs for jaegerStorage elasticsearch or opensearch.",
			func(e *Env, v string) error { o(e).JaegerServers = splitList(v); return nil }),
		intKnob("jaegerRetentionHours", 72, 1, 24*365, "How long Jaeger keeps spans in Badger.",
			func(e *Env, v int) { o(e).JaegerRetention = time.Duration(v) * time.Hour }),
		intKnob("prometheusReplicas", 0, 0, 5, "Prometheus pods, each a full scraper with its own volume; 0 takes 2 in prod, else 1.",
			func(e *Env, v int) { o(e).PrometheusReplicas = v }),
		intKnob("prometheusRetentionDays", 15, 1, 3650, "How long Prometheus keeps samples.",
			func(e *Env, v int) { o(e).PrometheusRetention = time.Duration(v) * 24 * time.Hour }),
		quantityKnob("prometheusCpuRequest", "250m", "CPU request of each Prometheus pod.",
			func(e *Env, v resource.Quantity) { o(e).PrometheusCPURequest = v.String() }),
		quantityKnob("prometheusVolumeSize", "20Gi", "Size of each Prometheus volume.",
			func(e *Env, v resource.Quantity) { o(e).PrometheusVolumeSize = v.String() }),
		enumKnob("metricsServer", Auto, "Deploy metrics-server (the HPAs read CPU and memory from it): auto deploys it everywhere except local, whose embedded cluster runs its own.",
			[]string{Auto, "on", "off"}, func(e *Env, v string) { o(e).MetricsServer = v }),
		stringKnob("storageClass", "", "StorageClass of the observability volumes; empty takes the cluster's default.",
			func(e *Env, v string) error { o(e).StorageClass = v; return nil }),
	}
}

// splitList splits a comma-separated knob, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// validateObservability checks the knobs that depend on each other.
func (e *Env) validateObservability() []error {
	var errs []error
	s := e.Observability
	if s.Namespace == e.Namespace {
		errs = append(errs, &ConfigError{Key: "observabilityNamespace", Value: s.Namespace, Allowed: "must differ from namespace (the application namespace)"})
	}
	kind := e.JaegerStorage()
	if kind.External() && len(s.JaegerServers) == 0 {
		errs = append(errs, &ConfigError{Key: "jaegerStorageServers", Value: "", Allowed: "required when jaegerStorage is " + string(kind)})
	}
	if !kind.External() && len(s.JaegerServers) > 0 {
		errs = append(errs, &ConfigError{Key: "jaegerStorageServers", Value: strings.Join(s.JaegerServers, ","), Allowed: "only for jaegerStorage elasticsearch or opensearch"})
	}
	if c := e.CollectorReplicas(); c.Max < c.Min {
		errs = append(errs, &ConfigError{Key: "collectorMaxReplicas", Value: fmt.Sprint(c.Max), Allowed: fmt.Sprintf("must be 0 or at least collectorMinReplicas (%d)", c.Min)})
	}
	if r := s.Collector.Resources; r.MemoryLimit.Cmp(r.MemoryRequest) < 0 {
		errs = append(errs, &ConfigError{Key: "collectorMemoryLimit", Value: r.MemoryLimit.String(), Allowed: "must be at least collectorMemoryRequest"})
	}
	return errs
}

// replicaFloor is the fewest pods of anything serving: three in prod (one
// per zone), two elsewhere.
func (e *Env) replicaFloor() int {
	if e.Environment == "prod" {
		return 3
	}
	return 2
}

// CollectorReplicas resolves the collector's "auto" replica knobs.
func (e *Env) CollectorReplicas() microservice.Replicas {
	r := e.Observability.Collector.Replicas
	if r.Min == 0 {
		r.Min = e.replicaFloor()
	}
	if r.Max == 0 {
		r.Max = 3 * r.Min
	}
	return r
}

// JaegerStorage resolves jaegerStorage auto: Badger on a volume everywhere,
// so traces survive a Jaeger restart; prod should name an external store.
func (e *Env) JaegerStorage() observability.StorageKind {
	if e.Observability.JaegerStorage == "" || e.Observability.JaegerStorage == Auto {
		return observability.StorageBadger
	}
	return observability.StorageKind(e.Observability.JaegerStorage)
}

// MetricsServerEnabled resolves metricsServer auto.
func (e *Env) MetricsServerEnabled() bool {
	switch e.Observability.MetricsServer {
	case "on":
		return true
	case "off":
		return false
	default:
		return e.Environment != "local"
	}
}

// Observability is what the observability stack exposes.
type Observability struct {
	Collector  *observability.Collector
	Jaeger     *observability.Jaeger
	Prometheus *observability.Prometheus
}

// jaegerName is Jaeger's Service name in the observability namespace.
const jaegerName = "jaeger"

// ComposeObservability declares the observability stack: its namespace,
// Jaeger, kube-state-metrics and Prometheus there, the collector in the
// application namespace (after it exists: pass after), and metrics-server.
// Every object goes through the foundation's Kubernetes provider when there
// is one (staging and prod on EKS).
func ComposeObservability(ctx *pulumi.Context, env *Env, fnd *Foundation, after pulumi.ResourceOption) (*Observability, error) {
	s := env.Observability
	k8s := fnd.KubernetesProvider()
	ns, err := namespace.NewNamespace(ctx, s.Namespace, &namespace.Args{Name: s.Namespace, Environment: env.Environment}, k8s)
	if err != nil {
		return nil, err
	}
	// On AWS every workload waits for its image's ECR repository.
	inObs := pulumi.Composite(k8s, pulumi.DependsOn([]pulumi.Resource{ns}), fnd.Images())
	scaling := observability.Scaling{
		Replicas:    microservice.Replicas{Min: env.replicaFloor(), Max: 2 * env.replicaFloor()},
		Autoscaling: env.Autoscaling,
	}
	kind := env.JaegerStorage()
	jaeger, err := observability.NewJaeger(ctx, jaegerName, &observability.JaegerArgs{
		Namespace: s.Namespace,
		Image:     s.JaegerImage,
		Storage: observability.JaegerStorage{
			Kind: kind, MaxTraces: 50000, Retention: s.JaegerRetention, Dir: "/badger", VolumeSize: "10Gi",
			Servers: s.JaegerServers, IndexPrefix: "scaleplane-" + env.Environment,
		},
		Scaling:            scaling,
		CPURequest:         "100m",
		MemoryRequest:      "256Mi",
		MemoryLimit:        "1Gi",
		CollectorNamespace: env.Namespace,
		StorageClass:       s.StorageClass,
		ZoneSpreadRequired: env.ZoneSpreadRequired,
	}, inObs)
	if err != nil {
		return nil, err
	}
	if _, err := observability.NewKubeStateMetrics(ctx, "kube-state-metrics", &observability.KubeStateMetricsArgs{
		Namespace: s.Namespace, Image: s.KubeStateMetricsImage, ZoneSpreadRequired: env.ZoneSpreadRequired,
	}, inObs); err != nil {
		return nil, err
	}
	promReplicas := s.PrometheusReplicas
	if promReplicas == 0 {
		promReplicas = map[bool]int{true: 2, false: 1}[env.Environment == "prod"]
	}
	prom, err := observability.NewPrometheus(ctx, "prometheus", &observability.PrometheusArgs{
		Namespace: s.Namespace, Image: s.PrometheusImage, Replicas: promReplicas,
		Retention: s.PrometheusRetention, VolumeSize: s.PrometheusVolumeSize, StorageClass: s.StorageClass,
		CPURequest: s.PrometheusCPURequest, MemoryRequest: "1Gi", MemoryLimit: "2Gi",
		Config: observability.PrometheusConfig{
			ScrapeInterval: 30 * time.Second, EvaluationInterval: 30 * time.Second,
			ExternalLabels: map[string]string{"environment": env.Environment, "stack": env.Stack},
		},
		Thresholds:         observability.DefaultThresholds(),
		ZoneSpreadRequired: env.ZoneSpreadRequired,
	}, inObs)
	if err != nil {
		return nil, err
	}
	senders := slices.Clone(Workloads)
	collector, err := observability.NewCollector(ctx, observability.CollectorName, &observability.CollectorArgs{
		Namespace:          env.Namespace,
		Image:              s.CollectorImage,
		TracesEndpoint:     observability.OTLPHost(jaegerName, s.Namespace),
		AllowFrom:          senders,
		Replicas:           env.CollectorReplicas(),
		Resources:          s.Collector.Resources,
		Autoscaling:        env.Autoscaling,
		Shutdown:           env.Shutdown,
		ZoneSpreadRequired: env.ZoneSpreadRequired,
	}, after)
	if err != nil {
		return nil, err
	}
	if env.MetricsServerEnabled() {
		if _, err := observability.NewMetricsServer(ctx, "metrics-server", &observability.MetricsServerArgs{
			Namespace: "kube-system", Image: s.MetricsServerImage, Scaling: scaling,
			ZoneSpreadRequired: env.ZoneSpreadRequired,
		}, k8s, fnd.Images()); err != nil {
			return nil, err
		}
	}
	ctx.Export("collectorEndpoint", collector.Endpoint)
	ctx.Export("jaegerQueryUrl", jaeger.QueryURL)
	ctx.Export("prometheusUrl", prom.URL)
	return &Observability{Collector: collector, Jaeger: jaeger, Prometheus: prom}, nil
}
