package integration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// edgeReachRetries × edgeReachInterval bounds the wait for the edge to
	// answer an outside client through its NodePort (the pods are ready,
	// but kube-proxy programs the NodePort rules on its own schedule).
	edgeReachRetries  = 20
	edgeReachInterval = 2 * time.Second
	// loginRetries × loginInterval bounds the way of a registration to a
	// row the users service can log in against.
	loginRetries  = 40
	loginInterval = time.Second
	// exhaustAttempts bounds how many requests one client sends to empty
	// its rate-limit bucket: comfortably more than the burst plus what
	// the rate refills while the requests are under way.
	exhaustAttempts = 3000
)

// edgeAccess is how an outside client reaches a stack's edge: the node's
// address and the edge Service's NodePorts (the LoadBalancer Service's
// node ports; no cloud load balancer exists on the embedded node, and with
// externalTrafficPolicy Local the client's address survives kube-proxy),
// and the TLS identity to expect (the stack's domain, signed by its CA).
type edgeAccess struct {
	// kind is the stack's edge proxy, nginx or haproxy.
	kind      string
	nodeIP    string
	httpsPort int
	httpPort  int
	domain    string
	roots     *x509.CertPool
}

// newEdgeAccess reads the node's address and the edge Service's node
// ports from the cluster.
func newEdgeAccess(t *testing.T, c *stackClient, kind, domain string, caPEM []byte) edgeAccess {
	t.Helper()
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM), "the stack's CA is PEM")
	nodeIP := kubectlJSONPath(t, c.app, "get", "nodes", "-o", `jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}`)
	require.NotEmpty(t, nodeIP, "the node has an InternalIP")
	port := func(name string) int {
		v := kubectlJSONPath(t, c.app, "get", "service", "edge", "-o", `jsonpath={.spec.ports[?(@.name=="`+name+`")].nodePort}`)
		p, err := strconv.Atoi(v)
		require.NoError(t, err, "the edge Service's %s port has a node port (got %q)", name, v)
		return p
	}
	policy := kubectlJSONPath(t, c.app, "get", "service", "edge", "-o", "jsonpath={.spec.externalTrafficPolicy}")
	require.Equal(t, "Local", policy, "the edge Service keeps the client's address (externalTrafficPolicy Local)")
	return edgeAccess{kind: kind, nodeIP: nodeIP, httpsPort: port("https"), httpPort: port("http"), domain: domain, roots: roots}
}

func (a edgeAccess) httpsURL(path string) string {
	return "https://" + net.JoinHostPort(a.nodeIP, strconv.Itoa(a.httpsPort)) + path
}

func (a edgeAccess) httpURL(path string) string {
	return "http://" + net.JoinHostPort(a.nodeIP, strconv.Itoa(a.httpPort)) + path
}

