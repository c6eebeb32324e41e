package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/cache"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/clientaddr"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/compress"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/events"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/ratelimit"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/resilience"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/session"
	"github.com/scaleplane/scaleplane/apps/kit"
	usersv1 "github.com/scaleplane/scaleplane/apps/users/api"
	"github.com/scaleplane/scaleplane/topology"
)

// Producer is the part of *kgo.Client the gateway uses.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Gateway is a started gateway: clients connected, listeners bound.
type Gateway struct {
	cfg      Config
	tel      *kit.Telemetry
	tracer   trace.Tracer
	health   *kit.Health
	kafka    *kgo.Client
	producer Producer
	redis    redis.UniversalClient
	conn     *grpc.ClientConn
	users    *resilience.Users
	cache    *cache.Cache
	sessions *session.Store
	limiter  *ratelimit.Limiter
	hub      *events.Hub
	rejected *prometheus.CounterVec

	httpLn, adminLn   net.Listener
	httpSrv, adminSrv *http.Server
}

// New connects the clients and binds the listeners without serving yet.
func New(ctx context.Context, cfg Config, tel *kit.Telemetry) (_ *Gateway, err error) {
	g := &Gateway{cfg: cfg, tel: tel, tracer: tel.Tracer.Tracer("scaleplane/gateway"), health: kit.NewHealth(2 * time.Second)}
	defer func() {
		if err != nil {
			g.closeClients()
		}
	}()
	kafkaTLS, err := kit.KafkaTLSOpts(cfg.KafkaTLS)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	g.kafka, err = kgo.NewClient(append(kafkaTLS,
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent producer needs acks=all; franz-go enables it by default
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.ClientID("scaleplane-gateway"),
	)...)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_BROKERS: %w", err)
	}
	g.producer = g.kafka
	if g.redis, err = kit.NewRedis(cfg.Redis); err != nil {
		return nil, err
	}
	g.conn, err = grpc.NewClient(cfg.UsersAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), // in-cluster; mTLS belongs to the mesh
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		// Reconnect quickly to a restarted users pod; the breaker, not a long
		// reconnect backoff, protects it while it is down.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 2 * time.Second}),
		tel.GRPCDialOption())
	if err != nil {
		return nil, fmt.Errorf("USERS_ADDR=%q: %w", cfg.UsersAddr, err)
	}
	pol := cfg.UsersRetry
	pol.Budget = resilience.NewBudget(cfg.RetryRatio, cfg.RetryMax)
	pol.Retryable, pol.Healthy = resilience.GRPCRetryable, resilience.GRPCHealthy
	pol.Init(cfg.UsersBreaker, tel.Metrics.Registry)
	g.users = &resilience.Users{API: usersv1.NewUsersClient(g.conn), Policy: &pol}
	g.cache = cache.New(cfg.Cache, g.redis, account.CacheKey, g.loadUser, tel.Logger, tel.Metrics.Registry)
	g.sessions = session.NewStore(g.redis, cfg.SessionTTL, cfg.CookieSecure)
	g.limiter = ratelimit.New(g.redis, cfg.RateLimit, "ratelimit:")
	g.hub = events.NewHub(tel.Logger, tel.Metrics.Registry)
	g.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_rejections_total",
		Help: "Requests refused for a dependency: produce (Kafka backpressure), users (breaker/unavailable), ratelimit_error (failed open)."},
		[]string{"reason"})
	tel.Metrics.Registry.MustRegister(g.rejected)

	// Shared by every gateway pod: they gate start-up only (see
	// AddStartupCheck); afterwards Redis failing is absorbed (the limiter
	// fails open, the cache falls back to the users service) and Kafka
	// failing turns registrations into 503s with Retry-After.
	g.health.AddStartupCheck("redis", kit.RedisCheck(g.redis))
	g.health.AddStartupCheck("kafka", func(ctx context.Context) error { return g.kafka.Ping(ctx) })

	g.httpSrv = kit.NewHTTPServer(g.handler(), cfg.HTTPTimeouts, tel.Metrics, tel.Logger)
	g.httpSrv.RegisterOnShutdown(g.hub.Close)
	admin := http.NewServeMux()
	admin.Handle("GET /metrics", tel.Metrics.Handler())
	admin.Handle("GET /healthz", g.health.LiveHandler())
	admin.Handle("GET /readyz", g.health.ReadyHandler())
	g.adminSrv = kit.NewHTTPServer(admin, cfg.HTTPTimeouts, tel.Metrics, tel.Logger)
	if g.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HTTP_ADDR: %w", err)
	}
	if g.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		_ = g.httpLn.Close()
		return nil, fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	return g, nil
}

