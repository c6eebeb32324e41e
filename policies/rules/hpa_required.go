package rules

import (
	"slices"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// HPARequired: every Deployment and StatefulSet that serves traffic is autoscaled.
var HPARequired = register(&Rule{
	ID:          "hpa-required",
	Name:        "Serving workloads are autoscaled",
	Category:    Scaling,
	Level:       Mandatory,
	Description: "Every Deployment and StatefulSet selected by a Service has a HorizontalPodAutoscaler aimed at it (StatefulSets holding data in volumeClaimTemplates are the data tier's, scaled by hand).",
	Remediation: "Declare the workload with microservice.NewMicroservice, which adds the HPA, or add an autoscaling/v2 HorizontalPodAutoscaler whose scaleTargetRef names it.",
	Rationale:   "The articles scale out horizontally: the HPA adds pods when CPU passes 70 % or memory 80 % and removes them when load falls. A fixed replica count is either too small at peak or wasted at night.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		services := object.ByKind(rs, "Service")
		for _, w := range object.ByKind(rs, object.ScalableKinds...) {
			if object.Kind(w) == "StatefulSet" && len(object.ListOf(object.Get(w.Props, "spec", "volumeClaimTemplates"))) > 0 {
				continue
			}
			_, meta, _ := object.Pod(w)
			labels := object.Labels(meta)
			serving := slices.ContainsFunc(services, func(s Resource) bool {
				return object.Namespace(s) == object.Namespace(w) && object.Selects(object.MapOf(object.Get(s.Props, "spec", "selector")), labels)
			})
			if serving && len(object.HPAFor(rs, w)) == 0 {
				out = append(out, Violation{URN: w.URN, Message: msgf("%s serves traffic but no HorizontalPodAutoscaler targets it", object.Display(w))})
			}
		}
		return out
	},
})
