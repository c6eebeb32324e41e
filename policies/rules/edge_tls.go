package rules

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// httpsPort is the port browsers and clients mean by https://; the rule
// is about that port, whatever the edge listens on behind it.
const httpsPort = 443

// nlbTLSPolicies are the NLB security policies that refuse TLS 1.0 and
// 1.1 (AWS's "TLS 1.2 or later" policies). The list is a fact about AWS,
// the same for every stack, so it lives here rather than in Thresholds;
// an unset policy gets AWS's ELBSecurityPolicy-2016-08, which allows TLS 1.0.
var nlbTLSPolicies = []string{
	"ELBSecurityPolicy-TLS13-1-2-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
	"ELBSecurityPolicy-TLS13-1-3-2021-06",
	"ELBSecurityPolicy-TLS-1-2-2017-01",
	"ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
	"ELBSecurityPolicy-FS-1-2-2019-08",
	"ELBSecurityPolicy-FS-1-2-Res-2019-08",
	"ELBSecurityPolicy-FS-1-2-Res-2020-10",
}

var (
	nginxSSLProtocols = regexp.MustCompile(`^ssl_protocols\s+([^;]*);`)
	haproxyBindOpts   = regexp.MustCompile(`^ssl-default-bind-options\s+(.*)$`)
	hsts              = regexp.MustCompile(`Strict-Transport-Security"?\s+"?max-age=(\d+)`)
	nginxRedirect     = regexp.MustCompile(`\breturn\s+30[1278]\s+"?https://`)
	haproxyRedirect   = regexp.MustCompile(`^(http-request\s+)?redirect\s+(code\s+\d+\s+)?(scheme\s+https\b|location\s+"?https://|prefix\s+"?https://)`)
	// edgeForwards are the directives that serve or forward content
	// rather than answer the redirect itself.
	nginxForwards   = regexp.MustCompile(`\b(proxy_pass|grpc_pass|fastcgi_pass|uwsgi_pass|scgi_pass|memcached_pass|stub_status|root|alias)\b`)
	haproxyForwards = regexp.MustCompile(`^(use_backend|default_backend|http-request\s+use-service|stats\s+(enable|uri))\b`)
	tlsTooOld       = []string{"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}
)

// EdgeTLS requires HTTPS on 443 with TLS 1.2 or later, plain HTTP only redirecting, and HSTS.
var EdgeTLS = register(&Rule{
	ID:          "edge-tls",
	Name:        "TLS at the edge",
	Category:    Edge,
	Level:       Mandatory,
	Description: "Every LoadBalancer Service serves port 443 over TLS 1.2 or later, terminated either by the edge behind it (nginx ssl_protocols without SSLv3/TLSv1/TLSv1.1; HAProxy ssl-min-ver TLSv1.2 on the bind or in ssl-default-bind-options) or by the load balancer (ssl-cert annotation on the port and an ssl-negotiation-policy that refuses TLS 1.0/1.1), never both; the 443 listener sends Strict-Transport-Security; every other plain-HTTP port only redirects to https.",
	Remediation: "Keep the edge component's TLS on: in-cluster stacks mount the cert-manager certificate (TLSSecretName), aws stacks set TLSTerminatedUpstream with the NLB annotations from the load balancer controller (ssl-cert, ssl-ports https, ssl-negotiation-policy ELBSecurityPolicy-TLS13-1-2-2021-06); do not add listeners or Service ports around it.",
	Rationale:   "Issue #27: 'SESSION_COOKIE_SECURE defaults to true, so over plain HTTP the login cookie is never sent back', and it asks for 'HTTPS on 443 with TLS 1.2 or later ... HTTP on 80 only redirects; HSTS on.' TLS 1.0 and 1.1 are deprecated (RFC 8996); HSTS keeps a browser from ever trying plain HTTP again after the first visit.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, e := range conf.ExposedServices(rs) {
			if e.Unknown {
				continue
			}
			svc := object.Display(e.Service)
			add := func(format string, a ...any) {
				out = append(out, Violation{URN: e.Service.URN, Message: msgf("%s: ", svc) + msgf(format, a...)})
			}
			ports := servicePortNumbers(e)
			if !slices.Contains(ports, httpsPort) {
				add("no port %d (ports %v): the edge must serve HTTPS on %d", httpsPort, ports, httpsPort)
			}
			if len(e.Configs) == 0 {
				// A load balancer with no proxy config behind it: only the
				// load balancer can provide TLS, so every port needs it.
				for _, p := range lbPorts(e) {
					if !e.LBTerminatesTLS(p) {
						add("port %d: no edge config behind it and the load balancer does not terminate TLS (no %s on the port)", p.Port, conf.AnnotationSSLCert)
					} else if m := lbPolicyProblem(e); m != "" {
						add("port %d: %s", p.Port, m)
					}
				}
				continue
			}
			for _, c := range e.Configs {
				where := msgf("%s %s (%s)", object.Display(c.ConfigMap), c.Config.Key, c.Config.Proxy)
				for _, p := range c.Ports {
					l := p.Listener
					if l == nil {
						add("port %d reaches container port %d, where %s has no listener", p.Port, p.Target, where)
						continue
					}
					lbTLS := e.LBTerminatesTLS(p)
					switch {
					case l.TLS && lbTLS:
						add("port %d: both the load balancer (%s) and %s (listener %d) terminate TLS; the edge would receive decrypted bytes on a TLS listener", p.Port, conf.AnnotationSSLCert, where, l.Port)
					case l.TLS:
						if m := edgeTLSProblem(c.Config, *l); m != "" {
							add("port %d: %s listener %d: %s", p.Port, where, l.Port, m)
						}
					case lbTLS:
						if m := lbPolicyProblem(e); m != "" {
							add("port %d: %s", p.Port, m)
						}
					case p.Port == httpsPort:
						add("port %d serves plain HTTP: neither %s (listener %d) nor the load balancer (%s) terminates TLS", p.Port, where, l.Port, conf.AnnotationSSLCert)
					default:
						if m := redirectOnlyProblem(c.Config.Proxy, *l); m != "" {
							add("port %d is plain HTTP and %s listener %d %s", p.Port, where, l.Port, m)
						}
					}
					if p.Port == httpsPort {
						if m := l.Find(hsts); m == nil {
							add("port %d: %s listener %d sends no Strict-Transport-Security header", p.Port, where, l.Port)
						} else if n, _ := strconv.Atoi(m[1]); n <= 0 {
							add("port %d: %s listener %d sends Strict-Transport-Security max-age=%d, which turns HSTS off", p.Port, where, l.Port, n)
						}
					}
				}
			}
		}
		return out
	},
})

