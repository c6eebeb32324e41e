package rules

import (
	"math"
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// PDBRequired requires a disruption budget that still lets a node drain.
var PDBRequired = register(&Rule{
	ID:          "pdb-required",
	Name:        "Disruption budget that allows a drain",
	Category:    Availability,
	Level:       Mandatory,
	Description: "Every Deployment or StatefulSet that runs two or more pods is selected by exactly one PodDisruptionBudget, and that budget lets at least one pod be evicted at the workload's lowest size.",
	Remediation: "The microservice component declares a PDB with maxUnavailable: 1; for other workloads add a policy/v1 PodDisruptionBudget with maxUnavailable ≥ 1 (or a minAvailable below the minimum replica count).",
	Rationale:   "Replicas only protect availability if voluntary disruptions (node drains, cluster upgrades) take them one at a time. A budget that allows no eviction (minAvailable equal to the replica count, maxUnavailable 0) blocks every drain forever, and two budgets on one pod make eviction fail.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		pdbs := object.ByKind(rs, "PodDisruptionBudget")
		for _, w := range object.ByKind(rs, object.ScalableKinds...) {
			lo, hi := object.ReplicaRange(rs, w)
			if hi < 2 {
				continue
			}
			_, meta, _ := object.Pod(w)
			labels := object.Labels(meta)
			var mine []Resource
			for _, p := range pdbs {
				if object.Namespace(p) == object.Namespace(w) && object.Selects(object.MapOf(object.Get(p.Props, "spec", "selector")), labels) {
					mine = append(mine, p)
				}
			}
			switch {
			case len(mine) == 0:
				out = append(out, Violation{URN: w.URN, Message: msgf("%s runs up to %d pods but no PodDisruptionBudget selects it", object.Display(w), hi)})
			case len(mine) > 1:
				out = append(out, Violation{URN: w.URN, Message: msgf("%s is selected by %d PodDisruptionBudgets; eviction fails when more than one matches", object.Display(w), len(mine))})
			default:
				if n, ok := evictable(mine[0], lo); ok && n < 1 {
					out = append(out, Violation{URN: mine[0].URN, Message: msgf("%s allows no eviction of %s at %d pods: a node drain would never finish", object.Display(mine[0]), object.Display(w), lo)})
				}
			}
		}
		return out
	},
})

// evictable is how many of n pods the budget lets go; ok is false when
// the budget's values are not known.
func evictable(pdb Resource, n int) (int, bool) {
	spec := object.Get(pdb.Props, "spec")
	if v := object.Get(spec, "maxUnavailable"); v != nil {
		return scaled(v, n, true)
	}
	if v := object.Get(spec, "minAvailable"); v != nil {
		m, ok := scaled(v, n, true)
		return n - m, ok
	}
	// Neither set: the API server refuses such a budget, so there is nothing to judge here.
	return 1, true
}

// scaled resolves an int-or-percent against n, rounding up as the
// disruption controller does.
func scaled(v any, n int, roundUp bool) (int, bool) {
	if i, ok := object.Int(v); ok {
		return i, true
	}
	s := object.Str(v)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return 0, false
		}
		x := f * float64(n) / 100
		if roundUp {
			return int(math.Ceil(x)), true
		}
		return int(math.Floor(x)), true
	}
	return 0, false
}
