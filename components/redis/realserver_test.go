package redis

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

const (
	// realPassword stands in for the Secret's value on the loopback servers.
	realPassword = "test-only-password"
	// keysWritten spread over every slot range of the three shards.
	keysWritten = 1000
	// failoverBound is node-timeout plus election and gossip, with margin
	// for a busy 2-core machine.
	failoverBound = 30 * time.Second
)

// startUnformedNodes starts six real redis-server processes with the
// rendered redis.conf, each knowing only itself, and sets the password the
// way the pod's command line does.
func startUnformedNodes(t *testing.T, conf string, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range n {
		// The bus port normally is port+10000, which may not exist above
		// 55535; the test picks a free one (a machine key, like port).
		r := realservertest.MustStartRedis(t, conf+fmt.Sprintf("\ncluster-port %d\n", realservertest.MustFreePort(t)))
		addrs[i] = r.Addr()
		c := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
		ctx := context.Background()
		require.NoError(t, c.ConfigSet(ctx, "masterauth", realPassword).Err(), "masterauth on node %d", i)
		require.NoError(t, c.ConfigSet(ctx, "requirepass", realPassword).Err(), "requirepass on node %d", i)
		_ = c.Close()
	}
	return addrs
}

// runFormScript runs the rendered script as the Job does: sh, the nodes as
// arguments, the password in REDISCLI_AUTH.
func runFormScript(t *testing.T, script string, addrs []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FormScriptName)
	require.NoError(t, os.WriteFile(path, []byte(script), 0o644), "write the script")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{path}, addrs...)...)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+realPassword)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "form-cluster.sh failed:\n%s", out)
	return string(out)
}

// masters counts the live nodes that report role:master.
func masters(ctx context.Context, addrs []string) int {
	n := 0
	for _, a := range addrs {
		c, cancel := context.WithTimeout(ctx, time.Second)
		repl, err := nodeInfo(c, a, "replication")
		cancel()
		if err == nil && strings.Contains(repl, "role:master") {
			n++
		}
	}
	return n
}

// allSeeFailed reports whether every live node flags victim as failed and
// gives it no slots.
func allSeeFailed(ctx context.Context, addrs []string, victim string) bool {
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a, Password: realPassword, MaxRetries: -1, DialTimeout: time.Second})
		nodes, err := c.ClusterNodes(ctx).Result()
		_ = c.Close()
		if err != nil {
			return false
		}
		for line := range strings.SplitSeq(strings.TrimSpace(nodes), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 || !strings.HasPrefix(f[1], victim+"@") {
				continue
			}
			if !strings.Contains(f[2], "fail") || strings.Contains(f[2], "fail?") || len(f) > 8 {
				return false
			}
		}
	}
	return true
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() {
	// The dead node's refused dials are expected; they would bury the figures.
	goredis.SetLogger(quietLogger{})
}

func nodeInfo(ctx context.Context, addr, section string) (string, error) {
	c := goredis.NewClient(&goredis.Options{Addr: addr, Password: realPassword, MaxRetries: -1, DialTimeout: time.Second})
	defer func() { _ = c.Close() }()
	return c.Info(ctx, section).Result()
}

func clusterInfo(ctx context.Context, addr string) (string, error) {
	c := goredis.NewClient(&goredis.Options{Addr: addr, Password: realPassword, MaxRetries: -1, DialTimeout: time.Second})
	defer func() { _ = c.Close() }()
	return c.ClusterInfo(ctx).Result()
}

// waitHealthy waits until every live node reports cluster_state:ok and
// every replica's link to its master is up.
func waitHealthy(t *testing.T, addrs []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var problem error
		for _, a := range addrs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ci, err := clusterInfo(ctx, a)
			if err == nil && !strings.Contains(ci, "cluster_state:ok") {
				err = fmt.Errorf("%s: cluster not ok", a)
			}
			if err == nil {
				repl, rerr := nodeInfo(ctx, a, "replication")
				err = rerr
				if err == nil && strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
					err = fmt.Errorf("%s: replica not in sync", a)
				}
			}
			cancel()
			if err != nil {
				problem = err
				break
			}
		}
		if problem == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not healthy after %v: %v", timeout, problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRealRedisClusterFormsOnceAndSurvivesAMasterCrash forms six real
