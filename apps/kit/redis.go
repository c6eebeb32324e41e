package kit

import (
	"context"
	"fmt"
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
}

// RedisFromEnv reads REDIS_ADDRS, REDIS_PASSWORD, REDIS_CLUSTER,
// REDIS_TIMEOUT, REDIS_TLS and REDIS_TLS_CA_FILE.
func RedisFromEnv(e *Env) RedisConfig {
	return RedisConfig{
		Addrs:    e.Addrs("REDIS_ADDRS", []string{"127.0.0.1:6379"}),
		Password: e.String("REDIS_PASSWORD", ""),
		Cluster:  e.Bool("REDIS_CLUSTER", true),
		Timeout:  e.Duration("REDIS_TIMEOUT", 500*time.Millisecond, 10*time.Millisecond, time.Minute),
		TLS:      TLSFromEnv(e, "REDIS"),
	}
}

// NewRedis returns a client for c; it fails only on a bad TLS setting.
func NewRedis(c RedisConfig) (redis.UniversalClient, error) {
	tlsConfig, err := c.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if c.Cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Password: c.Password, TLSConfig: tlsConfig,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		}), nil
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
