package rules

import (
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

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
