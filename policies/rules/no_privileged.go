package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// NoPrivileged forbids privileged containers and host namespaces.
var NoPrivileged = register(&Rule{
	ID:          "no-privileged",
	Name:        "No privileged containers",
	Category:    Security,
	Level:       Mandatory,
	Description: "No container is privileged, and no pod shares the host's network, PID or IPC namespace.",
	Remediation: "Remove privileged: true and hostNetwork/hostPID/hostIPC; a service that needs a node-level capability belongs in the cluster's own components, not in the platform's workloads.",
	Rationale:   "A privileged container is root on the node: one compromised replica of a horizontally scaled service would own every pod scheduled there.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, host := range []string{"hostNetwork", "hostPID", "hostIPC"} {
			if object.IsTrue(spec[host]) {
				out = append(out, msgf("%s: %s is true", object.Display(r), host))
			}
		}
		for _, c := range object.Containers(spec, true) {
			if object.IsTrue(object.Get(c.Fields, "securityContext", "privileged")) {
				out = append(out, msgf("%s %s is privileged", object.Display(r), c.Label()))
			}
		}
		return out
	},
})