// checkEdgeFromOutside is the production wiring seen by three clients
// with addresses of their own (network namespaces on this machine), through
// the edge Service's node ports:
//   - HTTPS with the stack's certificate (verified against its CA, for its
//     domain), HSTS on every answer; TLS 1.1 is refused;
//   - plain HTTP only redirects to HTTPS;
//   - /metrics, /healthz, /readyz and /debug/ answer 404 through the edge;
//   - a login sets a Secure, HttpOnly cookie that authenticates the next
//     request;
//   - each client has its own rate-limit bucket: one exhausts its burst and
//     gets 429 with Retry-After while the other two keep getting answers;
//     the exhausted one stays limited when it claims another client's
//     address in X-Forwarded-For.
func checkEdgeFromOutside(t *testing.T, a edgeAccess, clients []*outsideClient) {
	ctx := t.Context()
	require.Len(t, clients, 3, "three outside clients")
	web := make([]*http.Client, len(clients))
	for i, cl := range clients {
		web[i] = cl.httpClient(a.roots, a.domain, nil)
	}
	missing := "/v1/users/" + randomUUID()

	_, err := retry.DoWithRetryContextE(t, ctx, "an outside client reaches the edge over HTTPS", edgeReachRetries, edgeReachInterval, func() (string, error) {
		code, _, err := fetch(ctx, web[0], http.MethodGet, a.httpsURL(missing), nil, nil)
		if err != nil {
			return "", err
		}
		if code != http.StatusNotFound {
			return "", fmt.Errorf("GET %s: %d, want 404 (routed to the gateway, no such user)", missing, code)
		}
		return "", nil
	})
	require.NoError(t, err, "the %s edge answers HTTPS from %s with a certificate for %s signed by the stack's CA", a.kind, clients[0].Addr, a.domain)

	t.Run("HSTS on HTTPS", func(t *testing.T) {
		_, h, err := fetch(ctx, web[1], http.MethodGet, a.httpsURL(missing), nil, nil)
		require.NoError(t, err, "GET over HTTPS")
		assert.Contains(t, h.Get("Strict-Transport-Security"), "max-age=", "the %s edge sends HSTS", a.kind)
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		old := clients[1].httpClient(a.roots, a.domain, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 })
		_, _, err := fetch(ctx, old, http.MethodGet, a.httpsURL(missing), nil, nil)
		require.Error(t, err, "the %s edge refuses a TLS 1.1 handshake", a.kind)
		t.Logf("TLS 1.1 handshake: %v", err)
		modern := clients[1].httpClient(a.roots, a.domain, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 })
		_, _, err = fetch(ctx, modern, http.MethodGet, a.httpsURL(missing), nil, nil)
		require.NoError(t, err, "the %s edge accepts TLS 1.2 from the same client", a.kind)
	})

	t.Run("plain HTTP redirects", func(t *testing.T) {
		code, h, err := fetch(ctx, web[2], http.MethodGet, a.httpURL(missing), nil, nil)
		require.NoError(t, err, "GET over plain HTTP")
		assert.Contains(t, []int{http.StatusMovedPermanently, http.StatusPermanentRedirect}, code, "plain HTTP answers a permanent redirect")
		loc := h.Get("Location")
		assert.True(t, strings.HasPrefix(loc, "https://"), "the redirect goes to HTTPS: %q", loc)
		assert.True(t, strings.HasSuffix(loc, missing), "the redirect keeps the path: %q", loc)
	})

	t.Run("internal paths answer 404", func(t *testing.T) {
		for _, p := range []string{"/metrics", "/healthz", "/readyz", "/debug/pprof/", "/v1/../metrics"} {
			code, _, err := fetch(ctx, web[2], http.MethodGet, a.httpsURL(p), nil, nil)
			require.NoError(t, err, "GET %s", p)
			assert.Equal(t, http.StatusNotFound, code, "%s is not reachable through the %s edge", p, a.kind)
		}
	})

	t.Run("login sets a Secure cookie that works", func(t *testing.T) {
		checkSecureSession(t, clients[1], a)
	})

	t.Run("one bucket per client address", func(t *testing.T) {
		checkPerClientBuckets(t, web, clients, a, missing)
	})
}

