// Package cache is the gateway's two-level read cache: L1 in process, L2 in
// Redis with stale-while-revalidate, in front of a loader (the users
// service). Concurrent misses for one key are collapsed into one load.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// Source says where a value came from.
type Source string

// Sources, also the label values of cache_requests_total.
const (
	L1       Source = "l1"
	L2       Source = "l2"
	L2Stale  Source = "l2_stale" // served stale, refresh started in the background
	Loaded   Source = "loaded"   // missed both levels, loaded
	Fallback Source = "fallback" // the loader failed, an outdated value was served
)

// Config sizes the cache.
type Config struct {
	L1Size int
	L1TTL  time.Duration
	// Fresh is how long an L2 value is served as is; Stale how long after
	// that it is still served while one background refresh runs.
	Fresh, Stale time.Duration
	// LoadTimeout bounds a load, which runs detached from the request that
	// started it so that other waiters are not failed by its cancellation.
	LoadTimeout time.Duration
}

// Cache is safe for concurrent use.
type Cache struct {
	cfg     Config
	l1      *lru
	redis   redis.UniversalClient
	key     func(string) string
	load    func(ctx context.Context, key string) ([]byte, error)
	sf      singleflight.Group
	log     *slog.Logger
	results *prometheus.CounterVec
	// l1Hits is results' l1 series, looked up once: an L1 hit is the hot
	// path, where WithLabelValues' hashing showed in the profile.
	l1Hits prometheus.Counter
	now    func() time.Time
}

// New returns a cache; redisKey maps a key to its Redis key.
func New(cfg Config, rdb redis.UniversalClient, redisKey func(string) string,
	load func(ctx context.Context, key string) ([]byte, error), log *slog.Logger, reg prometheus.Registerer) *Cache {
	c := &Cache{cfg: cfg, l1: newLRU(cfg.L1Size), redis: rdb, key: redisKey, load: load, log: log, now: time.Now,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cache_requests_total",
			Help: "Cache lookups by where the value came from (or error)."}, []string{"source"})}
	reg.MustRegister(c.results)
	c.l1Hits = c.results.WithLabelValues(string(L1))
	return c
}

type envelope struct {
	FreshUntil int64           `json:"f"`
	Value      json.RawMessage `json:"v"`
}

// Get returns the value for key and where it came from.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, Source, error) {
	now := c.now()
	l1val, fresh, inL1 := c.l1.get(key, now)
	if inL1 && fresh {
		c.l1Hits.Inc()
		return l1val, L1, nil
	}
	raw, err := c.redis.Get(ctx, c.key(key)).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		c.log.WarnContext(ctx, "L2 read failed, going to the source", "err", err)
	}
	var env envelope
	if err == nil && json.Unmarshal(raw, &env) == nil && len(env.Value) > 0 {
		c.l1.set(key, env.Value, now.Add(c.cfg.L1TTL))
		if now.UnixMilli() < env.FreshUntil {
			c.results.WithLabelValues(string(L2)).Inc()
			return env.Value, L2, nil
		}
		// Stale: answer now, refresh once for everybody in the background.
		go func() { _, _ = c.refresh(ctx, key) }()
		c.results.WithLabelValues(string(L2Stale)).Inc()
		return env.Value, L2Stale, nil
	}
	v, err := c.refresh(ctx, key)
	if err != nil {
		if inL1 && ctx.Err() == nil {
			c.results.WithLabelValues(string(Fallback)).Inc()
			return l1val, Fallback, nil
		}
		c.results.WithLabelValues("error").Inc()
		return nil, "", err
	}
	c.results.WithLabelValues(string(Loaded)).Inc()
	return v, Loaded, nil
}

// refresh loads key once however many callers ask at the same time, and
// writes the result to both levels.
func (c *Cache) refresh(ctx context.Context, key string) ([]byte, error) {
	ch := c.sf.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LoadTimeout)
		defer cancel()
		v, err := c.load(lctx, key)
		if err != nil {
			return nil, err
		}
		now := c.now()
		c.l1.set(key, v, now.Add(c.cfg.L1TTL))
		env, _ := json.Marshal(envelope{FreshUntil: now.Add(c.cfg.Fresh).UnixMilli(), Value: v})
		if err := c.redis.Set(lctx, c.key(key), env, c.cfg.Fresh+c.cfg.Stale).Err(); err != nil {
			c.log.WarnContext(lctx, "L2 write failed", "err", err)
		}
		return v, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Invalidate drops key from both levels (this replica's L1 only).
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	c.l1.delete(key)
	return c.redis.Del(ctx, c.key(key)).Err()
}
