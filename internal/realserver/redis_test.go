package realserver

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	r := must(t, StartRedis, "maxmemory 64mb\nmaxmemory-policy allkeys-lru\n")
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on %s: %v", r.Addr(), err)
	}
	got, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil || got["maxmemory-policy"] != "allkeys-lru" {
		t.Fatalf("the rendered config was not applied: maxmemory-policy = %v (err %v), want allkeys-lru", got, err)
	}
	ports, err := c.ConfigGet(ctx, "port").Result()
	if err != nil || ports["port"] != fmt.Sprint(r.Port()) {
		t.Fatalf("harness port not in force: port = %v (err %v), want %d", ports, err, r.Port())
	}
}

// TestRedisHarnessKeysWin proves a rendered config meant for a pod (its own
// port, dir and logfile) still runs here with the harness's values.
func TestRedisHarnessKeysWin(t *testing.T) {
	t.Parallel()
	r := must(t, StartRedis, "port 6379\ndir /data\nlogfile /var/log/redis/redis.log\ndaemonize yes\n")
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer func() { _ = c.Close() }()
	dir, err := c.ConfigGet(context.Background(), "dir").Result()
	if err != nil || dir["dir"] != r.Dir() {
		t.Fatalf("dir = %v (err %v), want the harness dir %s", dir, err, r.Dir())
	}
}

// redisFailoverTimeout bounds how long the test waits for a replica to take
// over a killed master's slots.
const redisFailoverTimeout = 30 * time.Second

func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// As a rendered redis.conf would: a short node timeout for fast failover.
	rc := must(t, StartRedisCluster, RedisClusterConfig{Conf: "cluster-node-timeout 2000\ncluster-require-full-coverage yes\n"})
	t.Logf("3x1 cluster formed in %v", time.Since(start).Round(time.Millisecond))
	if n := len(rc.Addrs()); n != 6 {
		t.Fatalf("default cluster has %d nodes, want 3 shards x (1 master + 1 replica) = 6", n)
	}
	masters, err := rc.Masters()
	ok(t, err)
	if len(masters) != 3 {
		t.Fatalf("masters = %v, want 3", masters)
	}

	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs(), MaxRedirects: 8})
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	const keys = 200 // enough to land in every shard's slots
	for i := range keys {
		if err := c.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
	// WAIT makes the writes reach the replicas before the master dies.
	if err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.Do(ctx, "WAIT", 1, 5000).Err()
	}); err != nil {
		t.Fatalf("WAIT for replicas: %v", err)
	}

	victim := masters[0]
	rc.Kill(victim)
	killed := time.Now()
	var failover time.Duration
	for {
		m, err := rc.Masters()
		ok(t, err)
		if len(m) == 3 && !slices.Contains(m, victim) {
			failover = time.Since(killed)
			break
		}
		if time.Since(killed) > redisFailoverTimeout {
			t.Fatalf("no replica took over from killed master %d within %v; masters now %v", victim, redisFailoverTimeout, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("failover after SIGKILL of master %d (%s): %v", victim, rc.Addrs()[victim], failover.Round(time.Millisecond))

	// A fresh client, as an application that reloads the topology would
	// be: this tests the servers' failover, not a client library's cache.
	c2 := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs(), MaxRedirects: 8})
	defer func() { _ = c2.Close() }()
	c = c2
	readDeadline := time.Now().Add(redisFailoverTimeout)
	for i := range keys {
		for {
			v, err := c.Get(ctx, fmt.Sprintf("key:%d", i)).Int()
			if err == nil && v == i {
				break
			}
			if time.Now().After(readDeadline) {
				t.Fatalf("key:%d after failover = %d, err %v; want %d", i, v, err, i)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("all %d keys readable %v after the kill", keys, time.Since(killed).Round(time.Millisecond))

	ok(t, rc.Restart(victim))
	t.Logf("old master %d restarted and answering", victim)
}
