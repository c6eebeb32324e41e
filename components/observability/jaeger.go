package observability

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// JaegerTypeToken is the Pulumi type of the Jaeger component.
const JaegerTypeToken = "scaleplane:observability:Jaeger"

// Jaeger's ports: OTLP in (from the collector), the query UI and API over
// HTTP and gRPC, health and its own metrics.
const (
	JaegerQueryHTTPPort = 16686
	JaegerQueryGRPCPort = 16685
	JaegerHealthPort    = 13133
	JaegerMetricsPort   = 8888
)

// StorageKind is where Jaeger keeps spans.
type StorageKind string

// The storage kinds. Memory and Badger live in the one Jaeger pod (local,
// dev, or a small staging); Elasticsearch and OpenSearch are external
// clusters, so Jaeger itself becomes stateless and runs more than one pod.
const (
	StorageMemory        StorageKind = "memory"
	StorageBadger        StorageKind = "badger"
	StorageElasticsearch StorageKind = "elasticsearch"
	StorageOpenSearch    StorageKind = "opensearch"
)

// StorageKinds lists every StorageKind, for validation and knobs.
var StorageKinds = []StorageKind{StorageMemory, StorageBadger, StorageElasticsearch, StorageOpenSearch}

// External reports whether spans are kept outside the Jaeger pod.
func (k StorageKind) External() bool { return k == StorageElasticsearch || k == StorageOpenSearch }

// JaegerStorage configures the span store.
type JaegerStorage struct {
	Kind StorageKind
	// MaxTraces bounds the memory store.
	MaxTraces int
	// Retention is how long spans are kept (Badger TTL).
	Retention time.Duration
	// Dir is the Badger directory (a PersistentVolume in the cluster).
	Dir string
	// VolumeSize is the Badger PersistentVolumeClaim size.
	VolumeSize string
	// Servers are the Elasticsearch/OpenSearch URLs.
	Servers []string
	// IndexPrefix prefixes the Elasticsearch/OpenSearch indices.
	IndexPrefix string
}

// Validate reports every problem of the storage settings.
func (s JaegerStorage) Validate() error {
	var errs []error
	if !slices.Contains(StorageKinds, s.Kind) {
		return fmt.Errorf("jaeger storage %q: must be one of %v", s.Kind, StorageKinds)
	}
	switch s.Kind {
	case StorageMemory:
		if s.MaxTraces <= 0 {
			errs = append(errs, fmt.Errorf("jaeger memory maxTraces %d: must be positive", s.MaxTraces))
		}
	case StorageBadger:
		if s.Retention <= 0 || s.Dir == "" {
			errs = append(errs, fmt.Errorf("jaeger badger: retention (%s) and dir (%q) are required", s.Retention, s.Dir))
		}
	default:
		if len(s.Servers) == 0 {
			errs = append(errs, fmt.Errorf("jaeger %s: at least one server URL is required", s.Kind))
		}
		for _, u := range s.Servers {
			if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				errs = append(errs, fmt.Errorf("jaeger %s server %q: must be an http(s) URL", s.Kind, u))
			}
		}
	}
	return errors.Join(errs...)
}

// JaegerConfig is what Jaeger's (v2, collector-based) config file says.
type JaegerConfig struct {
	// Bind is the listen address: 0.0.0.0 in a pod, loopback in tests.
	Bind          string
	OTLPGRPCPort  int
	OTLPHTTPPort  int
	QueryHTTPPort int
	QueryGRPCPort int
	HealthPort    int
	MetricsPort   int
	Storage       JaegerStorage
}

// DefaultJaegerConfig is the in-cluster configuration for a storage setting.
func DefaultJaegerConfig(s JaegerStorage) JaegerConfig {
	return JaegerConfig{
		Bind: "0.0.0.0", OTLPGRPCPort: OTLPGRPCPort, OTLPHTTPPort: OTLPHTTPPort,
		QueryHTTPPort: JaegerQueryHTTPPort, QueryGRPCPort: JaegerQueryGRPCPort,
		HealthPort: JaegerHealthPort, MetricsPort: JaegerMetricsPort, Storage: s,
	}
}

// jaegerStore is the one backend name the receiver side and the query side share.
const jaegerStore = "main"

