package rules

import (
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// pooler is one PgBouncer workload with its parsed settings.
type pooler struct {
	w                     Resource
	cm                    Resource
	minPods, maxPods      int
	maxClient, serverConn int
}

// ConnectionBudget checks the database connection arithmetic across services.
var ConnectionBudget = register(&Rule{
	ID:          "connection-budget",
	Name:        "Database connection budget",
	Category:    Capacity,
	Level:       Mandatory,
	Thresholds:  []string{"databaseUrlEnvPrefix", "poolSizeEnv", "defaultPoolSize"},
	Description: "The sum over database clients (workloads with a databaseUrlEnvPrefix* variable) of maxReplicas × pool size (poolSizeEnv, else defaultPoolSize) per URL fits the PgBouncers' max_client_conn at their fewest pods, and each PgBouncer's server connections at its most pods (max_db_connections, else default_pool_size per database) fit Postgres' max_connections minus the reserved ones.",
	Remediation: "Lower DATABASE_MAX_CONNS or <service>MaxReplicas, raise PgBouncer's max_client_conn or pods, or lower its default_pool_size / raise max_connections in the postgres component.",
	Rationale:   "'If 5,000 users hit a Register endpoint simultaneously, hitting the DB directly will crash it.' Each pod the autoscaler adds opens its own pool; at maxReplicas the sum must still fit what the pooler accepts and what Postgres can serve, or scale-out turns into connection errors exactly at peak.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var poolers []pooler
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			for _, text := range object.ConfigFiles(cm, conf.PgBouncerKey) {
				settings := conf.INI(text)
				pb := settings["pgbouncer"]
				maxClient, _ := conf.AtoiOr(pb, "max_client_conn", 100)
				server, _ := conf.AtoiOr(pb, "max_db_connections", 0)
				if server == 0 {
					pool, _ := conf.AtoiOr(pb, "default_pool_size", 20)
					server = pool * max(1, len(settings["databases"]))
				}
				for _, w := range object.Mounting(rs, cm, "Deployment", "StatefulSet") {
					lo, hi := object.ReplicaRange(rs, w)
					poolers = append(poolers, pooler{w: w, cm: cm, minPods: lo, maxPods: hi, maxClient: maxClient, serverConn: server})
				}
			}
		}
		if len(poolers) == 0 {
			return nil
		}
		var out []Violation
		demand, capacity := 0, 0
		var parts []string
		for _, w := range object.ByKind(rs, object.WorkloadKinds...) {
			spec, _, _ := object.Pod(w)
			_, hi := object.ReplicaRange(rs, w)
			for _, c := range object.Containers(spec, false) {
				urls := 0
				for _, n := range c.EnvNames() {
					if strings.HasPrefix(n, t.DatabaseURLEnvPrefix) {
						urls++
					}
				}
				if urls == 0 {
					continue
				}
				size := t.DefaultPoolSize
				if v, set := c.Env(t.PoolSizeEnv); set {
					if n, err := strconv.Atoi(v); err == nil {
						size = n
					}
				}
				demand += hi * size * urls
				parts = append(parts, msgf("%s %d×%d×%d", object.Name(w), hi, size, urls))
			}
		}
		for _, p := range poolers {
			capacity += p.minPods * p.maxClient
		}
		if demand > capacity {
			out = append(out, Violation{URN: poolers[0].w.URN, Message: msgf("database clients may open %d connections at maxReplicas (%s, pods×pool×urls) but the poolers accept %d at their fewest pods", demand, strings.Join(parts, " + "), capacity)})
		}
		budget, found := -1, false
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			for _, text := range object.ConfigFiles(cm, conf.PostgresConfKey) {
				settings := conf.SpaceConf(text)
				mc, _ := conf.AtoiOr(settings, "max_connections", 100)
				su, _ := conf.AtoiOr(settings, "superuser_reserved_connections", 3)
				re, _ := conf.AtoiOr(settings, "reserved_connections", 0)
				if b := mc - su - re; !found || b < budget {
					budget, found = b, true
				}
			}
		}
		if !found {
			return out
		}
		for _, p := range poolers {
			if need := p.maxPods * p.serverConn; need > budget {
				out = append(out, Violation{URN: p.cm.URN, Message: msgf("%s may open %d server connections (%d pods × %d) but Postgres allows %d after reserved connections", object.Display(p.w), need, p.maxPods, p.serverConn, budget)})
			}
		}
		return out
	},
})
