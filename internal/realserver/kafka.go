package realserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// kafkaStartTimeout bounds a node's start until it answers metadata
	// listing itself; JVM start-up on a busy 2-core CI machine is the slow part.
	kafkaStartTimeout = 90 * time.Second
	// kafkaMetadataTimeout bounds one metadata request of the readiness poll.
	kafkaMetadataTimeout = 2 * time.Second
	// kafkaToolchainTimeout bounds fetching the Kafka jars on a cold cache.
	kafkaToolchainTimeout = 10 * time.Minute
)

// kafkaJVM keeps each node small for 2 cores and a few nodes at once: a
// modest heap, the serial collector (no GC threads competing with the
// brokers), and C1 only, which starts faster and is quick enough for tests.
var kafkaJVM = []string{
	"-Xmx384m", "-Xms128m",
	"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
	"-XX:+ExitOnOutOfMemoryError", "-XX:-UsePerfData",
	"-Djava.awt.headless=true",
}

// kafkaToolJVM is for the short-lived storage format command.
var kafkaToolJVM = []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"}

// kafkaHarnessOnly are keys the harness removes from the rendered text
// without setting them, because they contradict the ones it sets (a static
// voter list, one PLAINTEXT listener for brokers).
var kafkaHarnessOnly = []string{
	"controller.quorum.bootstrap.servers",
	"security.inter.broker.protocol",
	"broker.id",
}

// KafkaConfig describes a KRaft cluster whose nodes are each broker and
// controller.
type KafkaConfig struct {
	// Nodes is the number of nodes; 0 means 1.
	Nodes int
	// Properties is the rendered server.properties text.
	Properties string
	// Overrides are per-test properties applied over Properties (for
	// example min.insync.replicas=2 or a short broker.session.timeout.ms).
	Overrides map[string]string
}

// Kafka is a running KRaft cluster of real Kafka nodes.
type Kafka struct {
	nodes []*kafkaNode
	res   resources
}

// kafkaNode is one broker+controller JVM.
type kafkaNode struct {
	id             int
	port, ctrlPort int
	dir            string
	proc           *process
}

func (n *kafkaNode) addr() string { return addr(n.port) }