// checkSecureSession registers, logs in over HTTPS and uses the session.
func checkSecureSession(t *testing.T, cl *outsideClient, a edgeAccess) {
	ctx := t.Context()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err, "cookie jar")
	web := cl.httpClient(a.roots, a.domain, nil)
	web.Jar = jar
	email := fmt.Sprintf("tls-%d@edge.it.example.com", time.Now().UnixNano())
	creds := fmt.Sprintf(`{"email":%q,"password":"correct-horse-battery"}`, email)
	code, _, err := fetch(ctx, web, http.MethodPost, a.httpsURL("/v1/register"),
		strings.NewReader(fmt.Sprintf(`{"email":%q,"name":"Edge User","password":"correct-horse-battery"}`, email)), jsonHeader)
	require.NoError(t, err, "POST /v1/register over HTTPS")
	require.Equal(t, http.StatusAccepted, code, "the registration is accepted")

	var cookie string
	_, err = retry.DoWithRetryContextE(t, ctx, "log in once the registration is stored", loginRetries, loginInterval, func() (string, error) {
		code, h, err := fetch(ctx, web, http.MethodPost, a.httpsURL("/v1/sessions"), strings.NewReader(creds), jsonHeader)
		if err != nil {
			return "", err
		}
		if code != http.StatusCreated {
			return "", fmt.Errorf("POST /v1/sessions: %d", code)
		}
		cookie = h.Get("Set-Cookie")
		return "", nil
	})
	require.NoError(t, err, "the stored user logs in through the edge")
	assert.Contains(t, cookie, "Secure", "the session cookie is Secure: %q", cookie)
	assert.Contains(t, cookie, "HttpOnly", "the session cookie is HttpOnly: %q", cookie)
	code, _, err = fetch(ctx, web, http.MethodGet, a.httpsURL("/v1/me"), nil, nil)
	require.NoError(t, err, "GET /v1/me with the cookie")
	assert.Equal(t, http.StatusOK, code, "the browser-like client sends the Secure cookie back over HTTPS and it authenticates")
}

// checkPerClientBuckets empties the first client's bucket and checks the
// others are unaffected, and that a forged X-Forwarded-For does not help.
func checkPerClientBuckets(t *testing.T, web []*http.Client, clients []*outsideClient, a edgeAccess, path string) {
	ctx := t.Context()
	var limited http.Header
	sent := 0
	begin := time.Now()
	for sent < exhaustAttempts && limited == nil {
		code, h, err := fetch(ctx, web[0], http.MethodGet, a.httpsURL(path), nil, nil)
		require.NoError(t, err, "request %d from %s", sent+1, clients[0].Addr)
		sent++
		if code == http.StatusTooManyRequests {
			limited = h
		}
	}
	require.NotNil(t, limited, "%s is limited within %d requests", clients[0].Addr, exhaustAttempts)
	t.Logf("%s limited after %d requests in %s", clients[0].Addr, sent, time.Since(begin).Round(time.Millisecond))
	assert.NotEmpty(t, limited.Get("Retry-After"), "the 429 says when to retry")

	for i := 1; i < len(clients); i++ {
		code, _, err := fetch(ctx, web[i], http.MethodGet, a.httpsURL(path), nil, nil)
		require.NoError(t, err, "GET from %s", clients[i].Addr)
		assert.Equal(t, http.StatusNotFound, code, "%s has its own bucket: answered while %s is limited", clients[i].Addr, clients[0].Addr)
	}
	// Claiming the address of a client whose bucket is nearly full must
	// not help: the bucket refills at the rate (a token every 10 ms at
	// 100/s), so a few of these pass as the sender's own refill, but as
	// the claimed client every one of them would.
	forged := http.Header{"X-Forwarded-For": {clients[1].Addr.String()}}
	refused := 0
	for range forgedAttempts {
		code, _, err := fetch(ctx, web[0], http.MethodGet, a.httpsURL(path), nil, forged)
		require.NoError(t, err, "GET with a forged X-Forwarded-For")
		if code == http.StatusTooManyRequests {
			refused++
		}
	}
	t.Logf("%s claiming to be %s: %d of %d refused", clients[0].Addr, clients[1].Addr, refused, forgedAttempts)
	assert.GreaterOrEqual(t, refused, forgedAttempts/2, "%s claiming to be %s is still limited as itself", clients[0].Addr, clients[1].Addr)
}

// forgedAttempts is how many requests the exhausted client sends with
// another client's address in X-Forwarded-For.
const forgedAttempts = 20

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// fetch sends one request and returns the status and headers, draining the body.
func fetch(ctx context.Context, c *http.Client, method, url string, body io.Reader, h http.Header) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

// randomUUID is a random version-4 UUID: a user id no one registered.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
