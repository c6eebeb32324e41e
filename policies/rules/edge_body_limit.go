package rules

import (
	"regexp"
	"strconv"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var (
	nginxBodyLimit   = regexp.MustCompile(`^client_max_body_size\s+(\S+?)\s*;`)
	haproxyBodyLimit = regexp.MustCompile(`(req\.hdr_val\(content-length\)|req\.body_size|req\.body_len)\s+gt\s+(\d+)`)
)

// EdgeBodyLimit requires the edge to refuse oversized bodies.
var EdgeBodyLimit = register(&Rule{
	ID:          "edge-body-limit",
	Name:        "Request body size limit at the edge",
	Category:    Edge,
	Level:       Mandatory,
	Thresholds:  []string{"maxBodyBytes"},
	Description: "Every nginx or HAProxy config declares a request body limit (client_max_body_size, or an HAProxy deny on content-length / body size) that is positive and at most maxBodyBytes (10 MiB).",
	Remediation: "Set edgeBodyLimit in the stack file (the edge component renders it for both proxies) to a size no larger than the threshold.",
	Rationale:   "'Don't process JSON blobs > 10MB: JSON.parse is synchronous and CPU intensive.' A huge body blocks a worker and buffers in memory; refusing it with 413 at the edge keeps it away from every service.",
	CheckResource: func(r Resource, t Thresholds) []string {
		var out []string
		for _, e := range conf.EdgeConfigs(r) {
			switch e.Proxy {
			case conf.Nginx:
				m := e.Find(nginxBodyLimit)
				if m == nil {
					out = append(out, msgf("%s %s (nginx): no client_max_body_size", object.Display(r), e.Key))
					continue
				}
				n, ok := conf.NginxSize(m[1])
				switch {
				case !ok:
					out = append(out, msgf("%s %s (nginx): client_max_body_size %q is not a size", object.Display(r), e.Key, m[1]))
				case n == 0:
					out = append(out, msgf("%s %s (nginx): client_max_body_size 0 disables the limit", object.Display(r), e.Key))
				case n > t.MaxBodyBytes:
					out = append(out, msgf("%s %s (nginx): client_max_body_size %s (%d bytes) is above %d bytes", object.Display(r), e.Key, m[1], n, t.MaxBodyBytes))
				}
			case conf.HAProxy:
				m := e.Find(haproxyBodyLimit)
				if m == nil {
					out = append(out, msgf("%s %s (haproxy): no deny on the request body size (content-length or req.body_size)", object.Display(r), e.Key))
					continue
				}
				if n, _ := strconv.ParseInt(m[2], 10, 64); n > t.MaxBodyBytes {
					out = append(out, msgf("%s %s (haproxy): body limit %d bytes is above %d bytes", object.Display(r), e.Key, n, t.MaxBodyBytes))
				}
			}
		}
		return out
	},
})
