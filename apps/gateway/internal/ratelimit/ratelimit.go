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
// every request waiting at that moment is decided by one run of the GCRA
// script, atomic on Redis, which takes the batch's keys in arrival order and
// decides a repeated key's requests one after the other, as separate runs
// would. On a cached GET the rate-limit round trip is most of the gateway's
// CPU; the articles' Node.js design gets part of this effect from ioredis'
// automatic pipelining.
type Limiter struct {
	redis  redis.UniversalClient
	limit  Limit
	prefix string
	// oneNode is set for a client of a single Redis node, which accepts a
	// script over keys of any slot; a cluster (or any sharding client) needs
	// a script's keys on one node, so there a batch runs the script once per
	// distinct key, all in one pipeline.
	oneNode bool
	// limitHeader and policyHeader are the same on every response; they
	// are set as shared slices (header values are never modified in
	// place) so that a request allocates none for them.
	limitHeader, policyHeader []string

	mu       sync.Mutex
	pending  []*call
	flushing bool // a flusher goroutine owns the pending queue
}

// call is one Allow waiting for its batch. Calls are pooled: Allow returns
// one to callPool only after the flusher has answered it, never when its
// caller gives up first, since the flusher still writes into it then.
type call struct {
	key string
	res Result
	err error
	// done receives one value once res and err are set: buffered, so that
	// answering a caller that left never blocks the flusher, and drained by
	// the caller, so that the call can be reused (a closed channel cannot).
	done chan struct{}
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// maxBatch bounds one batch, so a burst of arrivals cannot make one round
// trip (and the first caller's wait) arbitrarily long.
const maxBatch = 256

// New returns a limiter for lim, namespacing keys with prefix.
func New(rdb redis.UniversalClient, lim Limit, prefix string) *Limiter {
	_, oneNode := rdb.(*redis.Client)
	return &Limiter{redis: rdb, limit: lim, prefix: prefix, oneNode: oneNode,
		limitHeader:  []string{strconv.Itoa(lim.Burst)},
		policyHeader: []string{fmt.Sprintf("%d;w=%d;burst=%d", lim.Rate, ceilSeconds(lim.Period), lim.Burst)}}
}

// Allow spends one request for key. A ctx with a deadline ends the wait
// when it ends, as a stalled round trip may outlast it. A ctx without one
// (an HTTP request's: cancelled only when the client leaves) is checked
// before the call joins a batch but not while it waits, which the Redis
// client's read and write timeouts bound: watching it would create its Done
// channel on every request, about 1.5 % of the gateway's CPU on a cached
// GET, and a client that left is better counted than reported as a limiter
// failure.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	_, hasDeadline := ctx.Deadline()
	if !hasDeadline {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("rate limit: %w", err)
		}
	}
	c := callPool.Get().(*call)
	c.key = l.prefix + "{" + key + "}"
	l.mu.Lock()
	l.pending = append(l.pending, c)
	if !l.flushing {
		// The flusher lives only while there is work, so an idle limiter
		// holds no goroutine and needs no Close.
		l.flushing = true
		go l.flush()
	}
	l.mu.Unlock()
	if !hasDeadline {
		<-c.done
		return c.answer()
	}
	select {
	case <-c.done:
		return c.answer()
	case <-ctx.Done():
		// c stays with the flusher, which will still answer it; the
		// garbage collector takes it afterwards.
		return Result{}, fmt.Errorf("rate limit: %w", ctx.Err())
	}
}

// answer reads an answered call and returns it to the pool.
func (c *call) answer() (Result, error) {
	res, err := c.res, c.err
	*c = call{done: c.done}
	callPool.Put(c)
	return res, err
}

// flush decides what is pending in one round trip, answers its callers and
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
			c.done <- struct{}{}
		}
	}
}

// run decides every call of batch: one script run on a single node, one per
// distinct key (in one pipeline) on a cluster. Redis may not know the
// script (a restart, a failover to a fresh replica, SCRIPT FLUSH): the runs
// it refused with NOSCRIPT are sent again with the script's source, which
// also loads it.
func (l *Limiter) run(batch []*call) {
	// The callers' contexts differ; the client's read and write timeouts
	// bound the round trip, and a caller whose context ends stops waiting.
	ctx := context.Background()
	// At least 1 µs: a zero interval would admit everything (the gateway's
	// config refuses such a limit; this keeps the script sound anyway).
	interval := max(1, l.limit.Period.Microseconds()/int64(l.limit.Rate))
	args := []any{interval, l.limit.Burst, 1}
	groups := l.group(batch)
	keys := make([][]string, len(groups))
	for i, g := range groups {
		keys[i] = make([]string, len(g))
		for j, c := range g {
			keys[i][j] = c.key
		}
	}
	cmds := make([]*redis.Cmd, len(groups))
	eval := func(script func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd, which []int) {
		if len(which) == 1 {
			// A single command (every batch on one node) needs none of a
			// pipeline's bookkeeping.
			cmds[which[0]] = script(ctx, l.redis, keys[which[0]], args...)
			return
		}
		_, _ = l.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = script(ctx, p, keys[i], args...)
			}
			return nil
		})
	}
	all := make([]int, len(groups))
	for i := range all {
		all[i] = i
	}
	eval(gcra.EvalSha, all)
	var retry []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		eval(gcra.Eval, retry)
	}
	for i, g := range groups {
		decode(cmds[i], g)
	}
}

// group splits batch into the calls that one script run may decide
// together: all of them on a single node, those of one key on a cluster.
// The order of arrival is kept within a group.
func (l *Limiter) group(batch []*call) [][]*call {
	if l.oneNode || len(batch) == 1 {
		return [][]*call{batch}
	}
	var groups [][]*call
	index := make(map[string]int, len(batch))
	for _, c := range batch {
		i, ok := index[c.key]
		if !ok {
			i = len(groups)
			index[c.key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c)
	}
	return groups
}

// decode answers the calls of one script run from its reply: for each call,
// in order, {allowed, remaining, retry_after_us, reset_after_us}.
func decode(cmd *redis.Cmd, calls []*call) {
	res, err := cmd.Int64Slice()
	if err == nil && len(res) != 4*len(calls) {
		err = fmt.Errorf("%d values for %d requests, want 4 each", len(res), len(calls))
	}
	for i, c := range calls {
		if err != nil {
			c.res, c.err = Result{}, fmt.Errorf("rate limit script: %w", err)
			continue
		}
		r := res[4*i : 4*i+4]
		c.res = Result{
			Allowed:    r[0] == 1,
			Remaining:  int(r[1]),
			RetryAfter: time.Duration(r[2]) * time.Microsecond,
			ResetAfter: time.Duration(r[3]) * time.Microsecond,
		}
	}
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
		// Each value is capped at its own element so that an Add copies
		// rather than overwrites the other.
		vals := counters(res)
		h["Ratelimit-Remaining"] = vals[0:1:1]
		h["Ratelimit-Reset"] = vals[1:2:2]
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

// counters are the RateLimit-Remaining and RateLimit-Reset values: both
// strings share one allocation, where strconv.Itoa would allocate each
// multi-digit number on its own.
func counters(res Result) []string {
	var buf [40]byte
	b := strconv.AppendInt(buf[:0], int64(res.Remaining), 10)
	n := len(b)
	b = strconv.AppendInt(b, int64(ceilSeconds(res.ResetAfter)), 10)
	s := string(b)
	return []string{s[:n], s[n:]}
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
