package kafka

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:kafka:Kafka"

// TopicsFile is the topics Job's file, in its ConfigMap and mounted at /etc/topics.
const TopicsFile = "topics.json"

// UID is the uid (and gid) Kafka's pods run as: the appuser of the
// apache/kafka image, and the kafka user of scaleplane's own image.
const UID = 1000

// Kafka is a Kafka tier. Its outputs are the same in both flavours.
type Kafka struct {
	pulumi.ResourceState

	// Brokers are the bootstrap addresses, comma-separated host:port.
	Brokers pulumi.StringOutput `pulumi:"brokers"`
	// TLS says whether clients must speak TLS (MSK).
	TLS pulumi.BoolOutput `pulumi:"tls"`
	// ReplicationFactor and MinInSyncReplicas are the durability settings.
	ReplicationFactor pulumi.IntOutput `pulumi:"replicationFactor"`
	MinInSyncReplicas pulumi.IntOutput `pulumi:"minInSyncReplicas"`
}

// ClusterID is the KRaft cluster id of a cluster: stable across `pulumi
// up`s (storage is formatted with it once), derived from where it lives.
func ClusterID(namespace, name string) string {
	seed := "scaleplane/" + namespace + "/" + name
	for {
		h := sha256.Sum256([]byte(seed))
		// kafka-storage would read an id starting with '-' as an option.
		if id := base64.RawURLEncoding.EncodeToString(h[:16]); id[0] != '-' {
			return id
		}
		seed += "/"
	}
}

// NewKafka validates args, then declares the flavour's resources and the
// topics Job as children named "<name>-<role>".
func NewKafka(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Kafka, error) {
	if args == nil {
		return nil, fmt.Errorf("kafka %s: args are required", name)
	}
	if err := args.Validate(name); err != nil {
		return nil, fmt.Errorf("kafka %s: %w", name, err)
	}
	a := args.withDefaults()
	k := &Kafka{}
	if err := ctx.RegisterComponentResource(TypeToken, name, k, opts...); err != nil {
		return nil, fmt.Errorf("kafka %s: register: %w", name, err)
	}
	parent, err := children.Options(k, opts)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: options: %w", name, err)
	}
	var brokers pulumi.StringOutput
	var nodes []pulumi.Resource
	tls := a.Flavour == FlavourAWS
	switch a.Flavour {
	case FlavourInCluster:
		var sts pulumi.Resource
		brokers, sts, err = newInCluster(ctx, name, a, parent)
		nodes = append(nodes, sts)
	case FlavourAWS:
		var cluster pulumi.Resource
		brokers, cluster, err = newAWS(ctx, name, a, parent)
		nodes = append(nodes, cluster)
	}
	if err != nil {
		return nil, err
	}
	if err := newTopicsJob(ctx, name, a, brokers, tls, pulumi.Composite(parent, pulumi.DependsOn(nodes))); err != nil {
		return nil, err
	}
	k.Brokers = brokers
	k.TLS = pulumi.Bool(tls).ToBoolOutput()
	k.ReplicationFactor = pulumi.Int(a.ReplicationFactor()).ToIntOutput()
	k.MinInSyncReplicas = pulumi.Int(a.MinInSyncReplicas()).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(k, pulumi.Map{
		"brokers":           k.Brokers,
		"tls":               k.TLS,
		"replicationFactor": k.ReplicationFactor,
		"minInSyncReplicas": k.MinInSyncReplicas,
	}); err != nil {
		return nil, fmt.Errorf("kafka %s: outputs: %w", name, err)
	}
	return k, nil
}

func wrap(name, what string, err error) error { return fmt.Errorf("kafka %s: %s: %w", name, what, err) }

// heapMB is the JVM heap for a memory limit: half of it, the rest being
// the page cache Kafka reads recent segments from, and off-heap buffers.
func heapMB(a Args) int64 { return max(256, a.Resources.MemoryLimit.Value()/(1<<20)/2) }

