package rules

import (
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// PostgresPooler requires a connection pooler in front of Postgres.
var PostgresPooler = register(&Rule{
	ID:          "postgres-pooler",
	Name:        "Postgres behind a connection pooler",
	Category:    DataTier,
	Level:       Mandatory,
	Description: "A stack with an RDS instance has an RDS Proxy; a stack with an in-cluster postgresql.conf has a pgbouncer.ini (PgBouncer) in front of it.",
	Remediation: "Use the postgres component, which declares RDS Proxy (aws) or PgBouncer Deployments (in-cluster), and point DATABASE_URL_* at the pooler.",
	Rationale:   "'Your database allows only a finite number of connections'; 'ensure your DB isn't overwhelmed by establishing a connection pool'. Every pod the autoscaler adds opens its own pool: a pooler multiplexes them onto the few server connections Postgres can afford.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		if dbs := object.ByType(rs, object.AWSDBInstance); len(dbs) > 0 && len(object.ByType(rs, object.AWSDBProxy)) == 0 {
			out = append(out, Violation{URN: dbs[0].URN, Message: msgf("RDS instance %s has no RDS Proxy in front of it", dbs[0].Name)})
		}
		var pg []Resource
		pooled := false
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			if len(object.ConfigFiles(cm, conf.PostgresConfKey)) > 0 {
				pg = append(pg, cm)
			}
			pooled = pooled || len(object.ConfigFiles(cm, conf.PgBouncerKey)) > 0
		}
		if len(pg) > 0 && !pooled {
			out = append(out, Violation{URN: pg[0].URN, Message: msgf("%s configures Postgres but the stack has no pgbouncer.ini", object.Display(pg[0]))})
		}
		return out
	},
})

// PostgresReadReplicas requires read replicas where the stack asks for them.
var PostgresReadReplicas = register(&Rule{
	ID:          "postgres-read-replicas",
	Name:        "Postgres read replicas",
	Category:    DataTier,
	Level:       Mandatory,
	Thresholds:  []string{"minPostgresReadReplicas"},
	Description: "A stack with a Postgres primary has at least minPostgresReadReplicas (1 in prod) read replicas: RDS instances with replicateSourceDb, or in-cluster StatefulSet pods bootstrapped with pg_basebackup.",
	Remediation: "Raise the postgres component's read replica count for the stack.",
	Rationale:   "'Direct all GET requests to Read Replicas, and only POST/PUT to the Primary DB.' Reads are most of the traffic; replicas scale them out and keep a warm standby for the primary.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		if t.MinPostgresReadReplicas <= 0 {
			return nil
		}
		var out []Violation
		var primaries []Resource
		replicas := 0
		for _, db := range object.ByType(rs, object.AWSDBInstance) {
			if object.Str(db.Props["replicateSourceDb"]) != "" {
				replicas++
			} else {
				primaries = append(primaries, db)
			}
		}
		if len(primaries) > 0 && replicas < t.MinPostgresReadReplicas {
			out = append(out, Violation{URN: primaries[0].URN, Message: msgf("RDS instance %s has %d read replicas, fewer than %d for %s", primaries[0].Name, replicas, t.MinPostgresReadReplicas, envName(t))})
		}
		var pgSets []Resource
		inCluster := 0
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			if len(object.ConfigFiles(cm, conf.PostgresConfKey)) == 0 {
				continue
			}
			pgSets = append(pgSets, object.Mounting(rs, cm, "StatefulSet")...)
		}
		for _, s := range pgSets {
			spec, _, _ := object.Pod(s)
			for _, l := range object.CommandLines(spec) {
				if strings.Contains(l, "pg_basebackup") {
					n, _ := object.ReplicaRange(rs, s)
					inCluster += n
					break
				}
			}
		}
		if len(pgSets) > 0 && inCluster < t.MinPostgresReadReplicas {
			out = append(out, Violation{URN: pgSets[0].URN, Message: msgf("in-cluster Postgres has %d read replicas (pods bootstrapped with pg_basebackup), fewer than %d for %s", inCluster, t.MinPostgresReadReplicas, envName(t))})
		}
		return out
	},
})
