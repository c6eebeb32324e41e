package integration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/observability"
	"github.com/scaleplane/scaleplane/components/postgres"
	"github.com/scaleplane/scaleplane/topology"
)

// edgeTLSSecret is the Secret cert-manager writes the edge's certificate
// to: tls.crt, tls.key and, from the stack's CA issuer, ca.crt.
const edgeTLSSecret = "edge-tls"

// gatewayPort is a gateway pod's public HTTP port.
const gatewayPort = topology.GatewayHTTPPort

// stackClient reaches a deployed local stack from this machine: the
// embedded node routes Service cluster IPs (kube-proxy) and pod IPs (the
// bridge) to pods running here, so the tests talk to the edge, Postgres and
// Jaeger as a client inside the cluster would.
type stackClient struct {
	t   *testing.T
	app *k8s.KubectlOptions // the stack's namespace
	obs *k8s.KubectlOptions // its observability namespace
	// edge is the edge's base URL, the way every user request enters:
	// https://<the stack's domain>, which httpClient dials at the edge
	// Service's cluster IP and verifies against the stack's CA.
	edge string
	// domain is the name the edge's certificate is for; caPEM is the CA
	// that signed it (the stack's own, from cert-manager).
	domain string
	caPEM  []byte
}

func newStackClient(t *testing.T, s *suite, ns string) *stackClient {
	c := &stackClient{t: t, app: s.kubectlOptions(ns), obs: s.kubectlOptions(ns + "-observability")}
	c.caPEM = []byte(c.secret(edgeTLSSecret, "ca.crt"))
	names := kubectlJSONPath(t, c.app, "get", "secret", edgeTLSSecret, "-o", `jsonpath={.metadata.annotations.cert-manager\.io/alt-names}`)
	c.domain, _, _ = strings.Cut(names, ",")
	require.NotEmpty(t, c.domain, "the edge's certificate names the stack's domain")
	addr := net.JoinHostPort(c.clusterIP(c.app, "edge"), "443")
	require.NoError(t, edgeRoutes.add(c.domain, addr, c.caPEM), "trusting the stack's CA")
	c.edge = "https://" + c.domain
	return c
}

func (c *stackClient) clusterIP(o *k8s.KubectlOptions, svc string) string {
	c.t.Helper()
	ip := kubectlJSONPath(c.t, o, "get", "service", svc, "-o", "jsonpath={.spec.clusterIP}")
	require.NotEmpty(c.t, ip, "Service %s/%s has a cluster IP", o.Namespace, svc)
	return ip
}

// secret reads one key of a Secret of the stack.
func (c *stackClient) secret(name, key string) string {
	c.t.Helper()
	// A dot in a key (ca.crt) is escaped: jsonpath would read it as a step.
	enc := kubectlJSONPath(c.t, c.app, "get", "secret", name, "-o", "jsonpath={.data."+strings.ReplaceAll(key, ".", `\.`)+"}")
	b, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(c.t, err, "Secret %s key %s", name, key)
	require.NotEmpty(c.t, b, "Secret %s has key %s", name, key)
	return string(b)
}

// db opens a connection as the application role through a Service: the
// primary's (postgres-rw, 5432) or a pooler's (postgres-pgbouncer-ro, 6432).
// The simple protocol, as through any transaction-mode PgBouncer.
func (c *stackClient) db(ctx context.Context, svc string, port int) (*pgx.Conn, error) {
	url := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable&default_query_exec_mode=simple_protocol&connect_timeout=5",
		postgres.DefaultUser, c.secret("postgres-app", postgres.PasswordKey), c.clusterIP(c.app, svc), port, postgres.DefaultDatabase)
	return pgx.Connect(ctx, url)
}

// countRows counts the users of an email domain through svc.
func (c *stackClient) countRows(ctx context.Context, svc string, port int, domain string) (int, error) {
	conn, err := c.db(ctx, svc, port)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM users WHERE email LIKE '%@' || $1", domain).Scan(&n)
	return n, err
}

// storedEmails returns the stored emails of a domain (on the primary).
func (c *stackClient) storedEmails(ctx context.Context, domain string) (map[string]int, error) {
	conn, err := c.db(ctx, "postgres-rw", postgres.Port)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(ctx, "SELECT email FROM users WHERE email LIKE '%@' || $1", domain)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out[e]++
	}
	return out, rows.Err()
}

