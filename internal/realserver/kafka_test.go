package realserver

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaOpTimeout bounds one produce, consume or admin call in these tests,
// including the client's own retries while a killed node is fenced.
const kafkaOpTimeout = 60 * time.Second

func kafkaClient(t *testing.T, k *Kafka, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client for %v: %v", k.Brokers(), err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, cl *kgo.Client, topic string, partitions int32, rf int16, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaOpTimeout)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s (partitions %d, rf %d): %v", topic, partitions, rf, err)
	}
}

func produce(t *testing.T, cl *kgo.Client, topic, value string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaOpTimeout)
	defer cancel()
	start := time.Now()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce %q to %s with acks=all: %v", value, topic, err)
	}
	return time.Since(start)
}

func consumeAll(t *testing.T, k *Kafka, topic string, want int) []string {
	t.Helper()
	cl := kafkaClient(t, k, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), kafkaOpTimeout)
	defer cancel()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records from %s before timeout: %v", len(got), want, topic, got)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v (retrying)", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

func TestKafkaSingleNode(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// A rendered server.properties meant for a pod: its listeners and log
	// dir must give way to the harness's.
	k := must(t, StartKafka, KafkaConfig{Properties: strings.Join([]string{
		"listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
		"log.dirs=/var/lib/kafka/data",
		"num.partitions=3",
		"auto.create.topics.enable=false",
	}, "\n")})
	t.Logf("1-node KRaft cluster answering metadata in %v", time.Since(start).Round(time.Millisecond))
	if len(k.Brokers()) != 1 {
		t.Fatalf("Brokers() = %v, want one address", k.Brokers())
	}
	props, err := os.ReadFile(k.nodes[0].dir + "/server.properties")
	if err != nil || !strings.Contains(string(props), "# (set by the realserver harness) log.dirs=/var/lib/kafka/data") {
		t.Fatalf("rendered log.dirs not replaced by the harness in server.properties (err %v):\n%s", err, props)
	}

	cl := kafkaClient(t, k, kgo.RequiredAcks(kgo.AllISRAcks()))
	createTopic(t, cl, "orders", -1, -1, nil) // broker defaults: num.partitions from the rendered config
	ctx, cancel := context.WithTimeout(context.Background(), kafkaOpTimeout)
	defer cancel()
	details, err := kadm.NewClient(cl).ListTopics(ctx, "orders")
	if err != nil || len(details["orders"].Partitions) != 3 {
		t.Fatalf("topic orders: %d partitions (err %v), want 3 from the rendered num.partitions", len(details["orders"].Partitions), err)
	}
	took := produce(t, cl, "orders", "order-1")
	t.Logf("first acks=all produce took %v", took.Round(time.Millisecond))
	if got := consumeAll(t, k, "orders", 1); got[0] != "order-1" {
		t.Fatalf("consumed %v, want [order-1]", got)
	}
}

// TestKafkaSurvivesNodeLoss: with replication 3 and min.insync.replicas=2,
// acks=all produce keeps working after one node is SIGKILLed.
func TestKafkaSurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts three Kafka JVMs and waits out a node's fencing (~20s on 2 cores)")
	}
	t.Parallel()
	start := time.Now()
	k := must(t, StartKafka, KafkaConfig{
		Nodes:      3,
		Properties: "default.replication.factor=3\nmin.insync.replicas=2\n",
		Overrides: map[string]string{
			// Fence a dead node in 3s instead of 9s so the test stays short.
			"broker.session.timeout.ms":    "3000",
			"broker.heartbeat.interval.ms": "500",
		},
	})
	t.Logf("3-node KRaft cluster answering metadata in %v", time.Since(start).Round(time.Millisecond))

	cl := kafkaClient(t, k, kgo.RequiredAcks(kgo.AllISRAcks()))
	createTopic(t, cl, "payments", 1, 3, nil)
	produce(t, cl, "payments", "before")

	ctx, cancel := context.WithTimeout(context.Background(), kafkaOpTimeout)
	defer cancel()
	rc, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "payments")
	if err != nil {
		t.Fatalf("describe topic configs: %v", err)
	}
	if v, err := rc.On("payments", nil); err != nil || !hasConfig(v.Configs, "min.insync.replicas", "2") {
		t.Fatalf("topic payments lacks min.insync.replicas=2 from the rendered config (err %v): %+v", err, v.Configs)
	}

	victim := 0
	k.Kill(victim)
	took := produce(t, cl, "payments", "after-kill")
	t.Logf("acks=all produce succeeded %v after SIGKILL of node %d", took.Round(time.Millisecond), k.NodeID(victim))

	got := consumeAll(t, k, "payments", 2)
	if fmt.Sprint(got) != "[before after-kill]" {
		t.Fatalf("consumed %v, want [before after-kill]", got)
	}

	restart := time.Now()
	ok(t, k.Restart(victim))
	t.Logf("node %d restarted and back in metadata in %v", k.NodeID(victim), time.Since(restart).Round(time.Millisecond))
	produce(t, cl, "payments", "after-restart")
}

func hasConfig(configs []kadm.Config, key, value string) bool {
	for _, c := range configs {
		if c.Key == key && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}
