package microservice

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:microservice:Microservice"

// Microservice is one deployed service and its scaling objects.
type Microservice struct {
	pulumi.ResourceState

	// DeploymentName is the Deployment's metadata.name (the HPA's target).
	DeploymentName pulumi.StringOutput `pulumi:"deploymentName"`
	// ServiceName is the ClusterIP (or LoadBalancer) Service's name.
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// Endpoint is "name.namespace.svc.cluster.local:port" of the first port.
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
	// Labels are the selector labels, for callers' NetworkPolicies.
	Labels pulumi.StringMapOutput `pulumi:"labels"`
}

// NewMicroservice validates args, then declares the service's objects as
// children named "<name>-<role>"; every Kubernetes object's metadata.name
// is the service's name (the headless Service's is "<name>-headless").
func NewMicroservice(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Microservice, error) {
	if args == nil {
		return nil, fmt.Errorf("microservice %s: args are required", name)
	}
	if err := args.Validate(name); err != nil {
		return nil, fmt.Errorf("microservice %s: %w", name, err)
	}
	m := &Microservice{}
	if err := ctx.RegisterComponentResource(TypeToken, name, m, opts...); err != nil {
		return nil, fmt.Errorf("microservice %s: register: %w", name, err)
	}
	parent, err := children.Options(m, opts)
	if err != nil {
		return nil, fmt.Errorf("microservice %s: options: %w", name, err)
	}
	selector := kube.SelectorLabels(name)
	labels := kube.Labels(name, args.Component, args.Version)
	meta := func(objName string) *metav1.ObjectMetaArgs { return kube.Meta(objName, args.Namespace, labels) }

	sa, err := corev1.NewServiceAccount(ctx, name+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata:                     meta(name),
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("microservice %s: service account: %w", name, err)
	}

	podAnnotations := map[string]string{}
	if args.MetricsPort != "" {
		podAnnotations["prometheus.io/scrape"] = "true"
		podAnnotations["prometheus.io/port"] = strconv.Itoa(args.portNumber(args.MetricsPort))
		podAnnotations["prometheus.io/path"] = "/metrics"
	}
	volumes := corev1.VolumeArray{corev1.VolumeArgs{
		Name:     pulumi.String("tmp"),
		EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("64Mi")},
	}}
	mounts := corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}}
	for i, v := range args.SecretVolumes {
		volName := fmt.Sprintf("secret-%d", i)
		var items corev1.KeyToPathArray
		for _, k := range slices.Sorted(maps.Keys(v.Items)) {
			items = append(items, corev1.KeyToPathArgs{Key: pulumi.String(k), Path: pulumi.String(v.Items[k])})
		}
		volumes = append(volumes, corev1.VolumeArgs{
			Name: pulumi.String(volName),
			// 0440 with the pod's fsGroup: the non-root process reads it, nobody else.
			Secret: &corev1.SecretVolumeSourceArgs{SecretName: pulumi.String(v.Secret), Items: items, DefaultMode: pulumi.Int(0o440)},
		})
		mounts = append(mounts, corev1.VolumeMountArgs{
			Name: pulumi.String(volName), MountPath: pulumi.String(v.MountPath), ReadOnly: pulumi.Bool(true),
		})
	}
	var dependsOn []pulumi.Resource
	if len(args.ConfigFiles) > 0 {
		cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
			Metadata: meta(name),
			Data:     pulumi.ToStringMap(args.ConfigFiles),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("microservice %s: config map: %w", name, err)
		}
		dependsOn = append(dependsOn, cm)
		podAnnotations[kube.ConfigChecksumAnnotation] = checksum(args.ConfigFiles)
		volumes = append(volumes, corev1.VolumeArgs{
			Name:      pulumi.String("config"),
			ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(name)},
		})
		mounts = append(mounts, corev1.VolumeMountArgs{
			Name: pulumi.String("config"), MountPath: pulumi.String(args.ConfigMountPath), ReadOnly: pulumi.Bool(true),
		})
	}

	pullPolicy := args.ImagePullPolicy
	if pullPolicy == "" {
		pullPolicy = "IfNotPresent"
	}

	dep, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: meta(name),
		Spec: &appsv1.DeploymentSpecArgs{
			// No replicas: the HPA owns the count. Setting it here would cut an
			// autoscaled service back to one size on every `pulumi up`.
			RevisionHistoryLimit: pulumi.Int(5),
			Selector:             &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
			Strategy: &appsv1.DeploymentStrategyArgs{
				Type: pulumi.String("RollingUpdate"),
				// Never below the current capacity during a rollout.
				RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{
					MaxSurge:       pulumi.String("25%"),
					MaxUnavailable: pulumi.Int(0),
				},
			},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels:      pulumi.ToStringMap(labels),
					Annotations: pulumi.ToStringMap(podAnnotations),
				},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:            sa.Metadata.Name().Elem(),
					AutomountServiceAccountToken:  pulumi.Bool(false),
					TerminationGracePeriodSeconds: pulumi.Int(args.GracePeriodSeconds()),
					EnableServiceLinks:            pulumi.Bool(false),
					SecurityContext:               kube.RestrictedPodSecurity(kube.NonRootUID),
					TopologySpreadConstraints:     kube.Spread(selector, args.ZoneSpreadRequired, kube.RolloutKey),
					Volumes:                       volumes,
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String(name),
						Image:           pulumi.String(args.Image),
						ImagePullPolicy: pulumi.String(pullPolicy),
						Command:         optionalStrings(args.Command),
						Args:            optionalStrings(args.Args),
						Ports:           args.containerPorts(),
						Env:             args.containerEnv(name),
						Resources:       args.Resources.Requirements(),
						StartupProbe:    args.probe(args.Liveness, 2, 30),
						LivenessProbe:   args.probe(args.Liveness, 10, 3),
						ReadinessProbe:  args.probe(args.Readiness, 5, 2),
						Lifecycle: &corev1.LifecycleArgs{
							// A sleep, not an exec: distroless images have no shell.
							PreStop: &corev1.LifecycleHandlerArgs{
								Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(args.PreStopSeconds)},
							},
						},
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts:    mounts,
					}},
				},
			},
		},
	}, parent, pulumi.DependsOn(dependsOn))
	if err != nil {
		return nil, fmt.Errorf("microservice %s: deployment: %w", name, err)
	}

	svcType := args.ServiceType
	if svcType == "" {
		svcType = "ClusterIP"
	}
	svcMeta := meta(name)
	svcMeta.Annotations = args.ServiceAnnotations
	svcSpec := &corev1.ServiceSpecArgs{
		Type:     pulumi.String(svcType),
		Selector: pulumi.ToStringMap(selector),
		Ports:    args.servicePorts(),
		// No sticky sessions: state lives in Redis, any pod serves any client.
		SessionAffinity: pulumi.String("None"),
	}
	if args.ExternalTrafficPolicy != "" {
		svcSpec.ExternalTrafficPolicy = pulumi.String(args.ExternalTrafficPolicy)
	}
	svc, err := corev1.NewService(ctx, name+"-service", &corev1.ServiceArgs{
		Metadata: svcMeta,
		Spec:     svcSpec,
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("microservice %s: service: %w", name, err)
	}
	if args.Headless {
		if _, err := corev1.NewService(ctx, name+"-headless-service", &corev1.ServiceArgs{
			Metadata: meta(name + "-headless"),
			Spec: &corev1.ServiceSpecArgs{
				ClusterIP:       pulumi.String("None"),
				Selector:        pulumi.ToStringMap(selector),
				Ports:           args.servicePorts(),
				SessionAffinity: pulumi.String("None"),
			},
		}, parent); err != nil {
			return nil, fmt.Errorf("microservice %s: headless service: %w", name, err)
		}
	}

	if _, err := kube.NewHPA(ctx, name+"-hpa", meta(name), dep.Metadata.Name().Elem(),
		args.Replicas, args.Autoscaling, args.behavior(), parent); err != nil {
		return nil, fmt.Errorf("microservice %s: autoscaler: %w", name, err)
	}

	if _, err := kube.NewPDB(ctx, name+"-pdb", meta(name), selector, parent); err != nil {
		return nil, fmt.Errorf("microservice %s: disruption budget: %w", name, err)
	}

	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: meta(name),
		Spec:     args.networkPolicy(selector),
	}, parent); err != nil {
		return nil, fmt.Errorf("microservice %s: network policy: %w", name, err)
	}

	m.DeploymentName = dep.Metadata.Name().Elem()
	m.ServiceName = svc.Metadata.Name().Elem()
	m.Endpoint = pulumi.Sprintf("%s.%s.svc.cluster.local:%d", m.ServiceName, args.Namespace, args.firstServicePort())
	m.Labels = pulumi.ToStringMap(selector).ToStringMapOutput()
	if err := ctx.RegisterResourceOutputs(m, pulumi.Map{
		"deploymentName": m.DeploymentName,
		"serviceName":    m.ServiceName,
		"endpoint":       m.Endpoint,
		"labels":         m.Labels,
	}); err != nil {
		return nil, fmt.Errorf("microservice %s: outputs: %w", name, err)
	}
	return m, nil
}

