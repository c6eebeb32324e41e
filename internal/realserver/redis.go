package realserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterFormTimeout bounds the wait for a new cluster to report
// cluster_state:ok on every node with every replica in sync.
const clusterFormTimeout = 60 * time.Second

// redisNode is one redis-server process and its directory.
type redisNode struct {
	port, busPort int
	dir           string
	proc          *process
}

func (n *redisNode) addr() string { return addr(n.port) }

// newRedisNode takes the node's ports and directory (held by res) and
// writes its config: the rendered text plus the harness keys.
// clusterEnabled finds a cluster-enabled yes line in a Redis config.
var clusterEnabled = regexp.MustCompile(`(?mi)^\s*cluster-enabled\s+yes\s*$`)

func newRedisNode(res *resources, name, rendered string, cluster bool) (*redisNode, error) {
	bin, err := lookBin("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	// A rendered config that turns cluster mode on by itself (a pod's, run
	// alone) still needs a bus port of its own: Redis' default, port+10000,
	// lands in the ephemeral range, where any client connection may hold it.
	ownBus := !cluster && clusterEnabled.MatchString(rendered)
	count := 1
	if cluster || ownBus {
		count = 2 // and the bus port
	}
	ports, err := freePorts(count)
	if err != nil {
		return nil, err
	}
	dir, err := res.dir(name, nil, false)
	if err != nil {
		return nil, err
	}
	n := &redisNode{port: ports[0], dir: dir}
	keys := []string{
		"port " + strconv.Itoa(n.port),
		"bind " + Loopback,
		"dir " + n.dir,
		"daemonize no",
		"supervised no",
		`logfile ""`,
		"pidfile " + filepath.Join(n.dir, "redis.pid"),
		`unixsocket ""`,
	}
	if cluster {
		n.busPort = ports[1]
		keys = append(keys,
			"cluster-enabled yes",
			"cluster-config-file "+filepath.Join(n.dir, "nodes.conf"),
			"cluster-port "+strconv.Itoa(n.busPort),
			"cluster-announce-ip "+Loopback,
			"cluster-announce-port "+strconv.Itoa(n.port),
			"cluster-announce-bus-port "+strconv.Itoa(n.busPort),
		)
	}
	if ownBus {
		n.busPort = ports[1]
		keys = append(keys, "cluster-port "+strconv.Itoa(n.busPort))
	}
	// Defaults a test wants unless the rendered config says otherwise: no
	// snapshots to disk, which only cost time here.
	// Redis acts on some keys while parsing (dir chdirs, logfile opens), so a
	// pod's path would fail before a later line could override it: the
	// harness's keys are removed from the rendered text, then appended.
	conf := "save \"\"\nappendonly no\n\n" + dropKeys(rendered, keyNames(keys)...) + harnessBlock(keys)
	path := filepath.Join(n.dir, "redis.conf")
	if err := writeFile(path, conf, nil); err != nil {
		return nil, err
	}
	n.proc = res.proc(name, filepath.Join(n.dir, "redis.log"), nil, bin, path)
	return n, nil
}

// keyNames are the keys that "key value" lines set.
func keyNames(lines []string) []string {
	names := make([]string, len(lines))
	for i, l := range lines {
		names[i] = configKey(l)
	}
	return names
}

func (n *redisNode) startAndWait() error {
	if err := n.proc.start(); err != nil {
		return err
	}
	return n.proc.waitReady(startTimeout, func() error { return redisPing(n.addr()) })
}

func redisPing(address string) error {
	c := redis.NewClient(&redis.Options{Addr: address, MaxRetries: -1, DialTimeout: time.Second})
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Redis is a single (non-cluster) redis-server.
type Redis struct {
	node *redisNode
	res  resources
}

// StartRedis starts one redis-server with the rendered redis.conf text (may
// be empty); the harness sets port, bind, dir, logfile, pidfile and
// daemonize. Close stops it.
func StartRedis(conf string) (r *Redis, err error) {
	r = &Redis{}
	defer closeOnError(&err, &r.res)
	if r.node, err = newRedisNode(&r.res, "redis", conf, false); err != nil {
		return nil, fmt.Errorf("realserver: StartRedis: %w", err)
	}
	if err := r.node.startAndWait(); err != nil {
		return nil, fmt.Errorf("realserver: StartRedis: %w", err)
	}
	return r, nil
}

// Close kills the server and removes its directory.
func (r *Redis) Close() error { return r.res.close() }

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return r.node.addr() }

// Port returns the server's TCP port.
func (r *Redis) Port() int { return r.node.port }

// Dir returns the server's working directory (dump/AOF files land there).
func (r *Redis) Dir() string { return r.node.dir }

// RedisClusterConfig describes a Redis Cluster to start.
type RedisClusterConfig struct {
	// Shards is the number of masters; 0 means 3, the minimum Redis accepts.
	Shards int
	// Replicas is the number of replicas per master; 0 means 1. Use -1 for none.
	Replicas int
	// Conf is the rendered redis.conf text shared by all nodes.
	Conf string
}

// RedisCluster is a Redis Cluster of Shards x (1+Replicas) redis-server
// processes, formed the way the Kubernetes Job forms it.
type RedisCluster struct {
	nodes []*redisNode
	res   resources
}

// StartRedisCluster starts the nodes in parallel, joins them with
// `redis-cli --cluster create ... --cluster-replicas N --cluster-yes` and
// waits until every node reports cluster_state:ok and every replica's link to
// its master is up. Nodes 0..Shards-1 start as masters. Close stops them.
func StartRedisCluster(cfg RedisClusterConfig) (c *RedisCluster, err error) {
	if cfg.Shards == 0 {
		cfg.Shards = 3
	}
	switch {
	case cfg.Replicas == 0:
		cfg.Replicas = 1
	case cfg.Replicas < 0:
		cfg.Replicas = 0
	}
	cli, err := lookBin("redis-cli", "redis-tools")
	if err != nil {
		return nil, fmt.Errorf("realserver: StartRedisCluster: %w", err)
	}
	total := cfg.Shards * (1 + cfg.Replicas)
	c = &RedisCluster{nodes: make([]*redisNode, total)}
	defer closeOnError(&err, &c.res)
	for i := range total {
		if c.nodes[i], err = newRedisNode(&c.res, fmt.Sprintf("redis-cluster-%d", i), cfg.Conf, true); err != nil {
			return nil, fmt.Errorf("realserver: StartRedisCluster: %w", err)
		}
	}
	if err := parallel(total, func(i int) error { return c.nodes[i].startAndWait() }); err != nil {
		return nil, fmt.Errorf("realserver: StartRedisCluster: %w", err)
	}
	args := []string{cli, "--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(cfg.Replicas), "--cluster-yes")
	if err := run(nil, "", args...); err != nil {
		return nil, fmt.Errorf("realserver: forming the cluster: %w\n--- node 0 log ---\n%s", err, c.nodes[0].proc.logTail())
	}
	if err := c.waitHealthy(total); err != nil {
		return nil, fmt.Errorf("realserver: StartRedisCluster: %w", err)
	}
	return c, nil
}

// Close kills every node and removes their directories.
func (c *RedisCluster) Close() error { return c.res.close() }

// waitHealthy polls every node until the cluster is ok and fully linked.
func (c *RedisCluster) waitHealthy(total int) error {
	for i, n := range c.nodes {
		err := n.proc.waitReady(clusterFormTimeout, func() error {
			info, err := redisCommand(n.addr(), "cluster", "info")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("node %d: cluster_state not ok", i)
			}
			if !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(total)+"\r\n") {
				return fmt.Errorf("node %d does not know all %d nodes yet", i, total)
			}
			repl, err := redisCommand(n.addr(), "info", "replication")
			if err != nil {
				return err
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("replica %d not in sync with its master yet", i)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// redisCommand runs one command and returns its reply as text.
func redisCommand(address string, args ...any) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: address, MaxRetries: -1, DialTimeout: time.Second})
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Text()
	return v, err
}

// Addrs returns every node's host:port, index i being node i.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr()
	}
	return out
}

