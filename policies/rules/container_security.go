package rules

import "slices"

// ContainerSecurity requires the restricted container settings.
var ContainerSecurity = register(&Rule{
	ID:          "container-security",
	Name:        "Restricted container security context",
	Category:    Security,
	Level:       Mandatory,
	Description: "Every container runs as non-root (runAsNonRoot, no runAsUser 0), with a read-only root filesystem, allowPrivilegeEscalation: false, capabilities drop ALL and a RuntimeDefault or Localhost seccomp profile (pod or container level).",
	Remediation: "Declare workloads with the microservice component, which sets all of these; write what the process needs to an emptyDir (it mounts one at /tmp).",
	Rationale:   "Scaling out multiplies every pod's attack surface. The restricted profile means a compromised process cannot become root, write to its image or gain capabilities, and the namespaces' admission would refuse the pod anyway.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := pod(r)
		if !ok {
			return nil
		}
		podSC := mapOf(spec["securityContext"])
		var out []string
		for _, c := range containers(spec, true) {
			sc := mapOf(c.m["securityContext"])
			eff := func(key string) any {
				if v, ok := sc[key]; ok && v != nil {
					return v
				}
				return podSC[key]
			}
			bad := func(what string) { out = append(out, msgf("%s %s: %s", display(r), c.label(), what)) }
			if v := eff("runAsNonRoot"); !isTrue(v) && !unknown(v) {
				bad("runAsNonRoot is not true")
			}
			if u, ok := intOf(eff("runAsUser")); ok && u == 0 {
				bad("runAsUser is 0 (root)")
			}
			if v := sc["readOnlyRootFilesystem"]; !isTrue(v) && !unknown(v) {
				bad("readOnlyRootFilesystem is not true")
			}
			if v := sc["allowPrivilegeEscalation"]; !unknown(v) {
				if b, ok := boolOf(v); !ok || b {
					bad("allowPrivilegeEscalation is not false")
				}
			}
			var drops []string
			for _, d := range listOf(get(sc, "capabilities", "drop")) {
				drops = append(drops, str(d))
			}
			if !slices.Contains(drops, "ALL") {
				bad("capabilities do not drop ALL")
			}
			if p := str(get(eff("seccompProfile"), "type")); p != "RuntimeDefault" && p != "Localhost" && p != Unknown {
				bad("no RuntimeDefault or Localhost seccomp profile")
			}
		}
		return out
	},
})
