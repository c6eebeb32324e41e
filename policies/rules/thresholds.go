package rules

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Thresholds are the numbers and names the rules compare against, one
// value per stack. DefaultThresholds gives the platform's values for an
// environment; the pack and `scaleplane check` may override any field (the
// check derives some from the stack's typed config), so no rule body holds
// a literal threshold.
type Thresholds struct {
	// Environment is the stack's environment (local, dev, staging, prod).
	Environment string `json:"environment"`
	// MinReplicas is the lowest HPA minReplicas allowed.
	MinReplicas int `json:"minReplicas"`
	// MaxCPUTargetPercent is the highest HPA CPU utilization target.
	MaxCPUTargetPercent int `json:"maxCpuTargetPercent"`
	// MaxMemoryTargetPercent is the highest HPA memory utilization target.
	MaxMemoryTargetPercent int `json:"maxMemoryTargetPercent"`
	// MinScaleDownWindowSeconds is the shortest scale-down stabilization window.
	MinScaleDownWindowSeconds int `json:"minScaleDownWindowSeconds"`
	// GoMemLimitMaxRatio is the largest GOMEMLIMIT as a share of the memory limit.
	GoMemLimitMaxRatio float64 `json:"goMemLimitMaxRatio"`
	// DrainSecondsEnv names the environment variable holding a service's drain timeout.
	DrainSecondsEnv string `json:"drainSecondsEnv"`
	// RequireZoneSpread makes a hard spread across zones mandatory.
	RequireZoneSpread bool `json:"requireZoneSpread"`
	// MaxBodyBytes is the largest request body the edge may accept.
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// PodSecurityLevel is the Pod Security Standard every namespace must enforce.
	PodSecurityLevel string `json:"podSecurityLevel"`
	// MinRedisShards is the fewest Redis Cluster masters.
	MinRedisShards int `json:"minRedisShards"`
	// MinRedisReplicasPerShard is the fewest replicas of each Redis shard.
	MinRedisReplicasPerShard int `json:"minRedisReplicasPerShard"`
	// MaxRedisMaxmemoryRatio is the largest Redis maxmemory as a share of the container memory limit.
	MaxRedisMaxmemoryRatio float64 `json:"maxRedisMaxmemoryRatio"`
	// MinPostgresReadReplicas is the fewest Postgres read replicas.
	MinPostgresReadReplicas int `json:"minPostgresReadReplicas"`
	// MinKafkaReplication is the lowest replication factor of Kafka topics and brokers.
	MinKafkaReplication int `json:"minKafkaReplication"`
	// MinKafkaInsyncReplicas is the lowest min.insync.replicas.
	MinKafkaInsyncReplicas int `json:"minKafkaInsyncReplicas"`
	// DatabaseURLEnvPrefix marks a workload as a database client (DATABASE_URL_RW, ...).
	DatabaseURLEnvPrefix string `json:"databaseUrlEnvPrefix"`
	// PoolSizeEnv names the variable holding a pod's database pool size.
	PoolSizeEnv string `json:"poolSizeEnv"`
	// DefaultPoolSize is assumed when a database client does not set PoolSizeEnv.
	DefaultPoolSize int `json:"defaultPoolSize"`
	// KafkaGroupEnv marks a workload as a Kafka consumer.
	KafkaGroupEnv string `json:"kafkaGroupEnv"`
	// KafkaTopicEnv names the variable listing the topics a consumer reads.
	KafkaTopicEnv string `json:"kafkaTopicEnv"`
	// TrustedProxyCIDRsEnv names the variable listing the networks whose
	// X-Forwarded-For a service behind the edge believes.
	TrustedProxyCIDRsEnv string `json:"trustedProxyCidrsEnv"`
	// ImageRegistry is the stack's registry (its imageRegistry): every
	// image must come from it. Empty: no registry known, nothing judged.
	ImageRegistry string `json:"imageRegistry"`
}

// Prod is the environment with the strictest defaults.
const Prod = "prod"

// Local is the laptop environment: one node, one Kafka broker.
const Local = "local"

// DefaultThresholds returns the platform's thresholds for an environment:
// the articles' numbers everywhere, in prod three replicas, a hard zone
// spread and a Postgres read replica, and in local a single Kafka node.
func DefaultThresholds(environment string) Thresholds {
	t := Thresholds{
		Environment:               environment,
		MinReplicas:               2,
		MaxCPUTargetPercent:       70,
		MaxMemoryTargetPercent:    80,
		MinScaleDownWindowSeconds: 60,
		GoMemLimitMaxRatio:        0.9,
		DrainSecondsEnv:           "SHUTDOWN_TIMEOUT",
		MaxBodyBytes:              10 << 20,
		PodSecurityLevel:          "restricted",
		MinRedisShards:            3,
		MinRedisReplicasPerShard:  1,
		MaxRedisMaxmemoryRatio:    0.8,
		MinKafkaReplication:       3,
		MinKafkaInsyncReplicas:    2,
		DatabaseURLEnvPrefix:      "DATABASE_URL",
		PoolSizeEnv:               "DATABASE_MAX_CONNS",
		DefaultPoolSize:           10,
		KafkaGroupEnv:             "KAFKA_GROUP",
		KafkaTopicEnv:             "KAFKA_TOPIC",
		TrustedProxyCIDRsEnv:      "TRUSTED_PROXY_CIDRS",
	}
	if environment == Local {
		// One machine runs the whole stack: a single combined Kafka node
		// (replication 1) is the only Kafka that fits, and a broker's loss
		// there is a restart on the same volume, not a lost disk.
		t.MinKafkaReplication = 1
		t.MinKafkaInsyncReplicas = 1
	}
	if environment == Prod {
		t.MinReplicas = 3
		t.RequireZoneSpread = true
		t.MinPostgresReadReplicas = 1
	}
	return t
}

