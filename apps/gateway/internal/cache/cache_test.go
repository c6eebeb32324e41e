package cache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

func newCache(t *testing.T, load func(context.Context, string) ([]byte, error)) *Cache {
	t.Helper()
	rd := realservertest.MustStartRedis(t, "")
	rdb := redis.NewClient(&redis.Options{Addr: rd.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return New(Config{L1Size: 2, L1TTL: 50 * time.Millisecond, Fresh: 200 * time.Millisecond, Stale: time.Minute, LoadTimeout: time.Second},
		rdb, func(k string) string { return "t:" + k }, load, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
}

func TestStaleWhileRevalidateRefreshesOnceInBackground(t *testing.T) {
	var loads atomic.Int64
	var fail atomic.Bool
	c := newCache(t, func(ctx context.Context, k string) ([]byte, error) {
		n := loads.Add(1)
		if fail.Load() {
			return nil, errors.New("source down")
		}
		time.Sleep(20 * time.Millisecond)
		return []byte(`"v` + string(rune('0'+n)) + `"`), nil
	})
	ctx := context.Background()
	get := func() ([]byte, Source) {
		v, s, err := c.Get(ctx, "k")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		return v, s
	}
	if v, s := get(); s != Loaded || string(v) != `"v1"` {
		t.Fatalf("first Get = %s from %s, want v1 loaded", v, s)
	}
	if _, s := get(); s != L1 {
		t.Errorf("second Get from %s, want l1", s)
	}
	time.Sleep(250 * time.Millisecond) // L1 expired, L2 stale
	var wg sync.WaitGroup
	stale := atomic.Int64{}
	for range 20 {
		wg.Go(func() {
			if v, s, err := c.Get(ctx, "k"); err == nil && s == L2Stale && string(v) == `"v1"` {
				stale.Add(1)
			}
		})
	}
	wg.Wait()
	if stale.Load() == 0 {
		t.Fatalf("no caller was served the stale value at once")
	}
	time.Sleep(100 * time.Millisecond)
	if n := loads.Load(); n != 2 {
		t.Errorf("%d loads after 20 concurrent stale reads, want 2 (one background refresh)", n)
	}
	if v, _ := get(); string(v) != `"v2"` {
		t.Errorf("after the refresh Get = %s, want v2", v)
	}

	// The source fails and Redis lost the key: the expired L1 copy is served.
	fail.Store(true)
	if err := c.redis.Del(ctx, "t:k").Err(); err != nil {
		t.Fatalf("del: %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	if v, s, err := c.Get(ctx, "k"); err != nil || s != Fallback || string(v) != `"v2"` {
		t.Errorf("Get with the source down = %s from %s (%v), want v2 from fallback", v, s, err)
	}
	if _, _, err := c.Get(ctx, "other"); err == nil {
		t.Errorf("Get of an uncached key with the source down succeeded; want the source's error")
	}
}

func TestL1IsBounded(t *testing.T) {
	l := newLRU(2)
	now := time.Now()
	for _, k := range []string{"a", "b", "c"} {
		l.set(k, []byte(k), now.Add(time.Hour))
	}
	if _, _, ok := l.get("a", now); ok || l.len() != 2 {
		t.Errorf("after 3 inserts into a 2-entry LRU: a present %v, len %d; want a evicted, len 2", ok, l.len())
	}
}
