package edge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// The rendered configs are proven by the real Debian binaries: every
// variant (TLS at the edge or upstream, PROXY protocol on or off) passes
// `nginx -t` and `haproxy -c`, and started proxies in front of local
// backends terminate TLS 1.2 and 1.3, redirect plain HTTP, add HSTS, hide
// the internal paths, overwrite a forged X-Forwarded-For, take the
// client's address from a PROXY v2 header (and rate-limit on it), and
// HAProxy's leastconn starves a slowed backend.

const (
	requestsPerBackendCheck = 40
	clientTimeout           = 5 * time.Second
	// publicPrefix is the gateway's route, as the stacks declare it.
	publicPrefix = "/v1/"
)

// seen is what a backend observed of one request.
type seen struct {
	XFF, RealIP, Proto string
}

// testBackends are HTTP servers that answer with their own index, count
// the API requests they served (not the proxies' health checks) and
// remember the forwarding headers of the last one.
type testBackends struct {
	addrs []string
	mu    sync.Mutex
	hits  []int
	last  seen
}

func (b *testBackends) Hits() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.hits...)
}

func (b *testBackends) Last() seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// backends starts n backends; delay[i], if given, slows backend i's API answers.
func backends(t *testing.T, n int, delay ...time.Duration) *testBackends {
	t.Helper()
	b := &testBackends{hits: make([]int, n)}
	for i := range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if r.URL.Path == "/healthz" {
				return
			}
			if i < len(delay) {
				time.Sleep(delay[i])
			}
			b.mu.Lock()
			b.hits[i]++
			b.last = seen{XFF: r.Header.Get("X-Forwarded-For"), RealIP: r.Header.Get("X-Real-IP"), Proto: r.Header.Get("X-Forwarded-Proto")}
			b.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Backend", fmt.Sprint(i))
			w.Header().Set("X-Seen-Request-ID", r.Header.Get("X-Request-ID"))
			w.Header().Set("X-Seen-Traceparent", r.Header.Get("traceparent"))
			w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
			// Big enough to be compressed (gzip_min_length).
			fmt.Fprintf(w, `{"backend":%d,"pad":%q}`, i, strings.Repeat("x", 4096))
		}))
		t.Cleanup(srv.Close)
		b.addrs = append(b.addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return b
}

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost,
// written where the rendered config reads them.
type testPKI struct {
	pool  *x509.CertPool
	files TLSFiles
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "CA key")
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scaleplane edge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err, "CA certificate")
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err, "parse CA")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "server key")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err, "server certificate")
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err, "marshal server key")

	// The names the component mounts the Secret's keys under.
	files := TLSFiles{CertFile: filepath.Join(dir, "edge.pem"), KeyFile: filepath.Join(dir, "edge.pem.key")}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	require.NoError(t, os.WriteFile(files.CertFile, chain, 0o644), "write certificate")
	require.NoError(t, os.WriteFile(files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600), "write key")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{pool: pool, files: files}
}

// edgeUnderTest is one proxy with its three loopback ports.
type edgeUnderTest struct {
	p                proxy
	https, http, sts int
}

func (e edgeUnderTest) url(port int, scheme, path string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path)
}

// loopbackConfig listens on loopback: the harness's port is the https
// listener (Start waits for it), the others are fresh free ports.
func loopbackConfig(t *testing.T, p proxy, servers []string) (Config, edgeUnderTest) {
	t.Helper()
	httpPort, err := realserver.FreePort()
	require.NoError(t, err, "free port for the http listener")
	statusPort, err := realserver.FreePort()
	require.NoError(t, err, "free port for the status listener")
	c := Config{
		ListenHost: "127.0.0.1", HTTPSPort: p.Port(), HTTPPort: httpPort, StatusPort: statusPort,
		RuntimeDir: p.Dir(), TLSTerminatedUpstream: true,
		BodyLimitBytes: 1 << 20, RateLimitPerSecond: 1000, RateBurst: 1000,
		Backends: []Backend{{Name: "gateway", PathPrefix: publicPrefix, Servers: servers, HealthPath: "/healthz"}},
	}
	return c, edgeUnderTest{p: p, https: p.Port(), http: httpPort, sts: statusPort}
}

