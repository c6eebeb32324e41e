package rules

import "slices"

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
		spec, _, ok := pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, c := range containers(spec, false) {
			if _, isGo := c.env(goMarker); !isGo {
				continue
			}
			if v, set := c.env(otlpEndpointEnv); !set || (v == "" && !hasValueFrom(c, otlpEndpointEnv)) {
				out = append(out, msgf("%s %s is a Go service without %s", display(r), c.label(), otlpEndpointEnv))
			}
		}
		return out
	},
})

func hasValueFrom(c container, name string) bool {
	for _, e := range listOf(c.m["env"]) {
		if str(get(e, "name")) == name && get(e, "valueFrom") != nil {
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
		for _, w := range byKind(rs, workloadKinds...) {
			spec, meta, _ := pod(w)
			if !goService(spec) {
				continue
			}
			ann := mapOf(meta["annotations"])
			if str(ann["prometheus.io/scrape"]) == "true" && str(ann["prometheus.io/port"]) != "" {
				continue
			}
			if monitored(rs, w, labelsOf(meta)) {
				continue
			}
			out = append(out, Violation{URN: w.URN, Message: msgf("%s runs a Go service that nothing scrapes (no prometheus.io/scrape and port annotations, PodMonitor or ServiceMonitor)", display(w))})
		}
		return out
	},
})

// monitored reports whether a Prometheus Operator monitor reaches the pods.
func monitored(rs []Resource, w Resource, podLabels map[string]string) bool {
	inNS := func(m Resource, ns string) bool {
		sel := get(m.Props, "spec", "namespaceSelector")
		if isTrue(get(sel, "any")) {
			return true
		}
		names := listOf(get(sel, "matchNames"))
		if len(names) == 0 {
			return namespace(m) == ns
		}
		return slices.ContainsFunc(names, func(n any) bool { return str(n) == ns })
	}
	for _, m := range byKind(rs, "PodMonitor") {
		if inNS(m, namespace(w)) && selects(mapOf(get(m.Props, "spec", "selector")), podLabels) {
			return true
		}
	}
	for _, m := range byKind(rs, "ServiceMonitor") {
		for _, s := range byKind(rs, "Service") {
			if namespace(s) == namespace(w) && inNS(m, namespace(s)) &&
				selects(mapOf(get(m.Props, "spec", "selector")), labelsOf(mapOf(s.Props["metadata"]))) &&
				selects(mapOf(get(s.Props, "spec", "selector")), podLabels) {
				return true
			}
		}
	}
	return false
}
