package kit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// clusterRecoveryBound is how long pipelines may fail after the cluster
// has promoted a replica: the refresh period plus a few timeouts.
const clusterRecoveryBound = 10 * time.Second

// TestClusterClientFollowsAFailover kills a master of a real 3x1 Redis
// Cluster and requires pipelines over keys of every slot to succeed again
// soon after the replica is promoted. go-redis alone reloads its slot map
// only on MOVED/ASK, which a dead master never sends, so its pipelines kept
// dialing the dead address (seen in the cluster: 40 s and counting);
// NewRedis's client reloads it on a timer.
func TestClusterClientFollowsAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster; -short runs only the unit tests")
	}
	rc := realservertest.MustStartRedisCluster(t, realserver.RedisClusterConfig{Conf: "cluster-node-timeout 2000\n"})
	c, err := NewRedis(RedisConfig{Addrs: rc.Addrs(), Cluster: true, Timeout: 300 * time.Millisecond, Refresh: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	pipeline := func() error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 64 { // keys in every shard
				p.Set(ctx, fmt.Sprintf("k%d", i), i, time.Minute)
			}
			return nil
		})
		return err
	}
	if err := pipeline(); err != nil {
		t.Fatalf("pipeline before the failure: %v", err)
	}
	masters := func() []int {
		m, err := rc.Masters()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	victim := masters()[0]
	rc.Kill(victim)
	killed := time.Now()
	for m := masters(); len(m) != 3 || slices.Contains(m, victim); m = masters() {
		if time.Since(killed) > time.Minute {
			t.Fatalf("no replica promoted within a minute (masters %v)", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	promoted := time.Now()
	var last error
	for time.Since(promoted) < clusterRecoveryBound {
		if last = pipeline(); last == nil {
			t.Logf("failover %s after the kill; pipelines succeed %s after it", promoted.Sub(killed).Round(time.Millisecond), time.Since(promoted).Round(time.Millisecond))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pipelines still fail %s after the failover: %v", clusterRecoveryBound, last)
}