// withTLS switches c to TLS at the edge with a fresh test PKI.
func withTLS(t *testing.T, c *Config) testPKI {
	t.Helper()
	pki := newTestPKI(t, c.RuntimeDir)
	c.TLSTerminatedUpstream = false
	c.TLS = &pki.files
	return pki
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
	mutations := map[string]func(t *testing.T, c *Config){
		"tls":               func(t *testing.T, c *Config) { withTLS(t, c) },
		"tls-upstream":      func(*testing.T, *Config) {},
		"tls+proxyprotocol": func(t *testing.T, c *Config) { withTLS(t, c); c.ProxyProtocol = testProxyProtocol },
		"tls-upstream+proxyprotocol": func(_ *testing.T, c *Config) {
			c.ProxyProtocol = ProxyProtocol{Enabled: true, TrustedCIDRs: []string{"10.0.0.0/16", "192.168.0.0/24"}}
		},
		"small-limits": func(t *testing.T, c *Config) {
			withTLS(t, c)
			c.BodyLimitBytes, c.RateLimitPerSecond, c.RateBurst, c.HSTSMaxAgeSeconds = 1024, 1, 0, 300
		},
		"routed-with-root": func(t *testing.T, c *Config) {
			withTLS(t, c)
			c.Backends = append(c.Backends,
				Backend{Name: "events", PathPrefix: "/v1/events", Servers: []string{"127.0.0.1:11"}},
				Backend{Name: "site", PathPrefix: "/", Servers: []string{"127.0.0.1:12"}})
		},
		"discovery": func(t *testing.T, c *Config) {
			withTLS(t, c)
			c.Resolver = "127.0.0.1:53"
			c.Backends[0].Discovery = &Discovery{FQDN: "gateway-headless.scaleplane.svc.cluster.local", Port: 8080, Slots: 30}
		},
	}
	for name, mutate := range mutations {
		for _, px := range proxies {
			t.Run(px.name+"/"+name, func(t *testing.T) {
				p := px.new(t)
				c, _ := loopbackConfig(t, p, []string{"127.0.0.1:9", "localhost:10"})
				mutate(t, &c)
				conf, err := px.render(c)
				require.NoError(t, err, "render")
				require.NoError(t, p.Check(conf), "%s must accept the %s config:\n%s", px.name, name, conf)
			})
		}
	}
}

// testProxyProtocol trusts loopback, where the test's "load balancer" is.
var testProxyProtocol = ProxyProtocol{Enabled: true, TrustedCIDRs: []string{"127.0.0.0/8"}}

// startEdge renders c for the proxy and starts it.
func startEdge(t *testing.T, render func(Config) (string, error), e edgeUnderTest, c Config) {
	t.Helper()
	conf, err := render(c)
	require.NoError(t, err, "render")
	require.NoError(t, e.p.Start(conf), "start the proxy with:\n%s", conf)
}

// tlsClient trusts the test CA; versions bound the protocol.
func tlsClient(pool *x509.CertPool, minV, maxV uint16, local net.Addr) *http.Client {
	d := &net.Dialer{Timeout: clientTimeout, LocalAddr: local}
	return &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: minV, MaxVersion: maxV},
	}}
}

func TestRealProxiesServeThroughTheRenderedConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		t.Run(px.name, func(t *testing.T) {
			be := backends(t, 2)
			p := px.new(t)
			c, e := loopbackConfig(t, p, be.addrs)
			pki := withTLS(t, &c)
			startEdge(t, px.render, e, c)
			exerciseEdge(t, tlsClient(pki.pool, tls.VersionTLS12, 0, nil), e, be)
		})
	}
}