// newInCluster declares the KRaft StatefulSet, its Services, ConfigMap,
// PDB and NetworkPolicy, and returns the bootstrap addresses.
func newInCluster(ctx *pulumi.Context, name string, a Args, parent pulumi.ResourceOption) (pulumi.StringOutput, pulumi.Resource, error) {
	ns := a.Namespace
	n := Node{Name: name, Namespace: ns, Nodes: a.Nodes}
	selector := kube.SelectorLabels(name)
	l := kube.Labels(name, "event-log", "")
	props := RenderProperties(n, a.Settings())
	script := RenderStartScript(n)
	cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(name, ns, l),
		Data:     pulumi.StringMap{"server.properties": pulumi.String(props), StartScriptName: pulumi.String(script)},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "config map", err)
	}
	port := func(pname string, p int) corev1.ServicePortArgs {
		return corev1.ServicePortArgs{Name: pulumi.String(pname), Port: pulumi.Int(p), TargetPort: pulumi.String(pname), Protocol: pulumi.String("TCP")}
	}
	if _, err := corev1.NewService(ctx, name+"-headless-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(n.Headless(), ns, l),
		Spec: &corev1.ServiceSpecArgs{
			ClusterIP: pulumi.String("None"),
			// The quorum must form before any node is ready.
			PublishNotReadyAddresses: pulumi.Bool(true),
			Selector:                 pulumi.ToStringMap(selector),
			Ports:                    corev1.ServicePortArray{port("kafka", Port), port("controller", ControllerPort)},
		},
	}, parent); err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "headless service", err)
	}
	h := sha256.Sum256([]byte(props + script))
	claim := &corev1.PersistentVolumeClaimSpecArgs{
		AccessModes: pulumi.ToStringArray([]string{"ReadWriteOnce"}),
		Resources:   &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(a.Storage.String())}},
	}
	if a.StorageClass != "" {
		claim.StorageClassName = pulumi.String(a.StorageClass)
	}
	sel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)}
	// Brokers spread over zones and apart on nodes: a node loss costs one broker.
	affinity, spread := kube.Placement(selector, a.ZoneSpreadRequired)
	tcp := func(period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{TcpSocket: &corev1.TCPSocketActionArgs{Port: pulumi.String("kafka")},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(3), FailureThreshold: pulumi.Int(failures)}
	}
	sts, err := appsv1.NewStatefulSet(ctx, name+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.Meta(name, ns, l),
		Spec: &appsv1.StatefulSetSpecArgs{
			ServiceName:         pulumi.String(n.Headless()),
			Replicas:            pulumi.Int(a.Nodes),
			PodManagementPolicy: pulumi.String("Parallel"),
			Selector:            sel,
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels:      pulumi.ToStringMap(l),
					Annotations: pulumi.StringMap{kube.ConfigChecksumAnnotation: pulumi.String(hex.EncodeToString(h[:])[:16])},
				},
				Spec: &corev1.PodSpecArgs{
					AutomountServiceAccountToken: pulumi.Bool(false),
					EnableServiceLinks:           pulumi.Bool(false),
					// Controlled shutdown moves partition leadership away first.
					TerminationGracePeriodSeconds: pulumi.Int(120),
					SecurityContext:               kube.RestrictedPodSecurity(UID),
					Affinity:                      affinity,
					TopologySpreadConstraints:     spread,
					Volumes: corev1.VolumeArray{
						corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cm.Metadata.Name().Elem()}},
						corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("256Mi")}},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("kafka"),
						Image:           pulumi.String(a.Image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Command:         pulumi.ToStringArray([]string{"sh", "/etc/kafka/" + StartScriptName}),
						Env: corev1.EnvVarArray{
							corev1.EnvVarArgs{Name: pulumi.String("KAFKA_CLUSTER_ID"), Value: pulumi.String(ClusterID(ns, name))},
							corev1.EnvVarArgs{Name: pulumi.String("KAFKA_HEAP_OPTS"), Value: pulumi.Sprintf("-Xms%dm -Xmx%dm", heapMB(a), heapMB(a))},
							// The scripts write logs under LOG_DIR; the root filesystem is read-only.
							corev1.EnvVarArgs{Name: pulumi.String("LOG_DIR"), Value: pulumi.String("/tmp/logs")},
						},
						Ports: corev1.ContainerPortArray{
							corev1.ContainerPortArgs{Name: pulumi.String("kafka"), ContainerPort: pulumi.Int(Port), Protocol: pulumi.String("TCP")},
							corev1.ContainerPortArgs{Name: pulumi.String("controller"), ContainerPort: pulumi.Int(ControllerPort), Protocol: pulumi.String("TCP")},
						},
						Resources:       a.Resources.Requirements(),
						StartupProbe:    tcp(5, 60),
						LivenessProbe:   tcp(10, 6),
						ReadinessProbe:  tcp(5, 2),
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{
							corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(DataDir)},
							corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String("/etc/kafka"), ReadOnly: pulumi.Bool(true)},
							corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
						},
					}},
				},
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("data"), Labels: pulumi.ToStringMap(l)},
				Spec:     claim,
			}},
		},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "stateful set", err)
	}
	// One broker at a time: with replication 3 and min.insync 2, acks=all
	// writes continue while a node drains.
	if _, err := kube.NewPDB(ctx, name+"-pdb", kube.Meta(name, ns, l), selector, parent); err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "disruption budget", err)
	}
	peer := func(m map[string]string) networkingv1.NetworkPolicyPeerArgs {
		return networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(m)}}
	}
	pport := func(p int) networkingv1.NetworkPolicyPortArgs {
		return networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(p), Protocol: pulumi.String("TCP")}
	}
	clients := networkingv1.NetworkPolicyPeerArray{peer(kube.SelectorLabels(name + "-topics"))}
	for _, from := range a.AllowFrom {
		clients = append(clients, peer(map[string]string{"app.kubernetes.io/name": from}))
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-networkpolicy", &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(name, ns, l),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: sel,
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{
				networkingv1.NetworkPolicyIngressRuleArgs{From: clients, Ports: networkingv1.NetworkPolicyPortArray{pport(Port)}},
				networkingv1.NetworkPolicyIngressRuleArgs{From: networkingv1.NetworkPolicyPeerArray{peer(selector)},
					Ports: networkingv1.NetworkPolicyPortArray{pport(Port), pport(ControllerPort)}},
			},
		},
	}, parent); err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "network policy", err)
	}
	var hosts []string
	for i := range a.Nodes {
		hosts = append(hosts, fmt.Sprintf("%s:%d", n.Host(i), Port))
	}
	return pulumi.String(strings.Join(hosts, ",")).ToStringOutput(), sts, nil
}

