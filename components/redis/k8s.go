package redis

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// redisUID is the redis user of the official image.
const redisUID = 999

// configDir is where the ConfigMap (redis.conf, the formation script) is mounted.
const configDir = "/etc/redis"

// newAuthSecret declares the Secret services read the password from; the
// aws flavour declares it too, so services are wired the same way.
func newAuthSecret(ctx *pulumi.Context, name string, a Args, password pulumi.StringOutput, parent pulumi.ResourceOption) (*corev1.Secret, error) {
	s, err := corev1.NewSecret(ctx, name+"-auth-secret", &corev1.SecretArgs{
		Metadata:   kube.Meta(SecretName(name), a.Namespace, kube.Labels(name, "cache", "")),
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{PasswordKey: password},
	}, parent)
	if err != nil {
		return nil, wrap(name, "auth secret", err)
	}
	return s, nil
}

// newInCluster declares the Redis Cluster: ConfigMap, headless and client
// Services, StatefulSet, PDB, NetworkPolicy and the cluster-init Job.
func newInCluster(ctx *pulumi.Context, name string, a Args, secret *corev1.Secret, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	ns := a.Namespace
	selector := kube.SelectorLabels(name)
	l := kube.Labels(name, "cache", "")
	headless := name + "-headless"
	nodes := a.Shards * (1 + a.ReplicasPerShard)

	cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(name, ns, l),
		Data: pulumi.StringMap{
			"redis.conf":     pulumi.String(RenderConf(a.Conf())),
			FormScriptName:   pulumi.String(RenderFormScript(a.ReplicasPerShard)),
			RejoinScriptName: pulumi.String(RenderRejoinScript()),
		},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "config map", err)
	}
	ports := corev1.ServicePortArray{
		corev1.ServicePortArgs{Name: pulumi.String("redis"), Port: pulumi.Int(Port), TargetPort: pulumi.String("redis"), Protocol: pulumi.String("TCP"), AppProtocol: pulumi.String("redis")},
	}
	if _, err := corev1.NewService(ctx, name+"-headless-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(headless, ns, l),
		Spec: &corev1.ServiceSpecArgs{
			ClusterIP: pulumi.String("None"),
			// Nodes must find each other (and the init Job them) before
			// they are ready: readiness needs a formed cluster.
			PublishNotReadyAddresses: pulumi.Bool(true),
			Selector:                 pulumi.ToStringMap(selector),
			Ports: append(ports, corev1.ServicePortArgs{
				Name: pulumi.String("bus"), Port: pulumi.Int(BusPort), TargetPort: pulumi.String("bus"), Protocol: pulumi.String("TCP"),
			}),
		},
	}, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, "headless service", err)
	}
	svc, err := corev1.NewService(ctx, name+"-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(name, ns, l),
		Spec: &corev1.ServiceSpecArgs{
			Selector:        pulumi.ToStringMap(selector),
			Ports:           ports,
			SessionAffinity: pulumi.String("None"),
		},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "service", err)
	}

	// Spread over zones, and two nodes off one machine where they can be:
	// a node loss then costs at most one Redis process.
	affinity, spread := kube.Placement(selector, a.ZoneSpreadRequired)
	pingProbe := func(period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			Exec: &corev1.ExecActionArgs{Command: pulumi.ToStringArray([]string{
				"sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p ` + fmt.Sprint(Port) + ` ping | grep -q PONG`,
			})},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(failures),
		}
	}
	volumeClaim := corev1.PersistentVolumeClaimTypeArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("data"), Labels: pulumi.ToStringMap(l)},
		Spec: &corev1.PersistentVolumeClaimSpecArgs{
			AccessModes: pulumi.ToStringArray([]string{"ReadWriteOnce"}),
			Resources:   &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(a.Storage.String())}},
		},
	}
	if a.StorageClass != "" {
		volumeClaim.Spec.(*corev1.PersistentVolumeClaimSpecArgs).StorageClassName = pulumi.String(a.StorageClass)
	}
	// Every node by its stable DNS name (the headless Service publishes
	// not-ready pods too): the form Job's and the rejoin hook's arguments.
	var nodeAddrs []string
	for i := range nodes {
		nodeAddrs = append(nodeAddrs, fmt.Sprintf("%s-%d.%s.%s.svc.cluster.local:%d", name, i, headless, ns, Port))
	}
	if _, err := appsv1.NewStatefulSet(ctx, name+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.Meta(name, ns, l),
		Spec: &appsv1.StatefulSetSpecArgs{
			ServiceName: pulumi.String(headless),
			Replicas:    pulumi.Int(nodes),
			// All nodes start together: the cluster forms only once all answer.
			PodManagementPolicy: pulumi.String("Parallel"),
			Selector:            &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
			UpdateStrategy:      &appsv1.StatefulSetUpdateStrategyArgs{Type: pulumi.String("RollingUpdate")},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels:      pulumi.ToStringMap(l),
					Annotations: pulumi.StringMap{kube.ConfigChecksumAnnotation: pulumi.String(checksum(RenderConf(a.Conf())))},
				},
				Spec: &corev1.PodSpecArgs{
					AutomountServiceAccountToken:  pulumi.Bool(false),
					EnableServiceLinks:            pulumi.Bool(false),
					TerminationGracePeriodSeconds: pulumi.Int(30),
					SecurityContext:               kube.RestrictedPodSecurity(redisUID),
					Affinity:                      affinity,
					TopologySpreadConstraints:     spread,
					Volumes: corev1.VolumeArray{
						// The ConfigMap's fixed name, not its output, and no
						// dependency on it: the provider replaces a
						// ConfigMap whose data changes (delete, then
						// create), and the engine replaced its dependents
						// with it; the StatefulSet's replacement failed on a
						// field conflict with the old one and left no Redis
						// (measured on the local stack). Independent, a
						// config change is an update: the checksum
						// annotation rolls the pods, which wait for the
						// ConfigMap's mount if it comes a moment later.
						corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(name)}},
						corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("16Mi")}},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("redis"),
						Image:           pulumi.String(a.Image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						// The rejoin runs beside the server, started by the
						// shell that then becomes redis-server (which reaps
						// it): as a postStart hook it held every pod out of
						// its Service's endpoints while it ran, so no peer's
						// name resolved and the nodes waited on one another
						// (measured: 60 s of "does not resolve yet").
						Command: pulumi.ToStringArray([]string{"sh", "-c",
							`REDISCLI_AUTH="$REDIS_PASSWORD" sh ` + configDir + "/" + RejoinScriptName + " " + strings.Join(nodeAddrs, " ") +
								" >" + RejoinLog + ` 2>&1 & exec redis-server "$@"`, "redis-server"}),
						// $(VAR) is expanded by the kubelet: the password
						// never appears in the pod spec or the ConfigMap.
						Args: pulumi.ToStringArray([]string{
							configDir + "/redis.conf",
							"--cluster-announce-ip", "$(POD_IP)",
							"--requirepass", "$(REDIS_PASSWORD)",
							"--masterauth", "$(REDIS_PASSWORD)",
						}),
						Env: corev1.EnvVarArray{
							corev1.EnvVarArgs{Name: pulumi.String("POD_IP"), ValueFrom: &corev1.EnvVarSourceArgs{
								FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("status.podIP")},
							}},
							corev1.EnvVarArgs{Name: pulumi.String("REDIS_PASSWORD"), ValueFrom: &corev1.EnvVarSourceArgs{
								SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: secret.Metadata.Name().Elem(), Key: pulumi.String(PasswordKey)},
							}},
						},
						Ports: corev1.ContainerPortArray{
							corev1.ContainerPortArgs{Name: pulumi.String("redis"), ContainerPort: pulumi.Int(Port), Protocol: pulumi.String("TCP")},
							corev1.ContainerPortArgs{Name: pulumi.String("bus"), ContainerPort: pulumi.Int(BusPort), Protocol: pulumi.String("TCP")},
						},
						Resources: a.Resources.Requirements(),
						StartupProbe: &corev1.ProbeArgs{
							TcpSocket:     &corev1.TCPSocketActionArgs{Port: pulumi.String("redis")},
							PeriodSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(60),
						},
						// Liveness is a TCP check: a node busy loading a large
						// AOF must not be restarted into loading it again.
						LivenessProbe: &corev1.ProbeArgs{
							TcpSocket:     &corev1.TCPSocketActionArgs{Port: pulumi.String("redis")},
							PeriodSeconds: pulumi.Int(10), TimeoutSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(3),
						},
						ReadinessProbe:  pingProbe(5, 2),
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{
							corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(DataDir)},
							corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(configDir), ReadOnly: pulumi.Bool(true)},
							corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
						},
					}},
				},
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{volumeClaim},
		},
	}, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, "stateful set", err)
	}
	// One node at a time: a drain never takes a master and its replica
	// together, so every slot keeps an owner.
	if _, err := kube.NewPDB(ctx, name+"-pdb", kube.Meta(name, ns, l), selector, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, "disruption budget", err)
	}

	initName := name + "-cluster-init"
	initSelector := kube.SelectorLabels(initName)
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(name, ns, l),
		Spec:     networkPolicy(selector, initSelector, a.AllowFrom),
	}, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, "network policy", err)
	}

	initLabels := kube.Labels(initName, "cache-init", "")
	if _, err := batchv1.NewJob(ctx, name+"-cluster-init-job", &batchv1.JobArgs{
		Metadata: kube.Meta(initName, ns, initLabels),
		Spec: &batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(6),
			ActiveDeadlineSeconds: pulumi.Int(2 * FormScriptWaitSeconds),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(initLabels)},
				Spec: &corev1.PodSpecArgs{
					RestartPolicy:                pulumi.String("Never"),
					AutomountServiceAccountToken: pulumi.Bool(false),
					EnableServiceLinks:           pulumi.Bool(false),
					SecurityContext:              kube.RestrictedPodSecurity(redisUID),
					Volumes: corev1.VolumeArray{
						corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cm.Metadata.Name().Elem()}},
						corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("16Mi")}},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("form-cluster"),
						Image:           pulumi.String(a.Image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Command:         pulumi.ToStringArray(append([]string{"sh", configDir + "/" + FormScriptName}, nodeAddrs...)),
						Env: corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("REDISCLI_AUTH"), ValueFrom: &corev1.EnvVarSourceArgs{
							SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: secret.Metadata.Name().Elem(), Key: pulumi.String(PasswordKey)},
						}}},
						Resources: &corev1.ResourceRequirementsArgs{
							Requests: pulumi.StringMap{"cpu": pulumi.String("10m"), "memory": pulumi.String("16Mi")},
							Limits:   pulumi.StringMap{"memory": pulumi.String("64Mi")},
						},
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{
							corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(configDir), ReadOnly: pulumi.Bool(true)},
							corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
						},
					}},
				},
			},
		},
	}, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, "cluster-init job", err)
	}
	return pulumi.Sprintf("%s.%s.svc.cluster.local:%d", svc.Metadata.Name().Elem(), ns, Port), nil
}

