package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

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
