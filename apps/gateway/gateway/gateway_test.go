package gateway

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/kit"
	usersv1 "github.com/scaleplane/scaleplane/apps/users/api"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/topology"
)

// fakeUsers answers as the users service does for unknown users and wrong
// passwords, so the handler tests need no database.
type fakeUsers struct{}

func (fakeUsers) GetUser(context.Context, *usersv1.GetUserRequest, ...grpc.CallOption) (*usersv1.User, error) {
	return nil, status.Error(codes.NotFound, "user not found")
}

func (fakeUsers) CheckPassword(context.Context, *usersv1.CheckPasswordRequest, ...grpc.CallOption) (*usersv1.CheckPasswordResponse, error) {
	return &usersv1.CheckPasswordResponse{Ok: false}, nil
}

func (fakeUsers) UpdateName(context.Context, *usersv1.UpdateNameRequest, ...grpc.CallOption) (*usersv1.User, error) {
	return nil, status.Error(codes.NotFound, "user not found")
}

// newTestGateway uses kfake for Kafka (client logic only), a real
// single-node redis-server and a fake users client.
func newTestGateway(t testing.TB) (*Gateway, *kfake.Cluster) {
	t.Helper()
	return newTestGatewayEnv(t, nil)
}

// newTestGatewayEnv is newTestGateway with env's variables over its own.
func newTestGatewayEnv(t testing.TB, env map[string]string) (*Gateway, *kfake.Cluster) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topology.RegistrationsTopic))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(kc.Close)
	rd := realservertest.MustStartRedis(t, "")
	vars := map[string]string{
		"KAFKA_BROKERS": strings.Join(kc.ListenAddrs(), ","), "REDIS_ADDRS": rd.Addr(), "REDIS_CLUSTER": "false",
		"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "RATE_LIMIT_RATE": "1000000", "RATE_LIMIT_BURST": "1000000",
	}
	maps.Copy(vars, env)
	cfg, err := ConfigFromEnv(kit.MapEnv(vars))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := New(context.Background(), cfg, kit.NoopTelemetry("gateway"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(g.closeClients)
	g.users.API = fakeUsers{}
	return g, kc
}

func TestRegisterProducesKeyedRecordWithHeadersAnd202(t *testing.T) {
	g, kc := newTestGateway(t)
	h := g.routes()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/register", strings.NewReader(`{"email":"Ada@Example.com","name":"Ada","password":"analytical"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "k-1")
	h.ServeHTTP(rec, req)
	if rec.Code != 202 || rec.Header().Get("Location") != "/v1/users/"+account.UserID("ada@example.com") {
		t.Fatalf("register: %d %s Location %q", rec.Code, rec.Body, rec.Header().Get("Location"))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics(topology.RegistrationsTopic))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("consumed %d records (errors %v), want 1", len(recs), fs.Errors())
	}
	r := recs[0]
	if string(r.Key) != "ada@example.com" || (kit.KafkaHeaders{R: r}).Get(account.HeaderIdempotencyKey) != "k-1" {
		t.Errorf("record key %q, idempotency header %q; want the normalised email and k-1", r.Key, (kit.KafkaHeaders{R: r}).Get(account.HeaderIdempotencyKey))
	}
}

