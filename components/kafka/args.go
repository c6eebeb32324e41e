// Package kafka declares the event log as one component with two flavours:
// in-cluster (a KRaft StatefulSet of combined controller+broker nodes) and
// aws (MSK across three zones). Both run the same topics Job, which creates
// the declared topics idempotently, and expose the same outputs.
package kafka

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
)

// The flavours a Kafka tier can take.
const (
	FlavourInCluster = "in-cluster"
	FlavourAWS       = "aws"
)

// Defaults and fixed values.
const (
	// DefaultNodes is three combined nodes: a KRaft quorum survives one
	// loss, and replication 3 with min.insync.replicas 2 keeps accepting
	// acks=all writes with one broker down.
	DefaultNodes = 3
	// DefaultImage is the Apache Kafka release the tests run (internal/toolchain.KafkaVersion).
	DefaultImage = "apache/kafka:4.4.0"
	// DefaultMSKVersion is MSK's Kafka release.
	DefaultMSKVersion = "3.9.x"
	// DefaultInstanceType is a small Graviton MSK broker.
	DefaultInstanceType = "kafka.m7g.large"
	// Port is the client listener in-cluster; TLSPort is MSK's TLS listener.
	Port           = 9092
	ControllerPort = 9093
	TLSPort        = 9094
	// DefaultRetentionHours keeps a week of events for replays.
	DefaultRetentionHours = 168
)

// AWSArgs are the inputs of the aws flavour. The network comes from the
// network component: until it lands, the stack passes config knobs.
type AWSArgs struct {
	VpcID                  pulumi.StringInput
	SubnetIDs              pulumi.StringArrayInput
	AllowedSecurityGroupID pulumi.StringInput
	// Zones is the number of subnets (and so of zones); brokers are a multiple of it.
	Zones int
	// InstanceType is the broker type; empty means DefaultInstanceType.
	InstanceType string
	// KafkaVersion is MSK's; empty means DefaultMSKVersion.
	KafkaVersion string
	// VolumeGiB is each broker's EBS volume.
	VolumeGiB int
}

// Args configure a Kafka tier.
type Args struct {
	// Flavour is FlavourInCluster or FlavourAWS.
	Flavour string
	// Namespace receives the Kubernetes objects (the topics Job in both flavours).
	Namespace string
	// Nodes is the number of brokers; 0 means DefaultNodes. One node
	// (replication 1) is allowed in-cluster for a laptop only.
	Nodes int
	// Topics are the declared topics, created by the topics Job.
	Topics []topics.Topic
	// TopicsImage is the image of apps/topics.
	TopicsImage string
	// AllowFrom lists the app.kubernetes.io/name of the clients.
	AllowFrom []string

	Image              string
	Resources          kube.Resources
	Storage            resource.Quantity
	StorageClass       string
	ZoneSpreadRequired bool

	AWS AWSArgs
}

func (a Args) withDefaults() Args {
	if a.Nodes == 0 {
		a.Nodes = DefaultNodes
	}
	if a.Image == "" {
		a.Image = DefaultImage
	}
	if a.AWS.InstanceType == "" {
		a.AWS.InstanceType = DefaultInstanceType
	}
	if a.AWS.KafkaVersion == "" {
		a.AWS.KafkaVersion = DefaultMSKVersion
	}
	if a.AWS.Zones == 0 {
		a.AWS.Zones = 3
	}
	if a.AWS.VolumeGiB == 0 {
		a.AWS.VolumeGiB = 100
	}
	return a
}

// ReplicationFactor is default.replication.factor: 3, or the node count
// when there are fewer nodes (one local node cannot hold three copies).
func (a Args) ReplicationFactor() int { return min(3, a.withDefaults().Nodes) }

// MinInSyncReplicas is min.insync.replicas: a write is acknowledged once
// two copies have it, so a single broker loss loses no acknowledged write;
// 1 when there is one node.
func (a Args) MinInSyncReplicas() int { return max(1, a.ReplicationFactor()-1) }

// Validate reports every problem in the arguments before any resource is declared.
func (a *Args) Validate(name string) error {
	d := a.withDefaults()
	var errs []error
	check := func(ok bool, format string, v ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, v...))
		}
	}
	errs = append(errs, kube.CheckName(name, 40), kube.CheckLabel("namespace", a.Namespace))
	errs = append(errs, kube.CheckImage("topicsImage", a.TopicsImage))
	if err := topics.Validate(a.Topics); err != nil {
		errs = append(errs, err)
	}
	for _, t := range a.Topics {
		check(t.ReplicationFactor <= d.Nodes, "topic %q: replicationFactor %d: more than the %d brokers", t.Name, t.ReplicationFactor, d.Nodes)
	}
	for _, from := range a.AllowFrom {
		errs = append(errs, kube.CheckLabel("allowFrom", from))
	}
	switch a.Flavour {
	case FlavourInCluster:
		check(d.Nodes == 1 || d.Nodes >= 3, "nodes %d: must be 1 (a laptop) or at least 3 (a quorum that survives a loss)", d.Nodes)
		check(d.Nodes%2 == 1 || d.Nodes > 5, "nodes %d: an odd count up to 5, every node votes in the KRaft quorum", d.Nodes)
		errs = append(errs, kube.CheckImage("image", d.Image))
		check(a.Resources.MemoryLimit.Sign() > 0, "resources.memoryLimit: required, the JVM heap derives from it")
		if err := a.Resources.Validate(); err != nil {
			errs = append(errs, err)
		}
		check(a.Storage.Sign() > 0, "storage %q: must be positive", a.Storage.String())
	case FlavourAWS:
		check(a.AWS.VpcID != nil, "aws.vpcId: required")
		check(a.AWS.SubnetIDs != nil, "aws.subnetIds: required")
		check(a.AWS.AllowedSecurityGroupID != nil, "aws.allowedSecurityGroupId: required, it is the only source admitted")
		check(d.Nodes >= 3 && d.Nodes%d.AWS.Zones == 0, "nodes %d: MSK needs at least 3 brokers, a multiple of the %d zones", d.Nodes, d.AWS.Zones)
	default:
		check(false, "flavour %q: must be %s or %s", a.Flavour, FlavourInCluster, FlavourAWS)
	}
	return errors.Join(errs...)
}

// Settings are the cluster-wide broker settings both flavours share.
func (a Args) Settings() Settings {
	return Settings{
		ReplicationFactor: a.ReplicationFactor(),
		MinInSyncReplicas: a.MinInSyncReplicas(),
		RetentionHours:    DefaultRetentionHours,
		NumPartitions:     6,
	}
}
