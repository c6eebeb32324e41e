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
	srv := realserver.StartRedis(t, "")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	l := New(rdb, Limit{Rate: 1, Period: time.Hour, Burst: 100}, "rl:")
	ctx := context.Background()
	res, err := l.Allow(ctx, "c")
	require.NoError(t, err, "the first request creates the key's bucket")
	require.True(t, res.Allowed, "the first request is within the burst")
	// Empty the bucket in Redis: full again only after the whole burst's
	// intervals, 100 hours.
	tat := time.Now().Add(100 * time.Hour).UnixMicro()
	require.NoError(t, rdb.Set(ctx, "rl:{c}", tat, 101*time.Hour).Err(), "empty the bucket")
	// As if a lease of 3 had just been granted.
	l.mu.Lock()
	l.keys["c"].tokens, l.keys["c"].expires = 3, time.Now().Add(leaseTTL)
	l.mu.Unlock()
	for i := range 3 {
		res, err := l.Allow(ctx, "c")
		require.NoError(t, err, "leased request %d", i)
		assert.True(t, res.Allowed, "leased request %d is admitted without Redis", i)
	}
	res, err = l.Allow(ctx, "c")
	require.NoError(t, err, "the request after the lease")
	assert.False(t, res.Allowed, "the lease spent, Redis decides: its bucket is empty")

	l.mu.Lock()
	l.keys["c"].tokens, l.keys["c"].expires = 3, time.Now().Add(-time.Millisecond)
	l.mu.Unlock()
	res, err = l.Allow(ctx, "c")
	require.NoError(t, err, "the request after the lease lapsed")
	assert.False(t, res.Allowed, "a lapsed lease admits nothing")
}
