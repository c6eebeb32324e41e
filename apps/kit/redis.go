package kit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: in cluster mode (the default, as the
// platform deploys it) any node's address is a seed and keys are routed by
// slot; with REDIS_CLUSTER=false a single node is used (local development).
type RedisConfig struct {
	Addrs    []string
	Password string
	Cluster  bool
	// Timeout bounds each command so a stalled node costs a request a
	// bounded delay, never a hang.
	Timeout time.Duration
	// TLS is on for ElastiCache with transit encryption.
	TLS TLSConfig
	// Refresh is how often a cluster client reloads the slot map (see
	// refreshingCluster); 0 means DefaultRedisRefresh.
	Refresh time.Duration
}

// DefaultRedisRefresh bounds how long a client keeps sending to a master
// address that no longer exists.
const DefaultRedisRefresh = 5 * time.Second

// RedisFromEnv reads REDIS_ADDRS, REDIS_PASSWORD, REDIS_CLUSTER,
// REDIS_TIMEOUT, REDIS_TLS and REDIS_TLS_CA_FILE.
func RedisFromEnv(e *Env) RedisConfig {
	return RedisConfig{
		Addrs:    e.Addrs("REDIS_ADDRS", []string{"127.0.0.1:6379"}),
		Password: e.String("REDIS_PASSWORD", ""),
		Cluster:  e.Bool("REDIS_CLUSTER", true),
		Timeout:  e.Duration("REDIS_TIMEOUT", 500*time.Millisecond, 10*time.Millisecond, time.Minute),
		TLS:      TLSFromEnv(e, "REDIS"),
		Refresh:  e.Duration("REDIS_CLUSTER_REFRESH", DefaultRedisRefresh, 100*time.Millisecond, 10*time.Minute),
	}
}

// NewRedis returns a client for c; it fails only on a bad TLS setting.
func NewRedis(c RedisConfig) (redis.UniversalClient, error) {
	tlsConfig, err := c.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if c.Cluster {
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Password: c.Password, TLSConfig: tlsConfig,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		})
		refresh := c.Refresh
		if refresh <= 0 {
			refresh = DefaultRedisRefresh
		}
		return newRefreshingCluster(cc, refresh), nil
	}
	return redis.NewClient(&redis.Options{
		Addr: c.Addrs[0], Password: c.Password, TLSConfig: tlsConfig,
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
	}), nil
}

// RedisCheck is a readiness check pinging Redis.
func RedisCheck(r redis.UniversalClient) Check {
	return func(ctx context.Context) error { return r.Ping(ctx).Err() }
}

// refreshingCluster reloads a cluster client's slot map on a timer. go-redis
// reloads it only when a node answers MOVED or ASK, and a master that is
// gone (its pod deleted, back under a new IP) answers nothing: pipelines
// kept dialing its old address, and rate limits, cache writes and event
// fan-out failed for as long as the process lived (found by the deploy
// suite's Redis scenario). One CLUSTER SLOTS every few seconds bounds that.
type refreshingCluster struct {
	*redis.ClusterClient
	stop chan struct{}
	once sync.Once
}

func newRefreshingCluster(cc *redis.ClusterClient, every time.Duration) *refreshingCluster {
	c := &refreshingCluster{ClusterClient: cc, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				cc.ReloadState(context.Background()) // asynchronous in go-redis
			}
		}
	}()
	return c
}

// Close stops the refresher and closes the client.
func (c *refreshingCluster) Close() error {
	c.once.Do(func() { close(c.stop) })
	return c.ClusterClient.Close()
}
