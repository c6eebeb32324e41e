package rules

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var clusterReplicasFlag = regexp.MustCompile(`--cluster-replicas\s+(\d+)`)

// RedisCluster requires Redis in cluster mode with a replica per shard.
var RedisCluster = register(&Rule{
	ID:          "redis-cluster-mode",
	Name:        "Redis in cluster mode with failover",
	Category:    DataTier,
	Level:       Mandatory,
	Thresholds:  []string{"minRedisShards", "minRedisReplicasPerShard"},
	Description: "An ElastiCache replication group runs in cluster mode with at least minRedisShards node groups, minRedisReplicasPerShard replicas each and automatic failover; an in-cluster redis.conf sets cluster-enabled yes, the StatefulSet mounting it runs shards × (1 + replicas) pods and any --cluster-replicas flag is at least minRedisReplicasPerShard.",
	Remediation: "Use the redis component's defaults (3 shards × 1 replica, automatic failover); raise shards or replicas in its Args rather than turning cluster mode off.",
	Rationale:   "'Redis cluster distributions ensure caching states are shared globally across all microservice instances.' Sessions, rate limits and the cache all live in Redis once the services are stateless, so Redis must shard to scale writes and fail over when a master dies.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, g := range object.ByType(rs, object.AWSReplicationGroup) {
			p := g.Props
			mode := object.Str(p["clusterMode"])
			shards, shardsOK := object.Int(p["numNodeGroups"])
			clustered := mode == "enabled" || (mode == "" && shardsOK && shards > 1)
			if !clustered {
				out = append(out, Violation{URN: g.URN, Message: msgf("replication group %s is not in cluster mode (clusterMode %q)", g.Name, mode)})
			}
			if shardsOK && shards < t.MinRedisShards {
				out = append(out, Violation{URN: g.URN, Message: msgf("replication group %s has %d node groups, fewer than %d", g.Name, shards, t.MinRedisShards)})
			}
			if n, ok := object.Int(p["replicasPerNodeGroup"]); !ok || n < t.MinRedisReplicasPerShard {
				out = append(out, Violation{URN: g.URN, Message: msgf("replication group %s has %v replicas per node group, fewer than %d", g.Name, p["replicasPerNodeGroup"], t.MinRedisReplicasPerShard)})
			}
			if !object.IsTrue(p["automaticFailoverEnabled"]) {
				out = append(out, Violation{URN: g.URN, Message: msgf("replication group %s has no automatic failover", g.Name)})
			}
		}
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			for k, text := range object.ConfigFiles(cm, conf.RedisConfKey) {
				settings := conf.SpaceConf(text)
				if settings["cluster-enabled"] != "yes" {
					out = append(out, Violation{URN: cm.URN, Message: msgf("%s %s: cluster-enabled is not yes", object.Display(cm), k)})
					continue
				}
				need := t.MinRedisShards * (1 + t.MinRedisReplicasPerShard)
				for _, s := range object.Mounting(rs, cm, "StatefulSet") {
					if n, _ := object.ReplicaRange(rs, s); n < need {
						out = append(out, Violation{URN: s.URN, Message: msgf("%s runs %d Redis nodes, fewer than %d shards × (1 + %d replicas) = %d", object.Display(s), n, t.MinRedisShards, t.MinRedisReplicasPerShard, need)})
					}
				}
			}
		}
		for _, w := range object.ByKind(rs, object.WorkloadKinds...) {
			spec, _, _ := object.Pod(w)
			for _, line := range object.CommandLines(spec) {
				if !strings.Contains(line, "--cluster") {
					continue
				}
				if m := clusterReplicasFlag.FindStringSubmatch(line); m != nil {
					if n, _ := strconv.Atoi(m[1]); n < t.MinRedisReplicasPerShard {
						out = append(out, Violation{URN: w.URN, Message: msgf("%s forms the Redis cluster with --cluster-replicas %d, fewer than %d", object.Display(w), n, t.MinRedisReplicasPerShard)})
					}
				}
			}
		}
		return out
	},
})