// Kill SIGKILLs node i, as a crashed pod would die.
func (c *RedisCluster) Kill(i int) { c.nodes[i].proc.kill() }

// Restart starts node i again after Kill with its nodes.conf, so it rejoins
// the cluster (as a replica if its master role failed over meanwhile).
func (c *RedisCluster) Restart(i int) error {
	if err := c.nodes[i].startAndWait(); err != nil {
		return fmt.Errorf("realserver: restarting redis node %d: %w", i, err)
	}
	return nil
}

// MoveAll kills every node, then starts each again with its nodes.conf on
// new ports, as when every pod of a StatefulSet restarts at once with a new
// IP: each node knows the others only at addresses where nobody answers.
// It does not wait for the cluster to be ok (it will not be, on its own).
func (c *RedisCluster) MoveAll() error {
	for _, n := range c.nodes {
		n.proc.kill()
	}
	for i, n := range c.nodes {
		ports, err := freePorts(2)
		if err != nil {
			return fmt.Errorf("realserver: moving redis node %d: %w", i, err)
		}
		n.port, n.busPort = ports[0], ports[1]
		// Later lines override earlier ones in redis.conf.
		moved := fmt.Sprintf("\nport %d\ncluster-port %d\ncluster-announce-port %d\ncluster-announce-bus-port %d\n", n.port, n.busPort, n.port, n.busPort)
		f, err := os.OpenFile(filepath.Join(n.dir, "redis.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString(moved)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("realserver: moving redis node %d: %w", i, err)
		}
	}
	if err := parallel(len(c.nodes), func(i int) error { return c.nodes[i].startAndWait() }); err != nil {
		return fmt.Errorf("realserver: restarting the moved nodes: %w", err)
	}
	return nil
}

// BusAddrs returns every node's host:port@busport, the form CLUSTER MEET
// takes when the bus port is not port+10000.
func (c *RedisCluster) BusAddrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = fmt.Sprintf("%s@%d", n.addr(), n.busPort)
	}
	return out
}

// Masters returns the indexes of the nodes that are currently masters and not
// flagged failed, as seen by the first live node: after a failover this
// names the promoted replica.
func (c *RedisCluster) Masters() ([]int, error) {
	index := map[string]int{}
	for i, n := range c.nodes {
		index[n.addr()] = i
	}
	var lastErr error
	for _, n := range c.nodes {
		if !n.proc.running() {
			continue
		}
		out, err := redisCommand(n.addr(), "cluster", "nodes")
		if err != nil {
			lastErr = err
			continue
		}
		var masters []int
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			flags := "," + f[2] + ","
			if !strings.Contains(flags, ",master,") || strings.Contains(flags, ",fail") {
				continue
			}
			hostport, _, _ := strings.Cut(f[1], "@")
			if i, ok := index[hostport]; ok {
				masters = append(masters, i)
			}
		}
		return masters, nil
	}
	return nil, fmt.Errorf("realserver: no live Redis node answered CLUSTER NODES: %v", lastErr)
}
