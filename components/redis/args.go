// Package redis declares the Redis tier as one component with two
// flavours: in-cluster (a Redis Cluster StatefulSet formed by an idempotent
// Job) and aws (an ElastiCache replication group in cluster mode). Both
// expose the same outputs, so services are wired the same way everywhere.
package redis

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// The flavours a Redis tier can take.
const (
	FlavourInCluster = "in-cluster"
	FlavourAWS       = "aws"
)

// Defaults of the knobs a caller may leave at zero.
const (
	// DefaultShards is the smallest Redis Cluster: a failover needs a
	// majority of masters to vote, so fewer than three cannot heal itself.
	DefaultShards = 3
	// DefaultReplicasPerShard gives every master one replica to promote.
	DefaultReplicasPerShard = 1
	// DefaultMaxMemoryPercent leaves a quarter of the container's limit to
	// the copy-on-write pages of an AOF rewrite or a full resync fork,
	// the buffers of replicas and clients, and allocator fragmentation.
	DefaultMaxMemoryPercent = 75
	// MaxMaxMemoryPercent is the ceiling the issue sets: above it the fork
	// of a rewrite can push the pod over its limit and get it OOM-killed.
	MaxMaxMemoryPercent = 80
	// DefaultEvictionPolicy evicts only keys that carry a TTL, least
	// recently used first. Cache entries, sessions and rate-limit windows
	// all expire by design, so they are what memory pressure may drop; a
	// key written without a TTL (a lock, a counter someone forgot to
	// expire) is never silently thrown away: writes fail loudly instead.
	DefaultEvictionPolicy = "volatile-lru"
	// DefaultNodeTimeoutMillis is how long a master may be unreachable
	// before its replica is promoted: short enough that a dead pod costs a
	// few seconds of writes to its slots, long enough that a GC-free but
	// busy node or a slow network blip does not trigger a failover.
	DefaultNodeTimeoutMillis = 5000
	// DefaultImage is the Redis release the real-server tests prove the
	// rendered config and the formation script against (Debian's 7.0).
	DefaultImage = "redis:7.0.15"
	// DefaultEngineVersion is ElastiCache's Redis OSS release.
	DefaultEngineVersion = "7.1"
	// DefaultNodeType is the smallest Graviton cache node with burstable CPU.
	DefaultNodeType = "cache.t4g.small"
	// Port is the client port in both flavours.
	Port = 6379
	// BusPort is the in-cluster gossip and failover port (client port + 10000).
	BusPort = 16379
)

// evictionPolicies are the maxmemory-policy values Redis accepts.
var evictionPolicies = []string{
	"volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu",
	"volatile-random", "allkeys-random", "volatile-ttl", "noeviction",
}

// AWSArgs are the inputs of the aws flavour. The network comes from the
// network component: until it lands, the stack passes config knobs.
type AWSArgs struct {
	// VpcID is the VPC of the security group.
	VpcID pulumi.StringInput
	// SubnetIDs are the private subnets, one per availability zone.
	SubnetIDs pulumi.StringArrayInput
	// AllowedSecurityGroupID is the only source admitted on the Redis port:
	// the EKS nodes' security group.
	AllowedSecurityGroupID pulumi.StringInput
	// NodeType is the cache node type; empty means DefaultNodeType.
	NodeType string
	// EngineVersion is the Redis OSS version; empty means DefaultEngineVersion.
	EngineVersion string
	// SnapshotRetentionDays keeps daily snapshots (0 disables them).
	SnapshotRetentionDays int
}

// Args configure a Redis tier.
type Args struct {
	// Flavour is FlavourInCluster or FlavourAWS.
	Flavour string
	// Namespace receives the Kubernetes objects (in both flavours the
	// password Secret services read lives here).
	Namespace string
	// Shards is the number of masters (hash-slot owners); 0 means DefaultShards.
	Shards int
	// ReplicasPerShard is the number of replicas of each master; 0 means
	// DefaultReplicasPerShard, -1 none (only sensible for a laptop).
	ReplicasPerShard int
	// Password is the AUTH password (ElastiCache's auth token). It is
	// wrapped as a Pulumi secret, so it is encrypted in state.
	Password pulumi.StringInput
	// MaxMemoryPercent is maxmemory as a share of the memory limit (in-cluster);
	// 0 means DefaultMaxMemoryPercent.
	MaxMemoryPercent int
	// EvictionPolicy is maxmemory-policy; empty means DefaultEvictionPolicy.
	EvictionPolicy string
	// NodeTimeoutMillis is cluster-node-timeout; 0 means DefaultNodeTimeoutMillis.
	NodeTimeoutMillis int
	// AllowFrom lists the app.kubernetes.io/name of the workloads that may
	// connect (in-cluster NetworkPolicy).
	AllowFrom []string

	// Image is the in-cluster image; empty means DefaultImage.
	Image string
	// Resources of each Redis pod; maxmemory derives from MemoryLimit.
	Resources kube.Resources
	// Storage is each pod's volume for the append-only file and nodes.conf.
	Storage resource.Quantity
	// StorageClass is the PVC's class; empty means the cluster default.
	StorageClass string
	// ZoneSpreadRequired makes the zone spread a hard rule.
	ZoneSpreadRequired bool

	// AWS holds the aws flavour's inputs.
	AWS AWSArgs
}

