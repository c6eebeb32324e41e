package rules

import (
	"slices"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// Probes requires readiness and liveness probes.
var Probes = register(&Rule{
	ID:          "probes",
	Name:        "Readiness and liveness probes",
	Category:    Availability,
	Level:       Mandatory,
	Description: "Every container of a long-running workload (Deployment, StatefulSet, DaemonSet) has a readiness and a liveness probe.",
	Remediation: "Give the microservice Liveness and Readiness probes (apps/kit serves /healthz and /readyz, or gRPC health); for other workloads add readinessProbe and livenessProbe.",
	Rationale:   "The articles route traffic to new instances 'as they pass their health checks'. Without readiness a starting or draining pod receives requests; without liveness a wedged event loop or deadlocked process is never restarted.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if !slices.Contains(object.LongRunningKinds, object.Kind(r)) {
			return nil
		}
		spec, _, _ := object.Pod(r)
		var out []string
		for _, c := range object.Containers(spec, false) {
			for _, p := range []string{"readinessProbe", "livenessProbe"} {
				if c.Fields[p] == nil {
					out = append(out, msgf("%s %s has no %s", object.Display(r), c.Label(), p))
				}
			}
		}
		return out
	},
})
