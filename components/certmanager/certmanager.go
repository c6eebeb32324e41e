package certmanager

import (
	"fmt"
	"strings"

	admissionv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/admissionregistration/v1"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:certmanager:CertManager"

// CertManager is the deployed cert-manager.
type CertManager struct {
	pulumi.ResourceState

	// Namespace is cert-manager's namespace (the cluster resource
	// namespace: a ClusterIssuer's Secrets live there).
	Namespace pulumi.StringOutput `pulumi:"namespace"`
	// WebhookService is the admission webhook's Service.
	WebhookService pulumi.StringOutput `pulumi:"webhookService"`
	// APICheckJob is the name of the Job that completes once the API
	// accepts cert-manager objects.
	APICheckJob pulumi.StringOutput `pulumi:"apiCheckJob"`
	// CRDNames are the definitions' names (<plural>.<group>).
	CRDNames pulumi.StringArrayOutput `pulumi:"crdNames"`

	// Ready are the CRDs and the apicheck Job: both awaited by the
	// provider, so a resource that depends on them (DependsOn) is created
	// only after the CRDs are Established and the webhook has accepted a
	// dry-run Issuer with its injected CA.
	Ready []pulumi.Resource
}

// DependsOnReady is the option a cert-manager custom resource (an Issuer,
// a Certificate) takes: created after Ready.
func (c *CertManager) DependsOnReady() pulumi.ResourceOption {
	return pulumi.DependsOn(c.Ready)
}

// workload is one of cert-manager's processes as a Deployment.
type workload struct {
	who   string
	args  []string
	ports corev1.ContainerPortArray
	// readiness and liveness probes (the policy pack wants both on every
	// long-running container).
	readiness, liveness *corev1.ProbeArgs
	resources           *corev1.ResourceRequirementsArgs
	// singleton runs exactly one pod, replaced with Recreate: without
	// leader election two pods of it must never run side by side.
	singleton   bool
	annotations map[string]string
	sa          *corev1.ServiceAccount
}

// NewCertManager validates args, then declares cert-manager's objects as
// children named "<name>-<role>".
func NewCertManager(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*CertManager, error) {
	if args == nil {
		return nil, fmt.Errorf("cert-manager %s: args are required", name)
	}
	if err := args.Validate(name); err != nil {
		return nil, fmt.Errorf("cert-manager %s: %w", name, err)
	}
	a := args.withDefaults()
	c := &CertManager{}
	if err := ctx.RegisterComponentResource(TypeToken, name, c, opts...); err != nil {
		return nil, fmt.Errorf("cert-manager %s: register: %w", name, err)
	}
	child, err := children.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("cert-manager %s: options: %w", name, err)
	}
	wrap := func(what string, err error) error { return fmt.Errorf("cert-manager %s: %s: %w", name, what, err) }
	ns := a.Namespace
	common := kube.Labels("cert-manager", "cert-manager", Version)

	crds, err := newCRDs(ctx, name, common, child)
	if err != nil {
		return nil, wrap("crds", err)
	}
	// Everything after the CRDs waits for them: the controller's informers
	// fail to start on kinds the API server does not serve yet.
	afterCRDs := pulumi.Composite(child, pulumi.DependsOn(crds))
	declared := append([]pulumi.Resource{}, crds...)

	sas := map[string]*corev1.ServiceAccount{}
	for _, who := range []string{"controller", "webhook", "cainjector", "apicheck"} {
		sa, err := newIdentity(ctx, name, who, ns, kube.Labels("cert-manager-"+who, who, Version), child)
		if err != nil {
			return nil, wrap("rbac", err)
		}
		sas[who] = sa
	}

	httpProbe := func(port int, path string) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			HttpGet:          &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.Int(port), Scheme: pulumi.String("HTTP")},
			PeriodSeconds:    pulumi.Int(10),
			FailureThreshold: pulumi.Int(6),
		}
	}
	webhookDNS := strings.Join([]string{WebhookName, WebhookName + "." + ns, WebhookName + "." + ns + ".svc"}, ",")
	workloads := []workload{
		{
			who: "controller",
			// Our binary's --namespace says where it runs; unlike upstream's
			// flag it does not limit what is watched (that is
			// --watch-namespace, unset: the Issuers and Certificates live in
			// the application namespace). --cluster-resource-namespace is
			// where ClusterIssuers keep their Secrets.
			args: []string{"controller", "--namespace=" + ns, "--cluster-resource-namespace=" + ns, "--leader-elect=false",
				fmt.Sprintf("--metrics-listen-address=:%d", ControllerMetricsPort), fmt.Sprintf("--healthz-listen-address=:%d", ControllerHealthPort)},
			ports: corev1.ContainerPortArray{
				corev1.ContainerPortArgs{Name: pulumi.String("metrics"), ContainerPort: pulumi.Int(ControllerMetricsPort), Protocol: pulumi.String("TCP")},
				corev1.ContainerPortArgs{Name: pulumi.String("healthz"), ContainerPort: pulumi.Int(ControllerHealthPort), Protocol: pulumi.String("TCP")},
			},
			// The controller serves no traffic: its readiness is its health
			// (a rollout then waits for a controller that passed /livez).
			readiness:   httpProbe(ControllerHealthPort, "/livez"),
			liveness:    httpProbe(ControllerHealthPort, "/livez"),
			resources:   kube.Requirements("10m", "64Mi", "", "256Mi"),
			singleton:   true,
			annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(ControllerMetricsPort), "prometheus.io/path": "/metrics"},
		},
		{
			who: "webhook",
			args: []string{"webhook", fmt.Sprintf("--secure-port=%d", WebhookPort), fmt.Sprintf("--healthz-port=%d", WebhookHealthPort),
				"--dynamic-serving-ca-secret-namespace=" + ns, "--dynamic-serving-ca-secret-name=" + WebhookCASecret,
				"--dynamic-serving-dns-names=" + webhookDNS},
			ports: corev1.ContainerPortArray{
				corev1.ContainerPortArgs{Name: pulumi.String("https"), ContainerPort: pulumi.Int(WebhookPort), Protocol: pulumi.String("TCP")},
				corev1.ContainerPortArgs{Name: pulumi.String("healthcheck"), ContainerPort: pulumi.Int(WebhookHealthPort), Protocol: pulumi.String("TCP")},
			},
			readiness: httpProbe(WebhookHealthPort, "/healthz"),
			liveness:  httpProbe(WebhookHealthPort, "/livez"),
			resources: kube.Requirements("10m", "32Mi", "", "128Mi"),
		},
		{
			who:  "cainjector",
			args: []string{"cainjector", "--namespace=" + ns, "--leader-elect=false"},
			ports: corev1.ContainerPortArray{
				corev1.ContainerPortArgs{Name: pulumi.String("metrics"), ContainerPort: pulumi.Int(CAInjectorMetricsPort), Protocol: pulumi.String("TCP")},
			},
			// The CA injector has no health endpoint; its metrics listener
			// is up once its manager started.
			readiness: tcpProbe(CAInjectorMetricsPort),
			liveness:  tcpProbe(CAInjectorMetricsPort),
			resources: kube.Requirements("10m", "64Mi", "", "256Mi"),
			singleton: true,
		},
	}
	for _, w := range workloads {
		w.sa = sas[w.who]
		d, err := newDeployment(ctx, name, a, w, afterCRDs)
		if err != nil {
			return nil, wrap(w.who+" deployment", err)
		}
		declared = append(declared, d)
	}

	webhookLabels := kube.Labels("cert-manager-webhook", "webhook", Version)
	webhookSel := kube.SelectorOf(webhookLabels)
	svc, err := corev1.NewService(ctx, name+"-webhook-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(WebhookName, ns, webhookLabels),
		Spec: &corev1.ServiceSpecArgs{
			Type:     pulumi.String("ClusterIP"),
			Selector: pulumi.ToStringMap(webhookSel),
			Ports: corev1.ServicePortArray{corev1.ServicePortArgs{Name: pulumi.String("https"), Port: pulumi.Int(443),
				TargetPort: pulumi.String("https"), Protocol: pulumi.String("TCP"), AppProtocol: pulumi.String("https")}},
		},
	}, child)
	if err != nil {
		return nil, wrap("webhook service", err)
	}
	declared = append(declared, svc)
	if _, err := kube.NewHPA(ctx, name+"-webhook-hpa", kube.Meta(WebhookName, ns, webhookLabels), pulumi.String(WebhookName),
		a.WebhookReplicas, a.Autoscaling, a.Autoscaling.Stabilization(), child); err != nil {
		return nil, wrap("webhook autoscaler", err)
	}
	if _, err := kube.NewPDB(ctx, name+"-webhook-pdb", kube.Meta(WebhookName, ns, webhookLabels), webhookSel, child); err != nil {
		return nil, wrap("webhook disruption budget", err)
	}
	hooks, err := newWebhookConfigurations(ctx, name, a, svc, common, afterCRDs)
	if err != nil {
		return nil, wrap("webhook configurations", err)
	}
	declared = append(declared, hooks...)
	if err := newNetworkPolicies(ctx, name, ns, child); err != nil {
		return nil, wrap("network policies", err)
	}

	job, err := newAPICheck(ctx, name, a, sas["apicheck"], pulumi.Composite(child, pulumi.DependsOn(declared)))
	if err != nil {
		return nil, wrap("apicheck job", err)
	}
	c.Ready = append(append([]pulumi.Resource{}, crds...), job)

	var crdNames []string
	all, _ := CRDs()
	for _, d := range all {
		crdNames = append(crdNames, d.Name)
	}
	c.Namespace = pulumi.String(ns).ToStringOutput()
	c.WebhookService = svc.Metadata.Name().Elem()
	c.APICheckJob = job.Metadata.Name().Elem()
	c.CRDNames = pulumi.ToStringArray(crdNames).ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"namespace":      c.Namespace,
		"webhookService": c.WebhookService,
		"apiCheckJob":    c.APICheckJob,
		"crdNames":       c.CRDNames,
	}); err != nil {
		return nil, wrap("outputs", err)
	}
	return c, nil
}