// lbPorts are the Service's ports as exposed ports without listeners.
func lbPorts(e conf.Exposed) []conf.ExposedPort {
	var out []conf.ExposedPort
	for _, p := range object.ListOf(object.Get(e.Service.Props, "spec", "ports")) {
		n, _ := object.Int(object.Get(p, "port"))
		out = append(out, conf.ExposedPort{Port: n, Name: object.Str(object.Get(p, "name"))})
	}
	return out
}

// servicePortNumbers lists the Service's ports.
func servicePortNumbers(e conf.Exposed) []int {
	var out []int
	for _, p := range lbPorts(e) {
		out = append(out, p.Port)
	}
	return out
}

// lbPolicyProblem says what is wrong with the NLB's TLS policy, "" if nothing.
func lbPolicyProblem(e conf.Exposed) string {
	pol := e.Annotation(conf.AnnotationSSLPolicy)
	switch {
	case pol == Unknown:
		return ""
	case pol == "":
		return msgf("the load balancer terminates TLS without %s (AWS then uses ELBSecurityPolicy-2016-08, which accepts TLS 1.0); use one of %s", conf.AnnotationSSLPolicy, strings.Join(nlbTLSPolicies, ", "))
	case !slices.Contains(nlbTLSPolicies, pol):
		return msgf("%s %q is not a TLS 1.2+ policy (allowed: %s)", conf.AnnotationSSLPolicy, pol, strings.Join(nlbTLSPolicies, ", "))
	}
	return ""
}

// edgeTLSProblem says why a TLS listener may accept TLS older than 1.2, "" if it cannot.
func edgeTLSProblem(c conf.EdgeConfig, l conf.Listener) string {
	if c.Proxy == conf.Nginx {
		m := l.Find(nginxSSLProtocols)
		if m == nil {
			m = conf.EdgeConfig{Lines: c.Global()}.Find(nginxSSLProtocols)
		}
		if m == nil {
			return "no ssl_protocols (nginx's default accepts TLSv1 and TLSv1.1 in the versions Debian ships); set ssl_protocols TLSv1.2 TLSv1.3"
		}
		for _, p := range strings.Fields(m[1]) {
			if slices.Contains(tlsTooOld, p) {
				return msgf("ssl_protocols %s accepts %s; TLS 1.2 or later only", m[1], p)
			}
		}
		return ""
	}
	bind := haproxyBindOptions(l)
	var global []string
	if m := (conf.EdgeConfig{Lines: c.Global()}).Find(haproxyBindOpts); m != nil {
		global = strings.Fields(m[1])
	}
	min := optionValue(bind, "ssl-min-ver")
	if min == "" {
		min = optionValue(global, "ssl-min-ver")
	}
	switch {
	case min == "TLSv1.2" || min == "TLSv1.3":
		return ""
	case min != "":
		return msgf("ssl-min-ver %s accepts TLS older than 1.2", min)
	case (slices.Contains(bind, "no-tlsv10") || slices.Contains(global, "no-tlsv10")) && (slices.Contains(bind, "no-tlsv11") || slices.Contains(global, "no-tlsv11")):
		return ""
	}
	return "no ssl-min-ver TLSv1.2 on the bind or in ssl-default-bind-options, so TLS 1.0 and 1.1 may be accepted"
}

// haproxyBindOptions are the words of the listener's bind line.
func haproxyBindOptions(l conf.Listener) []string {
	re := regexp.MustCompile(`^bind\s+\S*?:` + strconv.Itoa(l.Port) + `\b(.*)$`)
	if m := l.Find(re); m != nil {
		return strings.Fields(m[1])
	}
	return nil
}

// optionValue is the word after name in an option list.
func optionValue(opts []string, name string) string {
	if i := slices.Index(opts, name); i >= 0 && i+1 < len(opts) {
		return opts[i+1]
	}
	return ""
}

// redirectOnlyProblem says how a plain-HTTP listener does more than
// redirect to https, "" if it only redirects.
func redirectOnlyProblem(p conf.ProxyKind, l conf.Listener) string {
	redirect, forwards := nginxRedirect, nginxForwards
	if p == conf.HAProxy {
		redirect, forwards = haproxyRedirect, haproxyForwards
	}
	if m := l.Find(forwards); m != nil {
		return msgf("serves content (%q); plain HTTP may only redirect to https", m[0])
	}
	if l.Find(redirect) == nil {
		return "does not redirect to https"
	}
	return ""
}
