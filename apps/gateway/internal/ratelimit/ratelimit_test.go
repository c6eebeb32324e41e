package ratelimit_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/apps/gateway/internal/ratelimit"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	r := realservertest.MustStartRedis(t, "")
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// shardedClient hides that the client is a single node, so the limiter
// takes the path of a cluster: one script run per distinct key of a batch.
type shardedClient struct{ *redis.Client }

// TestConcurrentCallersShareTheLimitExactly sends 300 concurrent requests
// for one key and 300 spread over 30 keys through one limiter, so they are
// batched: the shared key admits exactly its burst (each script run is
// atomic, and grants a key's waiting requests no more than its bucket
// holds) and every caller gets its own key's answer. Both the single-node path (one
// run for the whole batch) and the cluster path (one run per key) are
// checked.
func TestConcurrentCallersShareTheLimitExactly(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	for name, client := range map[string]redis.UniversalClient{"one node": rdb, "cluster": shardedClient{rdb}} {
		t.Run(name, func(t *testing.T) {
			const burst = 50
			l := ratelimit.New(client, ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: burst}, "rl:"+name+":")
			var allowedHot, allowedSpread atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 600)
			for i := range 600 {
				wg.Go(func() {
					key, counter := "hot", &allowedHot
					if i%2 == 1 {
						key, counter = fmt.Sprintf("client-%d", i%30), &allowedSpread
					}
					res, err := l.Allow(context.Background(), key)
					if err != nil {
						errs <- err
						return
					}
					if res.Allowed {
						counter.Add(1)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err, "Allow against a healthy Redis")
			}
			assert.Equal(t, int64(burst), allowedHot.Load(), "one key admits exactly its burst however the calls were batched")
			// 300 calls over 15 odd-numbered keys: 20 each, all within the burst of 50.
			assert.Equal(t, int64(300), allowedSpread.Load(), "keys under their burst are all admitted: answers reach their own callers")
		})
	}
}

// TestCallersWhoGiveUpDoNotCorruptOthers: calls are pooled, and a caller
// whose context ends before its batch is answered leaves its call with the
// flusher, which writes the answer into it later. Were that call reused at
// once, another caller would read the stale answer, race with the flusher
// (which -race reports) or stall it. Callers with cancelled contexts ask for an
// exhausted key while the others ask for fresh keys, so any answer that
// reaches the wrong caller is a denial where an admission was due.
func TestCallersWhoGiveUpDoNotCorruptOthers(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	const burst = 5
	l := ratelimit.New(rdb, ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: burst}, "rl:")
	for range burst {
		_, err := l.Allow(context.Background(), "exhausted")
		require.NoError(t, err, "spend the exhausted key")
	}
	// An expired deadline: a context without one is refused before its
	// call joins a batch, so it would never leave a call behind.
	gone, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for i := range 4000 {
		wg.Go(func() {
			if i%2 == 0 {
				_, _ = l.Allow(gone, "exhausted")
				return
			}
			res, err := l.Allow(context.Background(), fmt.Sprintf("fresh-%d", i))
			if err != nil || !res.Allowed || res.Remaining != burst-1 {
				wrong.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		// A call reused while the flusher still owed it an answer gets two
		// answers, and the second blocks the flusher for good.
		t.Fatal("callers still waiting after 30 s: the flusher is stuck")
	}
	assert.Zero(t, wrong.Load(), "every caller with a fresh key was admitted with its own remaining count")
}

// TestLimiterReloadsAFlushedScript: after SCRIPT FLUSH (as after a restart
// or a failover to a fresh node) the next decisions still work.
func TestLimiterReloadsAFlushedScript(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	l := ratelimit.New(rdb, ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 5}, "rl:")
	ctx := context.Background()
	_, err := l.Allow(ctx, "a")
	require.NoError(t, err, "first decision loads the script")
	require.NoError(t, rdb.ScriptFlush(ctx).Err(), "SCRIPT FLUSH")
	res, err := l.Allow(ctx, "a")
	require.NoError(t, err, "a decision after SCRIPT FLUSH")
	assert.True(t, res.Allowed, "second request of a burst of 5 is allowed")
	assert.Equal(t, 3, res.Remaining, "two of five spent")
}

// TestMiddlewareAnswers429WithHeadersAndFailsOpen: over the limit the
// client gets 429 with Retry-After and RateLimit-* headers; with Redis
// gone the request passes and the error is reported.
func TestMiddlewareAnswers429WithHeadersAndFailsOpen(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	l := ratelimit.New(rdb, ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 2}, "rl:")
	var reported atomic.Int64
	h := l.Middleware(func(*http.Request) string { return "client" }, func(*http.Request, error) { reported.Add(1) },
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	codes := []int{}
	var last *httptest.ResponseRecorder
	for range 3 {
		last = httptest.NewRecorder()
		h.ServeHTTP(last, httptest.NewRequest(http.MethodGet, "/", nil))
		codes = append(codes, last.Code)
	}
	assert.Equal(t, []int{204, 204, 429}, codes, "burst of 2, then 429")
	assert.NotEmpty(t, last.Header().Get("Retry-After"), "429 carries Retry-After")
	assert.Equal(t, "0", last.Header().Get("RateLimit-Remaining"), "nothing left")
	assert.Equal(t, "120", last.Header().Get("RateLimit-Reset"), "full again after the two spent 60 s intervals, rounded up")
	assert.Equal(t, "1;w=60;burst=2", last.Header().Get("RateLimit-Policy"), "policy header")
	assert.Equal(t, "2", last.Header().Get("RateLimit-Limit"), "limit header")

	dead := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", realservertest.MustFreePort(t)), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer func() { _ = dead.Close() }()
	open := ratelimit.New(dead, ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 1}, "rl:").Middleware(
		func(*http.Request) string { return "client" }, func(*http.Request, error) { reported.Add(1) },
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusNoContent, rec.Code, "Redis down: the request passes (fail open)")
	assert.Equal(t, int64(1), reported.Load(), "the failure is reported once")
}

