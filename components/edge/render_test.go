package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testConfig() Config {
	return Config{
		ListenPort: 8080, RuntimeDir: "/tmp", BodyLimitBytes: 1 << 20,
		RateLimitPerSecond: 100, RateBurst: 200,
		Backends: []Backend{
			{Name: "gateway", PathPrefix: "/", Servers: []string{"gateway.ns.svc.cluster.local:8080"},
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
		"least_conn;", "keepalive 64;", "max_fails=3 fail_timeout=10s",
		"client_max_body_size 1048576;", "rate=100r/s", "burst=200 nodelay", "limit_req_status 429;",
		"gzip on;", "X-Request-ID $edge_request_id", "traceparent $http_traceparent",
		"location = /healthz", "listen 8080 reuseport;", "pid /tmp/nginx.pid;",
		"location /v1/events {", "location / {",
	} {
		assert.Contains(t, conf, want, "nginx.conf must contain %q", want)
	}
	for _, bad := range stickyPatterns {
		assert.NotContains(t, directives(conf), bad, "nginx.conf must not pin clients (%q)", bad)
	}
}

func TestRenderHAProxyAppliesTheEdgeRules(t *testing.T) {
	conf, err := RenderHAProxy(testConfig())
	require.NoError(t, err, "render haproxy")
	for _, want := range []string{
		"balance leastconn", "option httpchk GET /readyz", "http-check expect status 200",
		"server-template gateway- 10 gateway-headless.ns.svc.cluster.local:8080 resolvers cluster",
		"deny_status 413 if { req.hdr_val(content-length) gt 1048576 }",
		"deny_status 429 if { sc_http_req_rate(0) gt 300 }", "compression algo gzip",
		"monitor-uri /healthz", "prometheus-exporter", "X-Request-ID %[uuid()]",
		"use_backend events if { path_beg /v1/events }", "default_backend gateway", "bind :8080",
	} {
		assert.Contains(t, conf, want, "haproxy.cfg must contain %q", want)
	}
	for _, bad := range stickyPatterns {
		assert.NotContains(t, directives(conf), bad, "haproxy.cfg must not pin clients (%q)", bad)
	}
	assert.NotContains(t, conf, "server gateway-1 gateway.ns", "with discovery HAProxy balances over pods, not the ClusterIP")
	assert.Less(t, strings.Index(conf, "use_backend events"), strings.Index(conf, "default_backend gateway"),
		"specific routes come before the default backend")
}

func TestConfigValidateNamesTheProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"privileged port":   {func(c *Config) { c.ListenPort = 80 }, "listenPort 80"},
		"no body limit":     {func(c *Config) { c.BodyLimitBytes = 0 }, "bodyLimitBytes 0"},
		"no rate limit":     {func(c *Config) { c.RateLimitPerSecond = 0 }, "rateLimitPerSecond 0"},
		"no backends":       {func(c *Config) { c.Backends = nil }, "at least one"},
		"no default route":  {func(c *Config) { c.Backends[0].PathPrefix = "/api" }, "exactly one must have path prefix"},
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
