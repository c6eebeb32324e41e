package observability

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"time"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// PrometheusTypeToken is the Pulumi type of the Prometheus component.
const PrometheusTypeToken = "scaleplane:observability:Prometheus"

// PrometheusName is the app.kubernetes.io/name of Prometheus' pods: every
// microservice's NetworkPolicy admits pods with this name to its metrics port.
const PrometheusName = "prometheus"

// PrometheusPort is Prometheus' web and API port.
const PrometheusPort = 9090

// RulesFile is the alert rules' file name beside prometheus.yml.
const RulesFile = "alerts.yml"

// Scrape job names.
const (
	JobPods             = "kubernetes-pods"
	JobCAdvisor         = "kubernetes-cadvisor"
	JobKubeStateMetrics = "kube-state-metrics"
)

// StaticTarget stands in for a discovered pod outside a cluster: Labels may
// carry the same __meta_kubernetes_* labels discovery would set, so the
// relabelling under test is the one that runs in the cluster.
type StaticTarget struct {
	Address string
	Labels  map[string]string
}

// PrometheusConfig is what prometheus.yml says.
type PrometheusConfig struct {
	ScrapeInterval     time.Duration
	EvaluationInterval time.Duration
	// ExternalLabels mark every series and alert with its origin (environment).
	ExternalLabels map[string]string
	// Static, when set, replaces Kubernetes discovery of the pods job with
	// these targets, and drops the jobs that only make sense in a cluster
	// (cAdvisor through the API server, kube-state-metrics).
	Static []StaticTarget
}

// Validate reports every problem of the config.
func (c PrometheusConfig) Validate() error {
	var errs []error
	if c.ScrapeInterval < time.Second || c.EvaluationInterval < time.Second {
		errs = append(errs, fmt.Errorf("prometheus scrape (%s) and evaluation (%s) intervals: must be at least 1s", c.ScrapeInterval, c.EvaluationInterval))
	}
	labelName := regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	for k := range c.ExternalLabels {
		if !labelName.MatchString(k) {
			errs = append(errs, fmt.Errorf("prometheus external label %q: not a label name", k))
		}
	}
	return errors.Join(errs...)
}

