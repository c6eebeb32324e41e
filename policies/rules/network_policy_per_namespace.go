package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// NetworkPolicyPerNamespace requires a NetworkPolicy wherever pods run.
var NetworkPolicyPerNamespace = register(&Rule{
	ID:          "network-policy-per-namespace",
	Name:        "A NetworkPolicy in every namespace",
	Category:    Security,
	Level:       Mandatory,
	Description: "Every namespace the stack declares or puts a workload in has at least one NetworkPolicy.",
	Remediation: "Declare the namespace with the namespace component (it adds default-deny-ingress) and the workloads with the microservice component (it admits only the declared callers).",
	Rationale:   "Without a policy every pod accepts traffic from every other pod in the cluster; the services are meant to be reached only through the edge and their declared callers.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		covered := map[string]bool{}
		coveredParent := map[string]bool{}
		for _, p := range object.ByKind(rs, "NetworkPolicy") {
			covered[object.Namespace(p)] = true
			if object.IsUnknown(object.Get(p.Props, "metadata", "namespace")) && p.Parent != "" {
				coveredParent[p.Parent] = true
			}
		}
		first := map[string]Resource{}
		var order []string
		note := func(ns string, r Resource) {
			if _, ok := first[ns]; !ok {
				first[ns] = r
				order = append(order, ns)
			}
		}
		for _, n := range object.ByKind(rs, "Namespace") {
			if !object.IsUnknown(object.Get(n.Props, "metadata", "name")) {
				note(object.Namespace(n), n)
			}
		}
		for _, w := range object.ByKind(rs, object.WorkloadKinds...) {
			if !object.IsUnknown(object.Get(w.Props, "metadata", "namespace")) {
				note(object.Namespace(w), w)
			}
		}
		var out []Violation
		for _, ns := range order {
			r := first[ns]
			if covered[ns] || (object.Kind(r) == "Namespace" && coveredParent[r.Parent]) {
				continue
			}
			out = append(out, Violation{URN: r.URN, Message: msgf("namespace %s has no NetworkPolicy (first seen on %s)", ns, object.Display(r))})
		}
		return out
	},
})
