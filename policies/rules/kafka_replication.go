package rules

import (
	"strconv"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// kafkaPropsViolations checks broker settings from server properties text.
func kafkaPropsViolations(where, text string, t Thresholds) []string {
	p := conf.Properties(text)
	var out []string
	for _, s := range []struct {
		key string
		min int
	}{{"default.replication.factor", t.MinKafkaReplication}, {"min.insync.replicas", t.MinKafkaInsyncReplicas}} {
		v, ok := p[s.key]
		if !ok {
			out = append(out, msgf("%s: %s is not set (Kafka's default is 1)", where, s.key))
			continue
		}
		if n, err := strconv.Atoi(v); err != nil || n < s.min {
			out = append(out, msgf("%s: %s=%s is below %d", where, s.key, v, s.min))
		}
	}
	if p["unclean.leader.election.enable"] == "true" {
		out = append(out, msgf("%s: unclean.leader.election.enable=true can lose acknowledged records", where))
	}
	return out
}

// KafkaReplication requires replicated topics that refuse under-replicated writes.
var KafkaReplication = register(&Rule{
	ID:          "kafka-replication",
	Name:        "Kafka replication and min ISR",
	Category:    DataTier,
	Level:       Mandatory,
	Thresholds:  []string{"minKafkaReplication", "minKafkaInsyncReplicas"},
	Description: "Kafka broker settings (an in-cluster server.properties or an MSK configuration) set default.replication.factor ≥ minKafkaReplication (3; 1 in local, whose one machine runs one node) and min.insync.replicas ≥ minKafkaInsyncReplicas (2; 1 in local) with no unclean leader election; an MSK cluster has at least minKafkaReplication brokers; every declared topic has replication ≥ minKafkaReplication.",
	Remediation: "Use the kafka component's defaults (3 nodes, replication 3, min.insync.replicas 2) and declare topics without lowering their replication.",
	Rationale:   "The queue is what 'cushions the database from traffic spikes': the gateway answers 202 Accepted once the record is written, so an acknowledged record must survive a broker's loss. Replication 3 with min ISR 2 and acks=all does; replication 1 loses it.",
	CheckResource: func(r Resource, t Thresholds) []string {
		var out []string
		switch r.Type {
		case object.AWSMSKConfig:
			out = append(out, kafkaPropsViolations("MSK configuration "+r.Name, object.Str(r.Props["serverProperties"]), t)...)
		case object.AWSMSKCluster:
			if n, ok := object.Int(r.Props["numberOfBrokerNodes"]); ok && n < t.MinKafkaReplication {
				out = append(out, msgf("MSK cluster %s has %d brokers, fewer than %d", r.Name, n, t.MinKafkaReplication))
			}
		case object.KafkaTopicType:
			if n, ok := object.Int(r.Props["replicationFactor"]); ok && n < t.MinKafkaReplication {
				out = append(out, msgf("topic %s has replication %d, below %d", object.Str(r.Props["name"]), n, t.MinKafkaReplication))
			}
		}
		if object.Kind(r) == "ConfigMap" {
			files := object.ConfigFiles(r, conf.KafkaPropsKey)
			for _, k := range object.SortedKeys(files) {
				out = append(out, kafkaPropsViolations(object.Display(r)+" "+k, files[k], t)...)
			}
			for _, tp := range conf.Topics([]Resource{r}) {
				if rf := tp.Factor(); rf != 0 && rf < t.MinKafkaReplication {
					out = append(out, msgf("%s: topic %s has replication %d, below %d", object.Display(r), tp.Name, rf, t.MinKafkaReplication))
				}
			}
		}
		return out
	},
})
