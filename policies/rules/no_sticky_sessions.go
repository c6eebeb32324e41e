package rules

import (
	"regexp"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var (
	nginxSticky = []*regexp.Regexp{
		regexp.MustCompile(`^ip_hash\s*;`),
		regexp.MustCompile(`^sticky(\s|;)`),
		regexp.MustCompile(`^hash\s+\$(cookie_|remote_addr|binary_remote_addr)`),
	}
	haproxySticky = []*regexp.Regexp{
		regexp.MustCompile(`^cookie\s+\S+`),
		regexp.MustCompile(`^stick\s+(on|match|store-request|store-response)\b`),
		regexp.MustCompile(`^balance\s+(source|hdr\(cookie\)|rdp-cookie)`),
		regexp.MustCompile(`^appsession\b`),
	}
	// ingressAffinity are the ingress-nginx annotations that pin clients.
	ingressAffinity = []string{"nginx.ingress.kubernetes.io/affinity", "nginx.ingress.kubernetes.io/upstream-hash-by"}
)

// NoStickySessions forbids pinning a client to a pod.
var NoStickySessions = register(&Rule{
	ID:          "no-sticky-sessions",
	Name:        "No sticky sessions",
	Category:    Edge,
	Level:       Mandatory,
	Description: "No Service uses sessionAffinity: ClientIP, no Ingress asks for affinity, and no nginx (ip_hash, sticky, hash $cookie_/$remote_addr) or HAProxy (cookie, stick on/match/store, balance source) config pins clients to a server.",
	Remediation: "Keep session state in Redis and let any pod serve any client (the edge component renders HAProxy's balance leastconn over every pod, and nginx proxies to the ClusterIP with no affinity); remove the affinity directive or set sessionAffinity: None.",
	Rationale:   "'If you store user sessions in RAM ... Next request hits Server B. Server B knows nothing about the session.' The articles' fix is a central session store so any server serves any client; sticky sessions bring the problem back and defeat the autoscaler, since new pods get no pinned clients.",
	CheckResource: func(r Resource, t Thresholds) []string {
		var out []string
		switch object.Kind(r) {
		case "Service":
			if object.Str(object.Get(r.Props, "spec", "sessionAffinity")) == "ClientIP" {
				out = append(out, msgf("%s has sessionAffinity: ClientIP", object.Display(r)))
			}
		case "Ingress":
			for _, a := range ingressAffinity {
				if v := object.Str(object.Get(r.Props, "metadata", "annotations", a)); v != "" {
					out = append(out, msgf("%s asks for client affinity (%s: %s)", object.Display(r), a, v))
				}
			}
		case "ConfigMap":
			for _, e := range conf.EdgeConfigs(r) {
				res := nginxSticky
				if e.Proxy == conf.HAProxy {
					res = haproxySticky
				}
				for _, re := range res {
					if m := e.Find(re); m != nil {
						out = append(out, msgf("%s %s (%s): %q pins clients to a server", object.Display(r), e.Key, e.Proxy, strings.TrimSpace(m[0])))
					}
				}
			}
		}
		return out
	},
})