// RenderJaegerConfig renders Jaeger's config.yaml: OTLP in, batch, the
// storage exporter into one backend, and the query extension (UI and API)
// reading the same backend.
func RenderJaegerConfig(c JaegerConfig) string {
	hp := func(port int) string { return net.JoinHostPort(c.Bind, strconv.Itoa(port)) }
	var backend map[string]any
	switch c.Storage.Kind {
	case StorageMemory:
		backend = map[string]any{"memory": map[string]any{"max_traces": c.Storage.MaxTraces}}
	case StorageBadger:
		backend = map[string]any{"badger": map[string]any{
			"directories": map[string]any{"keys": c.Storage.Dir + "/keys", "values": c.Storage.Dir + "/values"},
			"ephemeral":   false,
			"ttl":         map[string]any{"spans": c.Storage.Retention.String()},
		}}
	default:
		backend = map[string]any{string(c.Storage.Kind): map[string]any{
			"server_urls": c.Storage.Servers,
			"indices":     map[string]any{"index_prefix": c.Storage.IndexPrefix},
		}}
	}
	cfg := map[string]any{
		"extensions": map[string]any{
			"healthcheckv2":  map[string]any{"endpoint": hp(c.HealthPort), "path": "/"},
			"jaeger_storage": map[string]any{"backends": map[string]any{jaegerStore: backend}},
			"jaeger_query": map[string]any{
				"storage": map[string]any{"traces": jaegerStore},
				"http":    map[string]any{"endpoint": hp(c.QueryHTTPPort)},
				"grpc":    map[string]any{"endpoint": hp(c.QueryGRPCPort)},
			},
		},
		"receivers": map[string]any{
			"otlp": map[string]any{"protocols": map[string]any{
				"grpc": map[string]any{"endpoint": hp(c.OTLPGRPCPort)},
				"http": map[string]any{"endpoint": hp(c.OTLPHTTPPort)},
			}},
		},
		"processors": map[string]any{"batch": map[string]any{}},
		"exporters": map[string]any{
			"jaeger_storage_exporter": map[string]any{"trace_storage": jaegerStore},
		},
		"service": map[string]any{
			"extensions": []string{"jaeger_storage", "jaeger_query", "healthcheckv2"},
			"pipelines": map[string]any{
				"traces": map[string]any{"receivers": []string{"otlp"}, "processors": []string{"batch"}, "exporters": []string{"jaeger_storage_exporter"}},
			},
			"telemetry": map[string]any{
				"resource": map[string]any{"service.name": "jaeger"},
				"metrics": map[string]any{"readers": []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{
					"prometheus": map[string]any{"host": c.Bind, "port": c.MetricsPort},
				}}}}},
			},
		},
	}
	return mustYAML(cfg)
}

// JaegerArgs configure Jaeger.
type JaegerArgs struct {
	// Namespace is where Jaeger runs (the observability namespace).
	Namespace string
	// Image defaults to JaegerImage.
	Image   string
	Storage JaegerStorage
	// Scaling is used with external storage only (Jaeger is then stateless
	// and autoscaled like a service): the memory and Badger stores live in
	// one pod, so that pod is alone.
	Scaling Scaling
	// ZoneSpreadRequired makes the zone spread a hard scheduling rule (prod).
	ZoneSpreadRequired bool
	// CPURequest, MemoryRequest and MemoryLimit size the pod.
	CPURequest, MemoryRequest, MemoryLimit string
	// CollectorNamespace is where the collector runs; only its pods may
	// send spans.
	CollectorNamespace string
	// StorageClass names the Badger volume's class; empty takes the default.
	StorageClass string
}

// Jaeger is the deployed Jaeger.
type Jaeger struct {
	pulumi.ResourceState

	// OTLPEndpoint is the OTLP gRPC host:port the collector exports to.
	OTLPEndpoint pulumi.StringOutput `pulumi:"otlpEndpoint"`
	// QueryURL is the UI and API base URL inside the cluster.
	QueryURL pulumi.StringOutput `pulumi:"queryUrl"`
}

// OTLPHost is the host:port Jaeger receives OTLP gRPC on, known before
// anything is deployed (the collector's config file needs it as text).
func OTLPHost(name, namespace string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", name, namespace, OTLPGRPCPort)
}

