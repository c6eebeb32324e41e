package rules

import (
	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// internalPaths are the paths every scaleplane service and the edge
// itself serve for machines (Prometheus, pprof, the kubelet): apps/kit's
// endpoints and the edge's own status listener.
var internalPaths = []string{"/metrics", "/debug/pprof/", "/debug/vars", "/healthz", "/readyz", "/livez"}

// EdgeInternalPaths forbids serving internal endpoints on the listeners the load balancer reaches.
var EdgeInternalPaths = register(&Rule{
	ID:          "edge-internal-paths",
	Name:        "No internal path at the edge",
	Category:    Edge,
	Level:       Mandatory,
	Description: "No listener a LoadBalancer Service reaches forwards or answers /metrics, /debug/..., /healthz, /readyz or /livez (a catch-all route counts unless an explicit deny for those paths takes precedence), and none runs HAProxy's Prometheus exporter or stats page; the edge's health and metrics endpoints belong on its status listener, which is no port of the Service.",
	Remediation: "Route only the public API prefixes at the edge (the edge component's Backends PathPrefix, /v1/ for the gateway) and keep its deny of the internal paths; never add the status port (8081) to the edge Service.",
	Rationale:   "Issue #27: '/metrics is reachable on the edge's public frontend' and 'The edge routes only the public API. /metrics, /debug, probes and the users gRPC port can't be reached through it.' Metrics and pprof tell an attacker the platform's internals and cost CPU to serve; a public /healthz lets anyone probe each pod.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, e := range conf.ExposedServices(rs) {
			if e.Unknown {
				continue
			}
			for _, c := range e.Configs {
				seen := map[int]bool{}
				for _, p := range c.Ports {
					l := p.Listener
					if l == nil || seen[l.Port] {
						continue
					}
					seen[l.Port] = true
					for _, path := range internalPaths {
						if r := l.Route(c.Config.Proxy, path); r.Served {
							out = append(out, Violation{URN: c.ConfigMap.URN, Message: msgf("%s %s (%s): listener %d, reached by %s port %d, serves %s (%q)",
								object.Display(c.ConfigMap), c.Config.Key, c.Config.Proxy, l.Port, object.Display(e.Service), p.Port, path, r.By)})
						}
					}
				}
			}
		}
		return out
	},
})