// networkPolicy admits the callers on the client port, and the nodes and
// the init Job on both ports (the bus carries gossip and failover votes).
func networkPolicy(selector, initSelector map[string]string, allowFrom []string) *networkingv1.NetworkPolicySpecArgs {
	peer := func(m map[string]string) networkingv1.NetworkPolicyPeerArgs {
		return networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(m)}}
	}
	port := func(p int) networkingv1.NetworkPolicyPortArgs {
		return networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(p), Protocol: pulumi.String("TCP")}
	}
	callers := networkingv1.NetworkPolicyPeerArray{peer(initSelector)}
	for _, from := range allowFrom {
		callers = append(callers, peer(map[string]string{"app.kubernetes.io/name": from}))
	}
	return &networkingv1.NetworkPolicySpecArgs{
		PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
		PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{
			networkingv1.NetworkPolicyIngressRuleArgs{From: callers, Ports: networkingv1.NetworkPolicyPortArray{port(Port)}},
			networkingv1.NetworkPolicyIngressRuleArgs{
				From:  networkingv1.NetworkPolicyPeerArray{peer(selector)},
				Ports: networkingv1.NetworkPolicyPortArray{port(Port), port(BusPort)},
			},
		},
	}
}

// checksum changes the pod template when the config changes, so the
// StatefulSet rolls its pods onto the new file.
func checksum(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:])[:16]
}

func wrap(name, what string, err error) error {
	return fmt.Errorf("redis %s: %s: %w", name, what, err)
}
