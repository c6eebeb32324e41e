package rules

import (
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

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
