package observability

import (
	"fmt"

	apiregistrationv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiregistration/v1"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// MetricsServerTypeToken is the Pulumi type of the metrics-server component.
const MetricsServerTypeToken = "scaleplane:observability:MetricsServer"

// MetricsServerName is metrics-server's object name: the APIService and
// the well-known RBAC names refer to it.
const MetricsServerName = "metrics-server"

// metricsServerPort is its HTTPS port (10250 so it also works on clusters
// whose control plane may only reach nodes on the kubelet port, as on EKS).
const metricsServerPort = 10250

// metricsServerUID is the user the metrics-server image is built for.
const metricsServerUID = 1000

// MetricsServerArgs configure metrics-server.
type MetricsServerArgs struct {
	// Namespace is kube-system by convention.
	Namespace string
	// Image defaults to MetricsServerImage.
	Image string
	// Scaling sizes it: two pods or more keep the HPAs fed through a node
	// drain (PDB and spread); it is autoscaled like every serving workload.
	Scaling Scaling
	// ZoneSpreadRequired makes the zone spread a hard scheduling rule (prod).
	ZoneSpreadRequired bool
	// KubeletInsecureTLS skips verifying kubelet serving certificates: only
	// for local clusters whose kubelets have self-signed ones.
	KubeletInsecureTLS bool
}

// MetricsServer is the deployed resource-metrics API.
type MetricsServer struct {
	pulumi.ResourceState

	// APIService is the name of the registered aggregated API.
	APIService pulumi.StringOutput `pulumi:"apiService"`
}

// NewMetricsServer declares metrics-server, the RBAC the aggregated API
// needs, and the v1beta1.metrics.k8s.io APIService the HPAs read CPU and
// memory from: without it every HPA reports <unknown> and never scales.
func NewMetricsServer(ctx *pulumi.Context, name string, args *MetricsServerArgs, opts ...pulumi.ResourceOption) (*MetricsServer, error) {
	if args == nil {
		return nil, fmt.Errorf("metrics-server %s: args are required", name)
	}
	image := args.Image
	if image == "" {
		image = MetricsServerImage
	}
	if err := checkWorkload(name, args.Namespace, image); err != nil {
		return nil, fmt.Errorf("metrics-server %s: %w", name, err)
	}
	if err := args.Scaling.validate("metrics-server"); err != nil {
		return nil, fmt.Errorf("metrics-server %s: %w", name, err)
	}
	ms := &MetricsServer{}
	if err := ctx.RegisterComponentResource(MetricsServerTypeToken, name, ms, opts...); err != nil {
		return nil, fmt.Errorf("metrics-server %s: register: %w", name, err)
	}
	child, err := children.Options(ms, opts)
	if err != nil {
		return nil, fmt.Errorf("metrics-server %s: options: %w", name, err)
	}
	l := labels(MetricsServerName, imageTag(image))
	sel := kube.SelectorOf(l)
	labelSel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)}
	strs := pulumi.ToStringArray
	sa, err := corev1.NewServiceAccount(ctx, name+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata: kube.Meta(MetricsServerName, args.Namespace, l), AutomountServiceAccountToken: pulumi.Bool(true),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("metrics-server %s: service account: %w", name, err)
	}
	subject := rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"),
		Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(args.Namespace)}}
	// Readers: aggregated into the built-in view/edit/admin roles.
	readerLabels := map[string]string{
		"rbac.authorization.k8s.io/aggregate-to-view":  "true",
		"rbac.authorization.k8s.io/aggregate-to-edit":  "true",
		"rbac.authorization.k8s.io/aggregate-to-admin": "true",
	}
	for k, v := range l {
		readerLabels[k] = v
	}
	if _, err := rbacv1.NewClusterRole(ctx, name+"-aggregated-reader", &rbacv1.ClusterRoleArgs{
		Metadata: kube.Meta("system:aggregated-metrics-reader", "", readerLabels),
		Rules: rbacv1.PolicyRuleArray{rbacv1.PolicyRuleArgs{
			ApiGroups: strs([]string{"metrics.k8s.io"}), Resources: strs([]string{"pods", "nodes"}),
			Verbs: strs([]string{"get", "list", "watch"}),
		}},
	}, child); err != nil {
		return nil, fmt.Errorf("metrics-server %s: reader role: %w", name, err)
	}
	if _, err := rbacv1.NewClusterRole(ctx, name+"-clusterrole", &rbacv1.ClusterRoleArgs{
		Metadata: kube.Meta("system:metrics-server", "", l),
		Rules: rbacv1.PolicyRuleArray{
			rbacv1.PolicyRuleArgs{ApiGroups: strs([]string{""}), Resources: strs([]string{"nodes/metrics"}), Verbs: strs([]string{"get"})},
			rbacv1.PolicyRuleArgs{ApiGroups: strs([]string{""}), Resources: strs([]string{"pods", "nodes"}), Verbs: strs([]string{"get", "list", "watch"})},
		},
	}, child); err != nil {
		return nil, fmt.Errorf("metrics-server %s: cluster role: %w", name, err)
	}
	bind := func(role, objName, kind, roleName string, namespace string) error {
		ref := &rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String(kind), Name: pulumi.String(roleName)}
		if kind == "Role" {
			_, err := rbacv1.NewRoleBinding(ctx, name+"-"+role, &rbacv1.RoleBindingArgs{
				Metadata: kube.Meta(objName, namespace, l), RoleRef: ref, Subjects: subject,
			}, child)
			return err
		}
		_, err := rbacv1.NewClusterRoleBinding(ctx, name+"-"+role, &rbacv1.ClusterRoleBindingArgs{
			Metadata: kube.Meta(objName, "", l), RoleRef: ref, Subjects: subject,
		}, child)
		return err
	}
	for _, b := range []struct{ role, obj, kind, ref, ns string }{
		// Read the requestheader CA so the API server's proxied calls are trusted.
		{"auth-reader", "metrics-server-auth-reader", "Role", "extension-apiserver-authentication-reader", "kube-system"},
		// Delegate authentication and authorization of callers to the API server.
		{"auth-delegator", "metrics-server:system:auth-delegator", "ClusterRole", "system:auth-delegator", ""},
		{"clusterrolebinding", "system:metrics-server", "ClusterRole", "system:metrics-server", ""},
	} {
		if err := bind(b.role, b.obj, b.kind, b.ref, b.ns); err != nil {
			return nil, fmt.Errorf("metrics-server %s: %s binding: %w", name, b.role, err)
		}
	}
	kubeletArgs := []string{
		"--cert-dir=/tmp",
		fmt.Sprintf("--secure-port=%d", metricsServerPort),
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--kubelet-use-node-status-port",
		// Matches the HPA controller's 15 s sync: fresher is wasted work.
		"--metric-resolution=15s",
	}
	if args.KubeletInsecureTLS {
		kubeletArgs = append(kubeletArgs, "--kubelet-insecure-tls")
	}
	probe := func(path string, period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			HttpGet:       &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String("https"), Scheme: pulumi.String("HTTPS")},
			PeriodSeconds: pulumi.Int(period), FailureThreshold: pulumi.Int(failures),
		}
	}
	if _, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: kube.Meta(MetricsServerName, args.Namespace, l),
		Spec: &appsv1.DeploymentSpecArgs{
			// No replicas: the HPA owns the size, an update must not reset it.
			Selector: labelSel, RevisionHistoryLimit: pulumi.Int(5),
			Strategy: &appsv1.DeploymentStrategyArgs{Type: pulumi.String("RollingUpdate"),
				RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxSurge: pulumi.Int(1), MaxUnavailable: pulumi.Int(0)}},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(l)},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:           sa.Metadata.Name().Elem(),
					AutomountServiceAccountToken: pulumi.Bool(true),
					PriorityClassName:            priorityClass(args.Namespace),
					SecurityContext:              kube.RestrictedPodSecurity(metricsServerUID),
					TopologySpreadConstraints:    kube.Spread(sel, args.ZoneSpreadRequired),
					Volumes: corev1.VolumeArray{corev1.VolumeArgs{Name: pulumi.String("tmp"),
						EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("16Mi")}}},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("metrics-server"),
						Image:           pulumi.String(image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Args:            strs(kubeletArgs),
						Ports: corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String("https"),
							ContainerPort: pulumi.Int(metricsServerPort), Protocol: pulumi.String("TCP")}},
						Resources:       kube.Requirements("100m", "200Mi", "", "400Mi"),
						LivenessProbe:   probe("/livez", 10, 3),
						ReadinessProbe:  probe("/readyz", 10, 3),
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("tmp"),
							MountPath: pulumi.String("/tmp")}},
					}},
				},
			},
		},
	}, child); err != nil {
		return nil, fmt.Errorf("metrics-server %s: deployment: %w", name, err)
	}
	svc, err := corev1.NewService(ctx, name+"-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(MetricsServerName, args.Namespace, l),
		Spec: &corev1.ServiceSpecArgs{Type: pulumi.String("ClusterIP"), Selector: pulumi.ToStringMap(sel),
			Ports: corev1.ServicePortArray{corev1.ServicePortArgs{Name: pulumi.String("https"), Port: pulumi.Int(443),
				TargetPort: pulumi.String("https"), Protocol: pulumi.String("TCP"), AppProtocol: pulumi.String("https")}}},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("metrics-server %s: service: %w", name, err)
	}
	if _, err := kube.NewHPA(ctx, name+"-hpa", kube.Meta(MetricsServerName, args.Namespace, l), pulumi.String(MetricsServerName),
		args.Scaling.Replicas, args.Scaling.Autoscaling, args.Scaling.Autoscaling.Stabilization(), child); err != nil {
		return nil, fmt.Errorf("metrics-server %s: autoscaler: %w", name, err)
	}
	if _, err := kube.NewPDB(ctx, name+"-pdb", kube.Meta(MetricsServerName, args.Namespace, l), sel, child); err != nil {
		return nil, fmt.Errorf("metrics-server %s: disruption budget: %w", name, err)
	}
	// The API server (not a pod) calls it, so any source may reach its port;
	// nothing else in its pods listens.
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(MetricsServerName, args.Namespace, l),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: labelSel,
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
				Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{
					Port: pulumi.Int(metricsServerPort), Protocol: pulumi.String("TCP")}},
			}},
		},
	}, child); err != nil {
		return nil, fmt.Errorf("metrics-server %s: network policy: %w", name, err)
	}
	api, err := apiregistrationv1.NewAPIService(ctx, name+"-apiservice", &apiregistrationv1.APIServiceArgs{
		Metadata: kube.Meta("v1beta1.metrics.k8s.io", "", l),
		Spec: &apiregistrationv1.APIServiceSpecArgs{
			Group: pulumi.String("metrics.k8s.io"), Version: pulumi.String("v1beta1"),
			GroupPriorityMinimum: pulumi.Int(100), VersionPriority: pulumi.Int(100),
			// metrics-server serves a self-signed certificate from --cert-dir;
			// this is the upstream default manifest's setting too.
			InsecureSkipTLSVerify: pulumi.Bool(true),
			Service: &apiregistrationv1.ServiceReferenceArgs{
				Name: svc.Metadata.Name().Elem(), Namespace: pulumi.String(args.Namespace), Port: pulumi.Int(443),
			},
		},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("metrics-server %s: api service: %w", name, err)
	}
	ms.APIService = api.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(ms, pulumi.Map{"apiService": ms.APIService}); err != nil {
		return nil, fmt.Errorf("metrics-server %s: outputs: %w", name, err)
	}
	return ms, nil
}

// priorityClass is system-cluster-critical in kube-system (the HPAs stop
// without it, so it must not be evicted for ordinary pods); elsewhere none,
// since clusters may restrict the system classes to kube-system.
func priorityClass(namespace string) pulumi.StringPtrInput {
	if namespace == "kube-system" {
		return pulumi.String("system-cluster-critical")
	}
	return nil
}
