package cluster

import (
	"fmt"
	"regexp"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
)

// AutoscalerTypeToken is the Pulumi type of the Cluster Autoscaler component.
const AutoscalerTypeToken = "scaleplane:cluster:Autoscaler"

// AutoscalerImage is the Cluster Autoscaler release of KubernetesVersion's
// minor (the autoscaler supports exactly its own minor).
const AutoscalerImage = "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.0"

// AutoscalerArgs configure the Cluster Autoscaler.
type AutoscalerArgs struct {
	ClusterName string
	Region      string
	// RoleARN is Cluster.AutoscalerRoleARN: the IAM role its service account assumes.
	RoleARN pulumi.StringInput
	// Image defaults to AutoscalerImage.
	Image string
	// ZoneSpreadRequired makes the zone spread a hard scheduling rule (prod).
	ZoneSpreadRequired bool
}

// Autoscaler is the deployed Cluster Autoscaler.
type Autoscaler struct {
	pulumi.ResourceState

	// DeploymentName is the Deployment's name in kube-system.
	DeploymentName pulumi.StringOutput `pulumi:"deploymentName"`
}

var imageRE = regexp.MustCompile(`^[^\s:]+(:[\w][\w.-]{0,127})$`)

// NewAutoscaler declares the Cluster Autoscaler in kube-system: when the
// HPAs add pods that do not fit, it grows the node groups (and shrinks them
// when nodes idle), so scale-out gets nodes. Declare it with the cluster's
// provider (pulumi.Provider(cluster.Provider)).
func NewAutoscaler(ctx *pulumi.Context, name string, args *AutoscalerArgs, opts ...pulumi.ResourceOption) (*Autoscaler, error) {
	if args == nil {
		return nil, fmt.Errorf("autoscaler %s: args are required", name)
	}
	image := args.Image
	if image == "" {
		image = AutoscalerImage
	}
	switch {
	case !nameRE.MatchString(args.ClusterName):
		return nil, fmt.Errorf("autoscaler %s: clusterName %q: must be an EKS cluster name", name, args.ClusterName)
	case !regionRE.MatchString(args.Region):
		return nil, fmt.Errorf("autoscaler %s: region %q: must be an AWS region", name, args.Region)
	case args.RoleARN == nil:
		return nil, fmt.Errorf("autoscaler %s: roleArn is required (Cluster.AutoscalerRoleARN)", name)
	case !imageRE.MatchString(image) || image[len(image)-7:] == ":latest":
		return nil, fmt.Errorf("autoscaler %s: image %q: must carry an explicit tag other than latest", name, image)
	}
	a := &Autoscaler{}
	if err := ctx.RegisterComponentResource(AutoscalerTypeToken, name, a, opts...); err != nil {
		return nil, fmt.Errorf("autoscaler %s: register: %w", name, err)
	}
	child, err := children.Options(a, opts)
	if err != nil {
		return nil, fmt.Errorf("autoscaler %s: options: %w", name, err)
	}
	fail := func(what string, err error) (*Autoscaler, error) {
		return nil, fmt.Errorf("autoscaler %s: %s: %w", name, what, err)
	}
	labels := pulumi.StringMap{
		"app.kubernetes.io/name":       pulumi.String(AutoscalerServiceAccount),
		"app.kubernetes.io/instance":   pulumi.String(name),
		"app.kubernetes.io/component":  pulumi.String("cluster"),
		"app.kubernetes.io/part-of":    pulumi.String("scaleplane"),
		"app.kubernetes.io/managed-by": pulumi.String("pulumi"),
	}
	selector := pulumi.StringMap{"app.kubernetes.io/name": labels["app.kubernetes.io/name"], "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"]}
	meta := func(objName, ns string) *metav1.ObjectMetaArgs {
		m := &metav1.ObjectMetaArgs{Name: pulumi.String(objName), Labels: labels}
		if ns != "" {
			m.Namespace = pulumi.String(ns)
		}
		return m
	}
	sa, err := corev1.NewServiceAccount(ctx, name+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(AutoscalerServiceAccount), Namespace: pulumi.String(AutoscalerNamespace), Labels: labels,
			// IRSA: pods of this account get the role's credentials, nothing else does.
			Annotations: pulumi.StringMap{"eks.amazonaws.com/role-arn": args.RoleARN},
		},
		AutomountServiceAccountToken: pulumi.Bool(true),
	}, child)
	if err != nil {
		return fail("service account", err)
	}
	rule := func(groups, resources, verbs []string, names ...string) rbacv1.PolicyRuleArgs {
		r := rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray(groups), Resources: pulumi.ToStringArray(resources), Verbs: pulumi.ToStringArray(verbs)}
		if len(names) > 0 {
			r.ResourceNames = pulumi.ToStringArray(names)
		}
		return r
	}
	read := []string{"get", "list", "watch"}
	role, err := rbacv1.NewClusterRole(ctx, name+"-clusterrole", &rbacv1.ClusterRoleArgs{
		Metadata: meta(AutoscalerServiceAccount, ""),
		Rules: rbacv1.PolicyRuleArray{
			rule([]string{""}, []string{"events", "endpoints"}, []string{"create", "patch"}),
			rule([]string{""}, []string{"pods/eviction"}, []string{"create"}),
			rule([]string{""}, []string{"pods/status"}, []string{"update"}),
			rule([]string{""}, []string{"endpoints"}, []string{"get", "update"}, AutoscalerServiceAccount),
			rule([]string{""}, []string{"nodes"}, []string{"get", "list", "watch", "update"}),
			rule([]string{""}, []string{"namespaces", "pods", "services", "replicationcontrollers", "persistentvolumeclaims", "persistentvolumes"}, read),
			rule([]string{"apps"}, []string{"statefulsets", "replicasets", "daemonsets"}, read),
			rule([]string{"policy"}, []string{"poddisruptionbudgets"}, []string{"list", "watch"}),
			rule([]string{"storage.k8s.io"}, []string{"storageclasses", "csinodes", "csidrivers", "csistoragecapacities", "volumeattachments"}, read),
			rule([]string{"batch"}, []string{"jobs", "cronjobs"}, read),
			rule([]string{"resource.k8s.io"}, []string{"resourceclaims", "resourceslices", "deviceclasses"}, read),
			rule([]string{"coordination.k8s.io"}, []string{"leases"}, []string{"create"}),
			rule([]string{"coordination.k8s.io"}, []string{"leases"}, []string{"get", "update"}, AutoscalerServiceAccount),
		},
	}, child)
	if err != nil {
		return fail("cluster role", err)
	}
	subjects := rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"),
		Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(AutoscalerNamespace)}}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-clusterrolebinding", &rbacv1.ClusterRoleBindingArgs{
		Metadata: meta(AutoscalerServiceAccount, ""),
		RoleRef: &rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"),
			Name: role.Metadata.Name().Elem()},
		Subjects: subjects,
	}, child); err != nil {
		return fail("cluster role binding", err)
	}
	nsRole, err := rbacv1.NewRole(ctx, name+"-role", &rbacv1.RoleArgs{
		Metadata: meta(AutoscalerServiceAccount, AutoscalerNamespace),
		Rules: rbacv1.PolicyRuleArray{
			rule([]string{""}, []string{"configmaps"}, []string{"create", "list", "watch"}),
			rule([]string{""}, []string{"configmaps"}, []string{"delete", "get", "update", "watch"}, "cluster-autoscaler-status"),
		},
	}, child)
	if err != nil {
		return fail("role", err)
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name+"-rolebinding", &rbacv1.RoleBindingArgs{
		Metadata: meta(AutoscalerServiceAccount, AutoscalerNamespace),
		RoleRef: &rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"),
			Name: nsRole.Metadata.Name().Elem()},
		Subjects: subjects,
	}, child); err != nil {
		return fail("role binding", err)
	}
	dep, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: meta(AutoscalerServiceAccount, AutoscalerNamespace),
		Spec: &appsv1.DeploymentSpecArgs{
			// One active instance by design (it elects a leader anyway).
			Replicas: pulumi.Int(1), Selector: &metav1.LabelSelectorArgs{MatchLabels: selector},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: pulumi.StringMap{
					"prometheus.io/scrape": pulumi.String("true"), "prometheus.io/port": pulumi.String("8085"), "prometheus.io/path": pulumi.String("/metrics"),
				}},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:           sa.Metadata.Name().Elem(),
					AutomountServiceAccountToken: pulumi.Bool(true),
					PriorityClassName:            pulumi.String("system-cluster-critical"),
					// It must not run on a node it may remove: the on-demand system pool.
					NodeSelector: pulumi.StringMap{"scaleplane.dev/pool": pulumi.String("system")},
					TopologySpreadConstraints: corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
						MaxSkew: pulumi.Int(1), TopologyKey: pulumi.String("topology.kubernetes.io/zone"),
						WhenUnsatisfiable: pulumi.String(map[bool]string{true: "DoNotSchedule", false: "ScheduleAnyway"}[args.ZoneSpreadRequired]),
						LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: selector},
					}},
					SecurityContext: &corev1.PodSecurityContextArgs{
						RunAsNonRoot: pulumi.Bool(true), RunAsUser: pulumi.Int(65534), RunAsGroup: pulumi.Int(65534), FsGroup: pulumi.Int(65534),
						SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:  pulumi.String("cluster-autoscaler"),
						Image: pulumi.String(image),
						Command: pulumi.ToStringArray([]string{
							"./cluster-autoscaler",
							"--cloud-provider=aws",
							"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/" + args.ClusterName,
							// Keep the zones even, so zone spread constraints stay satisfiable.
							"--balance-similar-node-groups",
							"--expander=least-waste",
							"--skip-nodes-with-system-pods=false",
							"--scale-down-unneeded-time=10m",
						}),
						Env: corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("AWS_REGION"), Value: pulumi.String(args.Region)}},
						Ports: corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String("metrics"),
							ContainerPort: pulumi.Int(8085), Protocol: pulumi.String("TCP")}},
						Resources: &corev1.ResourceRequirementsArgs{
							Requests: pulumi.StringMap{"cpu": pulumi.String("100m"), "memory": pulumi.String("300Mi")},
							Limits:   pulumi.StringMap{"memory": pulumi.String("600Mi")},
						},
						LivenessProbe: &corev1.ProbeArgs{HttpGet: &corev1.HTTPGetActionArgs{Path: pulumi.String("/health-check"), Port: pulumi.String("metrics")},
							PeriodSeconds: pulumi.Int(10)},
						ReadinessProbe: &corev1.ProbeArgs{HttpGet: &corev1.HTTPGetActionArgs{Path: pulumi.String("/health-check"), Port: pulumi.String("metrics")},
							PeriodSeconds: pulumi.Int(10)},
						SecurityContext: &corev1.SecurityContextArgs{
							AllowPrivilegeEscalation: pulumi.Bool(false), Privileged: pulumi.Bool(false), ReadOnlyRootFilesystem: pulumi.Bool(true),
							RunAsNonRoot: pulumi.Bool(true), Capabilities: &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
							SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
						},
					}},
				},
			},
		},
	}, child)
	if err != nil {
		return fail("deployment", err)
	}
	// Only Prometheus (any namespace) reaches its metrics port.
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: meta(AutoscalerServiceAccount, AutoscalerNamespace),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: &metav1.LabelSelectorArgs{MatchLabels: selector},
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
				Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(8085), Protocol: pulumi.String("TCP")}},
				From: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
					NamespaceSelector: &metav1.LabelSelectorArgs{},
					PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String("prometheus")}},
				}},
			}},
		},
	}, child); err != nil {
		return fail("network policy", err)
	}
	a.DeploymentName = dep.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{"deploymentName": a.DeploymentName}); err != nil {
		return fail("outputs", err)
	}
	return a, nil
}
