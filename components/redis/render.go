package redis

import (
	"fmt"
	"strings"
)

// Conf holds the values redis.conf is rendered from.
type Conf struct {
	Port              int
	MaxMemoryBytes    int64
	EvictionPolicy    string
	NodeTimeoutMillis int
}

// DataDir is where a pod keeps its append-only file and nodes.conf.
const DataDir = "/data"

// RenderConf renders redis.conf for a Redis Cluster node. It holds no
// credential: the pod passes --requirepass and --masterauth from the
// Secret on the command line, so the ConfigMap can be read by anyone who
// may read ConfigMaps. cluster-announce-ip also comes from the command
// line, since only the pod knows its address.
func RenderConf(c Conf) string {
	var b strings.Builder
	line := func(format string, v ...any) { fmt.Fprintf(&b, format+"\n", v...) }
	line("# redis.conf rendered by scaleplane components/redis; edit the component, not this file.")
	line("port %d", c.Port)
	line("bind * -::*")
	// Every connection must AUTH (requirepass comes from the command line);
	// protected mode would only refuse non-loopback clients without one.
	line("protected-mode no")
	line("dir %s", DataDir)
	line("")
	line("# Cluster mode: 16384 hash slots spread over the masters, each with")
	line("# replicas that take over when it is unreachable for cluster-node-timeout.")
	line("cluster-enabled yes")
	line("cluster-config-file nodes.conf")
	line("cluster-node-timeout %d", c.NodeTimeoutMillis)
	// A replica whose link to its master has been down for longer than
	// node-timeout x factor does not stand for election: it would lose writes.
	line("cluster-replica-validity-factor 10")
	line("cluster-migration-barrier 1")
	// A lost shard (master and replicas down) makes its keys unavailable,
	// not the whole cluster: caches and sessions of the other shards keep serving.
	line("cluster-require-full-coverage no")
	line("cluster-allow-reads-when-down no")
	line("")
	line("# Persistence: the append-only file, fsynced every second, so a restarted")
	line("# pod rejoins with its data; RDB snapshots only serve replica resyncs.")
	line("appendonly yes")
	line("appendfsync everysec")
	line("aof-use-rdb-preamble yes")
	line(`save ""`)
	line("repl-diskless-sync yes")
	line("")
	line("# Memory: at most a share of the container's limit, leaving the rest to")
	line("# forks (AOF rewrite, resync) and buffers; evict only keys with a TTL.")
	line("maxmemory %d", c.MaxMemoryBytes)
	line("maxmemory-policy %s", c.EvictionPolicy)
	line("maxmemory-samples 10")
	line("")
	line("tcp-keepalive 60")
	line("timeout 0")
	line("loglevel notice")
	line(`logfile ""`)
	return b.String()
}

// FormScriptName is the ConfigMap key and file name of the formation script.
const FormScriptName = "form-cluster.sh"

// FormScriptWaitSeconds bounds how long the script waits for each node to
// answer PING before it fails (the Job then retries).
const FormScriptWaitSeconds = 300

// RenderFormScript renders the POSIX shell script the cluster-init Job runs
// with every node's host:port as arguments. It forms the cluster with
// `redis-cli --cluster create ... --cluster-replicas N --cluster-yes` only
// when no node knows any other node yet, so a second run (a Job replaced by
// a later `pulumi up`) changes nothing. The password comes from
// REDISCLI_AUTH in the environment, never from the script or its arguments.
func RenderFormScript(replicasPerShard int) string {
	return fmt.Sprintf(`#!/bin/sh
# form-cluster.sh rendered by scaleplane components/redis.
# Usage: form-cluster.sh host:port host:port ...   (REDISCLI_AUTH holds the password)
set -eu
replicas=%d
wait_seconds=%d
if [ "$#" -lt 3 ]; then
  echo "form-cluster.sh: need at least three host:port arguments, got $#" >&2
  exit 2
fi
addrs=""
for node in "$@"; do
  host=${node%%:*}
  port=${node##*:}
  deadline=$(( $(date +%%s) + wait_seconds ))
  until [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" = "PONG" ]; do
    if [ "$(date +%%s)" -ge "$deadline" ]; then
      echo "form-cluster.sh: $node did not answer PING within ${wait_seconds}s" >&2
      exit 1
    fi
    sleep 2
  done
  info=$(redis-cli -h "$host" -p "$port" cluster info | tr -d '\r')
  known=$(echo "$info" | sed -n 's/^cluster_known_nodes://p')
  if [ "${known:-1}" -gt 1 ]; then
    state=$(echo "$info" | sed -n 's/^cluster_state://p')
    if [ "$state" = "ok" ]; then
      echo "form-cluster.sh: $node already knows $known nodes and the cluster is ok: nothing to do"
      exit 0
    fi
    echo "form-cluster.sh: $node knows $known nodes but cluster_state is $state; retrying later" >&2
    exit 1
  fi
  # redis-cli --cluster wants addresses; the pods' DNS names resolve here.
  ip=$(getent hosts "$host" | awk '{print $1; exit}')
  addrs="$addrs ${ip:-$host}:$port"
done
echo "form-cluster.sh: forming the cluster of$addrs with $replicas replica(s) per master"
# shellcheck disable=SC2086 # one word per node
redis-cli --cluster create $addrs --cluster-replicas "$replicas" --cluster-yes
`, replicasPerShard, FormScriptWaitSeconds)
}

