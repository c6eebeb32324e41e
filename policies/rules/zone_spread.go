package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// ZoneSpread requires a hard spread across zones where the stack asks for it.
var ZoneSpread = register(&Rule{
	ID:          "zone-spread",
	Name:        "Pods spread across zones",
	Category:    Availability,
	Level:       Mandatory,
	Thresholds:  []string{"requireZoneSpread"},
	Description: "Where requireZoneSpread is set (prod), every Deployment and StatefulSet has a topology spread constraint on topology.kubernetes.io/zone with whenUnsatisfiable: DoNotSchedule, or a required pod anti-affinity on the zone.",
	Remediation: "Set zoneSpreadRequired: true in the stack file (the microservice component then makes its zone constraint DoNotSchedule).",
	Rationale:   "Horizontal scaling only survives the loss of a zone if the replicas are not all in it. A soft preference (ScheduleAnyway) silently stacks pods in one zone when the others are full, which is exactly when it matters.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if !t.RequireZoneSpread {
			return nil
		}
		switch object.Kind(r) {
		case "Deployment", "StatefulSet":
		default:
			return nil
		}
		spec, _, _ := object.Pod(r)
		for _, c := range object.ListOf(spec["topologySpreadConstraints"]) {
			if object.Str(object.Get(c, "topologyKey")) == zoneKey && object.Str(object.Get(c, "whenUnsatisfiable")) == "DoNotSchedule" {
				return nil
			}
		}
		for _, a := range object.ListOf(object.Get(spec, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution")) {
			if object.Str(object.Get(a, "topologyKey")) == zoneKey {
				return nil
			}
		}
		return []string{msgf("%s has no hard spread across %s (a DoNotSchedule topology spread constraint or a required anti-affinity)", object.Display(r), zoneKey)}
	},
})

const zoneKey = "topology.kubernetes.io/zone"