// StartKafka fetches (or finds) the cached Kafka jars, writes each node's
// server.properties, formats its storage with StorageTool and starts the
// nodes in parallel, waiting until each answers a metadata request listing
// all nodes. Properties are layered, later winning: harness defaults that
// fit the node count (internal topic replication), the rendered text, the
// overrides, then the harness's machine keys (process roles, node id,
// quorum voters, listeners, log dirs). Close kills the nodes.
func StartKafka(cfg KafkaConfig) (k *Kafka, err error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 1
	}
	java, err := lookBin("java", "openjdk-17-jre-headless")
	if err != nil {
		return nil, fmt.Errorf("realserver: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kafkaToolchainTimeout)
	defer cancel()
	dist, err := toolchain.Kafka(ctx)
	if err != nil {
		return nil, fmt.Errorf("realserver: StartKafka: %w", err)
	}

	k = &Kafka{}
	defer closeOnError(&err, &k.res)
	for i := range cfg.Nodes {
		ports, err := freePorts(2)
		if err != nil {
			return nil, fmt.Errorf("realserver: StartKafka: %w", err)
		}
		dir, err := k.res.dir(fmt.Sprintf("kafka-node-%d", i+1), nil, false)
		if err != nil {
			return nil, fmt.Errorf("realserver: StartKafka: %w", err)
		}
		k.nodes = append(k.nodes, &kafkaNode{id: i + 1, port: ports[0], ctrlPort: ports[1], dir: dir})
	}
	var voters []string
	for _, n := range k.nodes {
		voters = append(voters, fmt.Sprintf("%d@%s", n.id, addr(n.ctrlPort)))
	}
	clusterID := newKafkaClusterID()
	for _, n := range k.nodes {
		props := filepath.Join(n.dir, "server.properties")
		if err := writeFile(props, kafkaProperties(cfg, n, strings.Join(voters, ",")), nil); err != nil {
			return nil, fmt.Errorf("realserver: StartKafka: %w", err)
		}
		log4j := filepath.Join(n.dir, "log4j2.properties")
		if err := writeFile(log4j, toolchain.KafkaLog4j, nil); err != nil {
			return nil, fmt.Errorf("realserver: StartKafka: %w", err)
		}
		args := append([]string{java}, kafkaJVM...)
		args = append(args, "-Dlog4j2.configurationFile="+log4j, "-Dkafka.logs.dir="+n.dir,
			"-cp", dist.Classpath, toolchain.ServerClass, props)
		n.proc = k.res.proc(fmt.Sprintf("kafka-node-%d", n.id), filepath.Join(n.dir, "kafka.log"), nil, args...)
	}
	err = parallel(len(k.nodes), func(i int) error {
		n := k.nodes[i]
		format := append([]string{java}, kafkaToolJVM...)
		format = append(format, "-Dlog4j2.configurationFile="+filepath.Join(n.dir, "log4j2.properties"),
			"-cp", dist.Classpath, toolchain.StorageToolClass,
			"format", "-t", clusterID, "-c", filepath.Join(n.dir, "server.properties"))
		if err := run(nil, n.dir, format...); err != nil {
			return fmt.Errorf("kafka-node-%d: formatting storage: %w", n.id, err)
		}
		return k.startNode(n)
	})
	if err != nil {
		return nil, fmt.Errorf("realserver: StartKafka: %w", err)
	}
	return k, nil
}

// Close kills every node and removes their directories.
func (k *Kafka) Close() error { return k.res.close() }

// kafkaProperties layers the node's server.properties (see StartKafka).
func kafkaProperties(cfg KafkaConfig, n *kafkaNode, voters string) string {
	rf := min(cfg.Nodes, 3)
	isr := min(cfg.Nodes, 2)
	defaults := []string{
		"offsets.topic.replication.factor=" + strconv.Itoa(rf),
		"transaction.state.log.replication.factor=" + strconv.Itoa(rf),
		"transaction.state.log.min.isr=" + strconv.Itoa(isr),
		"share.coordinator.state.topic.replication.factor=" + strconv.Itoa(rf),
		"share.coordinator.state.topic.min.isr=" + strconv.Itoa(isr),
		"group.initial.rebalance.delay.ms=0",
	}
	var overrides []string
	for _, key := range slices.Sorted(maps.Keys(cfg.Overrides)) {
		overrides = append(overrides, key+"="+cfg.Overrides[key])
	}
	data := filepath.Join(n.dir, "data")
	machine := []string{
		"process.roles=broker,controller",
		"node.id=" + strconv.Itoa(n.id),
		"controller.quorum.voters=" + voters,
		"listeners=PLAINTEXT://" + addr(n.port) + ",CONTROLLER://" + addr(n.ctrlPort),
		"advertised.listeners=PLAINTEXT://" + addr(n.port),
		"controller.listener.names=CONTROLLER",
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=PLAINTEXT",
		"log.dirs=" + data,
		"metadata.log.dir=" + data,
	}
	owned := append(keyNames(machine), kafkaHarnessOnly...)
	return "# --- realserver harness defaults for " + strconv.Itoa(cfg.Nodes) + " node(s) ---\n" +
		strings.Join(defaults, "\n") +
		"\n\n# --- rendered server.properties ---\n" + dropKeys(cfg.Properties, owned...) +
		"\n\n# --- test overrides ---\n" + strings.Join(overrides, "\n") +
		harnessBlock(machine)
}

// newKafkaClusterID is a random cluster id in Kafka's format (a UUID in
// unpadded URL-safe base64).
func newKafkaClusterID() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		// Like Kafka's own Uuid.randomUuid: an id starting with '-' would be
		// read as an option by kafka-storage's argument parser.
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

// startNode starts a node's JVM and waits until it answers metadata listing
// itself, which means it has joined the quorum and been unfenced.
func (k *Kafka) startNode(n *kafkaNode) error {
	if err := n.proc.start(); err != nil {
		return err
	}
	return n.proc.waitReady(kafkaStartTimeout, func() error {
		ids, err := kafkaBrokerIDs(n.addr())
		if err != nil {
			return err
		}
		if !slices.Contains(ids, int32(n.id)) {
			return fmt.Errorf("metadata lists brokers %v, not yet node %d", ids, n.id)
		}
		return nil
	})
}

// kafkaBrokerIDs asks one node for cluster metadata.
func kafkaBrokerIDs(address string) ([]int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(address), kgo.DialTimeout(time.Second), kgo.RequestRetries(0))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaMetadataTimeout)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int32
	for _, b := range md.Brokers {
		ids = append(ids, b.NodeID)
	}
	return ids, nil
}

// Brokers returns every node's bootstrap address (host:port), index i being
// node i, whether or not that node is running now.
func (k *Kafka) Brokers() []string {
	out := make([]string, len(k.nodes))
	for i, n := range k.nodes {
		out[i] = n.addr()
	}
	return out
}

// NodeID returns the KRaft node.id of node i (i+1).
func (k *Kafka) NodeID(i int) int { return k.nodes[i].id }

// Kill SIGKILLs node i, as a crashed pod or machine would die.
func (k *Kafka) Kill(i int) { k.nodes[i].proc.kill() }

// Stop shuts node i down gracefully (SIGTERM: controlled shutdown moves its
// partition leadership away first).
// A node that ignores SIGTERM is killed, and the error says so.
func (k *Kafka) Stop(i int) error {
	if !k.nodes[i].proc.stop(syscall.SIGTERM) {
		return fmt.Errorf("realserver: kafka node %d ignored SIGTERM for %v and was killed\n%s", i, stopTimeout, k.nodes[i].proc.logTail())
	}
	return nil
}

// Restart starts node i again on its own storage, stopping it first if it
// is running, and waits until it is back in the metadata.
func (k *Kafka) Restart(i int) error {
	if k.nodes[i].proc.running() {
		if err := k.Stop(i); err != nil {
			return err
		}
	}
	if err := k.startNode(k.nodes[i]); err != nil {
		return fmt.Errorf("realserver: restarting kafka node %d: %w", i, err)
	}
	return nil
}

// LogPath returns node i's log file, for tests that assert on what it logged.
func (k *Kafka) LogPath(i int) string { return k.nodes[i].proc.logPath() }