// ThresholdDocs describes each field by its JSON name, for the docs and
// the pack's config schema.
var ThresholdDocs = map[string]string{
	"environment":               "The stack's environment; picks the defaults (prod is stricter).",
	"minReplicas":               "Lowest HPA minReplicas: one pod down (a rollout, a drain) must leave another serving.",
	"maxCpuTargetPercent":       "Highest HPA CPU utilization target, percent of the request.",
	"maxMemoryTargetPercent":    "Highest HPA memory utilization target, percent of the request.",
	"minScaleDownWindowSeconds": "Shortest scale-down stabilization window (unset means Kubernetes' 300 s).",
	"goMemLimitMaxRatio":        "Largest GOMEMLIMIT as a share of the container memory limit.",
	"drainSecondsEnv":           "Environment variable holding a service's drain timeout after SIGTERM.",
	"requireZoneSpread":         "Whether pods must be spread across zones as a hard scheduling rule.",
	"maxBodyBytes":              "Largest request body the edge may accept, in bytes.",
	"podSecurityLevel":          "Pod Security Standard every namespace must enforce.",
	"minRedisShards":            "Fewest Redis Cluster masters (Redis Cluster needs three).",
	"minRedisReplicasPerShard":  "Fewest replicas per Redis shard, so a master's loss fails over.",
	"maxRedisMaxmemoryRatio":    "Largest Redis maxmemory as a share of the container memory limit.",
	"minPostgresReadReplicas":   "Fewest Postgres read replicas.",
	"minKafkaReplication":       "Lowest Kafka replication factor (default.replication.factor, topics, brokers).",
	"minKafkaInsyncReplicas":    "Lowest Kafka min.insync.replicas.",
	"databaseUrlEnvPrefix":      "Prefix of the environment variables that make a workload a database client.",
	"poolSizeEnv":               "Environment variable holding a pod's database pool size.",
	"defaultPoolSize":           "Pool size assumed for a database client that does not set poolSizeEnv.",
	"kafkaGroupEnv":             "Environment variable that makes a workload a Kafka consumer.",
	"kafkaTopicEnv":             "Environment variable listing the topics a consumer reads (comma-separated).",
	"trustedProxyCidrsEnv":      "Environment variable listing the networks whose X-Forwarded-For a service behind the edge believes.",
	"imageRegistry":             "The stack's image registry (its imageRegistry); scaleplane check and the pack take it from the stack's config. Empty judges nothing.",
}

// ThresholdNames returns the JSON names of every Thresholds field, in declaration order.
func ThresholdNames() []string {
	var out []string
	t := reflect.TypeFor[Thresholds]()
	for i := range t.NumField() {
		out = append(out, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
	}
	return out
}

// Value returns a field's value by JSON name, for the docs.
func (t Thresholds) Value(name string) (any, bool) {
	v := reflect.ValueOf(t)
	for i := range v.NumField() {
		if strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0] == name {
			return v.Field(i).Interface(), true
		}
	}
	return nil, false
}

// Override returns t with the fields named in props replaced; unknown
// names are an error, so a typo in policy config does not pass silently.
func (t Thresholds) Override(props map[string]any) (Thresholds, error) {
	names := ThresholdNames()
	for k := range props {
		if k == "enforcementLevel" {
			continue // the Pulumi CLI adds it to every policy's config
		}
		if !slices.Contains(names, k) {
			return t, fmt.Errorf("threshold %q: unknown (known: %s)", k, strings.Join(names, ", "))
		}
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return t, fmt.Errorf("thresholds: %w", err)
	}
	out := t
	if err := json.Unmarshal(raw, &out); err != nil {
		return t, fmt.Errorf("thresholds: %w", err)
	}
	return out, nil
}

// JSONType is the JSON schema type of a threshold, for the pack's config schema.
func JSONType(name string) string {
	v, _ := DefaultThresholds("").Value(name)
	switch v.(type) {
	case bool:
		return "boolean"
	case int, int64:
		return "integer"
	case float64:
		return "number"
	default:
		return "string"
	}
}

// envName names the stack in messages: rules compare against the
// environment's defaults, so the message says which.
func envName(t Thresholds) string {
	if t.Environment == "" {
		return "this stack"
	}
	return "environment " + t.Environment
}