func TestRealProxiesTLSRedirectAndInternalPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		t.Run(px.name, func(t *testing.T) {
			be := backends(t, 1)
			p := px.new(t)
			c, e := loopbackConfig(t, p, be.addrs)
			pki := withTLS(t, &c)
			startEdge(t, px.render, e, c)

			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				resp, err := tlsClient(pki.pool, v, v, nil).Get(e.url(e.https, "https", "/v1/users/1"))
				require.NoError(t, err, "a %s handshake succeeds", tls.VersionName(v))
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, "proxied over %s", tls.VersionName(v))
				assert.Equal(t, v, resp.TLS.Version, "negotiated version")
				assert.Equal(t, "max-age=63072000", resp.Header.Get("Strict-Transport-Security"), "HSTS on the https listener")
			}
			// Debian's OpenSSL refuses TLS 1.1 at its default security
			// level too; the render tests pin that our configs say so themselves.
			_, err := tlsClient(pki.pool, tls.VersionTLS11, tls.VersionTLS11, nil).Get(e.url(e.https, "https", "/v1/users/1"))
			require.Error(t, err, "a TLS 1.1 handshake is refused")

			before := be.Hits()[0]
			noFollow := &http.Client{Timeout: clientTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest(http.MethodPost, e.url(e.http, "http", "/v1/users/1?page=2"), nil)
			req.Host = "api.example.test:8080"
			resp, err := noFollow.Do(req)
			require.NoError(t, err, "plain HTTP request")
			_ = resp.Body.Close()
			assert.Contains(t, []int{http.StatusPermanentRedirect, http.StatusMovedPermanently}, resp.StatusCode, "plain HTTP is redirected permanently")
			assert.Equal(t, "https://api.example.test/v1/users/1?page=2", resp.Header.Get("Location"), "same host (port 443) and path")
			assert.Equal(t, before, be.Hits()[0], "the http listener proxies nothing")

			client := tlsClient(pki.pool, tls.VersionTLS12, 0, nil)
			for _, path := range []string{"/metrics", "/debug/pprof/", "/healthz", "/readyz", "/livez", "/v1/metrics",
				"/v1/debug/pprof/heap", "/v1/healthz", "/%6detrics", "/v1/../metrics", "/v1/%2e%2e/x", "/v1/users/../../x", "//metrics", "/METRICS", "/", "/v2/users"} {
				resp, err := client.Get(e.url(e.https, "https", path))
				require.NoError(t, err, "GET %s through the edge", path)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s is not served through the public listener", path)
				assert.NotEmpty(t, resp.Header.Get("Strict-Transport-Security"), "HSTS on the edge's own 404 for %s", path)
			}
			assert.Equal(t, before, be.Hits()[0], "no internal or unrouted path reached the backend")

			resp, err = http.Get(e.url(e.sts, "http", "/healthz"))
			require.NoError(t, err, "GET /healthz on the status listener")
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "/healthz is answered on the status port")
			if px.name == "haproxy" {
				resp, err = http.Get(e.url(e.sts, "http", "/metrics"))
				require.NoError(t, err, "GET /metrics on the status listener")
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, "the exporter answers on the status port")
				assert.Contains(t, string(body), "haproxy_process_", "Prometheus text from the exporter")
			}
		})
	}
}

func TestRealProxiesOverwriteForwardedFor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		for _, mode := range []string{"tls", "tls-upstream"} {
			t.Run(px.name+"/"+mode, func(t *testing.T) {
				be := backends(t, 1)
				p := px.new(t)
				c, e := loopbackConfig(t, p, be.addrs)
				client := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
					DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
				}}
				scheme := "http"
				if mode == "tls" {
					client = tlsClient(withTLS(t, &c).pool, tls.VersionTLS12, 0, &net.TCPAddr{IP: net.ParseIP("127.0.0.2")})
					scheme = "https"
				}
				startEdge(t, px.render, e, c)
				req, _ := http.NewRequest(http.MethodGet, e.url(e.https, scheme, "/v1/users/1"), nil)
				req.Header.Set("X-Forwarded-For", "6.6.6.6")
				req.Header.Set("X-Real-IP", "6.6.6.6")
				req.Header.Set("X-Forwarded-Proto", "http")
				resp, err := client.Do(req)
				require.NoError(t, err, "GET with a forged X-Forwarded-For from 127.0.0.2")
				_ = resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, "proxied")
				assert.Equal(t, seen{XFF: "127.0.0.2", RealIP: "127.0.0.2", Proto: "https"}, be.Last(),
					"the backend sees the address the edge saw, never the client's claim")
				assert.Equal(t, "max-age=63072000", resp.Header.Get("Strict-Transport-Security"), "HSTS in both TLS modes")
			})
		}
	}
}

