package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

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
		for _, w := range object.ByKind(rs, object.ScalableKinds...) {
			// After `pulumi up` the engine checks the stack again with each
			// object as the API server returned it, where spec.replicas is
			// always filled in (defaulted, or the HPA's current size). An
			// object carrying a server-assigned uid is that live copy: only
			// declarations (preview, the offline check) can say who sets it.
			if object.Get(w.Props, "metadata", "uid") != nil {
				continue
			}
			if v := object.Get(w.Props, "spec", "replicas"); v != nil && len(object.HPAFor(rs, w)) > 0 {
				out = append(out, Violation{URN: w.URN, Message: msgf("%s sets spec.replicas %v while an HPA scales it; each update resets the size", object.Display(w), v)})
			}
		}
		return out
	},
})
