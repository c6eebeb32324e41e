package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// HPAScaleDown requires a scale-down stabilization window.
var HPAScaleDown = register(&Rule{
	ID:          "hpa-scale-down-window",
	Name:        "Scale in slowly",
	Category:    Scaling,
	Level:       Mandatory,
	Thresholds:  []string{"minScaleDownWindowSeconds"},
	Description: "Every HorizontalPodAutoscaler's scale-down stabilization window is at least minScaleDownWindowSeconds (unset means Kubernetes' 300 s).",
	Remediation: "Set hpaScaleDownWindowSeconds in the stack file to the threshold or more.",
	Rationale:   "The articles scale 'back down when load decreases'; without a window a short lull removes warm pods that the next burst needs again, and the service flaps between sizes.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if object.Kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		v := object.Get(r.Props, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds")
		if v == nil || object.IsUnknown(v) {
			return nil
		}
		if w, ok := object.Int(v); ok && w < t.MinScaleDownWindowSeconds {
			return []string{msgf("%s: scale-down stabilization window %d s is below %d s", object.Display(r), w, t.MinScaleDownWindowSeconds)}
		}
		return nil
	},
})
