package rules

import (
	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// GatewayTrustedProxies requires every service behind the edge to name the networks whose X-Forwarded-For it believes.
var GatewayTrustedProxies = register(&Rule{
	ID:          "gateway-trusted-proxies",
	Name:        "Trusted proxies set behind the edge",
	Category:    Edge,
	Level:       Mandatory,
	Thresholds:  []string{"trustedProxyCidrsEnv"},
	Description: "Every workload an edge config forwards to (its upstream/backend addresses, matched to the Service of that name and the pods it selects) sets trustedProxyCidrsEnv (TRUSTED_PROXY_CIDRS) in the serving container to a non-empty list of valid CIDRs, none of them 0.0.0.0/0 or ::/0; an edge backend naming a cluster Service the stack does not declare fails too.",
	Remediation: "Set trustedProxyCidrs in the stack file to the edge pods' network (the pod CIDR in-cluster, the VPC on aws); the stack passes it to the gateway.",
	Rationale:   "Issue #27: 'The gateway trusts the header only from the edge pods' network, given by the stack (trusted-proxy CIDRs). Otherwise it uses the connection's address.' Without the list the per-client rate limit keys on the edge pod's address ('Prod's 100/s per client is really per edge pod'); with 0.0.0.0/0 any client forges X-Forwarded-For and gets a fresh bucket per request.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		services := object.ByKind(rs, "Service")
		for _, cm := range object.ByKind(rs, "ConfigMap") {
			for _, ec := range conf.EdgeConfigs(cm) {
				where := msgf("%s %s (%s)", object.Display(cm), ec.Key, ec.Proxy)
				for _, b := range ec.Backends() {
					name, ns, inCluster, ok := conf.ServiceRef(b.Host, object.Namespace(cm))
					if !ok {
						continue
					}
					var svc *Resource
					for i := range services {
						if object.Name(services[i]) == name && object.Namespace(services[i]) == ns {
							svc = &services[i]
							break
						}
					}
					if svc == nil {
						if inCluster {
							out = append(out, Violation{URN: cm.URN, Message: msgf("%s forwards to %s:%d, a Service the stack does not declare: its trusted proxies cannot be checked", where, b.Host, b.Port)})
						}
						continue
					}
					workloads, target := conf.ServiceTargets(rs, *svc, b.Port)
					for _, w := range workloads {
						spec, _, _ := object.Pod(w)
						for _, c := range conf.ServingContainers(spec, target) {
							if m := trustedProxiesProblem(c, t.TrustedProxyCIDRsEnv); m != "" {
								out = append(out, Violation{URN: w.URN, Message: msgf("%s %s (behind %s via Service %s): %s", object.Display(w), c.Label(), where, name, m)})
							}
						}
					}
				}
			}
		}
		return out
	},
})

// trustedProxiesProblem says what is wrong with a container's trusted
// proxy list, "" if nothing (or if it cannot be known: a valueFrom, a
// preview's unknown value).
func trustedProxiesProblem(c object.Container, env string) string {
	for _, e := range object.ListOf(c.Fields["env"]) {
		if object.Str(object.Get(e, "name")) != env {
			continue
		}
		if object.Get(e, "valueFrom") != nil {
			return ""
		}
		v := object.Str(object.Get(e, "value"))
		if v == Unknown {
			return ""
		}
		list := conf.CIDRList(v)
		if len(list) == 0 {
			return msgf("%s is empty: X-Forwarded-For from the edge is ignored and every client shares the edge pod's address", env)
		}
		for _, cidr := range list {
			switch {
			case !conf.ValidCIDR(cidr):
				return msgf("%s %q: %q is not a CIDR such as 10.244.0.0/16", env, v, cidr)
			case conf.WholeInternet(cidr):
				return msgf("%s %q: %s trusts X-Forwarded-For from anyone, so any client forges its address", env, v, cidr)
			}
		}
		return ""
	}
	return msgf("no %s: X-Forwarded-For from the edge is ignored and every client shares the edge pod's address", env)
}
