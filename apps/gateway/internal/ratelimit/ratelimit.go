// Package ratelimit is a per-client rate limiter whose state lives in Redis,
// so every gateway replica enforces one shared limit. It implements GCRA
// (the generic cell rate algorithm: a token bucket kept as a single
// timestamp) in one Lua script, atomic on the key's Redis node.
//
// A client busy enough at one replica (leaseMinDemand requests in a
// leaseSpan) is decided there from a lease: requests taken from its bucket
// in Redis ahead of need and admitted locally, renewed when half spent, so
// its requests stop waiting for a round trip each. Every other request is
// decided in Redis, exactly as the bucket says.
package ratelimit

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"net/http"
	"strconv"
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

// The lease rules. A lease is what the client asked of this replica over
// a leaseSpan (the last one, or the current one once it has more): enough
// to cover the next span at the same pace, so a renewal sent at half has
// 25 ms to come back. That is long on purpose: the renewal's answer waits
// for the gateway's own CPU too, and near its peak a 10 ms span, whose
// renewals had 5 ms, ran dry often enough to show in the half-load p99.
// Below leaseMinDemand (800 requests a second at one replica) a round trip
// per request costs little and nothing is leased. A lease holds at most a
// tenth of the burst (Limiter.maxLease), counting what is unspent and what
// is asked for, and what is unspent lapses leaseTTL after the key's last
// grant: its requests were already taken from the bucket, so spending them
// later would let a client that paused exceed its burst by up to the
// lease.
const (
	leaseSpan      = 50 * time.Millisecond
	leaseMinDemand = 40
	leaseTTL       = 250 * time.Millisecond
)

// Limiter decides per key. Concurrent asks of Redis share one round trip:
// every key waiting at that moment is decided by one run of the GCRA
// script, atomic on Redis. A busy key's requests are admitted from its
// lease without waiting (see the package doc); the articles' Node.js
// design instead pays a round trip per request, of which ioredis'
// automatic pipelining shares the network part.
type Limiter struct {
	redis  redis.UniversalClient
	limit  Limit
	prefix string
	// oneNode is set for a client of a single Redis node, which accepts a
	// script over keys of any slot; a cluster (or any sharding client) needs
	// a script's keys on one node, so there a batch runs the script once per
	// key, all in one pipeline.
	oneNode bool
	// maxLease bounds what a replica holds of one client's burst.
	maxLease int
	// limitHeader and policyHeader are the same on every response; they
	// are set as shared slices (header values are never modified in
	// place) so that a request allocates none for them.
	limitHeader, policyHeader []string

	mu sync.Mutex
	// keys holds the buckets used since rotated, old those used in the
	// period before and not since. Every leaseTTL old is dropped whole and
	// keys becomes old, so a client quiet for a whole period is forgotten
	// without walking the map: a walk under mu took 9 ms at 100,000 keys,
	// a stall of every request at the replica four times a second.
	keys, old map[string]*bucket
	rotated   time.Time
	pending   []*bucket // keys with an ask for Redis not yet sent
	flushing  bool      // a flusher goroutine owns the pending queue
}

// bucket is what a replica knows of one key. Its fields are guarded by
// Limiter.mu, except that redisKey and want are only read by the flusher
// while asking is set, when nothing else writes them.
type bucket struct {
	key, redisKey string
	// tokens are leased requests not yet admitted; they lapse at expires.
	tokens  int
	expires time.Time
	// last is Redis' answer to the last ask: what the bucket held beyond
	// this replica's tokens.
	last Result
	// seen counts the key's requests since windowStart, seenBefore those of
	// the leaseSpan before it: the demand that sizes the next lease.
	windowStart      time.Time
	seen, seenBefore int
	// asking is set while an ask for want requests is pending or in flight;
	// a key has one at a time, so a batch holds each key once. The ask is
	// for the first forWaiters waiters and tops the lease up.
	asking     bool
	want       int
	forWaiters int
	// waiters are the requests that found no token, in arrival order.
	waiters []*call
}

// call is one Allow waiting for Redis. Calls are pooled: Allow returns one
// to callPool only after the flusher has answered it, never when its
// caller gives up first, since the flusher still writes into it then.
type call struct {
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
		maxLease:     lim.Burst / 10,
		keys:         map[string]*bucket{},
		rotated:      time.Now(),
		limitHeader:  []string{strconv.Itoa(lim.Burst)},
		policyHeader: []string{fmt.Sprintf("%d;w=%d;burst=%d", lim.Rate, ceilSeconds(lim.Period), lim.Burst)}}
}

