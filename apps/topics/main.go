// Command topics is the image of the Kafka topics Job: it reads the
// declared topics from TOPICS_FILE and makes the cluster at KAFKA_BROKERS
// match them (components/kafka/topicadmin.Ensure), retrying until the brokers
// answer or TOPICS_TIMEOUT passes. KAFKA_TLS=true speaks TLS (MSK; KAFKA_TLS_CA_FILE for a private CA).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/components/kafka/topicadmin"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
)

// retryEvery spaces the attempts while the brokers come up.
const retryEvery = 5 * time.Second

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "topics:", err)
		os.Exit(1)
	}
}

func run() error {
	env := kit.NewEnv(nil)
	brokers := env.Addrs("KAFKA_BROKERS", []string{"127.0.0.1:9092"})
	file := env.String("TOPICS_FILE", "/etc/topics/topics.json")
	kafkaTLS := kit.TLSFromEnv(env, "KAFKA")
	timeout := env.Duration("TOPICS_TIMEOUT", 10*time.Minute, time.Second, time.Hour)
	if err := env.Err(); err != nil {
		return err
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	declared, err := topics.Parse(raw)
	if err != nil {
		return err
	}
	opts, err := kit.KafkaTLSOpts(kafkaTLS)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	cl, err := kgo.NewClient(append(append(opts, topicadmin.ClientOpts()...), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		changes, err := topicadmin.Ensure(ctx, adm, declared)
		if err == nil {
			for _, c := range changes {
				fmt.Printf("topics: %s: %s (%s)\n", c.Topic, c.Action, c.Detail)
			}
			return nil
		}
		fmt.Fprintln(os.Stderr, "topics: retrying:", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v: %w", timeout, err)
		case <-time.After(retryEvery):
		}
	}
}
