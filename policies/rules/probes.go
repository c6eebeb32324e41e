package rules

import "slices"

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
		if !slices.Contains(longRunningKinds, kind(r)) {
			return nil
		}
		spec, _, _ := pod(r)
		var out []string
		for _, c := range containers(spec, false) {
			for _, p := range []string{"readinessProbe", "livenessProbe"} {
				if c.m[p] == nil {
					out = append(out, msgf("%s %s has no %s", display(r), c.label(), p))
				}
			}
		}
		return out
	},
})