// serviceAccountDir is where a pod's API credentials are mounted.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// RenderPrometheusConfig renders prometheus.yml: pods that carry the
// prometheus.io/scrape|port|path annotations (the convention every
// microservice follows) are discovered in every namespace; containers'
// memory against their limits comes from the kubelets' cAdvisor through the
// API server; the HPA state from kube-state-metrics.
func RenderPrometheusConfig(c PrometheusConfig) string {
	podRelabel := []map[string]any{
		{"source_labels": []string{"__meta_kubernetes_pod_annotation_prometheus_io_scrape"}, "action": "keep", "regex": "true"},
		{"source_labels": []string{"__meta_kubernetes_pod_phase"}, "action": "drop", "regex": "Pending|Succeeded|Failed"},
		{"source_labels": []string{"__meta_kubernetes_pod_annotation_prometheus_io_path"}, "action": "replace",
			"regex": "(.+)", "target_label": "__metrics_path__"},
		// The annotated port replaces whichever port discovery found.
		{"source_labels": []string{"__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"}, "action": "replace",
			"regex": `(.+?)(?::\d+)?;(\d+)`, "replacement": "$1:$2", "target_label": "__address__"},
		{"source_labels": []string{"__meta_kubernetes_namespace"}, "target_label": "namespace"},
		{"source_labels": []string{"__meta_kubernetes_pod_name"}, "target_label": "pod"},
		{"source_labels": []string{"__meta_kubernetes_pod_label_app_kubernetes_io_name"}, "target_label": "app"},
		{"source_labels": []string{"__meta_kubernetes_pod_label_app_kubernetes_io_component"}, "target_label": "component"},
	}
	pods := map[string]any{"job_name": JobPods, "relabel_configs": podRelabel}
	jobs := []any{pods}
	if len(c.Static) > 0 {
		var static []any
		for _, t := range c.Static {
			static = append(static, map[string]any{"targets": []string{t.Address}, "labels": t.Labels})
		}
		pods["static_configs"] = static
	} else {
		pods["kubernetes_sd_configs"] = []any{map[string]any{"role": "pod"}}
		inCluster := map[string]any{
			"scheme":        "https",
			"tls_config":    map[string]any{"ca_file": serviceAccountDir + "/ca.crt"},
			"authorization": map[string]any{"credentials_file": serviceAccountDir + "/token"},
		}
		cadvisor := maps.Clone(inCluster)
		cadvisor["job_name"] = JobCAdvisor
		cadvisor["kubernetes_sd_configs"] = []any{map[string]any{"role": "node"}}
		cadvisor["relabel_configs"] = []map[string]any{
			{"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
			{"source_labels": []string{"__meta_kubernetes_node_name"}, "regex": "(.+)",
				"target_label": "__metrics_path__", "replacement": "/api/v1/nodes/$1/proxy/metrics/cadvisor"},
			{"source_labels": []string{"__meta_kubernetes_node_name"}, "target_label": "node"},
		}
		// kube-state-metrics labels series with the object's namespace;
		// honor_labels keeps it instead of renaming it exported_namespace.
		ksm := map[string]any{
			"job_name":              JobKubeStateMetrics,
			"honor_labels":          true,
			"kubernetes_sd_configs": []any{map[string]any{"role": "pod"}},
			"relabel_configs": []map[string]any{
				{"source_labels": []string{"__meta_kubernetes_pod_label_app_kubernetes_io_name"}, "action": "keep", "regex": KubeStateMetricsName},
				{"source_labels": []string{"__meta_kubernetes_pod_container_port_name"}, "action": "keep", "regex": "http-metrics"},
			},
		}
		jobs = append(jobs, cadvisor, ksm)
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     promDuration(c.ScrapeInterval),
			"evaluation_interval": promDuration(c.EvaluationInterval),
			"external_labels":     c.ExternalLabels,
		},
		"rule_files":     []string{RulesFile},
		"scrape_configs": jobs,
	}
	return mustYAML(cfg)
}

// PrometheusArgs configure Prometheus.
type PrometheusArgs struct {
	// Namespace is the observability namespace.
	Namespace string
	// Image defaults to PrometheusImage.
	Image string
	// Replicas > 1 runs identical scrapers (HA pair); each keeps its own TSDB.
	Replicas int
	// Retention is how long samples are kept (--storage.tsdb.retention.time).
	Retention time.Duration
	// VolumeSize of each replica's TSDB volume; StorageClass empty takes the default.
	VolumeSize   string
	StorageClass string
	// CPURequest, MemoryRequest and MemoryLimit size the pod.
	CPURequest, MemoryRequest, MemoryLimit string
	Config                                 PrometheusConfig
	Thresholds                             Thresholds
	// ZoneSpreadRequired makes the zone spread a hard scheduling rule (prod).
	ZoneSpreadRequired bool
}

// Prometheus is the deployed Prometheus.
type Prometheus struct {
	pulumi.ResourceState

	// URL is Prometheus' API and UI base URL inside the cluster.
	URL pulumi.StringOutput `pulumi:"url"`
}

