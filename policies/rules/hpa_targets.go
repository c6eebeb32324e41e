package rules

// hpaTarget returns the Utilization target of a resource metric, if set.
func hpaTarget(r Resource, resourceName string) (percent int, found bool) {
	for _, m := range listOf(get(r.Props, "spec", "metrics")) {
		if str(get(m, "type")) != "Resource" || str(get(m, "resource", "name")) != resourceName {
			continue
		}
		target := get(m, "resource", "target")
		if str(get(target, "type")) != "Utilization" {
			continue
		}
		if p, ok := intOf(get(target, "averageUtilization")); ok {
			return p, true
		}
	}
	return 0, false
}

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
		if kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		p, ok := hpaTarget(r, "cpu")
		switch {
		case !ok:
			return []string{msgf("%s has no CPU Utilization metric", display(r))}
		case p > t.MaxCPUTargetPercent:
			return []string{msgf("%s: CPU target %d %% is above %d %%", display(r), p, t.MaxCPUTargetPercent)}
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
		if kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		p, ok := hpaTarget(r, "memory")
		switch {
		case !ok:
			return []string{msgf("%s has no memory Utilization metric", display(r))}
		case p > t.MaxMemoryTargetPercent:
			return []string{msgf("%s: memory target %d %% is above %d %%", display(r), p, t.MaxMemoryTargetPercent)}
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
		if kind(r) != "HorizontalPodAutoscaler" {
			return nil
		}
		v := get(r.Props, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds")
		if v == nil || unknown(v) {
			return nil
		}
		if w, ok := intOf(v); ok && w < t.MinScaleDownWindowSeconds {
			return []string{msgf("%s: scale-down stabilization window %d s is below %d s", display(r), w, t.MinScaleDownWindowSeconds)}
		}
		return nil
	},
})
