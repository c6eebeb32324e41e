package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testConfig() Config {
	return Config{
		HTTPSPort: 8443, HTTPPort: 8080, StatusPort: 8081, RuntimeDir: "/tmp", BodyLimitBytes: 1 << 20,
		TLS:                &TLSFiles{CertFile: "/etc/edge-tls/edge.pem", KeyFile: "/etc/edge-tls/edge.pem.key"},
		RateLimitPerSecond: 100, RateBurst: 200,
		Backends: []Backend{
			{Name: "gateway", PathPrefix: "/v1/", Servers: []string{"gateway.ns.svc.cluster.local:8080"},
				Discovery: &Discovery{FQDN: "gateway-headless.ns.svc.cluster.local", Port: 8080, Slots: 10}, HealthPath: "/readyz"},
			{Name: "events", PathPrefix: "/v1/events", Servers: []string{"10.0.0.1:8080", "10.0.0.2:8080"}},
		},
	}
}

// stickyPatterns are the session-persistence forms of both proxies; the
// articles keep state in Redis, so none may appear.
var stickyPatterns = []string{"ip_hash", "sticky", "hash $cookie", "cookie ", "stick on", "stick match", "stick store", "balance source"}

func TestRenderNginxAppliesTheEdgeRules(t *testing.T) {
	conf, err := RenderNginx(testConfig())
	require.NoError(t, err, "render nginx")
	for _, want := range []string{
		"keepalive 64;", "max_fails=3 fail_timeout=10s",
		"client_max_body_size 1048576;", "rate=100r/s", "burst=200 nodelay", "limit_req_status 429;",
		"gzip on;", "X-Request-ID $edge_request_id", "traceparent $http_traceparent",
		"listen 8443 ssl http2 reuseport;", "listen 8080 reuseport;", "listen 8081 reuseport;",
		"ssl_certificate /etc/edge-tls/edge.pem;", "ssl_certificate_key /etc/edge-tls/edge.pem.key;",
		"ssl_protocols TLSv1.2 TLSv1.3;", "ssl_ciphers " + tls12Ciphers + ";",
		`add_header Strict-Transport-Security "max-age=63072000" always;`,
		"return 308 https://$host$request_uri;",
		"proxy_set_header X-Forwarded-For $remote_addr;", "proxy_set_header X-Forwarded-Proto https;",
		`location ~* "(^|/)(metrics|debug|healthz|readyz|livez)(/|$)"`,
		"location = /healthz", "pid /tmp/nginx.pid;",
		"location /v1/events {", "location /v1/ {", "location / { return 404; }",
	} {
		assert.Contains(t, conf, want, "nginx.conf must contain %q", want)
	}
	for _, bad := range append(stickyPatterns, "least_conn", "$proxy_add_x_forwarded_for", "proxy_protocol", "TLSv1.1", "TLSv1 ") {
		assert.NotContains(t, directives(conf), bad, "nginx.conf must not contain %q", bad)
	}
	assert.Contains(t, conf, "kube-proxy picks a pod for each new upstream connection", "the config says plainly how nginx balances")
}

func TestRenderHAProxyAppliesTheEdgeRules(t *testing.T) {
	conf, err := RenderHAProxy(testConfig())
	require.NoError(t, err, "render haproxy")
	for _, want := range []string{
		"balance leastconn", "option httpchk GET /readyz", "http-check expect status 200",
		"server-template gateway- 10 gateway-headless.ns.svc.cluster.local:8080 resolvers cluster",
		"deny_status 413 if { req.hdr_val(content-length) gt 1048576 }",
		"deny_status 429 hdr Retry-After 1 if { sc_http_req_rate(0) gt 300 }", "compression algo gzip",
		"X-Request-ID %[uuid()]",
		"bind :8443 ssl crt /etc/edge-tls/edge.pem alpn h2,http/1.1\n", "bind :8080\n", "bind :8081\n",
		"ssl-default-bind-ciphers " + tls12Ciphers, "ssl-default-bind-options ssl-min-ver TLSv1.2",
		`http-after-response set-header Strict-Transport-Security "max-age=63072000"`,
		"http-request redirect code 308 location https://%[req.hdr(host),field(1,:)]%[pathq]",
		"http-request set-header X-Forwarded-For %[src]", "http-request set-header X-Forwarded-Proto https",
		"http-request deny deny_status 404 if { path,url_dec -m reg -i (^|/)(metrics|debug|healthz|readyz|livez)(/|$) }",
		"acl routed path_beg /v1/events /v1/", "http-request deny deny_status 404 unless routed",
		"use_backend events if { path_beg /v1/events }", "use_backend gateway if { path_beg /v1/ }",
	} {
		assert.Contains(t, conf, want, "haproxy.cfg must contain %q", want)
	}
	for _, bad := range append(stickyPatterns, "accept-proxy", "monitor-uri", "default_backend") {
		assert.NotContains(t, directives(conf), bad, "haproxy.cfg must not contain %q", bad)
	}
	assert.NotContains(t, conf, "server gateway-1 gateway.ns", "with discovery HAProxy balances over pods, not the ClusterIP")
	assert.Less(t, strings.Index(conf, "use_backend events"), strings.Index(conf, "use_backend gateway"),
		"specific routes come before the shorter prefix")
	https := section(conf, "frontend https")
	assert.NotContains(t, https, "prometheus-exporter", "the public listener never serves /metrics")
	assert.NotContains(t, section(conf, "frontend http"), "use_backend", "the http listener proxies nothing")
	assert.Contains(t, section(conf, "frontend status"), "use-service prometheus-exporter if { path /metrics }", "the exporter is on the status listener")
}