func tcpProbe(port int) *corev1.ProbeArgs {
	return &corev1.ProbeArgs{TcpSocket: &corev1.TCPSocketActionArgs{Port: pulumi.Int(port)}, PeriodSeconds: pulumi.Int(10), FailureThreshold: pulumi.Int(6)}
}

// podSpec is the restricted pod every cert-manager process runs in: the
// image's non-root user, a read-only root filesystem with /tmp writable,
// and the service account's token (each process talks to the API server).
func podSpec(a Args, sa *corev1.ServiceAccount, c corev1.ContainerArgs, restart string) *corev1.PodSpecArgs {
	c.Image = pulumi.String(a.Image)
	c.ImagePullPolicy = pulumi.String("IfNotPresent")
	c.SecurityContext = kube.RestrictedContainerSecurity()
	c.VolumeMounts = corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}}
	spec := &corev1.PodSpecArgs{
		ServiceAccountName:           sa.Metadata.Name().Elem(),
		AutomountServiceAccountToken: pulumi.Bool(true),
		EnableServiceLinks:           pulumi.Bool(false),
		SecurityContext:              kube.RestrictedPodSecurity(kube.NonRootUID),
		Volumes: corev1.VolumeArray{corev1.VolumeArgs{Name: pulumi.String("tmp"),
			EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("16Mi")}}},
		Containers: corev1.ContainerArray{c},
	}
	if restart != "" {
		spec.RestartPolicy = pulumi.String(restart)
	}
	return spec
}

