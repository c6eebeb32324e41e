package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// HPACPUTarget caps the CPU utilization target.
var HPACPUTarget = register(&Rule{
	ID:          "hpa-cpu-target",
	Name:        "Scale out before CPU saturates",
	Category:    Scaling,
	Level:       Mandatory,
	Thresholds:  []string{"maxCpuTargetPercent"},
	Description: "Every HorizontalPodAutoscaler scales on CPU utilization with a target of at most maxCpuTargetPercent (70 %).",
	Remediation: "Set hpaCpuTargetPercent in the stack file to the threshold or lower (the microservice component adds the CPU metric).",
	Rationale:   "The blueprint article: 'If average CPU usage exceeds 70% ... Kubernetes spins up additional pod instances'. New pods take time to start and pass readiness; the 30 % headroom absorbs the spike meanwhile, before latency climbs.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if object.Kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		p, ok := object.HPATarget(r, "cpu")
		switch {
		case !ok:
			return []string{msgf("%s has no CPU Utilization metric", object.Display(r))}
		case p > t.MaxCPUTargetPercent:
			return []string{msgf("%s: CPU target %d %% is above %d %%", object.Display(r), p, t.MaxCPUTargetPercent)}
		}
		return nil
	},
})
