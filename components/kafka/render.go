package kafka

import (
	"fmt"
	"strings"
)

// Settings are the cluster-wide broker settings: the durability rules the
// issue fixes, shared by the in-cluster server.properties and the MSK
// configuration.
type Settings struct {
	ReplicationFactor int
	MinInSyncReplicas int
	RetentionHours    int
	NumPartitions     int
}

// RenderSettings renders the shared broker settings as properties lines.
func RenderSettings(s Settings) string {
	var b strings.Builder
	line := func(format string, v ...any) { fmt.Fprintf(&b, format+"\n", v...) }
	line("# Durability: three copies, a write acknowledged (acks=all) once two have it,")
	line("# and never a leader elected from an out-of-sync replica (it would drop writes).")
	line("default.replication.factor=%d", s.ReplicationFactor)
	line("min.insync.replicas=%d", s.MinInSyncReplicas)
	line("unclean.leader.election.enable=false")
	line("offsets.topic.replication.factor=%d", s.ReplicationFactor)
	line("transaction.state.log.replication.factor=%d", s.ReplicationFactor)
	line("transaction.state.log.min.isr=%d", s.MinInSyncReplicas)
	line("# Topics are declared by the services and created by the topics Job, never by a typo.")
	line("auto.create.topics.enable=false")
	line("num.partitions=%d", s.NumPartitions)
	line("log.retention.hours=%d", s.RetentionHours)
	return b.String()
}

// Node is where one in-cluster cluster's nodes live.
type Node struct {
	Name      string
	Namespace string
	Nodes     int
}

// Headless is the headless Service of the nodes.
func (n Node) Headless() string { return n.Name + "-headless" }

// Host is node i's stable DNS name.
func (n Node) Host(i int) string {
	return fmt.Sprintf("%s-%d.%s.%s.svc.cluster.local", n.Name, i, n.Headless(), n.Namespace)
}

// Voters is controller.quorum.voters: node i has node.id i.
func (n Node) Voters() string {
	var vs []string
	for i := range n.Nodes {
		vs = append(vs, fmt.Sprintf("%d@%s:%d", i, n.Host(i), ControllerPort))
	}
	return strings.Join(vs, ",")
}

// DataDir is where a pod keeps its log segments and KRaft metadata.
const DataDir = "/var/lib/kafka/data"

// RenderProperties renders server.properties for a KRaft node that is
// both controller and broker. node.id and advertised.listeners differ per
// pod: the start script appends them.
func RenderProperties(n Node, s Settings) string {
	var b strings.Builder
	line := func(format string, v ...any) { fmt.Fprintf(&b, format+"\n", v...) }
	line("# server.properties rendered by scaleplane components/kafka; edit the component, not this file.")
	line("process.roles=broker,controller")
	line("controller.quorum.voters=%s", n.Voters())
	line("listeners=PLAINTEXT://:%d,CONTROLLER://:%d", Port, ControllerPort)
	line("controller.listener.names=CONTROLLER")
	line("inter.broker.listener.name=PLAINTEXT")
	line("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
	line("log.dirs=%s", DataDir)
	line("")
	b.WriteString(RenderSettings(s))
	line("")
	line("# A broker that misses heartbeats this long is fenced and its partitions get new leaders.")
	line("broker.session.timeout.ms=9000")
	line("group.initial.rebalance.delay.ms=3000")
	line("num.network.threads=3")
	line("num.io.threads=8")
	return b.String()
}

// StartScriptName is the ConfigMap key and file of the node start script.
const StartScriptName = "start.sh"

// RenderStartScript renders the container's entry: it copies the rendered
// properties to a writable place, appends the pod's node.id (its
// StatefulSet ordinal) and advertised listener, formats the storage once
// (--ignore-formatted on restarts) and starts the server.
func RenderStartScript(n Node) string {
	return fmt.Sprintf(`#!/bin/sh
# start.sh rendered by scaleplane components/kafka.
set -eu
ordinal=${HOSTNAME##*-}
props=/tmp/server.properties
cp /etc/kafka/server.properties "$props"
printf 'node.id=%%s\nadvertised.listeners=PLAINTEXT://%%s.%s.%s.svc.cluster.local:%d\n' "$ordinal" "$HOSTNAME" >> "$props"
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$props"
exec /opt/kafka/bin/kafka-server-start.sh "$props"
`, n.Headless(), n.Namespace, Port)
}
