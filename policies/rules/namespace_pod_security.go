package rules

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
		if kind(r) != "Namespace" {
			return nil
		}
		v := get(r.Props, "metadata", "labels", "pod-security.kubernetes.io/enforce")
		if unknown(v) || str(v) == t.PodSecurityLevel {
			return nil
		}
		if str(v) == "" {
			return []string{msgf("%s has no pod-security.kubernetes.io/enforce label (want %s)", display(r), t.PodSecurityLevel)}
		}
		return []string{msgf("%s enforces Pod Security %q, want %q", display(r), str(v), t.PodSecurityLevel)}
	},
})
