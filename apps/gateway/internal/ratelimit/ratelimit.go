// Package ratelimit is a per-client rate limiter whose state lives in Redis,
// so every gateway replica enforces one shared limit. It implements GCRA
// (the generic cell rate algorithm: a token bucket kept as a single
// timestamp) in one Lua script, atomic on the key's Redis node.
package ratelimit

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed gcra.lua
var gcraSource string

var gcra = redis.NewScript(gcraSource)

// Limit is Rate requests per Period with bursts up to Burst.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Result is one decision.
type Result struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration // when denied: until one request is allowed
	ResetAfter time.Duration // until the bucket is full again
}

// Limiter decides per key.
type Limiter struct {
	redis  redis.UniversalClient
	limit  Limit
	prefix string
}

// New returns a limiter for lim, namespacing keys with prefix.
func New(rdb redis.UniversalClient, lim Limit, prefix string) *Limiter {
	return &Limiter{redis: rdb, limit: lim, prefix: prefix}
}

// Allow spends one request for key.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	interval := l.limit.Period.Microseconds() / int64(l.limit.Rate)
	res, err := gcra.Run(ctx, l.redis, []string{l.prefix + "{" + key + "}"}, interval, l.limit.Burst, 1).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit script: %w", err)
	}
	return Result{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		ResetAfter: time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// Middleware answers 429 with Retry-After and RateLimit-* headers when the
// client's key is over the limit. When Redis fails it lets the request
// through (fail open): a limiter outage must not become a full outage.
func (l *Limiter) Middleware(keyOf func(*http.Request) string, onError func(*http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := l.Allow(r.Context(), keyOf(r))
		if err != nil {
			onError(r, err)
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(l.limit.Burst))
		h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
		h.Set("RateLimit-Policy", fmt.Sprintf("%d;w=%d;burst=%d", l.limit.Rate, ceilSeconds(l.limit.Period), l.limit.Burst))
		if !res.Allowed {
			h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(res.RetryAfter))))
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"rate limit exceeded"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func ceilSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// ClientKey identifies the client by its address; with trustForwarded the
// last X-Forwarded-For entry (appended by the trusted ingress) wins, since
// earlier entries are written by the client and can be forged.
func ClientKey(trustForwarded bool) func(*http.Request) string {
	return func(r *http.Request) string {
		if trustForwarded {
			if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
				parts := strings.Split(xff[len(xff)-1], ",")
				if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
					return ip
				}
			}
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
}
