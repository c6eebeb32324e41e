package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// HPAMemoryTarget caps the memory utilization target.
var HPAMemoryTarget = register(&Rule{
	ID:          "hpa-memory-target",
	Name:        "Scale out before memory runs out",
	Category:    Scaling,
	Level:       Mandatory,
	Thresholds:  []string{"maxMemoryTargetPercent"},
	Description: "Every HorizontalPodAutoscaler scales on memory utilization with a target of at most maxMemoryTargetPercent (80 %).",
	Remediation: "Set hpaMemoryTargetPercent in the stack file to the threshold or lower (the microservice component adds the memory metric).",
	Rationale:   "The blueprint article scales out when 'memory allocation crosses 80%'. Memory pressure ends in the OOM killer, not in slowness, so it needs its own trigger besides CPU.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if object.Kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		p, ok := object.HPATarget(r, "memory")
		switch {
		case !ok:
			return []string{msgf("%s has no memory Utilization metric", object.Display(r))}
		case p > t.MaxMemoryTargetPercent:
			return []string{msgf("%s: memory target %d %% is above %d %%", object.Display(r), p, t.MaxMemoryTargetPercent)}
		}
		return nil
	},
})
