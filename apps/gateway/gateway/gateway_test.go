package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topology.RegistrationsTopic))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(kc.Close)
	rd := realservertest.MustStartRedis(t, "")
	cfg, err := ConfigFromEnv(kit.MapEnv(map[string]string{
		"KAFKA_BROKERS": strings.Join(kc.ListenAddrs(), ","), "REDIS_ADDRS": rd.Addr(), "REDIS_CLUSTER": "false",
		"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "RATE_LIMIT_RATE": "1000000", "RATE_LIMIT_BURST": "1000000",
	}))
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
