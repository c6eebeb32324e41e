package edge

import (
	"fmt"
	"strings"
)

// RenderHAProxy renders haproxy.cfg for the config: leastconn with active
// HTTP health checks, pods discovered through DNS where a backend asks for
// it, gzip, a 413 above the body limit, a per-client rate limit from a
// stick table that only counts (no `stick on`: no session persistence) and
// Prometheus metrics on /metrics.
func RenderHAProxy(c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("haproxy config: %w", err)
	}
	c = c.withDefaults()
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Rendered by scaleplane (components/edge); do not edit by hand.")
	w("global")
	w("  log stderr format raw local0 warning")
	w("  pidfile %s/haproxy.pid", c.RuntimeDir)
	w("  maxconn %d", c.MaxConnections)
	w("defaults")
	w("  mode http")
	w("  log global")
	w("  option httplog")
	w("  timeout connect 2s")
	w("  timeout client %ds", c.ProxyTimeoutSeconds)
	w("  timeout server %ds", c.ProxyTimeoutSeconds)
	w("  timeout http-request 10s")
	w("  timeout http-keep-alive 10s")
	w("  retries 2")
	w("  option redispatch")
	usesDNS := false
	for _, be := range c.Backends {
		usesDNS = usesDNS || be.Discovery != nil
	}
	if usesDNS {
		w("resolvers cluster")
		if c.Resolver != "" {
			w("  nameserver dns %s", c.Resolver)
		} else {
			w("  parse-resolv-conf")
		}
		w("  hold valid 5s")
		w("  accepted_payload_size 8192")
	}
	w("frontend public")
	w("  bind %s", bindAddr(c))
	w("  monitor-uri /healthz")
	w("  http-request use-service prometheus-exporter if { path /metrics }")
	w("  # Refuse bodies over the limit with 413 (chunked bodies are bounded by the gateway's own reader).")
	w("  http-request deny deny_status 413 if { req.hdr_val(content-length) gt %d }", c.BodyLimitBytes)
	w("  # Count requests per client address; the table only tracks rates, it never pins a client to a server.")
	w("  stick-table type ip size 100k expire 10s store http_req_rate(1s)")
	w("  http-request track-sc0 src")
	w("  http-request deny deny_status 429 if { sc_http_req_rate(0) gt %d }", c.RateLimitPerSecond+c.RateBurst)
	w("  http-request set-header X-Request-ID %%[uuid()] unless { req.hdr(x-request-id) -m found }")
	w("  http-request set-var(txn.request_id) req.hdr(x-request-id)")
	w("  http-response set-header X-Request-ID %%[var(txn.request_id)]")
	w("  compression algo gzip")
	w("  compression type application/json text/plain application/javascript text/css")
	for _, be := range c.ordered() {
		if be.PathPrefix == "/" {
			w("  default_backend %s", be.Name)
		} else {
			w("  use_backend %s if { path_beg %s }", be.Name, be.PathPrefix)
		}
	}
	for _, be := range c.Backends {
		w("backend %s", be.Name)
		w("  # Least connections; no cookie or stick persistence: any pod serves any client.")
		w("  balance leastconn")
		health := be.HealthPath
		if health == "" {
			health = "/healthz"
		}
		w("  option httpchk GET %s", health)
		w("  http-check expect status 200")
		w("  default-server check inter 2s fall %d rise 2 observe layer7 error-limit %d on-error mark-down", c.MaxFails, c.MaxFails)
		w("  http-reuse safe")
		if d := be.Discovery; d != nil {
			// One slot per possible pod; empty slots stay down until DNS fills them.
			w("  server-template %s- %d %s:%d resolvers cluster init-addr none resolve-prefer ipv4", be.Name, d.Slots, d.FQDN, d.Port)
			continue
		}
		for i, s := range be.Servers {
			w("  server %s-%d %s", be.Name, i+1, s)
		}
	}
	return b.String(), nil
}

// bindAddr is HAProxy's "[host]:port" (":port" for all addresses).
func bindAddr(c Config) string {
	if c.ListenHost == "" {
		return ":" + itoa(c.ListenPort)
	}
	return c.listen()
}
