package rules

import (
	"slices"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

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
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		podSC := object.MapOf(spec["securityContext"])
		var out []string
		for _, c := range object.Containers(spec, true) {
			sc := object.MapOf(c.Fields["securityContext"])
			eff := func(key string) any {
				if v, ok := sc[key]; ok && v != nil {
					return v
				}
				return podSC[key]
			}
			bad := func(what string) { out = append(out, msgf("%s %s: %s", object.Display(r), c.Label(), what)) }
			if v := eff("runAsNonRoot"); !object.IsTrue(v) && !object.IsUnknown(v) {
				bad("runAsNonRoot is not true")
			}
			if u, ok := object.Int(eff("runAsUser")); ok && u == 0 {
				bad("runAsUser is 0 (root)")
			}
			if v := sc["readOnlyRootFilesystem"]; !object.IsTrue(v) && !object.IsUnknown(v) {
				bad("readOnlyRootFilesystem is not true")
			}
			if v := sc["allowPrivilegeEscalation"]; !object.IsUnknown(v) {
				if b, ok := object.Bool(v); !ok || b {
					bad("allowPrivilegeEscalation is not false")
				}
			}
			var drops []string
			for _, d := range object.ListOf(object.Get(sc, "capabilities", "drop")) {
				drops = append(drops, object.Str(d))
			}
			if !slices.Contains(drops, "ALL") {
				bad("capabilities do not drop ALL")
			}
			if p := object.Str(object.Get(eff("seccompProfile"), "type")); p != "RuntimeDefault" && p != "Localhost" && p != Unknown {
				bad("no RuntimeDefault or Localhost seccomp profile")
			}
		}
		return out
	},
})
