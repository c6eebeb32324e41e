package observability

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Thresholds are the alert rules' limits. One place: the rendered rules and
// the rule unit tests both read them.
type Thresholds struct {
	// ErrorRatio is the share of 5xx (HTTP) or server-fault (gRPC) responses.
	ErrorRatio float64
	// P99LatencySeconds bounds the 99th percentile request duration.
	P99LatencySeconds float64
	// SchedLatencyP99Seconds bounds the 99th percentile time a runnable
	// goroutine waits for a thread: Go's event-loop lag.
	SchedLatencyP99Seconds float64
	// GCPauseFraction is the share of wall time spent stopped for GC.
	GCPauseFraction float64
	// Goroutines is the per-pod goroutine count that signals a leak or a pile-up.
	Goroutines int
	// MemoryLimitRatio is working set over the container's memory limit.
	MemoryLimitRatio float64
	// OpenConnections is the per-pod count of open client connections.
	OpenConnections int
	// FDRatio is open file descriptors (sockets included) over the limit.
	FDRatio float64
	// KafkaConsumerLag is messages behind per consumer group and topic.
	KafkaConsumerLag int
	// PostgresReplicaLagSeconds bounds how stale a read replica may be.
	PostgresReplicaLagSeconds float64
	// RedisMemoryRatio is used memory over maxmemory.
	RedisMemoryRatio float64
	// For is how long a condition must hold before it fires; Slow is used
	// for conditions that are normal briefly (HPA at max, consumer lag).
	For, Slow time.Duration
}

// DefaultThresholds follow the articles: scale-out already starts at 70 %
// CPU and 80 % memory, so an alert means scaling did not absorb the load.
func DefaultThresholds() Thresholds {
	return Thresholds{
		ErrorRatio:                0.05,
		P99LatencySeconds:         0.5,
		SchedLatencyP99Seconds:    0.05,
		GCPauseFraction:           0.05,
		Goroutines:                10000,
		MemoryLimitRatio:          0.9,
		OpenConnections:           5000,
		FDRatio:                   0.8,
		KafkaConsumerLag:          10000,
		PostgresReplicaLagSeconds: 30,
		RedisMemoryRatio:          0.9,
		For:                       5 * time.Minute,
		Slow:                      15 * time.Minute,
	}
}

// Alert names, for tests, runbooks and the docs.
const (
	AlertHTTPErrorRate          = "HTTPErrorRateHigh"
	AlertGRPCErrorRate          = "GRPCErrorRateHigh"
	AlertHTTPLatencyP99         = "HTTPLatencyP99High"
	AlertGRPCLatencyP99         = "GRPCLatencyP99High"
	AlertGoSchedulerLatency     = "GoSchedulerLatencyHigh"
	AlertGoGCPauses             = "GoGCPausesHigh"
	AlertGoroutines             = "GoroutinesHigh"
	AlertContainerMemory        = "ContainerMemoryNearLimit"
	AlertOpenConnections        = "OpenConnectionsHigh"
	AlertFileDescriptors        = "FileDescriptorsNearLimit"
	AlertHPAAtMax               = "HPAAtMaxReplicas"
	AlertKafkaConsumerLag       = "KafkaConsumerLagHigh"
	AlertPostgresReplicationLag = "PostgresReplicaLagHigh"
	AlertRedisMemory            = "RedisMemoryHigh"
)

// Alert is one alerting rule.
type Alert struct {
	Group    string
	Name     string
	Expr     string
	For      time.Duration
	Severity string
	// By are the labels the expression keeps: every firing alert carries them.
	By      []string
	Summary string
}

// serverFaultCodes are the gRPC codes that mean the server failed, not the
// caller (NotFound, InvalidArgument... are the caller's).
const serverFaultCodes = "Unknown|Internal|Unavailable|DeadlineExceeded|DataLoss"

