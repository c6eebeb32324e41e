// Package observability declares what lets the platform be watched: the
// OpenTelemetry Collector every service sends traces to, Jaeger that stores
// and shows them, Prometheus that scrapes every annotated pod and evaluates
// the alert rules the articles call for, kube-state-metrics that exposes
// the HPA state those rules read, and metrics-server that the HPAs
// themselves need. Each is its own component (Args validated before any
// child, children named "<name>-<role>"); the configuration files are pure
// render functions beside them, proven by the real binaries in the tests.
package observability

import (
	"errors"
	"fmt"

	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/microservice"
)

// Pinned images. The collector image is the contrib distribution of the
// same collector release (v0.140) that Jaeger 2.13 is built on, so the
// binary that validates the rendered collector config in the tests and the
// one that runs it accept the same components and settings.
const (
	CollectorImage        = "otel/opentelemetry-collector-contrib:0.140.1"
	JaegerImage           = "jaegertracing/jaeger:2.13.0"
	PrometheusImage       = "quay.io/prometheus/prometheus:v2.55.1"
	MetricsServerImage    = "registry.k8s.io/metrics-server/metrics-server:v0.9.0"
	KubeStateMetricsImage = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0"
)

// Component is the app.kubernetes.io/component label of everything here.
const Component = "observability"

// nobodyUID is the unprivileged user the Prometheus, Jaeger, metrics-server
// and kube-state-metrics images expect; restricted Pod Security needs a
// non-root user anyway.
const nobodyUID = 65534

// labels are the recommended labels of one workload; the first two select it.
func labels(name, version string) map[string]string {
	l := microservice.SelectorLabels(name)
	l["app.kubernetes.io/component"] = Component
	l["app.kubernetes.io/part-of"] = microservice.PartOf
	l["app.kubernetes.io/managed-by"] = microservice.ManagedBy
	if version != "" {
		l["app.kubernetes.io/version"] = version
	}
	return l
}

// meta is an object's metadata: explicit name, namespace, labels.
func meta(name, namespace string, l map[string]string) *metav1.ObjectMetaArgs {
	m := &metav1.ObjectMetaArgs{Name: pulumi.String(name), Labels: pulumi.ToStringMap(l)}
	if namespace != "" {
		m.Namespace = pulumi.String(namespace)
	}
	return m
}

// podSecurity is the restricted Pod Security Standard's pod half.
func podSecurity(uid int) *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:   pulumi.Bool(true),
		RunAsUser:      pulumi.Int(uid),
		RunAsGroup:     pulumi.Int(uid),
		FsGroup:        pulumi.Int(uid),
		SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// containerSecurity is the restricted Pod Security Standard's container half.
func containerSecurity() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		AllowPrivilegeEscalation: pulumi.Bool(false),
		Privileged:               pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		RunAsNonRoot:             pulumi.Bool(true),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
		SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// resources are requests and limits; no CPU limit when it is zero.
func resources(cpuReq, memReq, cpuLim, memLim string) *corev1.ResourceRequirementsArgs {
	limits := pulumi.StringMap{"memory": pulumi.String(memLim)}
	if cpuLim != "" {
		limits["cpu"] = pulumi.String(cpuLim)
	}
	return &corev1.ResourceRequirementsArgs{
		Requests: pulumi.StringMap{"cpu": pulumi.String(cpuReq), "memory": pulumi.String(memReq)},
		Limits:   limits,
	}
}

// childOptions parents children to the component and passes down the
// caller's DependsOn (Pulumi does not) so children wait for the namespace.
func childOptions(component pulumi.Resource, opts []pulumi.ResourceOption) (pulumi.ResourceOption, error) {
	ro, err := pulumi.NewResourceOptions(opts...)
	if err != nil {
		return nil, err
	}
	return pulumi.Composite(pulumi.Parent(component), pulumi.DependsOn(ro.DependsOn)), nil
}

// checkCommon validates what every component here shares.
func checkCommon(name, namespace, image string) error {
	var errs []error
	if len(name) > 50 || !microservice.DNSLabel(name) {
		errs = append(errs, fmt.Errorf("name %q: must be a DNS label of at most 50 characters", name))
	}
	if !microservice.DNSLabel(namespace) {
		errs = append(errs, fmt.Errorf("namespace %q: must be a DNS label", namespace))
	}
	if !microservice.ImageTagged(image) {
		errs = append(errs, fmt.Errorf("image %q: must carry an explicit tag or digest other than latest", image))
	}
	return errors.Join(errs...)
}

// mib is a quantity in whole mebibytes, rounded down.
func mib(q resource.Quantity) int64 { return q.Value() / (1 << 20) }