// TestAllowStopsWaitingWhenTheCallerGivesUp: a caller whose context ends
// returns at once even while its batch is stuck on a silent server.
func TestAllowStopsWaitingWhenTheCallerGivesUp(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	slow := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 10 * time.Second, WriteTimeout: time.Second})
	defer func() { _ = slow.Close() }()
	l := ratelimit.New(slow, ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1}, "rl:")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.Allow(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the caller's deadline ends the wait")
	assert.Less(t, time.Since(start), 5*time.Second, "returned on the caller's deadline, not the server's 10 s read timeout")
}

// silentServer accepts connections and never answers, as a stalled Redis
// node would; it returns its address.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "listen")
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return ln.Addr().String()
}

// TestMiddlewareCountersAreSeparateValues: RateLimit-Remaining and
// RateLimit-Reset share one allocation; each must still read, and grow
// through Header.Add, as its own value.
func TestMiddlewareCountersAreSeparateValues(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	l := ratelimit.New(rdb, ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 12345}, "rl:")
	h := l.Middleware(func(*http.Request) string { return "client" }, func(*http.Request, error) { t.Error("limiter failed") },
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Add("RateLimit-Remaining", "x")
			w.WriteHeader(http.StatusNoContent)
		}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, []string{"12344", "x"}, rec.Header().Values("RateLimit-Remaining"), "remaining, then the handler's own value")
	assert.Equal(t, []string{"1"}, rec.Header().Values("RateLimit-Reset"), "0.1 s until full, rounded up, untouched by the Add")
}

// TestAllowWithoutDeadline: a context without a deadline is refused if
// already ended, and otherwise waits for its decision: a caller cancelled
// while waiting (an HTTP client that left) gets the round trip's outcome,
// bounded by the client's read timeout, not a cancellation error.
func TestAllowWithoutDeadline(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	l := ratelimit.New(rdb, ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 3}, "rl:")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Allow(gone, "k")
	require.ErrorIs(t, err, context.Canceled, "an ended context is refused")
	res, err := l.Allow(context.Background(), "k")
	require.NoError(t, err, "a live context is decided")
	assert.Equal(t, 2, res.Remaining, "the refused call spent nothing")

	addr := silentServer(t)
	slow := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 300 * time.Millisecond})
	defer func() { _ = slow.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = ratelimit.New(slow, ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1}, "rl:").Allow(ctx, "k")
	require.Error(t, err, "the stalled round trip fails")
	assert.NotErrorIs(t, err, context.Canceled, "the wait ended with the round trip, not the cancellation")
	assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "bounded by the read timeout")
}

// scriptRuns counts, per Redis key, the commands a client sends that name
// it, pipelined or not: the limiter's script runs.
type scriptRuns struct {
	mu    sync.Mutex
	byKey map[string]int64
}

func (h *scriptRuns) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptRuns) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *scriptRuns) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func (h *scriptRuns) count(cmd redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range cmd.Args() {
		if k, ok := a.(string); ok && strings.HasPrefix(k, "rl:{") {
			h.byKey[k]++
		}
	}
}

func (h *scriptRuns) of(key string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byKey[key]
}

// countedLimiter is a limiter of a million requests a second (a burst of
// as many: no test comes near it) on a Redis of its own, with its script
// runs counted per key.
func countedLimiter(t *testing.T) (*ratelimit.Limiter, *scriptRuns) {
	t.Helper()
	rdb := newRedis(t)
	runs := &scriptRuns{byKey: map[string]int64{}}
	rdb.AddHook(runs)
	return ratelimit.New(rdb, ratelimit.Limit{Rate: 1000000, Period: time.Second, Burst: 1000000}, "rl:"), runs
}

