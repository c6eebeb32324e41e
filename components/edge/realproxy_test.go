package edge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// The rendered configs are proven by the real Debian binaries: several
// variants pass `nginx -t` and `haproxy -c`, and a started proxy in front
// of two local backends spreads requests over both, answers /healthz,
// compresses JSON, refuses a 2 MiB body with 413 and rate-limits with 429.

const (
	requestsPerBackendCheck = 40
	clientTimeout           = 5 * time.Second
)

// backends starts n HTTP servers that answer with their own index and
// count what they served.
func backends(t *testing.T, n int) ([]string, func() []int) {
	t.Helper()
	var mu sync.Mutex
	hits := make([]int, n)
	var addrs []string
	for i := range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			mu.Lock()
			hits[i]++
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Backend", fmt.Sprint(i))
			w.Header().Set("X-Seen-Request-ID", r.Header.Get("X-Request-ID"))
			w.Header().Set("X-Seen-Traceparent", r.Header.Get("traceparent"))
			// Big enough to be compressed (gzip_min_length).
			fmt.Fprintf(w, `{"backend":%d,"pad":%q}`, i, strings.Repeat("x", 4096))
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs, func() []int { mu.Lock(); defer mu.Unlock(); return append([]int(nil), hits...) }
}

func loopbackConfig(port int, dir string, servers []string) Config {
	return Config{
		ListenHost: "127.0.0.1", ListenPort: port, RuntimeDir: dir,
		BodyLimitBytes: 1 << 20, RateLimitPerSecond: 1000, RateBurst: 1000,
		Backends: []Backend{{Name: "gateway", PathPrefix: "/", Servers: servers, HealthPath: "/"}},
	}
}

// variants are configs that differ in the knobs users turn.
func variants(port int, dir string) map[string]Config {
	base := loopbackConfig(port, dir, []string{"127.0.0.1:9", "localhost:10"})
	small := base
	small.BodyLimitBytes, small.RateLimitPerSecond, small.RateBurst = 1024, 1, 0
	routed := base
	routed.Backends = append([]Backend{{Name: "events", PathPrefix: "/v1/events", Servers: []string{"127.0.0.1:11"}}}, base.Backends...)
	discovery := base
	discovery.Resolver = "127.0.0.1:53"
	discovery.Backends = []Backend{{Name: "gateway", PathPrefix: "/", Servers: []string{"127.0.0.1:9"},
		Discovery: &Discovery{FQDN: "gateway-headless.scaleplane.svc.cluster.local", Port: 8080, Slots: 30}}}
	return map[string]Config{"base": base, "small-limits": small, "routed": routed, "discovery": discovery}
}

// proxy is what the tests need of realserver.Nginx and realserver.HAProxy.
type proxy interface {
	Port() int
	Dir() string
	Addr() string
	Check(conf string) error
	Start(conf string) error
}

// proxies pairs each real binary with its renderer.
var proxies = []struct {
	name   string
	new    func(t *testing.T) proxy
	render func(Config) (string, error)
}{
	{"nginx", func(t *testing.T) proxy { return realservertest.MustNewNginx(t) }, RenderNginx},
	{"haproxy", func(t *testing.T) proxy { return realservertest.MustNewHAProxy(t) }, RenderHAProxy},
}

func TestRenderedConfigsPassTheRealBinaries(t *testing.T) {
	for name, c := range variants(18080, t.TempDir()) {
		for _, px := range proxies {
			t.Run(px.name+"/"+name, func(t *testing.T) {
				p := px.new(t)
				c.ListenPort, c.RuntimeDir = p.Port(), p.Dir()
				conf, err := px.render(c)
				require.NoError(t, err, "render")
				require.NoError(t, p.Check(conf), "%s must accept the %s config:\n%s", px.name, name, conf)
			})
		}
	}
}

func TestRealProxiesServeThroughTheRenderedConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		t.Run(px.name, func(t *testing.T) {
			servers, hits := backends(t, 2)
			p := px.new(t)
			conf, err := px.render(loopbackConfig(p.Port(), p.Dir(), servers))
			require.NoError(t, err, "render %s", px.name)
			require.NoError(t, p.Start(conf), "start %s", px.name)
			exerciseEdge(t, "http://"+p.Addr(), hits)
		})
	}
}

func TestRealProxiesRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		t.Run(px.name, func(t *testing.T) {
			servers, _ := backends(t, 1)
			p := px.new(t)
			c := loopbackConfig(p.Port(), p.Dir(), servers)
			c.RateLimitPerSecond, c.RateBurst = 1, 2
			conf, err := px.render(c)
			require.NoError(t, err, "render %s", px.name)
			require.NoError(t, p.Start(conf), "start %s", px.name)
			assertRateLimited(t, "http://"+p.Addr())
		})
	}
}

func assertRateLimited(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: clientTimeout}
	codes := map[int]int{}
	for range 10 {
		resp, err := client.Get(base + "/v1/users/1")
		require.NoError(t, err, "GET through the edge")
		_ = resp.Body.Close()
		codes[resp.StatusCode]++
	}
	assert.Positive(t, codes[http.StatusOK], "the first requests pass: %v", codes)
	assert.Positive(t, codes[http.StatusTooManyRequests], "10 quick requests over a 1/s limit with burst 2 get 429s: %v", codes)
}

func exerciseEdge(t *testing.T, base string, hits func() []int) {
	t.Helper()
	client := &http.Client{Timeout: clientTimeout}

	resp, err := client.Get(base + "/healthz")
	require.NoError(t, err, "GET /healthz")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "/healthz is answered by the edge itself")

	for range requestsPerBackendCheck {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/users/1", nil)
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		resp, err := client.Do(req)
		require.NoError(t, err, "GET through the edge")
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "proxied GET")
		assert.NotEmpty(t, resp.Header.Get("X-Seen-Request-ID"), "the edge adds a request id")
		assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", resp.Header.Get("X-Seen-Traceparent"), "traceparent passes through")
	}
	h := hits()
	assert.Positive(t, h[0], "backend 0 served requests: %v", h)
	assert.Positive(t, h[1], "backend 1 served requests: %v (no stickiness)", h)
	t.Logf("requests per backend: %v", h)

	req, _ := http.NewRequest(http.MethodGet, base+"/v1/users/1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	tr := &http.Transport{DisableCompression: true}
	resp, err = (&http.Client{Transport: tr, Timeout: clientTimeout}).Do(req)
	require.NoError(t, err, "GET with Accept-Encoding: gzip")
	_ = resp.Body.Close()
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), "JSON responses are gzip-compressed")

	// Like curl, announce the large body with Expect: 100-continue: the
	// proxy answers 413 from the headers, and the client never writes
	// into a connection the proxy has already closed.
	big := bytes.Repeat([]byte("a"), 2<<20)
	req, _ = http.NewRequest(http.MethodPost, base+"/v1/register", bytes.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	expecting := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{ExpectContinueTimeout: clientTimeout}}
	resp, err = expecting.Do(req)
	require.NoError(t, err, "POST 2 MiB")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a 2 MiB body is refused with 413")

	small := bytes.Repeat([]byte("a"), 512<<10)
	resp, err = client.Post(base+"/v1/register", "application/json", bytes.NewReader(small))
	require.NoError(t, err, "POST 512 KiB")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a body under the limit passes")
}