// newTopicsJob declares the ConfigMap with topics.json and the Job that
// runs apps/topics against the brokers; it waits for the brokers.
func newTopicsJob(ctx *pulumi.Context, name string, a Args, brokers pulumi.StringOutput, tls bool, opts pulumi.ResourceOption) error {
	ns := a.Namespace
	jobName := name + "-topics"
	l := kube.Labels(jobName, "event-log-topics", "")
	text, err := topics.Marshal(a.Topics)
	if err != nil {
		return wrap(name, "topics", err)
	}
	cm, err := corev1.NewConfigMap(ctx, name+"-topics-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(jobName, ns, l),
		Data:     pulumi.StringMap{TopicsFile: pulumi.String(text)},
	}, opts)
	if err != nil {
		return wrap(name, "topics config map", err)
	}
	h := sha256.Sum256([]byte(text))
	// The Job's name carries the topics' checksum: a changed list is a new
	// Job (a Job's pod template cannot change), an unchanged one is left alone.
	if _, err := batchv1.NewJob(ctx, name+"-topics-job", &batchv1.JobArgs{
		Metadata: kube.Meta(jobName+"-"+hex.EncodeToString(h[:])[:8], ns, l),
		Spec: &batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(6),
			ActiveDeadlineSeconds: pulumi.Int(900),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(l)},
				Spec: &corev1.PodSpecArgs{
					RestartPolicy:                pulumi.String("Never"),
					AutomountServiceAccountToken: pulumi.Bool(false),
					EnableServiceLinks:           pulumi.Bool(false),
					SecurityContext:              kube.RestrictedPodSecurity(kube.NonRootUID),
					Volumes: corev1.VolumeArray{
						corev1.VolumeArgs{Name: pulumi.String("topics"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cm.Metadata.Name().Elem()}},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("topics"),
						Image:           pulumi.String(a.TopicsImage),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Env: corev1.EnvVarArray{
							corev1.EnvVarArgs{Name: pulumi.String("KAFKA_BROKERS"), Value: brokers},
							corev1.EnvVarArgs{Name: pulumi.String("KAFKA_TLS"), Value: pulumi.Sprintf("%t", tls)},
							corev1.EnvVarArgs{Name: pulumi.String("TOPICS_FILE"), Value: pulumi.String("/etc/topics/" + TopicsFile)},
						},
						Resources: &corev1.ResourceRequirementsArgs{
							Requests: pulumi.StringMap{"cpu": pulumi.String("10m"), "memory": pulumi.String("32Mi")},
							Limits:   pulumi.StringMap{"memory": pulumi.String("64Mi")},
						},
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{
							corev1.VolumeMountArgs{Name: pulumi.String("topics"), MountPath: pulumi.String("/etc/topics"), ReadOnly: pulumi.Bool(true)},
						},
					}},
				},
			},
		},
	}, opts); err != nil {
		return wrap(name, "topics job", err)
	}
	return nil
}