func (a *Args) portNumber(name string) int {
	for _, p := range a.Ports {
		if p.Name == name {
			return p.Port
		}
	}
	return 0
}

// firstServicePort is the port the Service exposes its first port on.
func (a *Args) firstServicePort() int {
	for _, p := range a.Ports {
		if !p.ContainerOnly {
			return p.servicePort()
		}
	}
	return 0
}

func (p Port) servicePort() int {
	if p.ServicePort != 0 {
		return p.ServicePort
	}
	return p.Port
}

func (a *Args) containerPorts() corev1.ContainerPortArray {
	var out corev1.ContainerPortArray
	for _, p := range a.Ports {
		out = append(out, corev1.ContainerPortArgs{
			Name: pulumi.String(p.Name), ContainerPort: pulumi.Int(p.Port), Protocol: pulumi.String("TCP"),
		})
	}
	return out
}

func (a *Args) servicePorts() corev1.ServicePortArray {
	var out corev1.ServicePortArray
	for _, p := range a.Ports {
		if p.ContainerOnly {
			continue
		}
		sp := corev1.ServicePortArgs{
			Name: pulumi.String(p.Name), Port: pulumi.Int(p.servicePort()), TargetPort: pulumi.String(p.Name), Protocol: pulumi.String("TCP"),
		}
		if p.Protocol != "" {
			sp.AppProtocol = pulumi.String(p.Protocol)
		}
		out = append(out, sp)
	}
	return out
}

