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
	"sync"
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

// Limiter decides per key. Concurrent decisions share one round trip:
// each still runs the GCRA script atomically on Redis, but the scripts of
// every request waiting at that moment go out as one pipeline (one write
// and one read system call for the batch instead of one pair each). On a
// cached GET the rate-limit round trip is most of the gateway's CPU; the
// articles' Node.js design gets the same effect from ioredis' automatic
// pipelining.
type Limiter struct {
	redis  redis.UniversalClient
	limit  Limit
	prefix string
	// limitHeader and policyHeader are the same on every response; they
	// are set as shared slices (header values are never modified in
	// place) so that a request allocates none for them.
	limitHeader, policyHeader []string

	mu       sync.Mutex
	pending  []*call
	flushing bool // a flusher goroutine owns the pending queue
}

// call is one Allow waiting for its batch.
type call struct {
	key  string
	res  Result
	err  error
	done chan struct{}
}

// maxBatch bounds one pipeline, so a burst of arrivals cannot make one
// round trip (and the first caller's wait) arbitrarily long.
const maxBatch = 256

// New returns a limiter for lim, namespacing keys with prefix.
func New(rdb redis.UniversalClient, lim Limit, prefix string) *Limiter {
	return &Limiter{redis: rdb, limit: lim, prefix: prefix,
		limitHeader:  []string{strconv.Itoa(lim.Burst)},
		policyHeader: []string{fmt.Sprintf("%d;w=%d;burst=%d", lim.Rate, ceilSeconds(lim.Period), lim.Burst)}}
}

// Allow spends one request for key. It waits for its batch's round trip or
// for ctx, whichever ends first.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	c := &call{key: l.prefix + "{" + key + "}", done: make(chan struct{})}
	l.mu.Lock()
	l.pending = append(l.pending, c)
	if !l.flushing {
		// The flusher lives only while there is work, so an idle limiter
		// holds no goroutine and needs no Close.
		l.flushing = true
		go l.flush()
	}
	l.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("rate limit: %w", ctx.Err())
	}
}

// flush sends what is pending as one pipeline, answers its callers and
// repeats until nothing is pending.
func (l *Limiter) flush() {
	for {
		l.mu.Lock()
		if len(l.pending) == 0 {
			l.flushing = false
			l.mu.Unlock()
			return
		}
		batch := l.pending
		if len(batch) > maxBatch {
			// Capped, so appends to the rest never write into this batch.
			batch = batch[:maxBatch:maxBatch]
			l.pending = l.pending[maxBatch:]
		} else {
			l.pending = nil
		}
		l.mu.Unlock()
		l.run(batch)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// run evaluates the script for every call of batch in one pipeline. Redis
// may not know the script (a restart, a failover to a fresh replica,
// SCRIPT FLUSH): the calls it refused with NOSCRIPT are sent again with the
// script's source, which also loads it.
func (l *Limiter) run(batch []*call) {
	// The callers' contexts differ; the client's read and write timeouts
	// bound the round trip, and a caller whose context ends stops waiting.
	ctx := context.Background()
	// At least 1 µs: a zero interval would admit everything (the gateway's
	// config refuses such a limit; this keeps the script sound anyway).
	interval := max(1, l.limit.Period.Microseconds()/int64(l.limit.Rate))
	args := []any{interval, l.limit.Burst, 1}
	cmds := make([]*redis.Cmd, len(batch))
	_, _ = l.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = gcra.EvalSha(ctx, p, []string{c.key}, args...)
		}
		return nil
	})
	var retry []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		_, _ = l.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range retry {
				cmds[i] = gcra.Eval(ctx, p, []string{batch[i].key}, args...)
			}
			return nil
		})
	}
	for i, c := range batch {
		c.res, c.err = decode(cmds[i])
	}
}

// decode reads the script's {allowed, remaining, retry_after_us, reset_after_us}.
func decode(cmd *redis.Cmd) (Result, error) {
	res, err := cmd.Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit script: %w", err)
	}
	if len(res) != 4 {
		return Result{}, fmt.Errorf("rate limit script: %d values, want 4", len(res))
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
		h["Ratelimit-Limit"] = l.limitHeader // canonical forms of RateLimit-*
		h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
		h["Ratelimit-Policy"] = l.policyHeader
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