func newDeployment(ctx *pulumi.Context, name string, a Args, w workload, opts ...pulumi.ResourceOption) (*appsv1.Deployment, error) {
	objName := "cert-manager-" + w.who
	labels := kube.Labels(objName, w.who, Version)
	sel := kube.SelectorOf(labels)
	spec := &appsv1.DeploymentSpecArgs{
		Selector:             &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(sel)},
		RevisionHistoryLimit: pulumi.Int(3),
	}
	if w.singleton {
		spec.Replicas = pulumi.Int(1)
		spec.Strategy = &appsv1.DeploymentStrategyArgs{Type: pulumi.String("Recreate")}
	} else {
		// No replicas: the HPA owns the size.
		spec.Strategy = &appsv1.DeploymentStrategyArgs{Type: pulumi.String("RollingUpdate"),
			RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxSurge: pulumi.Int(1), MaxUnavailable: pulumi.Int(0)}}
	}
	pod := podSpec(a, w.sa, corev1.ContainerArgs{
		Name:           pulumi.String("cert-manager-" + w.who),
		Args:           pulumi.ToStringArray(w.args),
		Ports:          w.ports,
		Resources:      w.resources,
		ReadinessProbe: w.readiness,
		LivenessProbe:  w.liveness,
	}, "")
	if !w.singleton {
		pod.TopologySpreadConstraints = kube.Spread(sel, a.ZoneSpreadRequired)
	}
	spec.Template = &corev1.PodTemplateSpecArgs{
		Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels), Annotations: pulumi.ToStringMap(w.annotations)},
		Spec:     pod,
	}
	return appsv1.NewDeployment(ctx, name+"-"+w.who+"-deployment", &appsv1.DeploymentArgs{
		Metadata: kube.Meta(objName, a.Namespace, labels),
		Spec:     spec,
	}, opts...)
}