// TestABusyKeyIsAdmittedFromLeases: one client's requests, as fast as 50
// callers can send them for 300 ms (six lease spans), are admitted in
// fewer script runs than batching alone could manage (a run per batch of
// waiting callers); a quiet key asks Redis for every request.
func TestABusyKeyIsAdmittedFromLeases(t *testing.T) {
	t.Parallel()
	l, runs := countedLimiter(t)
	const callers = 50
	var sent, denied atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for time.Since(start) < 300*time.Millisecond {
				sent.Add(1)
				res, err := l.Allow(context.Background(), "busy")
				if err != nil || !res.Allowed {
					denied.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, denied.Load(), "every request is within the limit")
	asked := runs.of("rl:{busy}")
	t.Logf("%d requests, %d script runs", sent.Load(), asked)
	// Each caller waits for its answer, so a run without leases decides at
	// most one request per caller.
	assert.Less(t, asked, sent.Load()/callers, "a busy key asks Redis for leases, not for each batch of requests")

	for range 5 {
		time.Sleep(10 * time.Millisecond) // one request at a time: far below a lease
		_, err := l.Allow(context.Background(), "quiet")
		require.NoError(t, err, "a quiet key's request")
	}
	assert.Equal(t, int64(5), runs.of("rl:{quiet}"), "a quiet key asks Redis for each request")
}

// TestAKeyTurningBusyIsLeasedAtOnce: a client that starts sending
// requests back to back is leased once it has sent leaseMinDemand (40) of
// them, not a whole lease span (50 ms) later: of 400 sequential requests,
// which take about one span when each waits for Redis, only the first
// ones and the lease's renewals are script runs.
//
// The premise is a Redis that answers the first 40 within one span: a
// client slower than that (800 requests a second) is not leased, by
// design. Under a loaded machine (the whole suite on two cores) round
// trips took 1.8 ms, so an attempt whose first requests missed the span
// is logged and tried again on a new key.
func TestAKeyTurningBusyIsLeasedAtOnce(t *testing.T) {
	t.Parallel()
	l, runs := countedLimiter(t)
	const (
		requests = 400
		attempts = 5
	)
	for attempt := range attempts {
		key := fmt.Sprintf("turning-%d", attempt)
		start := time.Now()
		var firstOnes time.Duration
		for i := range requests {
			res, err := l.Allow(context.Background(), key)
			require.NoError(t, err, "attempt %d, request %d", attempt, i)
			require.True(t, res.Allowed, "attempt %d, request %d is within the limit", attempt, i)
			if i == ratelimit.LeaseMinDemand {
				firstOnes = time.Since(start)
			}
		}
		asked := runs.of("rl:{" + key + "}")
		t.Logf("attempt %d: %d requests in %v (the first %d in %v), %d script runs", attempt, requests, time.Since(start), ratelimit.LeaseMinDemand+1, firstOnes, asked)
		if firstOnes >= ratelimit.LeaseSpan {
			continue // the premise failed: Redis too slow for a lease
		}
		assert.Less(t, asked, int64(requests/4), "the requests after the 40th are admitted from a lease")
		return
	}
	t.Skipf("in %d attempts Redis never answered %d requests within a lease span (%v): below that pace a key is not leased, by design", attempts, ratelimit.LeaseMinDemand+1, ratelimit.LeaseSpan)
}

// TestReplicasLeasingOneKeyKeepItsLimit: two limiters (two gateway
// replicas) flood one client's key, so both lease from its bucket. They
// admit no more than the bucket's burst plus its refill over the run, and
// no less than that minus the leases the two may still hold (a tenth of
// the burst each) and the refill of a slow start and end; both admit some.
func TestReplicasLeasingOneKeyKeepItsLimit(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	lim := ratelimit.Limit{Rate: 2000, Period: time.Second, Burst: 200}
	replicas := []*ratelimit.Limiter{ratelimit.New(rdb, lim, "rl:"), ratelimit.New(rdb, lim, "rl:")}
	var admitted [2]atomic.Int64
	var failed atomic.Int64
	const run = 300 * time.Millisecond
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for time.Since(start) < run {
				res, err := replicas[i%2].Allow(context.Background(), "client")
				if err != nil {
					failed.Add(1)
				} else if res.Allowed {
					admitted[i%2].Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := float64(admitted[0].Load() + admitted[1].Load())
	refill := float64(lim.Rate) * elapsed.Seconds()
	held := 2 * float64(lim.Burst/10)
	t.Logf("admitted %v (%d + %d) in %v: burst %d, refill %.0f", total, admitted[0].Load(), admitted[1].Load(), elapsed, lim.Burst, refill)
	require.Zero(t, failed.Load(), "no Allow failed against a healthy Redis")
	assert.LessOrEqual(t, total, float64(lim.Burst)+refill, "the replicas admit no more than the bucket gave out")
	// The refill counted from the first request, less 100 ms for the
	// flood's start and end on a busy machine, and the leases left unspent.
	assert.GreaterOrEqual(t, total, float64(lim.Burst)+float64(lim.Rate)*(elapsed-100*time.Millisecond).Seconds()-held,
		"the replicas admit what the bucket gave out, less what they still hold")
	assert.Positive(t, admitted[0].Load(), "replica A admitted some")
	assert.Positive(t, admitted[1].Load(), "replica B admitted some")
}