// proxyV2Header is a PROXY protocol v2 header for a TCP/IPv4 connection
// from src to dst, as a load balancer writes it before any byte of the client's.
func proxyV2Header(src, dst *net.TCPAddr) []byte {
	var b bytes.Buffer
	b.WriteString("\r\n\r\n\x00\r\nQUIT\n")
	b.WriteByte(0x21) // version 2, command PROXY
	b.WriteByte(0x11) // AF_INET, STREAM
	_ = binary.Write(&b, binary.BigEndian, uint16(12))
	b.Write(src.IP.To4())
	b.Write(dst.IP.To4())
	_ = binary.Write(&b, binary.BigEndian, uint16(src.Port))
	_ = binary.Write(&b, binary.BigEndian, uint16(dst.Port))
	return b.Bytes()
}

// proxiedClient connects like a load balancer relaying the client at
// claimed: a fresh connection per request, each opened by a PROXY v2 header.
func proxiedClient(pool *x509.CertPool, claimed string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{Timeout: clientTimeout}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		dst := conn.RemoteAddr().(*net.TCPAddr)
		if _, err := conn.Write(proxyV2Header(&net.TCPAddr{IP: net.ParseIP(claimed), Port: 40000}, dst)); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return conn, nil
	}
	return &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
		DialContext: dial, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

func TestRealProxiesTakeTheClientFromProxyProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		t.Run(px.name, func(t *testing.T) {
			be := backends(t, 1)
			p := px.new(t)
			c, e := loopbackConfig(t, p, be.addrs)
			pki := withTLS(t, &c)
			c.ProxyProtocol = testProxyProtocol
			c.RateLimitPerSecond, c.RateBurst = 1, 2
			startEdge(t, px.render, e, c)

			req, _ := http.NewRequest(http.MethodGet, e.url(e.https, "https", "/v1/users/1"), nil)
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			resp, err := proxiedClient(pki.pool, "203.0.113.7").Do(req)
			require.NoError(t, err, "GET behind a PROXY v2 header")
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "proxied")
			assert.Equal(t, "203.0.113.7", be.Last().XFF, "the PROXY header's source is the client, the forged header is gone")

			noFollow := proxiedClient(nil, "203.0.113.7")
			noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err = noFollow.Get(e.url(e.http, "http", "/v1/me"))
			require.NoError(t, err, "plain HTTP behind a PROXY v2 header")
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusPermanentRedirect, resp.StatusCode, "the http listener speaks PROXY protocol too")

			// All connections come from 127.0.0.1: only a limit keyed on the
			// PROXY address exhausts one client's bucket and not another's.
			codes := map[int]int{}
			limited := proxiedClient(pki.pool, "203.0.113.7")
			for range 10 {
				resp, err := limited.Get(e.url(e.https, "https", "/v1/users/1"))
				require.NoError(t, err, "GET as 203.0.113.7")
				_ = resp.Body.Close()
				codes[resp.StatusCode]++
			}
			assert.Positive(t, codes[http.StatusTooManyRequests], "10 quick requests of one client over 1/s burst 2 get 429s: %v", codes)
			resp, err = proxiedClient(pki.pool, "203.0.113.8").Get(e.url(e.https, "https", "/v1/users/1"))
			require.NoError(t, err, "GET as 203.0.113.8")
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "another client behind the same load balancer has its own bucket")
			assert.Equal(t, "203.0.113.8", be.Last().XFF, "and is seen as itself")
		})
	}
}

func TestRealProxiesRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nginx and haproxy processes; skipped in -short mode")
	}
	for _, px := range proxies {
		t.Run(px.name, func(t *testing.T) {
			be := backends(t, 1)
			p := px.new(t)
			c, e := loopbackConfig(t, p, be.addrs)
			c.RateLimitPerSecond, c.RateBurst = 1, 2
			startEdge(t, px.render, e, c)
			client := &http.Client{Timeout: clientTimeout}
			codes := map[int]int{}
			var retryAfter string
			for range 10 {
				resp, err := client.Get(e.url(e.https, "http", "/v1/users/1"))
				require.NoError(t, err, "GET through the edge")
				_ = resp.Body.Close()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests {
					retryAfter = resp.Header.Get("Retry-After")
				}
			}
			assert.Positive(t, codes[http.StatusOK], "the first requests pass: %v", codes)
			assert.Positive(t, codes[http.StatusTooManyRequests], "10 quick requests over a 1/s limit with burst 2 get 429s: %v", codes)
			assert.Equal(t, "1", retryAfter, "the edge's own 429 says when to retry, as the gateway's does")
		})
	}
}

// TestHAProxyLeastConnStarvesASlowBackend proves `balance leastconn`: one
// of two backends answers 200 ms late, so it holds its connections longer
// and HAProxy, counting them, sends it markedly fewer requests. Round
// robin would split them evenly. Measured on the shared 2-core machine
// (12 clients, 3 s): fast=12281, slow=85, about 0.7 % to the slow one.
func TestHAProxyLeastConnStarvesASlowBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real haproxy and loads it for a few seconds; skipped in -short mode")
	}
	const (
		clients  = 12
		duration = 3 * time.Second
		slowBy   = 200 * time.Millisecond
	)
	be := backends(t, 2, 0, slowBy)
	p := realservertest.MustNewHAProxy(t)
	c, e := loopbackConfig(t, p, be.addrs)
	c.RateLimitPerSecond, c.RateBurst = 1_000_000, 0 // one test client is many users here
	startEdge(t, RenderHAProxy, e, c)

	var failures atomic.Int64
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{}}
			for time.Now().Before(deadline) {
				resp, err := client.Get(e.url(e.https, "http", "/v1/users/1"))
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	h := be.Hits()
	t.Logf("leastconn split over %v with %d clients: fast=%d slow(+%v)=%d", duration, clients, h[0], slowBy, h[1])
	assert.Zero(t, failures.Load(), "every request succeeded")
	assert.Positive(t, h[1], "the slow backend still serves (it is not down): %v", h)
	assert.Greater(t, h[0], 10*h[1], "the slow backend gets markedly fewer requests: %v", h)
}

func exerciseEdge(t *testing.T, client *http.Client, e edgeUnderTest, be *testBackends) {
	t.Helper()
	base := fmt.Sprintf("https://127.0.0.1:%d", e.https)
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
	h := be.Hits()
	assert.Positive(t, h[0], "backend 0 served requests: %v", h)
	assert.Positive(t, h[1], "backend 1 served requests: %v (no stickiness)", h)
	t.Logf("requests per backend: %v", h)

	req, _ := http.NewRequest(http.MethodGet, base+"/v1/users/1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	tr := client.Transport.(*http.Transport).Clone()
	tr.DisableCompression = true
	resp, err := (&http.Client{Transport: tr, Timeout: clientTimeout}).Do(req)
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
	expectTr := client.Transport.(*http.Transport).Clone()
	expectTr.ExpectContinueTimeout = clientTimeout
	resp, err = (&http.Client{Timeout: clientTimeout, Transport: expectTr}).Do(req)
	require.NoError(t, err, "POST 2 MiB")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a 2 MiB body is refused with 413")

	small := bytes.Repeat([]byte("a"), 512<<10)
	resp, err = client.Post(base+"/v1/register", "application/json", bytes.NewReader(small))
	require.NoError(t, err, "POST 512 KiB")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a body under the limit passes")
}
