// Package topicadmin creates declared Kafka topics idempotently: the logic
// of the topics Job (apps/topics) and of `scaleplane services up`, shared
// with the tests that run it against real brokers. A topic that exists with
// fewer partitions gets more (never fewer: Kafka cannot shrink a topic),
// and its retention is brought in line.
package topicadmin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/components/kafka/topics"
)

// ClientOpts are the options of the client Ensure's admin client wraps.
// The client caches a topic's metadata for MetadataMinAge (5 s by
// default), so Ensure's "is it described yet?" would see a topic created a
// moment ago only that late; Ensure waits 100 ms instead.
func ClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.MetadataMinAge(100 * time.Millisecond)}
}

// propagationTimeout bounds the wait for a new topic's metadata to reach
// the broker answering.
const propagationTimeout = 30 * time.Second

// describe waits until the cluster describes topic with a leader for every
// partition: metadata of a just-created topic reaches brokers a moment later.
func describe(ctx context.Context, adm *kadm.Client, topic string) (kadm.TopicDetail, error) {
	deadline := time.Now().Add(propagationTimeout)
	for {
		td, err := adm.ListTopics(ctx, topic)
		d, ok := td[topic]
		if err == nil && ok && d.Err == nil && len(d.Partitions) > 0 {
			ready := true
			for _, p := range d.Partitions {
				ready = ready && p.Err == nil && p.Leader >= 0
			}
			if ready {
				return d, nil
			}
		}
		if err == nil && ok {
			err = d.Err
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("topic %s not described within %v: %v", topic, propagationTimeout, err)
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Change is what Ensure did to one topic.
type Change struct {
	Topic string
	// Action is "created", "partitions", "retention" or "unchanged".
	Action string
	Detail string
}

// Ensure makes the cluster match the declared topics and reports what it
// changed; adm's client should be made with ClientOpts. Running it twice changes nothing the second time.
func Ensure(ctx context.Context, adm *kadm.Client, ts []topics.Topic) ([]Change, error) {
	if err := topics.Validate(ts); err != nil {
		return nil, err
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil && !errors.Is(err, kadm.ErrEmpty) {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	var changes []Change
	for _, t := range ts {
		detail, ok := existing[t.Name]
		if ok && detail.Err != nil && !errors.Is(detail.Err, kerr.UnknownTopicOrPartition) {
			return changes, fmt.Errorf("topic %s: %w", t.Name, detail.Err)
		}
		if !ok || detail.Err != nil {
			cfg := map[string]*string{}
			if t.RetentionMs != 0 {
				v := strconv.FormatInt(t.RetentionMs, 10)
				cfg["retention.ms"] = &v
			}
			resp, err := adm.CreateTopic(ctx, int32(t.Partitions), int16(t.ReplicationFactor), cfg, t.Name)
			if err == nil {
				err = resp.Err
			}
			switch {
			case err == nil:
				// Done means usable: wait until the brokers serve its metadata.
				if _, err := describe(ctx, adm, t.Name); err != nil {
					return changes, err
				}
				changes = append(changes, Change{t.Name, "created", fmt.Sprintf("%d partitions, replication %d", t.Partitions, t.ReplicationFactor)})
				continue
			case errors.Is(err, kerr.TopicAlreadyExists):
				// The broker we asked had not yet learned of a topic created
				// a moment ago: ask again and treat it as existing.
				if detail, err = describe(ctx, adm, t.Name); err != nil {
					return changes, err
				}
			default:
				return changes, fmt.Errorf("create topic %s: %w", t.Name, err)
			}
		}
		changed := false
		if have := len(detail.Partitions); have < t.Partitions {
			resp, err := adm.UpdatePartitions(ctx, t.Partitions, t.Name)
			if err != nil {
				return changes, fmt.Errorf("add partitions to %s: %w", t.Name, err)
			}
			if r, ok := resp[t.Name]; ok && r.Err != nil {
				return changes, fmt.Errorf("add partitions to %s: %w", t.Name, r.Err)
			}
			changes = append(changes, Change{t.Name, "partitions", fmt.Sprintf("%d -> %d", have, t.Partitions)})
			changed = true
		}
		if t.RetentionMs != 0 {
			want := strconv.FormatInt(t.RetentionMs, 10)
			cur := ""
			if rc, err := configs.On(t.Name, nil); err == nil {
				i := slices.IndexFunc(rc.Configs, func(c kadm.Config) bool { return c.Key == "retention.ms" })
				if i >= 0 {
					cur = rc.Configs[i].MaybeValue()
				}
			}
			if cur != want {
				resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &want}}, t.Name)
				if err != nil {
					return changes, fmt.Errorf("set retention of %s: %w", t.Name, err)
				}
				for _, r := range resp {
					if r.Err != nil {
						return changes, fmt.Errorf("set retention of %s: %w", t.Name, r.Err)
					}
				}
				changes = append(changes, Change{t.Name, "retention", cur + " -> " + want})
				changed = true
			}
		}
		if !changed {
			changes = append(changes, Change{t.Name, "unchanged", fmt.Sprintf("%d partitions", len(detail.Partitions))})
		}
	}
	return changes, nil
}
