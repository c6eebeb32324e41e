package rules

// HPAOwnsReplicas warns when a workload and its autoscaler both set the size.
var HPAOwnsReplicas = register(&Rule{
	ID:          "hpa-owns-replicas",
	Name:        "The autoscaler owns the replica count",
	Category:    Scaling,
	Level:       Mandatory,
	Description: "A Deployment or StatefulSet targeted by a HorizontalPodAutoscaler does not set spec.replicas.",
	Remediation: "Leave spec.replicas out of autoscaled workloads (the HPA's minReplicas sizes the first rollout), or tell the provider to ignore the field on updates.",
	Rationale:   "Every `pulumi up` re-applies a declared spec.replicas: a service the HPA scaled out for a traffic peak is cut back to the declared size in the middle of it, then scaled out again. kube-score flags the same (deployment-targeted-by-hpa-does-not-have-replicas-configured).",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, w := range byKind(rs, scalableKinds...) {
			if v := get(w.Props, "spec", "replicas"); v != nil && len(hpaFor(rs, w)) > 0 {
				out = append(out, Violation{URN: w.URN, Message: msgf("%s sets spec.replicas %v while an HPA scales it; each update resets the size", display(w), v)})
			}
		}
		return out
	},
})