// handler is the public listener's whole chain: the trace, with the
// client's address resolved first (so that the server span, the logs and
// the rate limit below all name the same client), then the routes.
func (g *Gateway) handler() http.Handler {
	return g.tel.HTTPHandler(g.routes(), "gateway", kit.ResolveClient(clientaddr.New(g.cfg.TrustedProxies).Resolve))
}

// routes is the public API. Each route is wrapped, inside out, by its
// handler, compression, the rate limit and the RED metrics under its
// pattern.
func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	limited := func(h http.Handler) http.Handler {
		return g.limiter.Middleware(clientaddr.Of, func(r *http.Request, err error) {
			g.rejected.WithLabelValues("ratelimit_error").Inc()
			g.tel.Logger.WarnContext(r.Context(), "rate limiter unavailable, failing open", "err", err)
		}, h)
	}
	handle := func(pattern string, h http.Handler) { mux.Handle(pattern, g.tel.Metrics.Route(pattern, h)) }
	handle("POST /v1/register", limited(compress.Handler(http.HandlerFunc(g.register))))
	handle("GET /v1/users/{id}", limited(compress.Handler(http.HandlerFunc(g.getUser))))
	handle("POST /v1/sessions", limited(compress.Handler(http.HandlerFunc(g.login))))
	handle("DELETE /v1/sessions", limited(http.HandlerFunc(g.logout)))
	handle("GET /v1/me", limited(compress.Handler(http.HandlerFunc(g.me))))
	handle("GET /v1/events", limited(g.hub)) // a stream: never buffered by compression
	handle("GET /healthz", g.health.LiveHandler())
	handle("GET /readyz", g.health.ReadyHandler())
	return mux
}

// Addr is the bound public address.
func (g *Gateway) Addr() string { return g.httpLn.Addr().String() }

// AdminAddr is the bound address of /metrics, /healthz and /readyz.
func (g *Gateway) AdminAddr() string { return g.adminLn.Addr().String() }

// Budget exposes the users retry budget, for tests and debugging.
func (g *Gateway) Budget() *resilience.Budget { return g.users.Policy.Budget }

// BreakerState is the users breaker's state: "closed", "half-open" or "open".
func (g *Gateway) BreakerState() string { return g.users.Policy.State().String() }

func (g *Gateway) closeClients() {
	if g.conn != nil {
		_ = g.conn.Close()
	}
	if g.redis != nil {
		_ = g.redis.Close()
	}
	if g.kafka != nil {
		g.kafka.Close()
	}
}

// Run serves until ctx ends, then: not ready, drain delay, listeners closed
// and in-flight requests finished, SSE streams ended, the producer flushed,
// clients closed, telemetry flushed.
func (g *Gateway) Run(ctx context.Context) error {
	subCtx, stopSub := context.WithCancel(context.WithoutCancel(ctx))
	go g.hub.Subscribe(subCtx, g.redis, topology.EventsChannel)
	lc := kit.Lifecycle{Log: g.tel.Logger, Health: g.health, DrainDelay: g.cfg.DrainDelay, ShutdownTimeout: g.cfg.ShutdownTimeout}
	g.tel.LogStart(ctx, "http_addr", g.Addr(), "admin_addr", g.AdminAddr(), "users_addr", g.cfg.UsersAddr,
		"trusted_proxy_cidrs", fmt.Sprint(g.cfg.TrustedProxies))
	return lc.Run(ctx, []kit.Unit{kit.HTTPUnit("http", g.httpSrv, g.httpLn), kit.HTTPUnit("admin", g.adminSrv, g.adminLn)},
		[]kit.Closer{
			{Name: "telemetry", Close: g.tel.Shutdown},
			{Name: "clients", Close: func(context.Context) error { stopSub(); g.closeClients(); return nil }},
			{Name: "kafka producer flush", Close: func(ctx context.Context) error {
				if err := g.kafka.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				return nil
			}},
		})
}
