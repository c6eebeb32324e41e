package rules

import (
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