// redis-server processes running the rendered redis.conf with the rendered
// formation script, runs the script again (nothing changes), writes keys
// over every shard, SIGKILLs one master and measures how long until its
// replica serves its slots: every key must still be readable.
func TestRealRedisClusterFormsOnceAndSurvivesAMasterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six real redis-server processes; -short runs only the unit tests")
	}
	a := testArgs()
	a.Password = testPassword
	conf := RenderConf(a.Conf())
	addrs := startUnformedNodes(t, conf, a.Nodes())
	script := RenderFormScript(DefaultReplicasPerShard)

	out := runFormScript(t, script, addrs)
	assert.Contains(t, out, "forming the cluster", "the first run forms the cluster")
	waitHealthy(t, addrs, time.Minute)

	again := runFormScript(t, script, addrs)
	assert.Contains(t, again, "nothing to do", "a second run leaves a formed cluster alone")
	assert.NotContains(t, again, "forming the cluster", "a second run does not call --cluster create")

	ctx := context.Background()
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs: addrs, Password: realPassword,
		MaxRedirects: 16, ReadTimeout: time.Second, WriteTimeout: time.Second, DialTimeout: time.Second,
	})
	t.Cleanup(func() { _ = cc.Close() })
	for i := range keysWritten {
		require.NoError(t, cc.Set(ctx, "key:"+strconv.Itoa(i), i, time.Hour).Err(), "write key %d", i)
	}
	// Replication is asynchronous: a write the master acknowledged may not
	// have reached its replica when the master dies. WAIT makes every
	// master confirm its replica has the keys before the crash, which is
	// what "every key survives" can promise.
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		n, err := m.Do(ctx, "WAIT", 1, 5000).Int()
		if err == nil && n < 1 {
			err = fmt.Errorf("%s: no replica acknowledged the writes", m.Options().Addr)
		}
		return err
	}), "every master's replica has the keys")
	// maxmemory from the rendered conf is what the server runs with.
	mem, err := nodeInfo(ctx, addrs[0], "memory")
	require.NoError(t, err, "INFO memory")
	assert.Contains(t, mem, fmt.Sprintf("maxmemory:%d\r\n", a.Conf().MaxMemoryBytes), "the node runs the rendered maxmemory")
	assert.Contains(t, mem, "maxmemory_policy:volatile-lru", "the node runs the rendered eviction policy")

	// Kill a master the way a node crash would: SIGKILL, no goodbye.
	victim := ""
	var victimPID int
	for _, addr := range addrs {
		repl, err := nodeInfo(ctx, addr, "replication")
		require.NoError(t, err, "INFO replication of %s", addr)
		if strings.Contains(repl, "role:master") {
			server, err := nodeInfo(ctx, addr, "server")
			require.NoError(t, err, "INFO server of %s", addr)
			for line := range strings.SplitSeq(server, "\r\n") {
				if v, ok := strings.CutPrefix(line, "process_id:"); ok {
					victimPID, _ = strconv.Atoi(v)
				}
			}
			victim = addr
			break
		}
	}
	require.NotZero(t, victimPID, "found a master's pid")
	killed := time.Now()
	require.NoError(t, syscall.Kill(victimPID, syscall.SIGKILL), "kill master %s", victim)

	var live []string
	for _, addr := range addrs {
		if addr != victim {
			live = append(live, addr)
		}
	}
	// Failover is over when a replica of the dead master has been promoted
	// (three masters again) and every live node has learned it: a client
	// that asks any of them for the slots is sent to the new master.
	deadline := killed.Add(failoverBound)
	for masters(ctx, live) < a.withDefaults().Shards || !allSeeFailed(ctx, live, victim) {
		require.True(t, time.Now().Before(deadline), "no failover within %v", failoverBound)
		time.Sleep(20 * time.Millisecond)
	}
	failover := time.Since(killed)
	t.Logf("redis failover: master %s SIGKILLed, its replica promoted after %v (cluster-node-timeout %d ms)",
		victim, failover.Round(10*time.Millisecond), a.Conf().NodeTimeoutMillis)
	assert.Less(t, failover, failoverBound, "failover within the bound")
	waitHealthy(t, live, time.Minute)

	// A fresh client, as a restarted service would be, finds every key.
	cc2 := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: live, Password: realPassword, MaxRedirects: 16})
	t.Cleanup(func() { _ = cc2.Close() })
	cc = cc2
	for i := range keysWritten {
		v, err := cc.Get(ctx, "key:"+strconv.Itoa(i)).Int()
		require.NoError(t, err, "key %d readable after the failover", i)
		assert.Equal(t, i, v, "key %d keeps its value", i)
	}
	ci, err := clusterInfo(ctx, live[0])
	require.NoError(t, err, "CLUSTER INFO after failover")
	assert.Contains(t, ci, "cluster_state:ok", "the cluster is ok with one master gone")
}
