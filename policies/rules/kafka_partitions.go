package rules

import (
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// KafkaPartitions requires enough partitions for every consumer pod.
var KafkaPartitions = register(&Rule{
	ID:          "kafka-partitions",
	Name:        "Partitions for every consumer",
	Category:    Capacity,
	Level:       Mandatory,
	Thresholds:  []string{"kafkaGroupEnv", "kafkaTopicEnv"},
	Description: "Every declared topic read by a consumer (a workload setting kafkaGroupEnv, reading the topics in kafkaTopicEnv) has at least as many partitions as the consumer's maxReplicas.",
	Remediation: "Raise the topic's partitions in its declaration, or lower the consumer's <service>MaxReplicas.",
	Rationale:   "'A fleet of worker services then consumes the events from the queue at their own pace.' Within a consumer group each partition goes to one consumer: pods beyond the partition count sit idle, so the autoscaler's extra workers add cost and no throughput.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		declared := map[string]conf.Topic{}
		for _, tp := range conf.Topics(rs) {
			declared[tp.Name] = tp
		}
		var out []Violation
		for _, w := range object.ByKind(rs, object.WorkloadKinds...) {
			spec, _, _ := object.Pod(w)
			_, hi := object.ReplicaRange(rs, w)
			for _, c := range object.Containers(spec, false) {
				if _, consumer := c.Env(t.KafkaGroupEnv); !consumer {
					continue
				}
				list, _ := c.Env(t.KafkaTopicEnv)
				for _, name := range strings.Split(list, ",") {
					tp, ok := declared[strings.TrimSpace(name)]
					if !ok || tp.Partitions == 0 {
						continue
					}
					if tp.Partitions < hi {
						out = append(out, Violation{URN: w.URN, Message: msgf("%s consumes topic %s with up to %d pods but it has %d partitions", object.Display(w), tp.Name, hi, tp.Partitions)})
					}
				}
			}
		}
		return out
	},
})
