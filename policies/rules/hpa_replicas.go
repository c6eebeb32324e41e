package rules

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
		if kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		spec := get(r.Props, "spec")
		lo, ok := intOf(get(spec, "minReplicas"))
		if !ok && !unknown(get(spec, "minReplicas")) {
			lo = 1 // the Kubernetes default
			ok = true
		}
		hi, hiOK := intOf(get(spec, "maxReplicas"))
		var out []string
		if ok && lo < t.MinReplicas {
			out = append(out, msgf("%s: minReplicas %d is below %d for %s", display(r), lo, t.MinReplicas, envName(t)))
		}
		if ok && hiOK && hi <= lo {
			out = append(out, msgf("%s: maxReplicas %d must be above minReplicas %d, or the autoscaler cannot scale out", display(r), hi, lo))
		}
		return out
	},
})

func envName(t Thresholds) string {
	if t.Environment == "" {
		return "this stack"
	}
	return "environment " + t.Environment
}