// withDefaults returns a copy with every zero knob set to its default.
func (a Args) withDefaults() Args {
	if a.Shards == 0 {
		a.Shards = DefaultShards
	}
	switch {
	case a.ReplicasPerShard == 0:
		a.ReplicasPerShard = DefaultReplicasPerShard
	case a.ReplicasPerShard < 0:
		a.ReplicasPerShard = 0
	}
	if a.MaxMemoryPercent == 0 {
		a.MaxMemoryPercent = DefaultMaxMemoryPercent
	}
	if a.EvictionPolicy == "" {
		a.EvictionPolicy = DefaultEvictionPolicy
	}
	if a.NodeTimeoutMillis == 0 {
		a.NodeTimeoutMillis = DefaultNodeTimeoutMillis
	}
	if a.Image == "" {
		a.Image = DefaultImage
	}
	if a.AWS.NodeType == "" {
		a.AWS.NodeType = DefaultNodeType
	}
	if a.AWS.EngineVersion == "" {
		a.AWS.EngineVersion = DefaultEngineVersion
	}
	return a
}

// Nodes is the number of Redis processes: masters and their replicas.
func (a Args) Nodes() int {
	d := a.withDefaults()
	return d.Shards * (1 + d.ReplicasPerShard)
}

// Validate reports every problem in the arguments, naming the field, the
// value and what is allowed, before any resource is declared.
func (a *Args) Validate(name string) error {
	d := a.withDefaults()
	var errs []error
	check := func(ok bool, format string, v ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, v...))
		}
	}
	errs = append(errs, kube.CheckName(name, 40), kube.CheckLabel("namespace", a.Namespace))
	check(a.Password != nil, "password: required (a Pulumi secret)")
	check(d.Shards >= 3 && d.Shards <= 500, "shards %d: must be in 3..500 (Redis Cluster needs three masters to elect a failover)", d.Shards)
	check(d.ReplicasPerShard <= 5, "replicasPerShard %d: must be in -1..5", a.ReplicasPerShard)
	check(d.MaxMemoryPercent >= 10 && d.MaxMemoryPercent <= MaxMaxMemoryPercent,
		"maxMemoryPercent %d: must be in 10..%d (forks for rewrites and resyncs need the rest)", d.MaxMemoryPercent, MaxMaxMemoryPercent)
	check(slices.Contains(evictionPolicies, d.EvictionPolicy), "evictionPolicy %q: must be one of %v", d.EvictionPolicy, evictionPolicies)
	check(d.NodeTimeoutMillis >= 1000 && d.NodeTimeoutMillis <= 60000, "nodeTimeoutMillis %d: must be in 1000..60000", d.NodeTimeoutMillis)
	for _, from := range a.AllowFrom {
		errs = append(errs, kube.CheckLabel("allowFrom", from))
	}
	switch a.Flavour {
	case FlavourInCluster:
		errs = append(errs, kube.CheckImage("image", d.Image))
		check(a.Resources.MemoryLimit.Sign() > 0, "resources.memoryLimit: required, maxmemory derives from it")
		if err := a.Resources.Validate(); err != nil {
			errs = append(errs, err)
		}
		check(a.Storage.Sign() > 0, "storage %q: must be positive (the append-only file lives there)", a.Storage.String())
	case FlavourAWS:
		check(a.AWS.VpcID != nil, "aws.vpcId: required")
		check(a.AWS.SubnetIDs != nil, "aws.subnetIds: required")
		check(a.AWS.AllowedSecurityGroupID != nil, "aws.allowedSecurityGroupId: required, it is the only source admitted")
		check(d.ReplicasPerShard >= 1, "replicasPerShard %d: aws needs at least one replica per shard for automatic failover and Multi-AZ", d.ReplicasPerShard)
		check(a.AWS.SnapshotRetentionDays >= 0 && a.AWS.SnapshotRetentionDays <= 35, "aws.snapshotRetentionDays %d: must be in 0..35", a.AWS.SnapshotRetentionDays)
	default:
		check(false, "flavour %q: must be %s or %s", a.Flavour, FlavourInCluster, FlavourAWS)
	}
	return errors.Join(errs...)
}

// Conf is the redis.conf settings the in-cluster flavour renders.
func (a Args) Conf() Conf {
	d := a.withDefaults()
	return Conf{
		Port:              Port,
		MaxMemoryBytes:    d.Resources.MemoryLimit.Value() * int64(d.MaxMemoryPercent) / 100,
		EvictionPolicy:    d.EvictionPolicy,
		NodeTimeoutMillis: d.NodeTimeoutMillis,
	}
}
