package rules

import (
	"slices"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

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