// containerEnv is sorted by name so the rendered manifests are stable.
func (a *Args) containerEnv(name string) corev1.EnvVarArray {
	env := maps.Clone(a.Env)
	if env == nil {
		env = map[string]pulumi.StringInput{}
	}
	set := func(k, v string) { env[k] = pulumi.String(v) }
	if a.GoRuntime {
		set("GOMEMLIMIT", GoMemLimit(a.Resources.MemoryLimit))
		if a.GoGC != "" {
			set("GOGC", a.GoGC)
		}
		set("GOMAXPROCS", strconv.Itoa(GoMaxProcs(a.Resources)))
	}
	// The services' kit drains for at most SHUTDOWN_TIMEOUT after SIGTERM;
	// the preStop sleep already kept traffic away, so no extra drain delay.
	set("SHUTDOWN_TIMEOUT", strconv.Itoa(a.DrainSeconds)+"s")
	set("DRAIN_DELAY", "0s")
	if a.OTLPEndpoint != "" {
		set("OTEL_EXPORTER_OTLP_ENDPOINT", a.OTLPEndpoint)
		set("OTEL_SERVICE_NAME", name)
		set("OTEL_RESOURCE_ATTRIBUTES", "service.namespace="+a.Namespace+",service.version="+a.Version)
		set("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
		if _, ok := env["OTEL_TRACES_SAMPLER_ARG"]; !ok {
			set("OTEL_TRACES_SAMPLER_ARG", "1.0")
		}
	}
	var out corev1.EnvVarArray
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, corev1.EnvVarArgs{Name: pulumi.String(k), Value: env[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(a.SecretEnv)) {
		secret, key, _ := strings.Cut(a.SecretEnv[k], "/")
		out = append(out, corev1.EnvVarArgs{
			Name: pulumi.String(k),
			ValueFrom: &corev1.EnvVarSourceArgs{SecretKeyRef: &corev1.SecretKeySelectorArgs{
				Name: pulumi.String(secret), Key: pulumi.String(key),
			}},
		})
	}
	return out
}

func (a *Args) probe(p Probe, periodSeconds, failureThreshold int) *corev1.ProbeArgs {
	pa := &corev1.ProbeArgs{
		PeriodSeconds:    pulumi.Int(periodSeconds),
		TimeoutSeconds:   pulumi.Int(2),
		FailureThreshold: pulumi.Int(failureThreshold),
	}
	if p.GRPC {
		pa.Grpc = &corev1.GRPCActionArgs{Port: pulumi.Int(a.portNumber(p.Port))}
	} else {
		pa.HttpGet = &corev1.HTTPGetActionArgs{Path: pulumi.String(p.HTTPPath), Port: pulumi.String(p.Port)}
	}
	return pa
}

func (a *Args) behavior() *autoscalingv2.HorizontalPodAutoscalerBehaviorArgs {
	upPods := a.ScaleUpMaxPodsPer15s
	if upPods <= 0 {
		upPods = 4
	}
	downPercent := a.ScaleDownMaxPercentPerMin
	if downPercent <= 0 {
		downPercent = 50
	}
	return &autoscalingv2.HorizontalPodAutoscalerBehaviorArgs{
		// Scale out fast (double or +N pods every 15 s, whichever is more)...
		ScaleUp: &autoscalingv2.HPAScalingRulesArgs{
			StabilizationWindowSeconds: pulumi.Int(a.ScaleUpWindowSeconds),
			SelectPolicy:               pulumi.String("Max"),
			Policies: autoscalingv2.HPAScalingPolicyArray{
				autoscalingv2.HPAScalingPolicyArgs{Type: pulumi.String("Percent"), Value: pulumi.Int(100), PeriodSeconds: pulumi.Int(15)},
				autoscalingv2.HPAScalingPolicyArgs{Type: pulumi.String("Pods"), Value: pulumi.Int(upPods), PeriodSeconds: pulumi.Int(15)},
			},
		},
		// ...and in slowly, after the stabilization window.
		ScaleDown: &autoscalingv2.HPAScalingRulesArgs{
			StabilizationWindowSeconds: pulumi.Int(a.ScaleDownWindowSeconds),
			SelectPolicy:               pulumi.String("Min"),
			Policies: autoscalingv2.HPAScalingPolicyArray{
				autoscalingv2.HPAScalingPolicyArgs{Type: pulumi.String("Percent"), Value: pulumi.Int(downPercent), PeriodSeconds: pulumi.Int(60)},
			},
		},
	}
}

// networkPolicy admits the Service's ports from the declared callers (or
// anywhere) and Prometheus, and the containerOnly ports from Prometheus
// when one is the metrics port; the kubelet's probes come from the node,
// which a NetworkPolicy always admits.
func (a *Args) networkPolicy(selector map[string]string) *networkingv1.NetworkPolicySpecArgs {
	var ports, private networkingv1.NetworkPolicyPortArray
	metricsPrivate := false
	for _, p := range a.Ports {
		np := networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(p.Port), Protocol: pulumi.String("TCP")}
		if p.ContainerOnly {
			private = append(private, np)
			metricsPrivate = metricsPrivate || p.Name == a.MetricsPort
			continue
		}
		ports = append(ports, np)
	}
	rule := networkingv1.NetworkPolicyIngressRuleArgs{Ports: ports}
	rules := networkingv1.NetworkPolicyIngressRuleArray{rule}
	if metricsPrivate {
		rules = append(rules, networkingv1.NetworkPolicyIngressRuleArgs{Ports: private, From: networkingv1.NetworkPolicyPeerArray{prometheusPeer()}})
	}
	if !a.AllowFromAnywhere {
		var peers networkingv1.NetworkPolicyPeerArray
		for _, caller := range a.AllowFrom {
			peers = append(peers, networkingv1.NetworkPolicyPeerArgs{
				PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String(caller)}},
			})
		}
		if a.MetricsPort != "" && !metricsPrivate {
			peers = append(peers, prometheusPeer())
		}
		rule.From = peers
		rules[0] = rule
	}
	return &networkingv1.NetworkPolicySpecArgs{
		PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
		PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
		Ingress:     rules,
	}
}

// prometheusPeer is any Prometheus pod; Prometheus may live in another namespace.
func prometheusPeer() networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{
		NamespaceSelector: &metav1.LabelSelectorArgs{},
		PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app.kubernetes.io/name": pulumi.String("prometheus")}},
	}
}

// checksum is the config files' checksum: every name and text in name
// order, so the pod template (and the pods) change exactly when a file does.
func checksum(files map[string]string) string {
	var texts []string
	for _, k := range slices.Sorted(maps.Keys(files)) {
		texts = append(texts, k, files[k])
	}
	return kube.ConfigChecksum(texts...)
}

// optionalStrings leaves an unset list out of the manifest instead of
// sending an empty one that would override the image's entrypoint.
func optionalStrings(s []string) pulumi.StringArrayInput {
	if len(s) == 0 {
		return nil
	}
	return pulumi.ToStringArray(s)
}
