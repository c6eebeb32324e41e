package edge

import (
	"fmt"
	"strings"
)

// RenderHAProxy renders haproxy.cfg for the config: three frontends
// (https: TLS or TLS terminated upstream, HSTS, internal paths 404, routes
// by prefix, the rest 404; http: a permanent redirect only; status:
// /healthz and the Prometheus exporter at /metrics), leastconn over every
// pod with active HTTP health checks, pods discovered through DNS where a
// backend asks for it, gzip, a 413 above the body limit and a per-client
// rate limit from a stick table that only counts (no `stick on`: no
// session persistence).
func RenderHAProxy(c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("haproxy config: %w", err)
	}
	if c.TLS != nil && c.TLS.KeyFile != c.TLS.CertFile+".key" {
		return "", fmt.Errorf("haproxy config: tls keyFile %q: must be certFile+\".key\" (%q), where HAProxy looks for it", c.TLS.KeyFile, c.TLS.CertFile+".key")
	}
	c = c.withDefaults()
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Rendered by scaleplane (components/edge); do not edit by hand.")
	w("global")
	w("  log stderr format raw local0 warning")
	w("  pidfile %s/haproxy.pid", c.RuntimeDir)
	w("  maxconn %d", c.MaxConnections)
	if c.TLS != nil {
		w("  # Mozilla intermediate: TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305) and TLS 1.3.")
		w("  ssl-default-bind-ciphers %s", tls12Ciphers)
		w("  ssl-default-bind-ciphersuites %s", tls13Suites)
		w("  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets")
	}
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
	proxyLines := func() {
		if !c.ProxyProtocol.Enabled {
			return
		}
		w("  # PROXY headers are believed only from the load balancer's networks (these rules see the")
		w("  # connection's own address); after them, src is the client's address everywhere.")
		w("  tcp-request connection reject unless { src %s }", strings.Join(c.ProxyProtocol.TrustedCIDRs, " "))
	}
	pp := ""
	if c.ProxyProtocol.Enabled {
		pp = " accept-proxy"
	}

	w("frontend http")
	w("  # A permanent redirect to https on the client's port 443, nothing proxied.")
	w("  bind %s%s", bindAddr(c, c.HTTPPort), pp)
	proxyLines()
	w("  http-request redirect code 308 location https://%%[req.hdr(host),field(1,:)]%%[pathq]")

	w("frontend https")
	if c.TLS != nil {
		w("  # The key is read from <crt>.key (ssl-load-extra-files' default).")
		w("  bind %s ssl crt %s alpn h2,http/1.1%s", bindAddr(c, c.HTTPSPort), c.TLS.CertFile, pp)
	} else {
		w("  # TLS is terminated by the cloud load balancer, which sends plain HTTP here.")
		w("  bind %s%s", bindAddr(c, c.HTTPSPort), pp)
	}
	proxyLines()
	w("  # Strict-Transport-Security on every answer, the edge's own 404/429/413 included.")
	w("  http-after-response set-header Strict-Transport-Security %q", c.hsts())
	w("  # Count requests per client address; the table only tracks rates, it never pins a client to a server.")
	w("  stick-table type ip size 100k expire 10s store http_req_rate(1s)")
	w("  http-request track-sc0 src")
	w("  # The edge's own 429 says when to retry, as the gateway's does.")
	w("  http-request deny deny_status 429 hdr Retry-After 1 if { sc_http_req_rate(0) gt %d }", c.RateLimitPerSecond+c.RateBurst)
	w("  # Internal paths (metrics, profiling, probes) under any prefix, percent-encoded or not, get 404;")
	w("  # so do dot segments, which the public API never uses and which could walk out of a route")
	w("  # (HAProxy 2.6's normalize-uri is experimental, so the path is judged as sent, decoded).")
	w("  http-request deny deny_status 404 if { path,url_dec -m reg -i %s }", internalPathRegex())
	w("  http-request deny deny_status 404 if { path,url_dec -m reg %s }", dotSegmentRegex)
	w("  # Whatever no route names does not exist here.")
	var prefixes []string
	for _, be := range c.ordered() {
		prefixes = append(prefixes, be.PathPrefix)
	}
	w("  acl routed path_beg %s", strings.Join(prefixes, " "))
	w("  http-request deny deny_status 404 unless routed")
	w("  # Refuse bodies over the limit with 413 (chunked bodies are bounded by the gateway's own reader).")
	w("  http-request deny deny_status 413 if { req.hdr_val(content-length) gt %d }", c.BodyLimitBytes)
	w("  # Exactly the address the edge saw (after the PROXY protocol, if on): a client's own X-Forwarded-For is dropped.")
	w("  http-request set-header X-Forwarded-For %%[src]")
	w("  http-request set-header X-Real-IP %%[src]")
	w("  http-request set-header X-Forwarded-Proto https")
	w("  http-request set-header X-Request-ID %%[uuid()] unless { req.hdr(x-request-id) -m found }")
	w("  http-request set-var(txn.request_id) req.hdr(x-request-id)")
	w("  http-response set-header X-Request-ID %%[var(txn.request_id)]")
	w("  compression algo gzip")
	w("  compression type application/json text/plain application/javascript text/css")
	for _, be := range c.ordered() {
		w("  use_backend %s if { path_beg %s }", be.Name, be.PathPrefix)
	}

	w("frontend status")
	w("  # The kubelet's probe and Prometheus; not behind the load balancer.")
	w("  bind %s", bindAddr(c, c.StatusPort))
	w("  http-request return status 200 content-type text/plain string ok if { path /healthz }")
	w("  http-request use-service prometheus-exporter if { path /metrics }")
	w("  http-request deny deny_status 404")

	for _, be := range c.Backends {
		w("backend %s", be.Name)
		w("  # Least connections over every pod; no cookie or stick persistence: any pod serves any client.")
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

// dotSegmentRegex matches a "." or ".." path segment.
const dotSegmentRegex = `(^|/)\\.\\.?(/|$)`

// bindAddr is HAProxy's "[host]:port" (":port" for all addresses).
func bindAddr(c Config, port int) string {
	if c.ListenHost == "" {
		return ":" + itoa(port)
	}
	return c.listen(port)
}
