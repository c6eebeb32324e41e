package rules

import (
	"regexp"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var (
	nginxRateZone   = regexp.MustCompile(`^limit_req_zone\s`)
	nginxRateUse    = regexp.MustCompile(`^limit_req\s+zone=`)
	haproxyTrack    = regexp.MustCompile(`^(http-request|tcp-request\s+\S+)\s+track-sc\d`)
	haproxyRateDeny = regexp.MustCompile(`^(http-request|tcp-request\s+\S+)\s+(deny|reject|tarpit)\b.*\bsc(\d_|_)?(http_req_rate|conn_rate|sess_rate)`)
)

// EdgeRateLimit requires a per-client rate limit at the edge.
var EdgeRateLimit = register(&Rule{
	ID:          "edge-rate-limit",
	Name:        "Rate limit at the edge",
	Category:    Edge,
	Level:       Mandatory,
	Description: "Every nginx config defines a limit_req_zone and applies it with limit_req; every HAProxy config tracks clients (track-sc) and denies above a request rate.",
	Remediation: "Set edgeRateLimitPerSecond and edgeRateBurst in the stack file (the edge component renders the limit for both proxies).",
	Rationale:   "'Rate-limiting layers using token bucket algorithms ... prevent malicious actors or misconfigured client loops from overwhelming our public gateway instances.' The edge's limit is the cheap first line; the gateway's Redis limiter is the precise one.",
	CheckResource: func(r Resource, t Thresholds) []string {
		var out []string
		for _, e := range conf.EdgeConfigs(r) {
			switch e.Proxy {
			case conf.Nginx:
				if e.Find(nginxRateZone) == nil || e.Find(nginxRateUse) == nil {
					out = append(out, msgf("%s %s (nginx): no rate limit (needs limit_req_zone and limit_req zone=...)", object.Display(r), e.Key))
				}
			case conf.HAProxy:
				if e.Find(haproxyTrack) == nil || e.Find(haproxyRateDeny) == nil {
					out = append(out, msgf("%s %s (haproxy): no rate limit (needs track-sc and a deny on sc_http_req_rate)", object.Display(r), e.Key))
				}
			}
		}
		return out
	},
})