// NewJaeger validates args, then declares Jaeger's ServiceAccount,
// ConfigMap, workload (a one-pod StatefulSet with a volume for Badger, a
// Deployment otherwise), Service, NetworkPolicy and, when it runs more than
// one pod, a PodDisruptionBudget.
func NewJaeger(ctx *pulumi.Context, name string, args *JaegerArgs, opts ...pulumi.ResourceOption) (*Jaeger, error) {
	if args == nil {
		return nil, fmt.Errorf("jaeger %s: args are required", name)
	}
	image := args.Image
	if image == "" {
		image = JaegerImage
	}
	var errs []error
	errs = append(errs, checkWorkload(name, args.Namespace, image), args.Storage.Validate())
	if !kube.DNSLabel(args.CollectorNamespace) {
		errs = append(errs, fmt.Errorf("collectorNamespace %q: must be a DNS label", args.CollectorNamespace))
	}
	replicas := 1
	if args.Storage.Kind.External() {
		errs = append(errs, args.Scaling.validate("jaeger"))
		replicas = args.Scaling.Replicas.Min
	}
	if args.CPURequest == "" || args.MemoryRequest == "" || args.MemoryLimit == "" {
		errs = append(errs, fmt.Errorf("cpuRequest, memoryRequest and memoryLimit are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("jaeger %s: %w", name, err)
	}
	j := &Jaeger{}
	if err := ctx.RegisterComponentResource(JaegerTypeToken, name, j, opts...); err != nil {
		return nil, fmt.Errorf("jaeger %s: register: %w", name, err)
	}
	child, err := children.Options(j, opts)
	if err != nil {
		return nil, fmt.Errorf("jaeger %s: options: %w", name, err)
	}
	l := labels(name, imageTag(image))
	sel := kube.SelectorOf(l)
	conf := RenderJaegerConfig(DefaultJaegerConfig(args.Storage))

	sa, err := corev1.NewServiceAccount(ctx, name+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata: kube.Meta(name, args.Namespace, l), AutomountServiceAccountToken: pulumi.Bool(false),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("jaeger %s: service account: %w", name, err)
	}
	cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Data:     pulumi.StringMap{"config.yaml": pulumi.String(conf)},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("jaeger %s: config map: %w", name, err)
	}

	ports := []struct {
		name string
		port int
	}{{"otlp-grpc", OTLPGRPCPort}, {"otlp-http", OTLPHTTPPort}, {"query-http", JaegerQueryHTTPPort},
		{"query-grpc", JaegerQueryGRPCPort}, {"health", JaegerHealthPort}, {"metrics", JaegerMetricsPort}}
	var cports corev1.ContainerPortArray
	var sports corev1.ServicePortArray
	for _, p := range ports {
		cports = append(cports, corev1.ContainerPortArgs{Name: pulumi.String(p.name), ContainerPort: pulumi.Int(p.port), Protocol: pulumi.String("TCP")})
		sports = append(sports, corev1.ServicePortArgs{Name: pulumi.String(p.name), Port: pulumi.Int(p.port), TargetPort: pulumi.String(p.name), Protocol: pulumi.String("TCP")})
	}
	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(name)}},
		corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("64Mi")}},
	}
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String("/etc/jaeger"), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
	}
	if args.Storage.Kind == StorageBadger {
		mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(args.Storage.Dir)})
	}
	probe := func(period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			HttpGet:       &corev1.HTTPGetActionArgs{Path: pulumi.String("/"), Port: pulumi.String("health")},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(failures),
		}
	}
	template := &corev1.PodTemplateSpecArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Labels: pulumi.ToStringMap(l),
			Annotations: pulumi.StringMap{
				"prometheus.io/scrape":        pulumi.String("true"),
				"prometheus.io/port":          pulumi.String(strconv.Itoa(JaegerMetricsPort)),
				"prometheus.io/path":          pulumi.String("/metrics"),
				kube.ConfigChecksumAnnotation: pulumi.String(kube.ConfigChecksum(conf)),
			},
		},
		Spec: &corev1.PodSpecArgs{
			ServiceAccountName:           sa.Metadata.Name().Elem(),
			AutomountServiceAccountToken: pulumi.Bool(false),
			EnableServiceLinks:           pulumi.Bool(false),
			SecurityContext:              kube.RestrictedPodSecurity(nobodyUID),
			TopologySpreadConstraints:    kube.Spread(sel, args.ZoneSpreadRequired),
			Volumes:                      volumes,
			Containers: corev1.ContainerArray{corev1.ContainerArgs{
				Name:            pulumi.String("jaeger"),
				Image:           pulumi.String(image),
				ImagePullPolicy: pulumi.String("IfNotPresent"),
				Args:            pulumi.ToStringArray([]string{"--config=/etc/jaeger/config.yaml"}),
				Ports:           cports,
				Resources:       kube.Requirements(args.CPURequest, args.MemoryRequest, "", args.MemoryLimit),
				StartupProbe:    probe(2, 30),
				LivenessProbe:   probe(10, 3),
				ReadinessProbe:  probe(5, 2),
				SecurityContext: kube.RestrictedContainerSecurity(),
				VolumeMounts:    mounts,
			}},
		},
	}
	labelSel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)}
	after := pulumi.DependsOn([]pulumi.Resource{cm})
	if args.Storage.Kind == StorageBadger {
		size := args.Storage.VolumeSize
		if size == "" {
			size = "10Gi"
		}
		pvc := &corev1.PersistentVolumeClaimSpecArgs{
			AccessModes: pulumi.ToStringArray([]string{"ReadWriteOnce"}),
			Resources:   &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(size)}},
		}
		if args.StorageClass != "" {
			pvc.StorageClassName = pulumi.String(args.StorageClass)
		}
		_, err = appsv1.NewStatefulSet(ctx, name+"-statefulset", &appsv1.StatefulSetArgs{
			Metadata: kube.Meta(name, args.Namespace, l),
			Spec: &appsv1.StatefulSetSpecArgs{
				Replicas: pulumi.Int(1), ServiceName: pulumi.String(name), Selector: labelSel, Template: template,
				VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
					Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("data")}, Spec: pvc,
				}},
			},
		}, child, after)
	} else {
		strategy := &appsv1.DeploymentStrategyArgs{Type: pulumi.String("RollingUpdate"),
			RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxSurge: pulumi.String("25%"), MaxUnavailable: pulumi.Int(0)}}
		if !args.Storage.Kind.External() {
			// The memory store dies with its pod anyway; never two stores at once.
			strategy = &appsv1.DeploymentStrategyArgs{Type: pulumi.String("Recreate")}
		}
		spec := &appsv1.DeploymentSpecArgs{
			Selector: labelSel, Template: template, Strategy: strategy, RevisionHistoryLimit: pulumi.Int(5),
		}
		if !args.Storage.Kind.External() {
			// Otherwise the HPA owns the size, and an update must not reset it.
			spec.Replicas = pulumi.Int(replicas)
		}
		_, err = appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
			Metadata: kube.Meta(name, args.Namespace, l), Spec: spec,
		}, child, after)
	}
	if err != nil {
		return nil, fmt.Errorf("jaeger %s: workload: %w", name, err)
	}
	svc, err := corev1.NewService(ctx, name+"-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec:     &corev1.ServiceSpecArgs{Type: pulumi.String("ClusterIP"), Selector: pulumi.ToStringMap(sel), Ports: sports},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("jaeger %s: service: %w", name, err)
	}
	if args.Storage.Kind.External() {
		if _, err := kube.NewHPA(ctx, name+"-hpa", kube.Meta(name, args.Namespace, l), pulumi.String(name),
			args.Scaling.Replicas, args.Scaling.Autoscaling, args.Scaling.Autoscaling.Stabilization(), child); err != nil {
			return nil, fmt.Errorf("jaeger %s: autoscaler: %w", name, err)
		}
	}
	if replicas > 1 || args.Storage.Kind.External() {
		if _, err := kube.NewPDB(ctx, name+"-pdb", kube.Meta(name, args.Namespace, l), sel, child); err != nil {
			return nil, fmt.Errorf("jaeger %s: disruption budget: %w", name, err)
		}
	}
	tcp := func(ports ...int) networkingv1.NetworkPolicyPortArray {
		var out networkingv1.NetworkPolicyPortArray
		for _, p := range ports {
			out = append(out, networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(p), Protocol: pulumi.String("TCP")})
		}
		return out
	}
	inNamespace := func(ns, app string) networkingv1.NetworkPolicyPeerArgs {
		return networkingv1.NetworkPolicyPeerArgs{
			NamespaceSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String(ns)}},
			PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(app)}},
		}
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: labelSel,
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{
				// Spans only from the collector.
				networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: tcp(OTLPGRPCPort, OTLPHTTPPort),
					From:  networkingv1.NetworkPolicyPeerArray{inNamespace(args.CollectorNamespace, CollectorName)},
				},
				// Jaeger's own metrics to Prometheus (any namespace, as the services do).
				networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: tcp(JaegerMetricsPort),
					From: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
						NamespaceSelector: &metav1.LabelSelectorArgs{},
						PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(PrometheusName)}},
					}},
				},
				// The UI and query API from the observability namespace
				// (Prometheus' and operators' port-forwards).
				networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: tcp(JaegerQueryHTTPPort, JaegerQueryGRPCPort),
					From: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
						PodSelector: &metav1.LabelSelectorArgs{},
					}},
				},
			},
		},
	}, child); err != nil {
		return nil, fmt.Errorf("jaeger %s: network policy: %w", name, err)
	}
	j.OTLPEndpoint = pulumi.Sprintf("%s.%s.svc.cluster.local:%d", svc.Metadata.Name().Elem(), args.Namespace, OTLPGRPCPort)
	j.QueryURL = pulumi.Sprintf("http://%s.%s.svc.cluster.local:%d", svc.Metadata.Name().Elem(), args.Namespace, JaegerQueryHTTPPort)
	if err := ctx.RegisterResourceOutputs(j, pulumi.Map{"otlpEndpoint": j.OTLPEndpoint, "queryUrl": j.QueryURL}); err != nil {
		return nil, fmt.Errorf("jaeger %s: outputs: %w", name, err)
	}
	return j, nil
}