func TestRenderTLSTerminatedUpstreamAndProxyProtocol(t *testing.T) {
	c := testConfig()
	c.TLS, c.TLSTerminatedUpstream = nil, true
	c.HSTSMaxAgeSeconds = 600
	c.ProxyProtocol = ProxyProtocol{Enabled: true, TrustedCIDRs: []string{"10.0.0.0/16", "10.1.0.0/16"}}
	ng, err := RenderNginx(c)
	require.NoError(t, err, "render nginx")
	for _, want := range []string{
		"listen 8443 proxy_protocol reuseport;", "listen 8080 proxy_protocol reuseport;", "listen 8081 reuseport;",
		"set_real_ip_from 10.0.0.0/16;", "set_real_ip_from 10.1.0.0/16;", "real_ip_header proxy_protocol;",
		`add_header Strict-Transport-Security "max-age=600" always;`, "proxy_set_header X-Forwarded-Proto https;",
	} {
		assert.Contains(t, ng, want, "nginx.conf must contain %q", want)
	}
	assert.NotContains(t, ng, "ssl", "no TLS at the edge when the load balancer terminates it")
	hp, err := RenderHAProxy(c)
	require.NoError(t, err, "render haproxy")
	for _, want := range []string{
		"bind :8443 accept-proxy\n", "bind :8080 accept-proxy\n", "bind :8081\n",
		"tcp-request connection reject unless { src 10.0.0.0/16 10.1.0.0/16 }",
		`Strict-Transport-Security "max-age=600"`,
	} {
		assert.Contains(t, hp, want, "haproxy.cfg must contain %q", want)
	}
	assert.NotContains(t, hp, " ssl", "no TLS at the edge when the load balancer terminates it")
	assert.NotContains(t, section(hp, "frontend status"), "accept-proxy", "the kubelet sends no PROXY header")
}

func TestConfigValidateNamesTheProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"privileged port":   {func(c *Config) { c.HTTPSPort = 443 }, "httpsPort 443"},
		"shared port":       {func(c *Config) { c.StatusPort = 8080 }, "statusPort 8080: already used by httpPort"},
		"no tls":            {func(c *Config) { c.TLS = nil }, "tls: required"},
		"both tls modes":    {func(c *Config) { c.TLSTerminatedUpstream = true }, "exactly one"},
		"tls without key":   {func(c *Config) { c.TLS = &TLSFiles{CertFile: "/c"} }, `keyFile ""`},
		"negative hsts":     {func(c *Config) { c.HSTSMaxAgeSeconds = -1 }, "hstsMaxAgeSeconds -1"},
		"proxy no cidrs":    {func(c *Config) { c.ProxyProtocol.Enabled = true }, "proxyProtocol.trustedCidrs"},
		"proxy bad cidr":    {func(c *Config) { c.ProxyProtocol = ProxyProtocol{Enabled: true, TrustedCIDRs: []string{"10.0.0.1"}} }, `"10.0.0.1": must be a CIDR`},
		"cidrs when off":    {func(c *Config) { c.ProxyProtocol.TrustedCIDRs = []string{"10.0.0.0/8"} }, "set only when proxyProtocol.enabled"},
		"no body limit":     {func(c *Config) { c.BodyLimitBytes = 0 }, "bodyLimitBytes 0"},
		"no rate limit":     {func(c *Config) { c.RateLimitPerSecond = 0 }, "rateLimitPerSecond 0"},
		"no backends":       {func(c *Config) { c.Backends = nil }, "at least one"},
		"relative prefix":   {func(c *Config) { c.Backends[0].PathPrefix = "api" }, `path prefix "api"`},
		"odd prefix":        {func(c *Config) { c.Backends[0].PathPrefix = "/v1/{x}" }, `path prefix "/v1/{x}"`},
		"internal prefix":   {func(c *Config) { c.Backends[0].PathPrefix = "/v1/metrics/" }, `contains the internal path "metrics"`},
		"duplicate prefix":  {func(c *Config) { c.Backends[1].PathPrefix = "/v1/" }, `already routed to "gateway"`},
		"bad server":        {func(c *Config) { c.Backends[1].Servers = []string{"nohost"} }, `server "nohost": must be host:port`},
		"no runtime dir":    {func(c *Config) { c.RuntimeDir = "" }, "runtimeDir"},
		"broken discovery":  {func(c *Config) { c.Backends[0].Discovery.Slots = 0 }, "discovery: needs fqdn, port and slots"},
		"backend no target": {func(c *Config) { c.Backends[1].Servers = nil }, `backend "events": needs servers or discovery`},
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig()
			c.Backends = append([]Backend(nil), c.Backends...)
			d := *c.Backends[0].Discovery
			c.Backends[0].Discovery = &d
			tc.mutate(&c)
			_, errN := RenderNginx(c)
			_, errH := RenderHAProxy(c)
			require.Error(t, errN, "nginx render must refuse %s", name)
			require.Error(t, errH, "haproxy render must refuse %s", name)
			assert.Contains(t, errN.Error(), tc.want, "nginx error names the problem")
			assert.Contains(t, errH.Error(), tc.want, "haproxy error names the problem")
		})
	}
}

func TestHAProxyNeedsTheKeyBesideTheCertificate(t *testing.T) {
	c := testConfig()
	c.TLS = &TLSFiles{CertFile: "/etc/edge-tls/tls.crt", KeyFile: "/etc/edge-tls/tls.key"}
	_, err := RenderNginx(c)
	require.NoError(t, err, "nginx names both files")
	_, err = RenderHAProxy(c)
	require.Error(t, err, "HAProxy finds the key only at <crt>.key")
	assert.Contains(t, err.Error(), `"/etc/edge-tls/tls.crt.key"`, "the error says where the key must be")
}

func TestRootRouteStillHidesInternalPaths(t *testing.T) {
	c := testConfig()
	c.Backends = append(c.Backends, Backend{Name: "site", PathPrefix: "/", Servers: []string{"site:8080"}})
	ng, err := RenderNginx(c)
	require.NoError(t, err, "render nginx")
	https := ng[strings.Index(ng, "# https:"):strings.Index(ng, "# status:")]
	assert.NotContains(t, https, "location / { return 404; }", "with a root route nothing is unrouted")
	assert.Contains(t, ng, "location ~* \"(^|/)(metrics", "the internal-path deny stays (regex locations win over prefixes)")
	hp, err := RenderHAProxy(c)
	require.NoError(t, err, "render haproxy")
	assert.Less(t, strings.Index(hp, "path,url_dec -m reg"), strings.Index(hp, "use_backend site"), "internal paths are denied before routing")
	assert.Less(t, strings.Index(hp, "use_backend gateway"), strings.Index(hp, "use_backend site"), "the root route is tried last")
}

// section is the text of one HAProxy section, up to the next unindented line.
func section(conf, header string) string {
	i := strings.Index(conf, "\n"+header+"\n")
	if i < 0 {
		return ""
	}
	rest := conf[i+len(header)+2:]
	for j, l := range strings.Split(rest, "\n") {
		if l != "" && l[0] != ' ' {
			return strings.Join(strings.Split(rest, "\n")[:j], "\n")
		}
	}
	return rest
}

func TestParseKind(t *testing.T) {
	k, err := ParseKind("haproxy")
	require.NoError(t, err, "haproxy is a kind")
	assert.Equal(t, KindHAProxy, k, "parsed kind")
	_, err = ParseKind("envoy")
	require.Error(t, err, "envoy is not supported")
	assert.Contains(t, err.Error(), `"envoy"`, "error names the value")
	assert.Contains(t, err.Error(), "nginx", "error lists what is allowed")
}

// directives drops comment lines, which may name what the config avoids.
func directives(conf string) string {
	var out []string
	for _, l := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
