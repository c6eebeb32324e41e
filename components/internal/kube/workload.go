package kube

import (
	"errors"
	"fmt"

	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Resources are a container's requests and limits. CPULimit may be zero:
// many teams leave CPU unlimited to avoid throttling, and GOMAXPROCS then
// follows the request instead.
type Resources struct {
	// CPURequest is what the scheduler reserves and the HPA's CPU
	// utilization is measured against.
	CPURequest resource.Quantity
	// CPULimit throttles the container; zero means none.
	CPULimit resource.Quantity
	// MemoryRequest is what the scheduler reserves and the HPA's memory
	// utilization is measured against.
	MemoryRequest resource.Quantity
	// MemoryLimit is where the kernel's OOM killer acts; it is never
	// below the request.
	MemoryLimit resource.Quantity
}

// Validate checks that requests are set and no limit is below its request.
func (r Resources) Validate() error {
	var errs []error
	if r.CPURequest.Sign() <= 0 {
		errs = append(errs, fmt.Errorf("resources.cpuRequest %q: must be positive", r.CPURequest.String()))
	}
	if r.MemoryRequest.Sign() <= 0 {
		errs = append(errs, fmt.Errorf("resources.memoryRequest %q: must be positive", r.MemoryRequest.String()))
	}
	if r.MemoryLimit.Cmp(r.MemoryRequest) < 0 {
		errs = append(errs, fmt.Errorf("resources.memoryLimit %q: must be at least the request %q", r.MemoryLimit.String(), r.MemoryRequest.String()))
	}
	if !r.CPULimit.IsZero() && r.CPULimit.Cmp(r.CPURequest) < 0 {
		errs = append(errs, fmt.Errorf("resources.cpuLimit %q: must be at least the request %q (or empty for no limit)", r.CPULimit.String(), r.CPURequest.String()))
	}
	return errors.Join(errs...)
}

// Requirements are the container's requests and limits; no CPU limit
// when CPULimit is zero.
func (r Resources) Requirements() *corev1.ResourceRequirementsArgs {
	cpuLimit := ""
	if !r.CPULimit.IsZero() {
		cpuLimit = r.CPULimit.String()
	}
	return Requirements(r.CPURequest.String(), r.MemoryRequest.String(), cpuLimit, r.MemoryLimit.String())
}

// Requirements are requests and limits given as quantity strings, for
// containers whose sizes are fixed by the component rather than the stack;
// an empty cpuLimit leaves CPU unlimited. The memory limit is always set:
// without it one container could take a node's memory.
func Requirements(cpuRequest, memoryRequest, cpuLimit, memoryLimit string) *corev1.ResourceRequirementsArgs {
	limits := pulumi.StringMap{"memory": pulumi.String(memoryLimit)}
	if cpuLimit != "" {
		limits["cpu"] = pulumi.String(cpuLimit)
	}
	return &corev1.ResourceRequirementsArgs{
		Requests: pulumi.StringMap{"cpu": pulumi.String(cpuRequest), "memory": pulumi.String(memoryRequest)},
		Limits:   limits,
	}
}

// Replicas bounds the HorizontalPodAutoscaler.
type Replicas struct {
	// Min is the floor the HPA keeps even when idle (the Deployment starts there).
	Min int
	// Max is the ceiling, which bounds what the workload can cost and open
	// (connections to a database, for one).
	Max int
}

// Autoscaling holds the HPA targets and behaviour. The articles scale out
// at 70 % CPU and 80 % memory; scale-down waits a stabilization window so
// a short lull does not throw away warm pods.
type Autoscaling struct {
	// CPUTargetPercent and MemoryTargetPercent are the average
	// utilizations of the requests the HPA keeps the pods at.
	CPUTargetPercent    int
	MemoryTargetPercent int
	// ScaleUpWindowSeconds and ScaleDownWindowSeconds are the
	// stabilization windows: the HPA acts on the most conservative
	// recommendation seen during them.
	ScaleUpWindowSeconds   int
	ScaleDownWindowSeconds int
	// ScaleUpMaxPodsPer15s and ScaleDownMaxPercentPerMin bound each step
	// where a component sets its own scaling policies (microservice);
	// zero leaves that component's default.
	ScaleUpMaxPodsPer15s      int
	ScaleDownMaxPercentPerMin int
}

// Stabilization is the HPA behaviour that only sets the stabilization
// windows and keeps Kubernetes' default scaling policies: enough for the
// platform's own workloads (PgBouncer, metrics-server, Jaeger), whose load
// follows the services' rather than bursts of its own.
func (a Autoscaling) Stabilization() *autoscalingv2.HorizontalPodAutoscalerBehaviorArgs {
	return &autoscalingv2.HorizontalPodAutoscalerBehaviorArgs{
		ScaleDown: &autoscalingv2.HPAScalingRulesArgs{StabilizationWindowSeconds: pulumi.Int(a.ScaleDownWindowSeconds)},
		ScaleUp:   &autoscalingv2.HPAScalingRulesArgs{StabilizationWindowSeconds: pulumi.Int(a.ScaleUpWindowSeconds)},
	}
}

// Shutdown describes the graceful stop: Kubernetes runs the preStop sleep
// (so endpoints and load balancers stop sending traffic first), then sends
// SIGTERM, and the app drains for at most DrainSeconds.
type Shutdown struct {
	// PreStopSeconds is the sleep before SIGTERM, while endpoints and
	// load balancers take the pod out of rotation.
	PreStopSeconds int
	// DrainSeconds is how long the app may finish in-flight work after SIGTERM.
	DrainSeconds int
}

// GracePeriodSeconds is the terminationGracePeriodSeconds that leaves room
// for the preStop sleep, the drain and a small margin before SIGKILL.
func (s Shutdown) GracePeriodSeconds() int {
	return s.PreStopSeconds + s.DrainSeconds + graceMarginSeconds
}

// graceMarginSeconds covers closing pools and flushing telemetry after the drain.
const graceMarginSeconds = 5

// NewHPA declares the HorizontalPodAutoscaler of the Deployment named
// deployment (an output where the HPA must wait for it), scaling on CPU
// and memory utilization between r.Min and r.Max with the given behaviour
// (Autoscaling.Stabilization, or a component's own policies).
func NewHPA(ctx *pulumi.Context, resName string, meta *metav1.ObjectMetaArgs, deployment pulumi.StringInput, r Replicas, a Autoscaling,
	behavior *autoscalingv2.HorizontalPodAutoscalerBehaviorArgs, opts ...pulumi.ResourceOption) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	return autoscalingv2.NewHorizontalPodAutoscaler(ctx, resName, &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: meta,
		Spec: &autoscalingv2.HorizontalPodAutoscalerSpecArgs{
			ScaleTargetRef: &autoscalingv2.CrossVersionObjectReferenceArgs{
				ApiVersion: pulumi.String("apps/v1"),
				Kind:       pulumi.String("Deployment"),
				Name:       deployment,
			},
			MinReplicas: pulumi.Int(r.Min),
			MaxReplicas: pulumi.Int(r.Max),
			Metrics: autoscalingv2.MetricSpecArray{
				utilization("cpu", a.CPUTargetPercent),
				utilization("memory", a.MemoryTargetPercent),
			},
			Behavior: behavior,
		},
	}, opts...)
}

func utilization(res string, percent int) autoscalingv2.MetricSpecArgs {
	return autoscalingv2.MetricSpecArgs{
		Type: pulumi.String("Resource"),
		Resource: &autoscalingv2.ResourceMetricSourceArgs{
			Name: pulumi.String(res),
			Target: &autoscalingv2.MetricTargetArgs{
				Type:               pulumi.String("Utilization"),
				AverageUtilization: pulumi.Int(percent),
			},
		},
	}
}

// NewPDB declares a PodDisruptionBudget that lets one selected pod at a
// time be evicted: a node drain always makes progress (a budget of zero
// would block it forever), and capacity never drops by more than one pod.
func NewPDB(ctx *pulumi.Context, resName string, meta *metav1.ObjectMetaArgs, selector map[string]string, opts ...pulumi.ResourceOption) (*policyv1.PodDisruptionBudget, error) {
	return policyv1.NewPodDisruptionBudget(ctx, resName, &policyv1.PodDisruptionBudgetArgs{
		Metadata: meta,
		Spec: &policyv1.PodDisruptionBudgetSpecArgs{
			MaxUnavailable: pulumi.Int(1),
			Selector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
		},
	}, opts...)
}