// RejoinScriptName is the ConfigMap key and file name of the rejoin script.
const RejoinScriptName = "rejoin-cluster.sh"

// RejoinWaitSeconds bounds how long the rejoin script, running beside the
// server, waits for its own node to answer and its peers' names to resolve
// (a name resolves once its pod is running with its new IP), so that a
// peer that never comes back leaves no loop behind.
const RejoinWaitSeconds = 120

// RejoinLog is where a pod keeps its last rejoin's output, apart from the
// server's log: kubectl exec POD -- cat it.
const RejoinLog = "/tmp/rejoin-cluster.log"

// RenderRejoinScript renders the POSIX shell script each node starts in the
// background when its pod starts, with every node's host:port (or
// host:port@busport) as arguments.
//
// Why: a formed cluster's nodes know one another by address, kept in
// nodes.conf. When every pod restarts at once (a scale to zero and back, a
// node reboot), every pod comes back with a new IP and no node can reach
// any other at the address it knows: the cluster stays down
// (cluster_state:fail) for good. Meeting each peer at its current address
// lets a node recognise an id it already knows and update the address
// (measured: a scale to 0 and back left the local stack's cluster failed
// until its nodes met again). A node of a cluster not formed yet (it knows
// only itself) meets nobody: forming is the cluster-init Job's, and a
// premature meet would make that Job see a half-formed cluster. The script
// always exits 0: it only ever helps.
func RenderRejoinScript() string {
	return fmt.Sprintf(`#!/bin/sh
# rejoin-cluster.sh rendered by scaleplane components/redis.
# Usage: rejoin-cluster.sh host:port[@busport] ...   (REDISCLI_AUTH holds the password;
# REDIS_PORT is this node's port, 6379 unless set)
self_port=${REDIS_PORT:-%d}
wait_seconds=%d
deadline=$(( $(date +%%s) + wait_seconds ))
until [ "$(redis-cli -h 127.0.0.1 -p "$self_port" ping 2>/dev/null)" = "PONG" ]; do
  if [ "$(date +%%s)" -ge "$deadline" ]; then
    echo "rejoin-cluster.sh: this node did not answer PING within ${wait_seconds}s; nothing done"
    exit 0
  fi
  sleep 1
done
known=$(redis-cli -h 127.0.0.1 -p "$self_port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
if [ "${known:-1}" -le 1 ]; then
  echo "rejoin-cluster.sh: this node knows no other node: the cluster is not formed yet; nothing done"
  exit 0
fi
# Every pod of the StatefulSet starts at once, and a peer's name resolves
# only once the endpoints controller has published its new IP: retry the
# peers not met yet until all are or the wait is over.
pending="$*"
met=0
echo "rejoin-cluster.sh: $(date -u +%%T) this node knows $known nodes; meeting $# at their current addresses"
while [ -n "$pending" ]; do
  left=""
  for node in $pending; do
    host=${node%%%%:*}
    rest=${node#*:}
    port=${rest%%%%@*}
    bus=""
    case "$rest" in *@*) bus=${rest#*@};; esac
    ip=$(getent hosts "$host" | awk '{print $1; exit}')
    # shellcheck disable=SC2086 # bus is empty or one word
    if [ -n "$ip" ] && redis-cli -h 127.0.0.1 -p "$self_port" cluster meet "$ip" "$port" $bus >/dev/null 2>&1; then
      met=$((met + 1))
    else
      left="$left $node"
      echo "rejoin-cluster.sh: $(date -u +%%T) $host: ${ip:-does not resolve yet}"
    fi
  done
  pending=${left# }
  if [ -n "$pending" ] && [ "$(date +%%s)" -ge "$deadline" ]; then
    echo "rejoin-cluster.sh: not met within ${wait_seconds}s:$left"
    break
  fi
  [ -z "$pending" ] || sleep 1
done
echo "rejoin-cluster.sh: met $met of $# nodes at their current addresses"
exit 0
`, Port, RejoinWaitSeconds)
}
