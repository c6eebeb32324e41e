package edge

import (
	"fmt"
	"strings"
)

// RenderNginx renders nginx.conf for the config. The file is complete
// (it is started with `nginx -c`), writes nothing outside RuntimeDir and
// logs to stderr, so it runs with a read-only root filesystem.
//
// Three servers: the https listener (TLS or TLS terminated upstream,
// HSTS, internal paths 404, routes by prefix, the rest 404), the http
// listener (a permanent redirect and nothing else) and the status
// listener (/healthz). Nginx does not balance across pods: see the package doc.
func RenderNginx(c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("nginx config: %w", err)
	}
	c = c.withDefaults()
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	rd := c.RuntimeDir
	pp := ""
	if c.ProxyProtocol.Enabled {
		pp = " proxy_protocol"
	}
	hsts := fmt.Sprintf("add_header Strict-Transport-Security %q always;", c.hsts())
	w("# Rendered by scaleplane (components/edge); do not edit by hand.")
	w("worker_processes auto;")
	w("pid %s/nginx.pid;", rd)
	w("error_log stderr warn;")
	w("events { worker_connections %d; }", c.MaxConnections)
	w("http {")
	w("  access_log /dev/stdout;")
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		w("  %s_temp_path %s/%s_temp;", d, rd, d)
	}
	w("  server_tokens off;")
	if c.ProxyProtocol.Enabled {
		w("  # The client's address is the PROXY protocol header's, believed only from the load balancer's networks;")
		w("  # $remote_addr (logs, rate limit, X-Forwarded-For) is that address from here on.")
		for _, cidr := range c.ProxyProtocol.TrustedCIDRs {
			w("  set_real_ip_from %s;", cidr)
		}
		w("  real_ip_header proxy_protocol;")
	}
	w("  # Refuse bodies over the limit with 413 before they reach a service.")
	w("  client_max_body_size %d;", c.BodyLimitBytes)
	w("  # First-line rate limit per client address; the gateway's Redis limiter is the precise one.")
	w("  limit_req_zone $binary_remote_addr zone=perclient:10m rate=%dr/s;", c.RateLimitPerSecond)
	w("  limit_req_status 429;")
	w("  gzip on;")
	w("  gzip_min_length 1024;")
	w("  gzip_proxied any;")
	w("  gzip_types application/json text/plain text/event-stream application/javascript text/css;")
	w("  # Keep the caller's request id, or make one.")
	w("  map $http_x_request_id $edge_request_id { default $http_x_request_id; \"\" $request_id; }")
	w("  map $http_upgrade $connection_upgrade { default upgrade; \"\" \"\"; }")
	for _, be := range c.Backends {
		w("  upstream %s {", be.Name)
		w("    # How this balances: open-source nginx resolves names only at start, so the server is the")
		w("    # Service's ClusterIP and kube-proxy picks a pod for each new upstream connection; keepalive")
		w("    # connections are reused. Nginx itself does not balance across pods (HAProxy does, by least connections).")
		w("    # No ip_hash or cookie affinity: any pod serves any client.")
		for _, s := range be.Servers {
			w("    server %s max_fails=%d fail_timeout=%ds;", s, c.MaxFails, c.FailTimeoutSeconds)
		}
		w("    keepalive %d;", c.KeepaliveConnections)
		w("  }")
	}

	w("  # http: a permanent redirect to https on the client's port 443, nothing proxied.")
	w("  server {")
	w("    listen %s%s reuseport;", c.listen(c.HTTPPort), pp)
	w("    location / { return 308 https://$host$request_uri; }")
	w("  }")

	w("  # https: the public API only.")
	w("  server {")
	if c.TLS != nil {
		w("    listen %s ssl http2%s reuseport;", c.listen(c.HTTPSPort), pp)
		w("    ssl_certificate %s;", c.TLS.CertFile)
		w("    ssl_certificate_key %s;", c.TLS.KeyFile)
		w("    # Mozilla intermediate: TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305) and TLS 1.3.")
		w("    ssl_protocols TLSv1.2 TLSv1.3;")
		w("    ssl_ciphers %s;", tls12Ciphers)
		w("    ssl_prefer_server_ciphers off;")
		w("    ssl_session_timeout 1d;")
		w("    ssl_session_cache shared:edgetls:10m;")
		w("    ssl_session_tickets off;")
	} else {
		w("    # TLS is terminated by the cloud load balancer, which sends plain HTTP here.")
		w("    listen %s%s reuseport;", c.listen(c.HTTPSPort), pp)
	}
	w("    %s", hsts)
	w("    # The edge's own 429 says when to retry, as the gateway's does.")
	w("    error_page 429 @ratelimited;")
	w("    location @ratelimited { %s add_header Retry-After 1 always; return 429 \"too many requests\\n\"; }", hsts)
	w("    # Internal paths (metrics, profiling, probes) are never served here, under any prefix.")
	w("    location ~* \"%s\" { %s return 404; }", internalPathRegex(), hsts)
	hasRoot := false
	for _, be := range c.ordered() {
		hasRoot = hasRoot || be.PathPrefix == "/"
		w("    location %s {", be.PathPrefix)
		if c.RateBurst > 0 {
			w("      limit_req zone=perclient burst=%d nodelay;", c.RateBurst)
		} else {
			w("      limit_req zone=perclient;")
		}
		w("      proxy_pass http://%s;", be.Name)
		w("      proxy_http_version 1.1;")
		w("      proxy_set_header Connection $connection_upgrade;")
		w("      proxy_set_header Upgrade $http_upgrade;")
		w("      proxy_set_header Host $host;")
		w("      proxy_set_header X-Request-ID $edge_request_id;")
		w("      # Exactly the address the edge saw (after the PROXY protocol, if on): a client's own X-Forwarded-For is dropped.")
		w("      proxy_set_header X-Forwarded-For $remote_addr;")
		w("      proxy_set_header X-Real-IP $remote_addr;")
		w("      proxy_set_header X-Forwarded-Proto https;")
		w("      proxy_set_header traceparent $http_traceparent;")
		w("      proxy_set_header tracestate $http_tracestate;")
		w("      proxy_connect_timeout 2s;")
		w("      proxy_read_timeout %ds;", c.ProxyTimeoutSeconds)
		w("      proxy_send_timeout %ds;", c.ProxyTimeoutSeconds)
		w("      # Passive health checks: a failing server is skipped for fail_timeout.")
		w("      proxy_next_upstream error timeout http_502 http_503;")
		w("      proxy_next_upstream_tries 2;")
		w("      # Server-Sent Events must not be buffered.")
		w("      proxy_buffering off;")
		w("      add_header X-Request-ID $edge_request_id always;")
		w("      %s", hsts)
		w("    }")
	}
	if !hasRoot {
		w("    # Whatever no route names does not exist here.")
		w("    location / { return 404; }")
	}
	w("  }")

	w("  # status: the kubelet's probe; not behind the load balancer.")
	w("  server {")
	w("    listen %s reuseport;", c.listen(c.StatusPort))
	w("    access_log off;")
	w("    location = /healthz { default_type text/plain; return 200 \"ok\\n\"; }")
	w("    location / { return 404; }")
	w("  }")
	w("}")
	return b.String(), nil
}
