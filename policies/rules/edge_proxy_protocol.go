package rules

import (
	"regexp"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var (
	nginxRealIPProxy  = regexp.MustCompile(`^real_ip_header\s+proxy_protocol\s*;`)
	nginxRealIPFrom   = regexp.MustCompile(`^set_real_ip_from\s+(\S+?)\s*;`)
	haproxySrcAllowed = regexp.MustCompile(`^tcp-request\s+connection\s+reject\s+unless\s+\{\s*src\s+([^}]+)\}`)
)

// EdgeProxyProtocol requires the load balancer and the edge to agree on the PROXY protocol.
var EdgeProxyProtocol = register(&Rule{
	ID:          "edge-proxy-protocol",
	Name:        "PROXY protocol on both sides or neither",
	Category:    Edge,
	Level:       Mandatory,
	Description: "A LoadBalancer Service carries the aws-load-balancer-proxy-protocol annotation exactly when every edge listener it reaches expects PROXY headers (nginx listen ... proxy_protocol with real_ip_header proxy_protocol and set_real_ip_from the load balancer's networks; HAProxy bind ... accept-proxy with a tcp-request connection reject unless { src ... }); PROXY headers are believed only from named networks, never 0.0.0.0/0.",
	Remediation: "Let the stack set both sides from one switch: the load balancer controller's NLB annotations (proxy-protocol \"*\") and the edge component's ProxyProtocol (Enabled, TrustedCIDRs = the VPC); in-cluster stacks use neither and keep externalTrafficPolicy: Local.",
	Rationale:   "Issue #27: 'The load balancer's annotations and the edge's accept-proxy/real_ip always agree; a rule enforces it.' If the load balancer sends PROXY headers the edge does not expect, every request is garbage to it; if the edge expects them and the load balancer sends none, every connection fails; and an edge that believes PROXY headers from anyone lets any client forge the address the per-client rate limit keys on.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, e := range conf.ExposedServices(rs) {
			if e.Unknown {
				continue
			}
			ann := e.Annotation(conf.AnnotationProxyProtocol)
			if ann == Unknown {
				continue
			}
			lbSends := ann != ""
			for _, c := range e.Configs {
				where := msgf("%s %s (%s)", object.Display(c.ConfigMap), c.Config.Key, c.Config.Proxy)
				add := func(format string, a ...any) {
					out = append(out, Violation{URN: e.Service.URN, Message: msgf("%s and %s: ", object.Display(e.Service), where) + msgf(format, a...)})
				}
				for _, p := range c.Ports {
					l := p.Listener
					if l == nil {
						continue // edge-tls reports a port that reaches no listener
					}
					switch {
					case lbSends && !l.Proxy:
						add("%s is %q but listener %d (Service port %d) does not accept PROXY headers: every request would fail", conf.AnnotationProxyProtocol, ann, l.Port, p.Port)
					case !lbSends && l.Proxy:
						add("listener %d (Service port %d) expects PROXY headers but the Service has no %s: the load balancer sends none, and anyone who can reach the pod may send one", l.Port, p.Port, conf.AnnotationProxyProtocol)
					case l.Proxy:
						if m := proxyTrustProblem(c.Config, *l); m != "" {
							add("listener %d (Service port %d): %s", l.Port, p.Port, m)
						}
					}
				}
			}
		}
		return out
	},
})

// proxyTrustProblem says why a PROXY listener would take the wrong
// address or believe anyone's header, "" if it does neither.
func proxyTrustProblem(c conf.EdgeConfig, l conf.Listener) string {
	if c.Proxy == conf.Nginx {
		global := conf.EdgeConfig{Lines: c.Global()}
		if l.Find(nginxRealIPProxy) == nil && global.Find(nginxRealIPProxy) == nil {
			return "no real_ip_header proxy_protocol: $remote_addr stays the load balancer's address"
		}
		froms := append(l.FindAll(nginxRealIPFrom), conf.Listener{Lines: c.Global()}.FindAll(nginxRealIPFrom)...)
		if len(froms) == 0 {
			return "no set_real_ip_from: name the load balancer's networks"
		}
		for _, m := range froms {
			if conf.WholeInternet(m[1]) {
				return msgf("set_real_ip_from %s believes PROXY headers from anyone", m[1])
			}
		}
		return ""
	}
	m := l.Find(haproxySrcAllowed)
	if m == nil {
		return "no tcp-request connection reject unless { src ... }: PROXY headers are believed from anyone who reaches the pod"
	}
	for _, cidr := range conf.CIDRList(m[1]) {
		if conf.WholeInternet(cidr) {
			return msgf("the accepted sources include %s: PROXY headers are believed from anyone", cidr)
		}
	}
	return ""
}
