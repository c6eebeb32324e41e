package observability

import (
	"fmt"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// KubeStateMetricsTypeToken is the Pulumi type of the kube-state-metrics component.
const KubeStateMetricsTypeToken = "scaleplane:observability:KubeStateMetrics"

// KubeStateMetricsName is kube-state-metrics' app.kubernetes.io/name; the
// Prometheus job keeps pods by it.
const KubeStateMetricsName = "kube-state-metrics"

// KubeStateMetricsPort serves the object metrics (the HPA state).
const KubeStateMetricsPort = 8080

// kubeStateResources are the only objects exported: what the alert rules
// and the docs' dashboards read, no more (every resource costs memory).
var kubeStateResources = []struct{ group, resource, flag string }{
	{"autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers"},
	{"apps", "deployments", "deployments"},
	{"apps", "statefulsets", "statefulsets"},
	{"policy", "poddisruptionbudgets", "poddisruptionbudgets"},
	{"", "pods", "pods"},
	{"", "nodes", "nodes"},
}

// KubeStateMetricsArgs configure kube-state-metrics.
type KubeStateMetricsArgs struct {
	// Namespace is the observability namespace.
	Namespace string
	// Image defaults to KubeStateMetricsImage.
	Image string
	// ZoneSpreadRequired makes the zone spread a hard scheduling rule (prod).
	ZoneSpreadRequired bool
}

// KubeStateMetrics is the deployed exporter of Kubernetes object state.
type KubeStateMetrics struct {
	pulumi.ResourceState

	// DeploymentName is the Deployment's name. There is no Service:
	// Prometheus finds the pod by discovery, and nothing else calls it.
	DeploymentName pulumi.StringOutput `pulumi:"deploymentName"`
}

// NewKubeStateMetrics declares kube-state-metrics with a read-only cluster
// role limited to the exported resources.
func NewKubeStateMetrics(ctx *pulumi.Context, name string, args *KubeStateMetricsArgs, opts ...pulumi.ResourceOption) (*KubeStateMetrics, error) {
	if args == nil {
		return nil, fmt.Errorf("kube-state-metrics %s: args are required", name)
	}
	image := args.Image
	if image == "" {
		image = KubeStateMetricsImage
	}
	if err := checkWorkload(name, args.Namespace, image); err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: %w", name, err)
	}
	k := &KubeStateMetrics{}
	if err := ctx.RegisterComponentResource(KubeStateMetricsTypeToken, name, k, opts...); err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: register: %w", name, err)
	}
	child, err := children.Options(k, opts)
	if err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: options: %w", name, err)
	}
	l := labels(KubeStateMetricsName, imageTag(image))
	l["app.kubernetes.io/instance"] = name
	sel := kube.SelectorOf(l)
	labelSel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)}
	sa, err := corev1.NewServiceAccount(ctx, name+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata: kube.Meta(name, args.Namespace, l), AutomountServiceAccountToken: pulumi.Bool(true),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: service account: %w", name, err)
	}
	var rules rbacv1.PolicyRuleArray
	var flags []string
	for _, r := range kubeStateResources {
		rules = append(rules, rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.ToStringArray([]string{r.group}),
			Resources: pulumi.ToStringArray([]string{r.resource}),
			Verbs:     pulumi.ToStringArray([]string{"list", "watch"}),
		})
		flags = append(flags, r.flag)
	}
	clusterName := args.Namespace + "-" + name
	role, err := rbacv1.NewClusterRole(ctx, name+"-clusterrole", &rbacv1.ClusterRoleArgs{
		Metadata: kube.Meta(clusterName, "", l), Rules: rules,
	}, child)
	if err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: cluster role: %w", name, err)
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-clusterrolebinding", &rbacv1.ClusterRoleBindingArgs{
		Metadata: kube.Meta(clusterName, "", l),
		RoleRef: &rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"),
			Name: role.Metadata.Name().Elem()},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"),
			Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(args.Namespace)}},
	}, child); err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: cluster role binding: %w", name, err)
	}
	probe := func(path, port string, period int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{HttpGet: &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String(port)},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(3), FailureThreshold: pulumi.Int(3)}
	}
	dep, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec: &appsv1.DeploymentSpecArgs{
			// One copy: two would export every series twice.
			Replicas: pulumi.Int(1), Selector: labelSel, RevisionHistoryLimit: pulumi.Int(5),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(l)},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:           sa.Metadata.Name().Elem(),
					AutomountServiceAccountToken: pulumi.Bool(true),
					EnableServiceLinks:           pulumi.Bool(false),
					SecurityContext:              kube.RestrictedPodSecurity(nobodyUID),
					TopologySpreadConstraints:    kube.Spread(sel, args.ZoneSpreadRequired),
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("kube-state-metrics"),
						Image:           pulumi.String(image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Args: pulumi.ToStringArray([]string{
							"--port=8080", "--telemetry-port=8081",
							"--resources=" + strings.Join(flags, ","),
						}),
						Ports: corev1.ContainerPortArray{
							corev1.ContainerPortArgs{Name: pulumi.String("http-metrics"), ContainerPort: pulumi.Int(KubeStateMetricsPort), Protocol: pulumi.String("TCP")},
							corev1.ContainerPortArgs{Name: pulumi.String("telemetry"), ContainerPort: pulumi.Int(8081), Protocol: pulumi.String("TCP")},
						},
						Resources:       kube.Requirements("10m", "64Mi", "", "256Mi"),
						LivenessProbe:   probe("/livez", "http-metrics", 10),
						ReadinessProbe:  probe("/readyz", "telemetry", 5),
						SecurityContext: kube.RestrictedContainerSecurity(),
					}},
				},
			},
		},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: deployment: %w", name, err)
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(name, args.Namespace, l),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: labelSel,
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
				Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(KubeStateMetricsPort), Protocol: pulumi.String("TCP")}},
				From: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
					PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(PrometheusName)}},
				}},
			}},
		},
	}, child); err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: network policy: %w", name, err)
	}
	k.DeploymentName = dep.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(k, pulumi.Map{"deploymentName": k.DeploymentName}); err != nil {
		return nil, fmt.Errorf("kube-state-metrics %s: outputs: %w", name, err)
	}
	return k, nil
}
