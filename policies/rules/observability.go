package rules

import (
	"slices"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// otlpEndpointEnv is the OpenTelemetry SDKs' standard variable for where traces go.
const otlpEndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// OTelTracing requires Go services to export traces.
var OTelTracing = register(&Rule{
	ID:          "otel-tracing",
	Name:        "Go services export traces",
	Category:    Observability,
	Level:       Mandatory,
	Description: "Every Go service (a container that sets GOMEMLIMIT) sets OTEL_EXPORTER_OTLP_ENDPOINT.",
	Remediation: "Give the microservice an OTLPEndpoint (the stack passes the collector's address, or otlpEndpoint from the stack file).",
	Rationale:   "'Monolithic logging systems fail inside distributed microservices.' With OpenTelemetry every request carries one trace id across the edge, gateway, users and worker, so the slow hop is found in Jaeger instead of guessed at.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, c := range object.Containers(spec, false) {
			if _, isGo := c.Env(object.GoMarker); !isGo {
				continue
			}
			if v, set := c.Env(otlpEndpointEnv); !set || (v == "" && !hasValueFrom(c, otlpEndpointEnv)) {
				out = append(out, msgf("%s %s is a Go service without %s", object.Display(r), c.Label(), otlpEndpointEnv))
			}
		}
		return out
	},
})

func hasValueFrom(c object.Container, name string) bool {
	for _, e := range object.ListOf(c.Fields["env"]) {
		if object.Str(object.Get(e, "name")) == name && object.Get(e, "valueFrom") != nil {
			return true
		}
	}
	return false
}

// PrometheusScrape requires Go services to be scraped.
var PrometheusScrape = register(&Rule{
	ID:          "prometheus-scrape",
	Name:        "Go services are scraped",
	Category:    Observability,
	Level:       Mandatory,
	Description: "Every workload running a Go service is scraped: its pod template has prometheus.io/scrape: \"true\" and prometheus.io/port, or a PodMonitor selects its pods, or a ServiceMonitor selects a Service that selects them.",
	Remediation: "Give the microservice a MetricsPort (apps/kit serves /metrics on it), or declare a PodMonitor/ServiceMonitor for it.",
	Rationale:   "'Engineers configure Prometheus targets to scrape CPU cycles, memory usage allocations, event loop lag ... and active TCP connection levels.' The autoscaler's decisions and the capacity rules are only as good as the metrics that show whether they worked.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, w := range object.ByKind(rs, object.WorkloadKinds...) {
			spec, meta, _ := object.Pod(w)
			if !object.GoService(spec) {
				continue
			}
			ann := object.MapOf(meta["annotations"])
			if object.Str(ann["prometheus.io/scrape"]) == "true" && object.Str(ann["prometheus.io/port"]) != "" {
				continue
			}
			if monitored(rs, w, object.Labels(meta)) {
				continue
			}
			out = append(out, Violation{URN: w.URN, Message: msgf("%s runs a Go service that nothing scrapes (no prometheus.io/scrape and port annotations, PodMonitor or ServiceMonitor)", object.Display(w))})
		}
		return out
	},
})

// monitored reports whether a Prometheus Operator monitor reaches the pods.
func monitored(rs []Resource, w Resource, podLabels map[string]string) bool {
	inNS := func(m Resource, ns string) bool {
		sel := object.Get(m.Props, "spec", "namespaceSelector")
		if object.IsTrue(object.Get(sel, "any")) {
			return true
		}
		names := object.ListOf(object.Get(sel, "matchNames"))
		if len(names) == 0 {
			return object.Namespace(m) == ns
		}
		return slices.ContainsFunc(names, func(n any) bool { return object.Str(n) == ns })
	}
	for _, m := range object.ByKind(rs, "PodMonitor") {
		if inNS(m, object.Namespace(w)) && object.Selects(object.MapOf(object.Get(m.Props, "spec", "selector")), podLabels) {
			return true
		}
	}
	for _, m := range object.ByKind(rs, "ServiceMonitor") {
		for _, s := range object.ByKind(rs, "Service") {
			if object.Namespace(s) == object.Namespace(w) && inNS(m, object.Namespace(s)) &&
				object.Selects(object.MapOf(object.Get(m.Props, "spec", "selector")), object.Labels(object.MapOf(s.Props["metadata"]))) &&
				object.Selects(object.MapOf(object.Get(s.Props, "spec", "selector")), podLabels) {
				return true
			}
		}
	}
	return false
}
