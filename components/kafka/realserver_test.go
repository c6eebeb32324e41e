package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/components/kafka/topicadmin"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

const (
	// electionBound is broker.session.timeout.ms (9 s) plus the controller's
	// reaction and metadata propagation, with margin for 2 shared cores.
	electionBound = 45 * time.Second
	// consumeBound bounds reading every acknowledged record back.
	consumeBound = 60 * time.Second
	// refusalBound bounds the produce that min.insync.replicas must refuse.
	refusalBound = 30 * time.Second
)

func newClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DialTimeout(2 * time.Second)}, opts...)...)
	require.NoError(t, err, "kafka client")
	t.Cleanup(cl.Close)
	return cl
}

// leadersAvoid reports whether every partition of topic has a live leader
// other than node id.
func leadersAvoid(ctx context.Context, adm *kadm.Client, topic string, id int32) bool {
	c, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	td, err := adm.ListTopics(c, topic)
	if err != nil {
		return false
	}
	d, ok := td[topic]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		return false
	}
	for _, p := range d.Partitions {
		if p.Err != nil || p.Leader < 0 || p.Leader == id {
			return false
		}
	}
	return true
}

// TestRealKafkaKeepsAcknowledgedWritesThroughABrokerCrash starts three
// KRaft nodes from the rendered server.properties, runs the topics Job's
// logic (create, no-op, partition increase), produces with acks=all while
// one node is SIGKILLed and reads every acknowledged record back, measures
// the leader election, then stops a second node and checks
// min.insync.replicas refuses writes.
// metadataPropagation bounds how long brokers take to report new partitions.
const metadataPropagation = 15 * time.Second