// Allow spends one request for key. A ctx with a deadline ends the wait
// when it ends, as a stalled round trip may outlast it. A ctx without one
// (an HTTP request's: cancelled only when the client leaves) is checked
// before the call waits but not while it waits, which the Redis client's
// read and write timeouts bound: watching it would create its Done channel
// on every request, about 1.5 % of the gateway's CPU on a cached GET, and a
// client that left is better counted than reported as a limiter failure.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	_, hasDeadline := ctx.Deadline()
	if !hasDeadline {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("rate limit: %w", err)
		}
	}
	now := time.Now()
	l.mu.Lock()
	l.rotate(now)
	b := l.keys[key]
	if b == nil {
		if b = l.old[key]; b != nil {
			delete(l.old, key)
		} else {
			b = &bucket{key: key, redisKey: l.prefix + "{" + key + "}", windowStart: now}
		}
		l.keys[key] = b
	}
	b.count(now)
	if b.tokens > 0 && now.Before(b.expires) {
		b.tokens--
		res := b.admitted()
		if lease := l.lease(b); !b.asking && lease > 0 && b.tokens <= lease/2 {
			// Renewed at half, so that a steady client never finds it empty.
			l.ask(b)
		}
		l.mu.Unlock()
		return res, nil
	}
	b.tokens = 0 // lapsed, if any were left
	c := callPool.Get().(*call)
	b.waiters = append(b.waiters, c)
	if !b.asking {
		l.ask(b)
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

// count adds a request to the key's demand.
func (b *bucket) count(now time.Time) {
	if d := now.Sub(b.windowStart); d >= leaseSpan {
		b.seenBefore = b.seen
		if d >= 2*leaseSpan {
			b.seenBefore = 0 // the last span had none
		}
		b.seen, b.windowStart = 0, now
	}
	b.seen++
}

// lease is how many requests beyond its waiters b asks Redis for: none for
// a key below leaseMinDemand, else its demand up to maxLease. The demand is
// the last span's, or the current span's once that is more, so that a
// client turning busy is leased from its leaseMinDemand-th request on
// rather than a whole span later: the 1,200 requests of a span at 24,000 a
// second each waited for Redis, a percent of a five-second run.
func (l *Limiter) lease(b *bucket) int {
	demand := max(b.seenBefore, b.seen)
	if demand < leaseMinDemand {
		return 0
	}
	return min(demand, l.maxLease)
}

// admitted is the answer to a request admitted now: what Redis holds
// beyond this replica's tokens, and those tokens.
func (b *bucket) admitted() Result {
	return Result{Allowed: true, Remaining: b.last.Remaining + b.tokens, ResetAfter: b.last.ResetAfter}
}

// ask queues an ask for b's waiters and what tops its lease up, starting
// the flusher if none runs. The flusher lives only while there is work, so
// an idle limiter holds no goroutine and needs no Close.
func (l *Limiter) ask(b *bucket) {
	b.asking = true
	b.forWaiters = len(b.waiters)
	b.want = max(1, b.forWaiters+max(0, l.lease(b)-b.tokens))
	l.pending = append(l.pending, b)
	if !l.flushing {
		l.flushing = true
		go l.flush()
	}
}

// answer reads an answered call and returns it to the pool.
func (c *call) answer() (Result, error) {
	res, err := c.res, c.err
	*c = call{done: c.done}
	callPool.Put(c)
	return res, err
}

// grant is Redis' answer to one key's ask.
type grant struct {
	n   int
	res Result // Remaining, RetryAfter and ResetAfter after the grant
	err error
}

// flush sends what is pending in one round trip, settles its keys and
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
		grants := l.run(batch)
		now := time.Now()
		l.mu.Lock()
		for i, b := range batch {
			l.settle(b, grants[i], now)
		}
		l.mu.Unlock()
	}
}

// settle applies a grant to b: its waiters are admitted in arrival order
// while tokens last. Those the ask was for and Redis had nothing left for
// are denied; those that arrived after it was sent are asked for anew.
func (l *Limiter) settle(b *bucket, g grant, now time.Time) {
	l.keep(b)
	b.asking = false
	served := 0
	if g.err != nil {
		for ; served < b.forWaiters; served++ {
			c := b.waiters[served]
			c.res, c.err = Result{}, g.err
			c.done <- struct{}{}
		}
	} else {
		b.last = g.res
		if g.n > 0 {
			if !now.Before(b.expires) {
				b.tokens = 0
			}
			b.tokens += g.n
			b.expires = now.Add(leaseTTL)
		}
		for ; served < len(b.waiters) && b.tokens > 0; served++ {
			b.tokens--
			c := b.waiters[served]
			c.res = b.admitted()
			c.done <- struct{}{}
		}
		if g.n < b.want {
			for ; served < b.forWaiters; served++ {
				c := b.waiters[served]
				c.res = Result{RetryAfter: g.res.RetryAfter, ResetAfter: g.res.ResetAfter}
				c.done <- struct{}{}
			}
		}
	}
	b.waiters = clearCalls(b.waiters, served)
	if len(b.waiters) > 0 {
		l.ask(b)
	}
}

