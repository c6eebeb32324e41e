package redis

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// rejoinBound is how long the moved cluster may take to be ok again once
// its nodes have met: a handshake and a gossip round per node, with margin
// for a busy 2-core machine.
const rejoinBound = 30 * time.Second

// stateOf returns a node's cluster_state ("" when it does not answer).
func stateOf(addr string) string {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_state:"); ok {
			return v
		}
	}
	return ""
}

// TestRealClusterRejoinsAfterEveryNodeMoved forms a real Redis Cluster of
// six redis-server processes with the rendered redis.conf, writes keys,
// then moves every node to new ports at once, as scaling the StatefulSet to
// zero and back gives every pod a new IP. On its own the cluster stays
// failed past the node timeout (the failure this script exists for); after
// each node runs the rendered rejoin script, as its pod's command does, it
// is ok again and every key is readable.
func TestRealClusterRejoinsAfterEveryNodeMoved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six real redis-server processes; -short runs only the unit tests")
	}
	a := testArgs()
	c := realservertest.MustStartRedisCluster(t, realserver.RedisClusterConfig{Conf: RenderConf(a.Conf())})
	ctx := context.Background()
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), MaxRedirects: 16, DialTimeout: time.Second})
	for i := range keysWritten {
		require.NoError(t, cc.Set(ctx, "key:"+strconv.Itoa(i), i, time.Hour).Err(), "write key %d", i)
	}
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		return m.Do(ctx, "WAIT", 1, 5000).Err()
	}), "replicas acknowledge the writes before the move")
	_ = cc.Close()

	require.NoError(t, c.MoveAll(), "restart every node on new ports")
	// Past the node timeout, every node has flagged the others it cannot
	// reach: without a rejoin the cluster is down and stays down.
	time.Sleep(2 * time.Duration(DefaultNodeTimeoutMillis) * time.Millisecond)
	require.Equal(t, "fail", stateOf(c.Addrs()[0]), "after every node moved, the cluster is down on its own")

	script := filepath.Join(t.TempDir(), RejoinScriptName)
	require.NoError(t, os.WriteFile(script, []byte(RenderRejoinScript()), 0o644), "write the script")
	for i, addr := range c.Addrs() {
		_, port, _ := strings.Cut(addr, ":")
		cmd := exec.Command("sh", append([]string{script}, c.BusAddrs()...)...)
		cmd.Env = append(os.Environ(), "REDIS_PORT="+port)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the rejoin script of node %d exits 0:\n%s", i, out)
		assert.Contains(t, string(out), "met 6 of 6 nodes", "node %d meets every node at its new address", i)
	}

	began := time.Now()
	for _, addr := range c.Addrs() {
		for stateOf(addr) != "ok" {
			require.Less(t, time.Since(began), rejoinBound, "node %s should see the cluster ok within %v of the rejoin", addr, rejoinBound)
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("cluster ok %v after the rejoin", time.Since(began).Round(time.Millisecond))

	cc = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), MaxRedirects: 16, DialTimeout: time.Second})
	t.Cleanup(func() { _ = cc.Close() })
	for i := range keysWritten {
		v, err := cc.Get(ctx, "key:"+strconv.Itoa(i)).Int()
		require.NoError(t, err, "read key %d after the rejoin", i)
		require.Equal(t, i, v, "key %d keeps its value", i)
	}
}

// TestRejoinLeavesAnUnformedNodeAlone: a node that knows only itself is
// not formed yet; meeting others then would make the cluster-init Job see
// a half-formed cluster and fail.
func TestRejoinLeavesAnUnformedNodeAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real redis-server; -short runs only the unit tests")
	}
	r := realservertest.MustStartRedis(t, "cluster-enabled yes\ncluster-config-file nodes.conf\n")
	other := realservertest.MustStartRedis(t, "cluster-enabled yes\ncluster-config-file nodes.conf\n")
	script := filepath.Join(t.TempDir(), RejoinScriptName)
	require.NoError(t, os.WriteFile(script, []byte(RenderRejoinScript()), 0o644), "write the script")
	cmd := exec.Command("sh", script, other.Addr())
	cmd.Env = append(os.Environ(), "REDIS_PORT="+strconv.Itoa(r.Port()))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the script exits 0:\n%s", out)
	assert.Contains(t, string(out), "not formed yet", "an unformed node meets nobody")
	time.Sleep(time.Second)
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer func() { _ = c.Close() }()
	info, err := c.ClusterInfo(context.Background()).Result()
	require.NoError(t, err, "cluster info")
	assert.Contains(t, info, "cluster_known_nodes:1", "the node still knows only itself")
}