func TestRealKafkaKeepsAcknowledgedWritesThroughABrokerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three real Kafka JVMs; -short runs only the unit tests")
	}
	a := testArgs()
	props := RenderProperties(Node{Name: "kafka", Namespace: "ns", Nodes: 3}, a.Settings())
	k := realservertest.MustStartKafka(t, realserver.KafkaConfig{Nodes: 3, Properties: props})
	// StartKafka's own kill runs after its temp directories are removed
	// (cleanups run last-in first-out), so a JVM still writing makes that
	// removal fail; kill the nodes first.
	t.Cleanup(func() {
		for i := range 3 {
			k.Kill(i)
		}
	})
	ctx := context.Background()
	adm := kadm.NewClient(newClient(t, k.Brokers(), topicadmin.ClientOpts()...))

	// The topics Job's logic: create once, then nothing, then more partitions.
	changes, err := topicadmin.Ensure(ctx, adm, a.Topics)
	require.NoError(t, err, "first run of the topics logic")
	for _, c := range changes {
		assert.Equal(t, "created", c.Action, "first run creates %s", c.Topic)
	}
	changes, err = topicadmin.Ensure(ctx, adm, a.Topics)
	require.NoError(t, err, "second run of the topics logic")
	for _, c := range changes {
		assert.Equal(t, "unchanged", c.Action, "second run leaves %s alone (%s)", c.Topic, c.Detail)
	}
	grown := append([]topics.Topic(nil), a.Topics...)
	grown[0].Partitions += 2
	changes, err = topicadmin.Ensure(ctx, adm, grown)
	require.NoError(t, err, "partition increase")
	assert.Equal(t, topicadmin.Change{Topic: "registrations", Action: "partitions", Detail: "6 -> 8"}, changes[0], "the increase is applied")
	// Brokers learn new partitions from the controller asynchronously: poll
	// the metadata until it shows them, within a bound.
	var partitions int
	for deadline := time.Now().Add(metadataPropagation); ; time.Sleep(200 * time.Millisecond) {
		td, err := adm.ListTopics(ctx, "registrations")
		require.NoError(t, err, "describe registrations")
		if partitions = len(td["registrations"].Partitions); partitions == 8 || time.Now().After(deadline) {
			break
		}
	}
	assert.Equal(t, 8, partitions, "registrations now has 8 partitions")
	cfgs, err := adm.DescribeTopicConfigs(ctx, "registrations")
	require.NoError(t, err, "describe topic configs")
	rc, err := cfgs.On("registrations", nil)
	require.NoError(t, err, "configs of registrations")
	for _, c := range rc.Configs {
		if c.Key == "min.insync.replicas" {
			assert.Equal(t, "2", c.MaybeValue(), "topics inherit min.insync.replicas=2 from the rendered properties")
		}
	}

	// acks=all producer running while a broker dies.
	topic := "registrations"
	prod := newClient(t, k.Brokers(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic),
		kgo.RecordDeliveryTimeout(60*time.Second), kgo.ProducerLinger(5*time.Millisecond))
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed int
	stop := make(chan struct{})
	var producing sync.WaitGroup
	producing.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := strconv.Itoa(i)
			prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[string(r.Value)] = true
			})
			time.Sleep(2 * time.Millisecond)
		}
	})
	time.Sleep(2 * time.Second)
	victim := 0
	td, err := adm.ListTopics(ctx, topic)
	require.NoError(t, err, "describe before the kill")
	victim = int(td[topic].Partitions[0].Leader) - 1 // node.id is index+1
	killed := time.Now()
	k.Kill(victim)
	victimID := int32(k.NodeID(victim))
	var live []string
	for i, b := range k.Brokers() {
		if i != victim {
			live = append(live, b)
		}
	}
	liveAdm := kadm.NewClient(newClient(t, live))
	for !leadersAvoid(ctx, liveAdm, topic, victimID) {
		require.Less(t, time.Since(killed), electionBound, "partitions still led by the dead node after %v", electionBound)
		time.Sleep(50 * time.Millisecond)
	}
	election := time.Since(killed)
	t.Logf("kafka leader election: node %d SIGKILLed, every partition of %s had a new leader after %v (broker.session.timeout.ms 9000)",
		victimID, topic, election.Round(10*time.Millisecond))
	time.Sleep(2 * time.Second)
	close(stop)
	producing.Wait()
	require.NoError(t, prod.Flush(ctx), "flush the producer")
	mu.Lock()
	ackedCount := len(acked)
	mu.Unlock()
	t.Logf("kafka acks=all: %d records acknowledged across the crash, %d not acknowledged", ackedCount, failed)
	require.Positive(t, ackedCount, "records were acknowledged")

	cons := newClient(t, live, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	deadline := time.Now().Add(consumeBound)
	for missing := ackedCount; missing > 0; {
		require.True(t, time.Now().Before(deadline), "%d acknowledged records not read back within %v", missing, consumeBound)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		missing = 0
		for v := range acked {
			if !seen[v] {
				missing++
			}
		}
	}
	for v := range acked {
		assert.True(t, seen[v], "acknowledged record %s was lost", v)
	}

	// With one node left, min.insync.replicas=2 must refuse acks=all writes.
	second := (victim + 1) % 3
	require.NoError(t, k.Stop(second), "graceful stop of node %d", second)
	var last []string
	for i, b := range k.Brokers() {
		if i != victim && i != second {
			last = append(last, b)
		}
	}
	refuse := newClient(t, last, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(3), kgo.RecordDeliveryTimeout(refusalBound), kgo.DefaultProduceTopic(topic))
	rctx, cancel := context.WithTimeout(ctx, refusalBound+5*time.Second)
	defer cancel()
	err = refuse.ProduceSync(rctx, &kgo.Record{Value: []byte("must-not-be-acknowledged")}).FirstErr()
	require.Error(t, err, "an acks=all write with one of three nodes left must be refused")
	t.Logf("kafka min.insync.replicas: with one node left the write was refused: %v", err)
	assert.True(t, errors.Is(err, kerr.NotEnoughReplicas) || errors.Is(err, kerr.NotEnoughReplicasAfterAppend),
		"refused for lack of in-sync replicas, got %v", err)
}