// clearCalls drops the first n calls, keeping the slice's array without
// references to them.
func clearCalls(calls []*call, n int) []*call {
	rest := copy(calls, calls[n:])
	clear(calls[rest:])
	return calls[:rest]
}

// rotate drops the buckets unused for a whole period, once per leaseTTL.
// Such a bucket has no demand in the last two spans and no unspent lease
// (a grant's tokens lapse leaseTTL after it, and settle keeps the bucket),
// so forgetting it forgets nothing a new bucket would not know.
func (l *Limiter) rotate(now time.Time) {
	if now.Sub(l.rotated) < leaseTTL {
		return
	}
	l.old, l.keys, l.rotated = l.keys, map[string]*bucket{}, now
}

// keep puts b, whose ask Redis has answered, back among the buckets in
// use. An ask outlasting two rotations (a stalled Redis) may find its key
// dropped, or already given a new bucket by a later request: b then serves
// its own waiters only, and its leftover tokens, already taken from the
// bucket in Redis, are lost to the client rather than counted twice.
func (l *Limiter) keep(b *bucket) {
	if l.keys[b.key] != nil {
		return // b, or the key's newer bucket
	}
	if o := l.old[b.key]; o != nil {
		if o != b {
			return // the key's newer bucket, unused since the last rotation
		}
		delete(l.old, b.key)
	}
	l.keys[b.key] = b
}

// run asks Redis for every key of batch: one script run on a single node,
// one per key (in one pipeline) on a cluster. Redis may not know the
// script (a restart, a failover to a fresh replica, SCRIPT FLUSH): the runs
// it refused with NOSCRIPT are sent again with the script's source, which
// also loads it.
func (l *Limiter) run(batch []*bucket) []grant {
	// The callers' contexts differ; the client's read and write timeouts
	// bound the round trip, and a caller whose context ends stops waiting.
	ctx := context.Background()
	// At least 1 µs: a zero interval would admit everything (the gateway's
	// config refuses such a limit; this keeps the script sound anyway).
	interval := max(1, l.limit.Period.Microseconds()/int64(l.limit.Rate))
	groups := l.group(batch)
	keys := make([][]string, len(groups))
	args := make([][]any, len(groups))
	for i, g := range groups {
		keys[i] = make([]string, len(g))
		args[i] = append(make([]any, 0, 2+len(g)), interval, l.limit.Burst)
		for j, b := range g {
			keys[i][j] = b.redisKey
			args[i] = append(args[i], b.want)
		}
	}
	cmds := make([]*redis.Cmd, len(groups))
	eval := func(script func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd, which []int) {
		if len(which) == 1 {
			// A single command (every batch on one node) needs none of a
			// pipeline's bookkeeping.
			cmds[which[0]] = script(ctx, l.redis, keys[which[0]], args[which[0]]...)
			return
		}
		_, _ = l.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = script(ctx, p, keys[i], args[i]...)
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
	grants := make([]grant, 0, len(batch))
	for i := range groups {
		grants = append(grants, decode(cmds[i], len(groups[i]))...)
	}
	return grants
}

// group splits batch into the keys that one script run may decide
// together: all of them on a single node, each on its own on a cluster.
// The batch's order is kept.
func (l *Limiter) group(batch []*bucket) [][]*bucket {
	if l.oneNode || len(batch) == 1 {
		return [][]*bucket{batch}
	}
	groups := make([][]*bucket, len(batch))
	for i := range batch {
		groups[i] = batch[i : i+1 : i+1]
	}
	return groups
}

// decode reads the grants of one script run for n keys: for each, in
// order, {granted, remaining, retry_after_us, reset_after_us}.
func decode(cmd *redis.Cmd, n int) []grant {
	grants := make([]grant, n)
	res, err := cmd.Int64Slice()
	if err == nil && len(res) != 4*n {
		err = fmt.Errorf("%d values for %d keys, want 4 each", len(res), n)
	}
	for i := range grants {
		if err != nil {
			grants[i].err = fmt.Errorf("rate limit script: %w", err)
			continue
		}
		r := res[4*i : 4*i+4]
		grants[i] = grant{n: int(r[0]), res: Result{
			Remaining:  int(r[1]),
			RetryAfter: time.Duration(r[2]) * time.Microsecond,
			ResetAfter: time.Duration(r[3]) * time.Microsecond,
		}}
	}
	return grants
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
