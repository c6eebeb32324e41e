package rules

import (
	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// RedisMaxmemory keeps Redis' data below its container limit.
var RedisMaxmemory = register(&Rule{
	ID:          "redis-maxmemory",
	Name:        "Redis maxmemory within the memory limit",
	Category:    Capacity,
	Level:       Mandatory,
	Thresholds:  []string{"maxRedisMaxmemoryRatio"},
	Description: "Every redis.conf mounted by a StatefulSet sets maxmemory, positive and at most maxRedisMaxmemoryRatio (80 %) of the Redis container's memory limit.",
	Remediation: "Let the redis component derive maxmemory from the container limit, or lower maxmemory / raise the memory limit.",
	Rationale:   "Redis holds the sessions and rate limits the stateless services depend on. Replication buffers, fork-on-save copy-on-write and fragmentation need room above the dataset; a maxmemory at the limit (or none) ends in the OOM killer taking a master down.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			for _, k := range object.SortedKeys(object.ConfigFiles(cm, conf.RedisConfKey)) {
				settings := conf.SpaceConf(object.ConfigFiles(cm, conf.RedisConfKey)[k])
				for _, s := range object.Mounting(rs, cm, "StatefulSet", "Deployment") {
					spec, _, _ := object.Pod(s)
					limit, ok := object.MemoryLimit(spec)
					if !ok {
						continue // container-resources reports the missing limit
					}
					mm, ok := conf.RedisBytes(settings["maxmemory"])
					switch {
					case !ok || mm == 0:
						out = append(out, Violation{URN: cm.URN, Message: msgf("%s %s: maxmemory is not set (Redis grows until %s is OOM-killed)", object.Display(cm), k, object.Display(s))})
					case float64(mm) > float64(limit)*t.MaxRedisMaxmemoryRatio:
						out = append(out, Violation{URN: cm.URN, Message: msgf("%s %s: maxmemory %d bytes is above %.0f %% of %s's memory limit %d bytes", object.Display(cm), k, mm, t.MaxRedisMaxmemoryRatio*100, object.Display(s), limit)})
					}
				}
			}
		}
		return out
	},
})
