package edge

import (
	"fmt"
	"strings"
)

// RenderNginx renders nginx.conf for the config. The file is complete
// (it is started with `nginx -c`), writes nothing outside RuntimeDir and
// logs to stderr, so it runs with a read-only root filesystem.
func RenderNginx(c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("nginx config: %w", err)
	}
	c = c.withDefaults()
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	rd := c.RuntimeDir
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
		w("    # Least connections; no ip_hash or cookie affinity: any pod serves any client.")
		w("    least_conn;")
		for _, s := range be.Servers {
			w("    server %s max_fails=%d fail_timeout=%ds;", s, c.MaxFails, c.FailTimeoutSeconds)
		}
		w("    keepalive %d;", c.KeepaliveConnections)
		w("  }")
	}
	w("  server {")
	w("    listen %s reuseport;", c.listen())
	w("    location = /healthz { access_log off; default_type text/plain; return 200 \"ok\\n\"; }")
	for _, be := range c.ordered() {
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
		w("      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
		w("      proxy_set_header X-Forwarded-Proto $scheme;")
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
		w("    }")
	}
	w("  }")
	w("}")
	return b.String(), nil
}