// newWebhookConfigurations registers the webhook for cert-manager's own
// API groups, failing closed (an unvalidated Certificate could name any
// Issuer), with the CA injector filling in the caBundle from the webhook's
// CA Secret. The provider applies server-side and never sets caBundle, so
// a later update does not wipe what the injector wrote.
func newWebhookConfigurations(ctx *pulumi.Context, name string, a Args, svc *corev1.Service, labels map[string]string, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	meta := kube.Meta(WebhookName, "", labels)
	meta.Annotations = pulumi.StringMap{InjectCAAnnotation: pulumi.String(a.Namespace + "/" + WebhookCASecret)}
	client := func(path string) *admissionv1.WebhookClientConfigArgs {
		return &admissionv1.WebhookClientConfigArgs{Service: &admissionv1.ServiceReferenceArgs{
			Name: svc.Metadata.Name().Elem(), Namespace: pulumi.String(a.Namespace), Path: pulumi.String(path), Port: pulumi.Int(443)}}
	}
	// A namespace labelled cert-manager.io/disable-validation=true is
	// exempt, as upstream allows (a way out when the webhook is broken).
	nsSel := &metav1.LabelSelectorArgs{MatchExpressions: metav1.LabelSelectorRequirementArray{metav1.LabelSelectorRequirementArgs{
		Key: pulumi.String("cert-manager.io/disable-validation"), Operator: pulumi.String("NotIn"), Values: pulumi.ToStringArray([]string{"true"})}}}
	v, err := admissionv1.NewValidatingWebhookConfiguration(ctx, name+"-validating-webhook", &admissionv1.ValidatingWebhookConfigurationArgs{
		Metadata: meta,
		Webhooks: admissionv1.ValidatingWebhookArray{admissionv1.ValidatingWebhookArgs{
			Name:              pulumi.String("webhook.cert-manager.io"),
			NamespaceSelector: nsSel,
			Rules: admissionv1.RuleWithOperationsArray{admissionv1.RuleWithOperationsArgs{
				ApiGroups: pulumi.ToStringArray([]string{"cert-manager.io", "acme.cert-manager.io"}), ApiVersions: pulumi.ToStringArray([]string{"v1"}),
				Operations: pulumi.ToStringArray([]string{"CREATE", "UPDATE"}), Resources: pulumi.ToStringArray([]string{"*/*"})}},
			AdmissionReviewVersions: pulumi.ToStringArray([]string{"v1"}),
			MatchPolicy:             pulumi.String("Equivalent"),
			TimeoutSeconds:          pulumi.Int(a.WebhookTimeoutSeconds),
			FailurePolicy:           pulumi.String("Fail"),
			SideEffects:             pulumi.String("None"),
			ClientConfig:            client("/validate"),
		}},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("validating: %w", err)
	}
	m, err := admissionv1.NewMutatingWebhookConfiguration(ctx, name+"-mutating-webhook", &admissionv1.MutatingWebhookConfigurationArgs{
		Metadata: meta,
		Webhooks: admissionv1.MutatingWebhookArray{admissionv1.MutatingWebhookArgs{
			Name: pulumi.String("webhook.cert-manager.io"),
			Rules: admissionv1.RuleWithOperationsArray{admissionv1.RuleWithOperationsArgs{
				ApiGroups: pulumi.ToStringArray([]string{"cert-manager.io"}), ApiVersions: pulumi.ToStringArray([]string{"v1"}),
				Operations: pulumi.ToStringArray([]string{"CREATE"}), Resources: pulumi.ToStringArray([]string{"certificaterequests"})}},
			AdmissionReviewVersions: pulumi.ToStringArray([]string{"v1"}),
			MatchPolicy:             pulumi.String("Equivalent"),
			TimeoutSeconds:          pulumi.Int(a.WebhookTimeoutSeconds),
			FailurePolicy:           pulumi.String("Fail"),
			SideEffects:             pulumi.String("None"),
			ClientConfig:            client("/mutate"),
		}},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("mutating: %w", err)
	}
	return []pulumi.Resource{v, m}, nil
}

// newNetworkPolicies opens what the namespace's default-deny closes: the
// webhook's port to any source (the API server calls it from the node's
// host network on the embedded cluster, from the control plane's network
// on a managed one: neither is a pod a selector could name), and the
// controller's metrics to Prometheus in any namespace. The CA injector
// accepts nothing.
func newNetworkPolicies(ctx *pulumi.Context, name, ns string, opts ...pulumi.ResourceOption) error {
	policy := func(role, who string, port int, from networkingv1.NetworkPolicyPeerArray) error {
		labels := kube.Labels("cert-manager-"+who, who, Version)
		_, err := networkingv1.NewNetworkPolicy(ctx, name+"-"+role, &networkingv1.NetworkPolicyArgs{
			Metadata: kube.Meta("cert-manager-"+who, ns, labels),
			Spec: &networkingv1.NetworkPolicySpecArgs{
				PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(kube.SelectorOf(labels))},
				PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
				Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(port), Protocol: pulumi.String("TCP")}},
					From:  from,
				}},
			},
		}, opts...)
		return err
	}
	if err := policy("webhook-networkpolicy", "webhook", WebhookPort, nil); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	prometheus := networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
		NamespaceSelector: &metav1.LabelSelectorArgs{},
		PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String("prometheus")}},
	}}
	if err := policy("controller-networkpolicy", "controller", ControllerMetricsPort, prometheus); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