func TestProduceFailureIs503WithRetryAfter(t *testing.T) {
	g, kc := newTestGateway(t)
	g.cfg.ProduceTimeout = 300 * time.Millisecond
	kc.Close() // Kafka gone: the client must hear it, not lose the registration
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/register", strings.NewReader(`{"email":"a@b.co","name":"A","password":"12345678"}`))
	req.Header.Set("Content-Type", "application/json")
	g.routes().ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("register with Kafka down: %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// FuzzHandlers: no input makes a handler panic or answer 5xx while the
// dependencies are healthy.
func FuzzHandlers(f *testing.F) {
	g, _ := newTestGateway(f)
	h := g.routes()
	f.Add(uint8(0), "/v1/register", `{"email":"a@b.co","name":"A","password":"12345678"}`, "application/json", "")
	f.Add(uint8(1), "/v1/users/00000000-0000-8000-8000-000000000000", "", "", "")
	f.Add(uint8(0), "/v1/sessions", `{"email":"a@b.co","password":"x"}`, "application/json", "")
	f.Add(uint8(2), "/v1/sessions", "", "", "sp_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add(uint8(1), "/v1/me", "", "", "sp_session=x")
	f.Add(uint8(3), "/v1/register", "{", "application/json; charset=utf-8", "")
	f.Fuzz(func(t *testing.T, m uint8, path, body, ctype, cookie string) {
		method := []string{"POST", "GET", "DELETE", "PUT"}[m%4]
		if strings.HasPrefix(path, "/v1/events") || !strings.HasPrefix(path, "/") {
			return // the stream never ends by itself
		}
		req, err := http.NewRequest(method, "http://gw"+path, strings.NewReader(body))
		if err != nil {
			return // a target net/http's server would refuse before any handler
		}
		if ctype != "" {
			req.Header["Content-Type"] = []string{ctype}
		}
		if cookie != "" {
			req.Header["Cookie"] = []string{cookie}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q (%q, %q, cookie %q) = %d %s", method, path, body, ctype, cookie, rec.Code, rec.Body)
		}
	})
}

// TestRateFinerThanAMicrosecondIsRefused: GCRA spaces requests on Redis'
// microsecond clock, so a limit of more than one request per microsecond
// would space them by zero and never limit; the config says so at start.
func TestRateFinerThanAMicrosecondIsRefused(t *testing.T) {
	_, err := ConfigFromEnv(kit.MapEnv(map[string]string{"RATE_LIMIT_RATE": "2000000", "RATE_LIMIT_PERIOD": "1s"}))
	if err == nil || !strings.Contains(err.Error(), "RATE_LIMIT_RATE=2000000") {
		t.Errorf("2M requests per second: err = %v, want a RATE_LIMIT_RATE error", err)
	}
	if _, err := ConfigFromEnv(kit.MapEnv(map[string]string{"RATE_LIMIT_RATE": "1000000", "RATE_LIMIT_PERIOD": "1s"})); err != nil {
		t.Errorf("one request per microsecond is the finest limit and is accepted: %v", err)
	}
}

// TestTrustedProxyCIDRsAreCheckedAtStart: a bad network stops the gateway
// at start, naming the variable, the value and what is allowed.
func TestTrustedProxyCIDRsAreCheckedAtStart(t *testing.T) {
	_, err := ConfigFromEnv(kit.MapEnv(map[string]string{"TRUSTED_PROXY_CIDRS": "10.244.0.0/16,10.0.0.300/8"}))
	if err == nil || !strings.Contains(err.Error(), `TRUSTED_PROXY_CIDRS="10.244.0.0/16,10.0.0.300/8": "10.0.0.300/8" is not a network`) {
		t.Errorf("a bad CIDR: err = %v, want a TRUSTED_PROXY_CIDRS error naming the value", err)
	}
	cfg, err := ConfigFromEnv(kit.MapEnv(nil))
	if err != nil || len(cfg.TrustedProxies) != 0 {
		t.Errorf("unset: %v, %v; want no trusted proxy and no error", cfg.TrustedProxies, err)
	}
}

// knownUsers answers every profile, so that an allowed GET is a 200.
type knownUsers struct{ fakeUsers }

func (knownUsers) GetUser(_ context.Context, req *usersv1.GetUserRequest, _ ...grpc.CallOption) (*usersv1.User, error) {
	return &usersv1.User{Id: req.GetId(), Email: "ada@example.com", Name: "Ada"}, nil
}

// TestEachClientBehindTheEdgeHasItsOwnBucket serves the gateway's real
// handler on its listener. 127.0.0.2 plays the edge (the only trusted
// proxy) and 127.0.0.3 a peer outside the edge's network: two clients
// behind the edge get a bucket each (one exhausts its burst, 429 with
// Retry-After, while the other still gets 200), and the outside peer's
// forged X-Forwarded-For, whatever it names, keeps it in its own bucket.
func TestEachClientBehindTheEdgeHasItsOwnBucket(t *testing.T) {
	const burst = 3
	g, _ := newTestGatewayEnv(t, map[string]string{
		// One request a minute after the burst: nothing refills during the test.
		"RATE_LIMIT_RATE": "1", "RATE_LIMIT_PERIOD": "1m", "RATE_LIMIT_BURST": strconv.Itoa(burst),
		"TRUSTED_PROXY_CIDRS": "127.0.0.2/32",
	})
	g.users.API = knownUsers{}
	go func() { _ = g.httpSrv.Serve(g.httpLn) }()
	t.Cleanup(func() { _ = g.httpSrv.Close() })
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	edge, outsider := from("127.0.0.2"), from("127.0.0.3")
	url := "http://" + g.Addr() + "/v1/users/" + account.UserID("ada@example.com")
	get := func(c *http.Client, xff string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET from %s: %v", xff, err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}

	for i := range burst {
		if code, _ := get(edge, "203.0.113.1"); code != 200 {
			t.Fatalf("client 203.0.113.1's request %d of its burst %d through the edge: %d, want 200", i+1, burst, code)
		}
	}
	if code, retry := get(edge, "203.0.113.1"); code != 429 || retry == "" {
		t.Fatalf("client 203.0.113.1 past its burst: %d with Retry-After %q, want 429 with Retry-After", code, retry)
	}
	// The edge's own address would be one shared bucket, now empty had it
	// been used: the second client must still be served from its own.
	for i := range burst {
		if code, _ := get(edge, "203.0.113.2"); code != 200 {
			t.Fatalf("client 203.0.113.2's request %d through the edge after 203.0.113.1 was limited: %d, want 200 (its own bucket)", i+1, code)
		}
	}
	// A client's forged left part, kept by a proxy that appends, never wins:
	// the edge's rightmost entry names the limited client.
	if code, _ := get(edge, "198.51.100.77, 203.0.113.1"); code != 429 {
		t.Errorf("limited client 203.0.113.1 with a forged left part through the edge: %d, want 429", code)
	}

	// From outside the edge's network the header is ignored: every forged
	// address is the outsider's one bucket.
	for i := range burst {
		if code, _ := get(outsider, fmt.Sprintf("192.0.2.%d", i+1)); code != 200 {
			t.Fatalf("outside peer's request %d of its burst: %d, want 200", i+1, code)
		}
	}
	for _, forged := range []string{"192.0.2.99", "203.0.113.2", "127.0.0.2", "192.0.2.100, 127.0.0.2"} {
		if code, retry := get(outsider, forged); code != 429 || retry == "" {
			t.Errorf("outside peer past its burst, forging X-Forwarded-For %q: %d with Retry-After %q, want 429 with Retry-After (its own bucket)", forged, code, retry)
		}
	}
}