// Alerts are the rules for what the articles watch: RED per service,
// the Go runtime's pressure (the counterpart of Node's event-loop lag, GC
// and handles), memory against the limit, connections, the autoscaler at
// its ceiling, and the data tier's backlog and staleness. The metric names
// are those apps/kit, kube-state-metrics, cAdvisor, kafka_exporter,
// postgres_exporter and redis_exporter expose.
func Alerts(t Thresholds) []Alert {
	app := []string{"namespace", "app"}
	pod := []string{"namespace", "app", "pod"}
	by := func(l []string) string { return strings.Join(l, ", ") }
	ratio := func(metric, bad string, l []string) string {
		return fmt.Sprintf("sum by (%s) (rate(%s{%s}[5m]))\n  / sum by (%s) (rate(%s[5m])) > %g",
			by(l), metric, bad, by(l), metric, t.ErrorRatio)
	}
	p99 := func(metric string, l []string, limit float64) string {
		return fmt.Sprintf("histogram_quantile(0.99, sum by (%s, le) (rate(%s_bucket[5m]))) > %g", by(l), metric, limit)
	}
	return []Alert{
		{"scaleplane-red", AlertHTTPErrorRate, ratio("http_server_requests_total", `code=~"5.."`, app), t.For, "critical", app,
			"More than the allowed share of HTTP requests fail with 5xx"},
		{"scaleplane-red", AlertGRPCErrorRate, ratio("grpc_server_handled_total", `code=~"`+serverFaultCodes+`"`, app), t.For, "critical", app,
			"More than the allowed share of gRPC calls fail on the server side"},
		{"scaleplane-red", AlertHTTPLatencyP99, p99("http_server_request_duration_seconds", app, t.P99LatencySeconds), t.For, "warning", app,
			"HTTP p99 latency is above its limit"},
		{"scaleplane-red", AlertGRPCLatencyP99, p99("grpc_server_handling_seconds", app, t.P99LatencySeconds), t.For, "warning", app,
			"gRPC p99 latency is above its limit"},
		{"scaleplane-go-runtime", AlertGoSchedulerLatency, p99("go_sched_latencies_seconds", pod, t.SchedLatencyP99Seconds), t.For, "warning", pod,
			"Runnable goroutines wait too long for a thread (CPU starved or throttled: the Go event-loop lag)"},
		{"scaleplane-go-runtime", AlertGoGCPauses,
			fmt.Sprintf("sum by (%s) (rate(go_gc_duration_seconds_sum[5m])) > %g", by(pod), t.GCPauseFraction), t.For, "warning", pod,
			"The garbage collector stops the world for too large a share of the time (heap near GOMEMLIMIT?)"},
		{"scaleplane-go-runtime", AlertGoroutines,
			fmt.Sprintf("max by (%s) (go_goroutines) > %d", by(pod), t.Goroutines), t.Slow, "warning", pod,
			"Goroutines pile up (a leak, or calls blocked on a slow dependency)"},
		{"scaleplane-resources", AlertContainerMemory,
			fmt.Sprintf("max by (namespace, pod, container) (\n  container_memory_working_set_bytes{container!=\"\"}\n  / (container_spec_memory_limit_bytes{container!=\"\"} > 0)\n) > %g", t.MemoryLimitRatio),
			t.For, "critical", []string{"namespace", "pod", "container"},
			"A container's working set is near its memory limit: the OOM killer is next"},
		{"scaleplane-resources", AlertOpenConnections,
			fmt.Sprintf("sum by (%s) (server_open_connections) > %d", by(pod), t.OpenConnections), t.For, "warning", pod,
			"A pod holds too many open client connections (sticky clients or a balancing problem)"},
		{"scaleplane-resources", AlertFileDescriptors,
			fmt.Sprintf("max by (%s) (process_open_fds / process_max_fds) > %g", by(pod), t.FDRatio), t.For, "critical", pod,
			"A process is running out of file descriptors (every TCP connection is one)"},
		{"scaleplane-resources", AlertHPAAtMax,
			"max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_current_replicas)\n  >= max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas)",
			t.Slow, "warning", []string{"namespace", "horizontalpodautoscaler"},
			"An autoscaler is pinned at maxReplicas: load exceeds what the service may scale to"},
		{"scaleplane-data", AlertKafkaConsumerLag,
			fmt.Sprintf("sum by (consumergroup, topic) (kafka_consumergroup_lag) > %d", t.KafkaConsumerLag), t.Slow, "warning",
			[]string{"consumergroup", "topic"}, "A consumer group falls behind its topic: add workers or partitions"},
		{"scaleplane-data", AlertPostgresReplicationLag,
			fmt.Sprintf("max by (%s) (pg_replication_lag_seconds) > %g", by(pod), t.PostgresReplicaLagSeconds), t.For, "critical", pod,
			"A Postgres read replica is stale: reads routed to it return old data"},
		{"scaleplane-data", AlertRedisMemory,
			fmt.Sprintf("max by (%s) (redis_memory_used_bytes / (redis_memory_max_bytes > 0)) > %g", by(pod), t.RedisMemoryRatio), t.For, "warning", pod,
			"Redis is near maxmemory: evictions (cache) or refused writes (sessions, rate limits) follow"},
	}
}

// RenderAlertRules renders the rule file Prometheus loads (alerts.yml).
func RenderAlertRules(t Thresholds) string {
	type rule struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	type group struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	var groups []group
	for _, a := range Alerts(t) {
		i := slices.IndexFunc(groups, func(g group) bool { return g.Name == a.Group })
		if i < 0 {
			groups = append(groups, group{Name: a.Group})
			i = len(groups) - 1
		}
		var where []string
		for _, l := range a.By {
			where = append(where, fmt.Sprintf("%s={{ $labels.%s }}", l, l))
		}
		groups[i].Rules = append(groups[i].Rules, rule{
			Alert: a.Name, Expr: a.Expr, For: promDuration(a.For),
			Labels: map[string]string{"severity": a.Severity},
			Annotations: map[string]string{
				"summary": a.Summary,
				// Labels only: the value is on the alert itself, and a
				// description that does not change with it keeps one
				// notification per incident in receivers that compare text.
				"description": strings.Join(where, " "),
			},
		})
	}
	return mustYAML(map[string]any{"groups": groups})
}

// promDuration writes a duration the way Prometheus parses it ("5m", "90s").
func promDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}
