package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// TestALeaseIsSpentLocallyUntilItLapses: with the client's bucket in Redis
// emptied, a replica still admits the requests it leased before, and no
// more once the lease has lapsed: its requests then go to Redis, which
// denies them.
func TestALeaseIsSpentLocallyUntilItLapses(t *testing.T) {
	t.Parallel()
	l, rdb, b := limiterWithKey(t, 100)
	ctx := context.Background()
	// Empty the bucket in Redis: full again only after the whole burst's
	// intervals, 100 hours.
	tat := time.Now().Add(100 * time.Hour).UnixMicro()
	require.NoError(t, rdb.Set(ctx, "rl:{c}", tat, 101*time.Hour).Err(), "empty the bucket")
	// As if a lease of 3 had just been granted.
	l.mu.Lock()
	b.tokens, b.expires = 3, time.Now().Add(leaseTTL)
	l.mu.Unlock()
	for i := range 3 {
		res, err := l.Allow(ctx, "c")
		require.NoError(t, err, "leased request %d", i)
		assert.True(t, res.Allowed, "leased request %d is admitted without Redis", i)
	}
	res, err := l.Allow(ctx, "c")
	require.NoError(t, err, "the request after the lease")
	assert.False(t, res.Allowed, "the lease spent, Redis decides: its bucket is empty")

	// As if that lease had lapsed unspent. The key's bucket is still the
	// one above: only a key unused for a whole leaseTTL is forgotten.
	l.mu.Lock()
	require.Same(t, b, l.keys["c"], "the key's bucket is kept between its requests")
	b.tokens, b.expires = 3, time.Now().Add(-time.Millisecond)
	l.mu.Unlock()
	res, err = l.Allow(ctx, "c")
	require.NoError(t, err, "the request after the lease lapsed")
	assert.False(t, res.Allowed, "a lapsed lease admits nothing")
}

// TestARenewalTopsTheLeaseUp: a lease renewed at half asks only for what
// brings it back to its size, so a replica never holds more than a tenth
// of the burst, however quickly the renewal comes back.
func TestARenewalTopsTheLeaseUp(t *testing.T) {
	t.Parallel()
	l, _, b := limiterWithKey(t, 200)
	ctx := context.Background()
	// As if the key were busy (the whole lease of 20) and its lease half spent.
	l.mu.Lock()
	b.seenBefore, b.windowStart = 1000, time.Now()
	b.tokens, b.expires = 11, time.Now().Add(leaseTTL)
	l.mu.Unlock()
	res, err := l.Allow(ctx, "c")
	require.NoError(t, err, "a leased request")
	require.True(t, res.Allowed, "a leased request is admitted")
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		asking, tokens := b.asking, b.tokens
		l.mu.Unlock()
		if !asking {
			assert.Equal(t, l.maxLease, tokens, "the renewal tops the lease up to its size (10 left + 10 asked)")
			break
		}
		require.True(t, time.Now().Before(deadline), "the renewal was answered within 5 s")
		time.Sleep(time.Millisecond)
	}
}

// TestAQuietKeyIsForgottenAfterAWholePeriod: a key unused for a whole
// leaseTTL goes at the next rotation, and not before, while a key in use
// keeps its bucket, and with it its demand and lease, across rotations.
func TestAQuietKeyIsForgottenAfterAWholePeriod(t *testing.T) {
	t.Parallel()
	l, _, busy := limiterWithKey(t, 100)
	ctx := context.Background()
	_, err := l.Allow(ctx, "quiet")
	require.NoError(t, err, "the quiet key's one request")
	l.mu.Lock()
	quiet := l.keys["quiet"]
	l.mu.Unlock()
	require.NotNil(t, quiet, "the quiet key's request made its bucket")
	for period := range 2 {
		l.mu.Lock()
		l.rotated = l.rotated.Add(-leaseTTL) // as if a whole period had passed
		l.mu.Unlock()
		_, err := l.Allow(ctx, "c")
		require.NoError(t, err, "the busy key's request after period %d", period)
		l.mu.Lock()
		assert.Same(t, busy, l.keys["c"], "after period %d the key in use keeps its bucket", period)
		if period == 0 {
			assert.Same(t, quiet, l.old["quiet"], "a key unused since the last rotation is still known")
		} else {
			assert.NotContains(t, l.old, "quiet", "a key unused for a whole period is forgotten")
			assert.NotContains(t, l.keys, "quiet", "a key unused for a whole period is forgotten")
		}
		l.mu.Unlock()
	}
}

// TestAnAnsweredAskKeepsItsBucket: an ask outlasting the rotations that
// dropped its key (a stalled Redis) brings its bucket back with the lease
// it was granted; if a later request already gave the key a new bucket,
// that one stays the key's.
func TestAnAnsweredAskKeepsItsBucket(t *testing.T) {
	t.Parallel()
	l, _, b := limiterWithKey(t, 100)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, "c") // as if dropped while its ask was in flight
	l.settle(b, grant{n: 5, res: Result{Remaining: 50}}, time.Now())
	assert.Same(t, b, l.keys["c"], "the answered bucket is the key's again")
	assert.Equal(t, 5, b.tokens, "with the lease it was granted")

	newer := &bucket{key: "c", redisKey: "rl:{c}"}
	l.keys["c"] = newer
	l.settle(b, grant{n: 1, res: Result{Remaining: 49}}, time.Now())
	assert.Same(t, newer, l.keys["c"], "a bucket made since stays the key's")

	// The newer bucket unused since the last rotation is the key's still.
	delete(l.keys, "c")
	l.old = map[string]*bucket{"c": newer}
	l.settle(b, grant{n: 1, res: Result{Remaining: 48}}, time.Now())
	assert.NotContains(t, l.keys, "c", "a stale bucket does not displace the key's newer one")
	assert.Same(t, newer, l.old["c"], "a bucket made since, though unused since the last rotation, stays the key's")
}

// limiterWithKey returns a limiter of burst requests an hour on a Redis of
// its own, its client, and the bucket of key "c", created by one admitted
// request.
func limiterWithKey(t *testing.T, burst int) (*Limiter, *redis.Client, *bucket) {
	t.Helper()
	srv := realservertest.MustStartRedis(t, "")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	l := New(rdb, Limit{Rate: 1, Period: time.Hour, Burst: burst}, "rl:")
	res, err := l.Allow(context.Background(), "c")
	require.NoError(t, err, "the first request creates the key's bucket")
	require.True(t, res.Allowed, "the first request is within the burst")
	l.mu.Lock()
	defer l.mu.Unlock()
	return l, rdb, l.keys["c"]
}
