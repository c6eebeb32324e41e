package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/realserver"
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
	// one above: a sweep forgets only keys quiet for two spans.
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

// limiterWithKey returns a limiter of burst requests an hour on a Redis of
// its own, its client, and the bucket of key "c", created by one admitted
// request.
func limiterWithKey(t *testing.T, burst int) (*Limiter, *redis.Client, *bucket) {
	t.Helper()
	srv := realserver.StartRedis(t, "")
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