// gatewayPods returns the IPs of the ready gateway pods.
func (c *stackClient) gatewayPods() []string {
	c.t.Helper()
	out := kubectlJSONPath(c.t, c.app, "get", "pods", "-l", "app.kubernetes.io/name=gateway",
		"-o", `jsonpath={range .items[?(@.status.podIP)]}{.status.podIP}{"\n"}{end}`)
	return strings.Fields(out)
}

// jaegerQuery is the host:port of Jaeger's query API.
func (c *stackClient) jaegerQuery() string {
	return fmt.Sprintf("%s:%d", c.clusterIP(c.obs, "jaeger"), observability.JaegerQueryHTTPPort)
}

// newTraceparent starts a sampled W3C trace the request carries.
func newTraceparent() (traceID, header string) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	traceID = hex.EncodeToString(b[:16])
	return traceID, fmt.Sprintf("00-%s-%s-01", traceID, hex.EncodeToString(b[16:]))
}

// edgeRoutes sends the suites' requests for a stack's domain to its edge
// Service over HTTPS, verified against the stack's CA: the requests name
// the domain the certificate is for (SNI and verification, as a browser
// would) without a DNS server that knows it.
var edgeRoutes = &domainRoutes{addrs: map[string]string{}, roots: x509.NewCertPool()}

// domainRoutes maps a domain to the address that serves it.
type domainRoutes struct {
	mu    sync.Mutex
	addrs map[string]string
	// roots is shared by every connection's TLS config and only grows
	// (the stacks' CAs); the suites register a stack before using it.
	roots *x509.CertPool
}

// add routes domain to addr and trusts the CA.
func (r *domainRoutes) add(domain, addr string, caPEM []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("the CA of %s is not PEM", domain)
	}
	r.addrs[net.JoinHostPort(domain, "443")] = addr
	return nil
}

// dial connects to the edge of a registered domain, and anywhere else as usual.
func (r *domainRoutes) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	if to, ok := r.addrs[addr]; ok {
		addr = to
	}
	r.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// httpClient bounds every request of the suites; it reaches the stacks'
// edges by their domains (edgeRoutes).
var httpClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		DialContext:     edgeRoutes.dial,
		TLSClientConfig: &tls.Config{RootCAs: edgeRoutes.roots, MinVersion: tls.VersionTLS12},
	},
}

// register posts one registration to base (the edge or a gateway pod) and
// returns the status and the user id of a 202.
func register(ctx context.Context, base, email string, hdr map[string]string) (int, string, error) {
	body := fmt.Sprintf(`{"email":%q,"name":"Integration User","password":"correct-horse-battery"}`, email)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/register", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		UserID string `json:"user_id"`
	}
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out.UserID, nil
}

// registrations is a paced flow of registrations through the edge, each
// with a new email of one domain, recording which were accepted (202).
type registrations struct {
	domain string
	mu     sync.Mutex
	// tried are the emails sent (a request cut off by the flow's end may
	// still have reached Kafka); accepted those answered 202; refused
	// counts other answers and transport errors by kind.
	tried    map[string]bool
	accepted map[string]bool
	refused  map[string]int
	sent     int
	wg       sync.WaitGroup
}

// flowRegistrations sends about perSecond registrations a second from a
// few clients until ctx ends; Wait returns once they have stopped.
func flowRegistrations(ctx context.Context, base, domain string, perSecond int) *registrations {
	r := &registrations{domain: domain, tried: map[string]bool{}, accepted: map[string]bool{}, refused: map[string]int{}}
	const clients = 4
	pause := time.Duration(clients) * time.Second / time.Duration(perSecond)
	for w := range clients {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				email := fmt.Sprintf("u%d-%05d@%s", w, i, domain)
				r.mu.Lock()
				r.tried[email] = true
				r.mu.Unlock()
				status, _, err := register(ctx, base, email, map[string]string{"Idempotency-Key": "it-" + email})
				r.mu.Lock()
				switch {
				case err != nil && ctx.Err() != nil:
					// Cut off by the flow's end: tried, not counted as sent.
				case err != nil:
					r.sent++
					r.refused["error"]++
				case status == http.StatusAccepted:
					r.sent++
					r.accepted[email] = true
				default:
					r.sent++
					r.refused[fmt.Sprint(status)]++
				}
				r.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	return r
}

// Wait blocks until the flow has stopped.
func (r *registrations) Wait() { r.wg.Wait() }

func (r *registrations) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d sent, %d accepted, refused %v", r.sent, len(r.accepted), r.refused)
}