// newAPICheck declares the Job that ends once the API server accepts a
// dry-run Issuer: the CRDs are served, the webhook answers and its CA has
// been injected. It carries AwaitAnnotation, so the provider waits for it
// to complete, and it is created after every other object here (opts).
// The Job's deadline bounds the whole wait, retries included.
func newAPICheck(ctx *pulumi.Context, name string, a Args, sa *corev1.ServiceAccount, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	labels := kube.Labels("cert-manager-apicheck", "apicheck", Version)
	meta := kube.Meta("cert-manager-apicheck", a.Namespace, labels)
	meta.Annotations = pulumi.StringMap{AwaitAnnotation: pulumi.String("true")}
	timeout := a.APICheckTimeout
	return batchv1.NewJob(ctx, name+"-apicheck-job", &batchv1.JobArgs{
		Metadata: meta,
		Spec: &batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(2),
			ActiveDeadlineSeconds: pulumi.Int(int(timeout.Seconds()) + 60),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
				Spec: podSpec(a, sa, corev1.ContainerArgs{
					Name:      pulumi.String("cert-manager-apicheck"),
					Args:      pulumi.ToStringArray([]string{"apicheck", "--namespace=" + a.Namespace, "--timeout=" + timeout.String()}),
					Resources: kube.Requirements("10m", "32Mi", "", "64Mi"),
				}, "Never"),
			},
		},
	}, opts...)
}
