package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// HPAReplicas bounds the autoscaler's replica range.
var HPAReplicas = register(&Rule{
	ID:          "hpa-replicas",
	Name:        "Autoscaler keeps spare pods and room to grow",
	Category:    Scaling,
	Level:       Mandatory,
	Thresholds:  []string{"minReplicas"},
	Description: "Every HorizontalPodAutoscaler has minReplicas of at least minReplicas (2, 3 in prod) and maxReplicas above minReplicas.",
	Remediation: "Raise <service>MinReplicas in the stack file to at least the threshold and keep <service>MaxReplicas above it.",
	Rationale:   "One pod is a single point of failure: a crash, a rollout or a node drain takes the service down. With min = max the autoscaler cannot add capacity when traffic spikes, which is the point of horizontal scaling.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if object.Kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		spec := object.Get(r.Props, "spec")
		lo, ok := object.Int(object.Get(spec, "minReplicas"))
		if !ok && !object.IsUnknown(object.Get(spec, "minReplicas")) {
			lo = 1 // the Kubernetes default
			ok = true
		}
		hi, hiOK := object.Int(object.Get(spec, "maxReplicas"))
		var out []string
		if ok && lo < t.MinReplicas {
			out = append(out, msgf("%s: minReplicas %d is below %d for %s", object.Display(r), lo, t.MinReplicas, envName(t)))
		}
		if ok && hiOK && hi <= lo {
			out = append(out, msgf("%s: maxReplicas %d must be above minReplicas %d, or the autoscaler cannot scale out", object.Display(r), hi, lo))
		}
		return out
	},
})
