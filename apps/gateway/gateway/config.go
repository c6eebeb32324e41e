// Package gateway is the public REST gateway: it accepts registrations into
// Kafka, serves profiles through a two-level cache in front of the users
// service, keeps sessions in Redis, rate-limits per client and relays
// events over SSE. cmd main and the end-to-end tests start it through New
// and Run.
package gateway

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/scaleplane/scaleplane/apps/gateway/internal/cache"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/ratelimit"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/resilience"
	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/topology"
)

// Config is everything the gateway reads from its environment.
type Config struct {
	HTTPAddr     string
	AdminAddr    string
	HTTPTimeouts kit.HTTPTimeouts
	MaxBodyBytes int64

	KafkaBrokers []string
	// KafkaTLS is on for MSK's TLS listener.
	KafkaTLS kit.TLSConfig
	Topic    string
	// ProduceTimeout bounds a registration's wait for Kafka's acks=all; past
	// it the client gets 503 with Retry-After, never a silent drop.
	ProduceTimeout time.Duration
	// MaxBufferedRecords bounds the producer's memory; a full buffer is
	// backpressure the client sees as 503.
	MaxBufferedRecords int

	UsersAddr    string
	UsersRetry   resilience.Policy
	UsersBreaker resilience.BreakerConfig
	RetryRatio   float64
	RetryMax     float64

	Redis      kit.RedisConfig
	Cache      cache.Config
	SessionTTL time.Duration
	// CookieSecure marks the session cookie Secure; false only for local
	// plain-HTTP development.
	CookieSecure bool
	RateLimit    ratelimit.Limit
	// TrustedProxies are the networks whose X-Forwarded-For the gateway
	// believes (the edge pods'); from any other peer the header is ignored
	// and the peer is the client (see package clientaddr). None trusts
	// nobody.
	TrustedProxies []netip.Prefix

	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	Telemetry       kit.TelemetryConfig
}

// ConfigFromEnv reads the configuration; see apps/README.md for the table.
func ConfigFromEnv(e *kit.Env) (Config, error) {
	c := Config{
		HTTPAddr:           e.Addr("HTTP_ADDR", topology.ListenAddr(topology.GatewayHTTPPort)),
		AdminAddr:          e.Addr("ADMIN_ADDR", topology.ListenAddr(topology.AdminHTTPPort)),
		HTTPTimeouts:       kit.HTTPTimeoutsFromEnv(e),
		MaxBodyBytes:       int64(e.Int("MAX_BODY_BYTES", 1<<20, 1<<10, 64<<20)),
		KafkaBrokers:       e.Addrs("KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
		KafkaTLS:           kit.TLSFromEnv(e, "KAFKA"),
		Topic:              e.String("KAFKA_TOPIC", topology.RegistrationsTopic),
		ProduceTimeout:     e.Duration("PRODUCE_TIMEOUT", 5*time.Second, 10*time.Millisecond, time.Minute),
		MaxBufferedRecords: e.Int("KAFKA_MAX_BUFFERED_RECORDS", 10000, 1, 1<<24),
		UsersAddr:          e.String("USERS_ADDR", fmt.Sprintf("dns:///127.0.0.1:%d", topology.UsersGRPCPort)),
		UsersRetry: resilience.Policy{
			Name:        "users",
			Attempts:    e.Int("USERS_ATTEMPTS", 3, 1, 10),
			BaseBackoff: e.Duration("USERS_BACKOFF_BASE", 25*time.Millisecond, time.Millisecond, 10*time.Second),
			MaxBackoff:  e.Duration("USERS_BACKOFF_MAX", 500*time.Millisecond, time.Millisecond, time.Minute),
			CallTimeout: e.Duration("USERS_CALL_TIMEOUT", 500*time.Millisecond, time.Millisecond, time.Minute),
		},
		RetryRatio: e.Float("RETRY_BUDGET_RATIO", 0.1, 0, 1),
		RetryMax:   e.Float("RETRY_BUDGET_MAX", 10, 0, 1e6),
		UsersBreaker: resilience.BreakerConfig{
			Window:       e.Duration("BREAKER_WINDOW", 10*time.Second, 100*time.Millisecond, time.Hour),
			MinRequests:  uint32(e.Int("BREAKER_MIN_REQUESTS", 10, 1, 1e6)),
			FailureRatio: e.Float("BREAKER_FAILURE_RATIO", 0.5, 0.01, 1),
			OpenFor:      e.Duration("BREAKER_OPEN_FOR", 5*time.Second, 10*time.Millisecond, time.Hour),
			Probes:       uint32(e.Int("BREAKER_PROBES", 3, 1, 1000)),
		},
		Redis: kit.RedisFromEnv(e),
		Cache: cache.Config{
			L1Size:      e.Int("CACHE_L1_SIZE", 10000, 1, 1e7),
			L1TTL:       e.Duration("CACHE_L1_TTL", time.Second, time.Millisecond, time.Hour),
			Fresh:       e.Duration("CACHE_FRESH", 30*time.Second, time.Millisecond, 24*time.Hour),
			Stale:       e.Duration("CACHE_STALE", 5*time.Minute, time.Millisecond, 7*24*time.Hour),
			LoadTimeout: e.Duration("CACHE_LOAD_TIMEOUT", 3*time.Second, time.Millisecond, time.Minute),
		},
		SessionTTL:   e.Duration("SESSION_TTL", 24*time.Hour, time.Second, 90*24*time.Hour),
		CookieSecure: e.Bool("SESSION_COOKIE_SECURE", true),
		RateLimit: ratelimit.Limit{
			Rate:   e.Int("RATE_LIMIT_RATE", 100, 1, 1e7),
			Period: e.Duration("RATE_LIMIT_PERIOD", time.Second, time.Millisecond, 24*time.Hour),
			Burst:  e.Int("RATE_LIMIT_BURST", 200, 1, 1e7),
		},
		TrustedProxies: e.CIDRs("TRUSTED_PROXY_CIDRS"),
		Telemetry:      kit.TelemetryFromEnv(e, "gateway"),
	}
	c.DrainDelay, c.ShutdownTimeout = kit.LifecycleFromEnv(e)
	if err := e.Err(); err != nil {
		return c, err
	}
	// GCRA spaces requests by period/rate on Redis' microsecond clock: a
	// rate above one per microsecond would space them by 0 and never limit.
	if lim := c.RateLimit; lim.Period < time.Duration(lim.Rate)*time.Microsecond {
		return c, fmt.Errorf("RATE_LIMIT_RATE=%d per RATE_LIMIT_PERIOD=%s is more than one request per microsecond, which the limiter cannot space: lower the rate or lengthen the period", lim.Rate, lim.Period)
	}
	return c, nil
}