// selectorOf returns the selector labels of a workload's labels: the
// immutable part a Deployment or StatefulSet selects its pods by.
func selectorOf(l map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance"} {
		out[k] = l[k]
	}
	return out
}

// zoneSpread spreads a workload's pods over zones: a hard rule where the
// environment demands it (prod), a preference elsewhere (single-zone
// clusters could not schedule otherwise); and over nodes as a preference.
func zoneSpread(sel map[string]string, required bool) corev1.TopologySpreadConstraintArray {
	when := "ScheduleAnyway"
	if required {
		when = "DoNotSchedule"
	}
	on := func(key, when string) corev1.TopologySpreadConstraintArgs {
		return corev1.TopologySpreadConstraintArgs{
			MaxSkew: pulumi.Int(1), TopologyKey: pulumi.String(key), WhenUnsatisfiable: pulumi.String(when),
			LabelSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)},
		}
	}
	return corev1.TopologySpreadConstraintArray{
		on("topology.kubernetes.io/zone", when),
		on("kubernetes.io/hostname", "ScheduleAnyway"),
	}
}

// Scaling is the HPA of a stateless observability workload (Jaeger with
// external storage, metrics-server): the same rules as every service.
type Scaling struct {
	Replicas    microservice.Replicas
	Autoscaling microservice.Autoscaling
}

// validate reports what the HPA would refuse.
func (s Scaling) validate(who string) error {
	var errs []error
	if s.Replicas.Min < 1 || s.Replicas.Max < s.Replicas.Min {
		errs = append(errs, fmt.Errorf("%s replicas %d..%d: need 1 <= min <= max", who, s.Replicas.Min, s.Replicas.Max))
	}
	if s.Autoscaling.CPUTargetPercent < 1 || s.Autoscaling.CPUTargetPercent > 100 ||
		s.Autoscaling.MemoryTargetPercent < 1 || s.Autoscaling.MemoryTargetPercent > 100 {
		errs = append(errs, fmt.Errorf("%s autoscaling targets %d%%/%d%%: must be in 1..100", who,
			s.Autoscaling.CPUTargetPercent, s.Autoscaling.MemoryTargetPercent))
	}
	return errors.Join(errs...)
}

// newHPA declares the HPA of a Deployment, scaling on CPU and memory with
// a scale-down stabilization window, like microservice's.
func newHPA(ctx *pulumi.Context, name, objName, namespace string, l map[string]string, s Scaling, opts ...pulumi.ResourceOption) error {
	metric := func(res string, percent int) autoscalingv2.MetricSpecArgs {
		return autoscalingv2.MetricSpecArgs{Type: pulumi.String("Resource"), Resource: &autoscalingv2.ResourceMetricSourceArgs{
			Name:   pulumi.String(res),
			Target: &autoscalingv2.MetricTargetArgs{Type: pulumi.String("Utilization"), AverageUtilization: pulumi.Int(percent)},
		}}
	}
	_, err := autoscalingv2.NewHorizontalPodAutoscaler(ctx, name+"-hpa", &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: meta(objName, namespace, l),
		Spec: &autoscalingv2.HorizontalPodAutoscalerSpecArgs{
			ScaleTargetRef: &autoscalingv2.CrossVersionObjectReferenceArgs{
				ApiVersion: pulumi.String("apps/v1"), Kind: pulumi.String("Deployment"), Name: pulumi.String(objName),
			},
			MinReplicas: pulumi.Int(s.Replicas.Min),
			MaxReplicas: pulumi.Int(s.Replicas.Max),
			Metrics: autoscalingv2.MetricSpecArray{
				metric("cpu", s.Autoscaling.CPUTargetPercent), metric("memory", s.Autoscaling.MemoryTargetPercent),
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehaviorArgs{
				ScaleDown: &autoscalingv2.HPAScalingRulesArgs{StabilizationWindowSeconds: pulumi.Int(s.Autoscaling.ScaleDownWindowSeconds)},
				ScaleUp:   &autoscalingv2.HPAScalingRulesArgs{StabilizationWindowSeconds: pulumi.Int(s.Autoscaling.ScaleUpWindowSeconds)},
			},
		},
	}, opts...)
	return err
}

// newPDB lets one pod at a time be evicted.
func newPDB(ctx *pulumi.Context, name, objName, namespace string, l, sel map[string]string, opts ...pulumi.ResourceOption) error {
	_, err := policyv1.NewPodDisruptionBudget(ctx, name+"-pdb", &policyv1.PodDisruptionBudgetArgs{
		Metadata: meta(objName, namespace, l),
		Spec: &policyv1.PodDisruptionBudgetSpecArgs{MaxUnavailable: pulumi.Int(1),
			Selector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)}},
	}, opts...)
	return err
}