// NewPrometheus validates args, then declares Prometheus' ServiceAccount
// with the read-only cluster role discovery and cAdvisor need, its
// ConfigMap (prometheus.yml and the alert rules), a StatefulSet with a
// volume per replica, a Service and a NetworkPolicy.
func NewPrometheus(ctx *pulumi.Context, name string, args *PrometheusArgs, opts ...pulumi.ResourceOption) (*Prometheus, error) {
	if args == nil {
		return nil, fmt.Errorf("prometheus %s: args are required", name)
	}
	image := args.Image
	if image == "" {
		image = PrometheusImage
	}
	errs := []error{checkWorkload(name, args.Namespace, image), args.Config.Validate()}
	if len(args.Config.Static) > 0 {
		errs = append(errs, fmt.Errorf("config.static: only for tests outside a cluster"))
	}
	if args.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas %d: must be at least 1", args.Replicas))
	}
	if args.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("retention %s: must be at least 1h", args.Retention))
	}
	if args.VolumeSize == "" || args.CPURequest == "" || args.MemoryRequest == "" || args.MemoryLimit == "" {
		errs = append(errs, fmt.Errorf("volumeSize, cpuRequest, memoryRequest and memoryLimit are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", name, err)
	}
	p := &Prometheus{}
	if err := ctx.RegisterComponentResource(PrometheusTypeToken, name, p, opts...); err != nil {
		return nil, fmt.Errorf("prometheus %s: register: %w", name, err)
	}
	child, err := children.Options(p, opts)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: options: %w", name, err)
	}
	// The name label is PrometheusName whatever the component is called:
	// the services' NetworkPolicies admit scrapers by it.
	l := labels(PrometheusName, imageTag(image))
	l["app.kubernetes.io/instance"] = name
	sel := kube.SelectorOf(l)
	labelSel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)}
	files := map[string]string{
		"prometheus.yml": RenderPrometheusConfig(args.Config),
		RulesFile:        RenderAlertRules(args.Thresholds),
	}

	sa, err := corev1.NewServiceAccount(ctx, name+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		// Discovery talks to the API server with this account's token.
		AutomountServiceAccountToken: pulumi.Bool(true),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: service account: %w", name, err)
	}
	clusterName := args.Namespace + "-" + name
	role, err := rbacv1.NewClusterRole(ctx, name+"-clusterrole", &rbacv1.ClusterRoleArgs{
		Metadata: kube.Meta(clusterName, "", l),
		Rules: rbacv1.PolicyRuleArray{
			rbacv1.PolicyRuleArgs{
				ApiGroups: pulumi.ToStringArray([]string{""}),
				Resources: pulumi.ToStringArray([]string{"nodes", "nodes/metrics", "nodes/proxy", "pods", "services", "endpoints"}),
				Verbs:     pulumi.ToStringArray([]string{"get", "list", "watch"}),
			},
			rbacv1.PolicyRuleArgs{
				ApiGroups: pulumi.ToStringArray([]string{"discovery.k8s.io"}),
				Resources: pulumi.ToStringArray([]string{"endpointslices"}),
				Verbs:     pulumi.ToStringArray([]string{"get", "list", "watch"}),
			},
			rbacv1.PolicyRuleArgs{
				NonResourceURLs: pulumi.ToStringArray([]string{"/metrics"}),
				Verbs:           pulumi.ToStringArray([]string{"get"}),
			},
		},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: cluster role: %w", name, err)
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-clusterrolebinding", &rbacv1.ClusterRoleBindingArgs{
		Metadata: kube.Meta(clusterName, "", l),
		RoleRef: &rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"),
			Name: role.Metadata.Name().Elem()},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"),
			Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(args.Namespace)}},
	}, child); err != nil {
		return nil, fmt.Errorf("prometheus %s: cluster role binding: %w", name, err)
	}
	cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(name, args.Namespace, l), Data: pulumi.ToStringMap(files),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: config map: %w", name, err)
	}
	probe := func(path string, period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			HttpGet:       &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String("web")},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(3), FailureThreshold: pulumi.Int(failures),
		}
	}
	pvc := &corev1.PersistentVolumeClaimSpecArgs{
		AccessModes: pulumi.ToStringArray([]string{"ReadWriteOnce"}),
		Resources:   &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(args.VolumeSize)}},
	}
	if args.StorageClass != "" {
		pvc.StorageClassName = pulumi.String(args.StorageClass)
	}
	if _, err := appsv1.NewStatefulSet(ctx, name+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec: &appsv1.StatefulSetSpecArgs{
			Replicas:    pulumi.Int(args.Replicas),
			ServiceName: pulumi.String(name),
			Selector:    labelSel,
			// Replicas are independent scrapers: start them together.
			PodManagementPolicy: pulumi.String("Parallel"),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels: pulumi.ToStringMap(l),
					Annotations: pulumi.StringMap{
						"prometheus.io/scrape":        pulumi.String("true"),
						"prometheus.io/port":          pulumi.String(strconv.Itoa(PrometheusPort)),
						"prometheus.io/path":          pulumi.String("/metrics"),
						kube.ConfigChecksumAnnotation: pulumi.String(kube.ConfigChecksum(files["prometheus.yml"], files[RulesFile])),
					},
				},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:            sa.Metadata.Name().Elem(),
					AutomountServiceAccountToken:  pulumi.Bool(true),
					EnableServiceLinks:            pulumi.Bool(false),
					TerminationGracePeriodSeconds: pulumi.Int(60), // TSDB head flush
					SecurityContext:               kube.RestrictedPodSecurity(nobodyUID),
					TopologySpreadConstraints:     kube.Spread(sel, args.ZoneSpreadRequired),
					Volumes: corev1.VolumeArray{corev1.VolumeArgs{
						Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(name)},
					}},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("prometheus"),
						Image:           pulumi.String(image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Args: pulumi.ToStringArray([]string{
							"--config.file=/etc/prometheus/prometheus.yml",
							"--storage.tsdb.path=/prometheus",
							"--storage.tsdb.retention.time=" + promDuration(args.Retention),
							"--web.listen-address=:" + strconv.Itoa(PrometheusPort),
						}),
						Ports: corev1.ContainerPortArray{corev1.ContainerPortArgs{
							Name: pulumi.String("web"), ContainerPort: pulumi.Int(PrometheusPort), Protocol: pulumi.String("TCP")}},
						Resources:       kube.Requirements(args.CPURequest, args.MemoryRequest, "", args.MemoryLimit),
						StartupProbe:    probe("/-/ready", 5, 60), // WAL replay after a restart can take minutes
						LivenessProbe:   probe("/-/healthy", 15, 4),
						ReadinessProbe:  probe("/-/ready", 5, 3),
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{
							corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String("/etc/prometheus"), ReadOnly: pulumi.Bool(true)},
							corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String("/prometheus")},
						},
					}},
				},
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("data")}, Spec: pvc,
			}},
		},
	}, child, pulumi.DependsOn([]pulumi.Resource{cm})); err != nil {
		return nil, fmt.Errorf("prometheus %s: statefulset: %w", name, err)
	}
	svc, err := corev1.NewService(ctx, name+"-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec: &corev1.ServiceSpecArgs{Type: pulumi.String("ClusterIP"), Selector: pulumi.ToStringMap(sel),
			Ports: corev1.ServicePortArray{corev1.ServicePortArgs{Name: pulumi.String("web"), Port: pulumi.Int(PrometheusPort),
				TargetPort: pulumi.String("web"), Protocol: pulumi.String("TCP")}}},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: service: %w", name, err)
	}
	if args.Replicas > 1 {
		if _, err := kube.NewPDB(ctx, name+"-pdb", kube.Meta(name, args.Namespace, l), sel, child); err != nil {
			return nil, fmt.Errorf("prometheus %s: disruption budget: %w", name, err)
		}
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: labelSel,
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			// The UI and API from the observability namespace only (Grafana
			// or an operator's port-forward); Prometheus pulls everything else.
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
				Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(PrometheusPort), Protocol: pulumi.String("TCP")}},
				From:  networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{}}},
			}},
		},
	}, child); err != nil {
		return nil, fmt.Errorf("prometheus %s: network policy: %w", name, err)
	}
	p.URL = pulumi.Sprintf("http://%s.%s.svc.cluster.local:%d", svc.Metadata.Name().Elem(), args.Namespace, PrometheusPort)
	if err := ctx.RegisterResourceOutputs(p, pulumi.Map{"url": p.URL}); err != nil {
		return nil, fmt.Errorf("prometheus %s: outputs: %w", name, err)
	}
	return p, nil
}
