package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// NamespacePodSecurity requires the restricted Pod Security Standard.
var NamespacePodSecurity = register(&Rule{
	ID:          "namespace-pod-security",
	Name:        "Namespaces enforce restricted Pod Security",
	Category:    Security,
	Level:       Mandatory,
	Thresholds:  []string{"podSecurityLevel"},
	Description: "Every Namespace carries pod-security.kubernetes.io/enforce set to podSecurityLevel (restricted).",
	Remediation: "Declare namespaces with the namespace component (components/namespace), which labels them enforce/audit/warn restricted.",
	Rationale:   "The container rules below are checked before deployment; the admission label makes the cluster refuse anything that slips past them (a kubectl apply, a Helm chart), so the guarantee holds at run time too.",
	CheckResource: func(r Resource, t Thresholds) []string {
		if object.Kind(r) != "Namespace" {
			return nil
		}
		v := object.Get(r.Props, "metadata", "labels", "pod-security.kubernetes.io/enforce")
		if object.IsUnknown(v) || object.Str(v) == t.PodSecurityLevel {
			return nil
		}
		if object.Str(v) == "" {
			return []string{msgf("%s has no pod-security.kubernetes.io/enforce label (want %s)", object.Display(r), t.PodSecurityLevel)}
		}
		return []string{msgf("%s enforces Pod Security %q, want %q", object.Display(r), object.Str(v), t.PodSecurityLevel)}
	},
})
