package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/components/kafka/topics"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/stacks"
)

func runServices(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "up" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "Usage: scaleplane services up [--kafka-nodes N] [--stack NAME] [--project-dir DIR]")
			return nil
		}
		return usageError{fmt.Errorf("want: scaleplane services up [--kafka-nodes N] [--stack NAME] [--project-dir DIR]")}
	}
	fs := newFlags("services up", "[--kafka-nodes N] [--stack NAME] [--project-dir DIR]", stderr)
	nodes := fs.Int("kafka-nodes", 1, "Kafka KRaft nodes to start (1 or 3)")
	stack := fs.String("stack", "local", "stack whose topics (partitions, retention) to create (a stacks/Pulumi.<name>.yaml)")
	root := fs.String("project-dir", ".", "directory holding Pulumi.yaml and stacks/")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *nodes != 1 && *nodes != 3 {
		return usageError{fmt.Errorf("--kafka-nodes %d: must be 1 or 3", *nodes)}
	}
	declared, err := stackTopics(*root, *stack, *nodes)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	s, err := realserver.NewSession(func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) })
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	fmt.Fprintln(stderr, "starting Redis Cluster (6 nodes), Postgres primary + replica, PgBouncer and Kafka on loopback...")
	var env []string
	err = s.Do(func() {
		redis := realserver.StartRedisCluster(s, realserver.RedisClusterConfig{})
		pg := realserver.StartPostgres(s, realserver.PostgresConfig{Replicas: 1})
		pg.CreateDatabase("app", "app-pw", "appdb")
		bouncer := realserver.StartPgBouncer(s, realserver.PgBouncerConfig{
			Ini: fmt.Sprintf("[databases]\nappdb = host=%[1]s port=%[2]d dbname=appdb\nappdb_ro = host=%[1]s port=%[3]d dbname=appdb\n\n"+
				"[pgbouncer]\nauth_type = scram-sha-256\npool_mode = transaction\nmax_client_conn = 400\ndefault_pool_size = 20\n",
				pg.Host(), pg.Port(), pg.ReplicaPorts()[0]),
			Users: map[string]string{"app": "app-pw"},
		})
		kafka := realserver.StartKafka(s, realserver.KafkaConfig{
			Nodes:      *nodes,
			Properties: fmt.Sprintf("default.replication.factor=%d\nmin.insync.replicas=%d\nauto.create.topics.enable=false\n", *nodes, max(1, *nodes-1)),
		})
		if err := createTopics(ctx, kafka.Brokers(), declared, stderr); err != nil {
			s.Fatalf("create topics: %v", err)
		}
		env = []string{
			"KAFKA_BROKERS=" + strings.Join(kafka.Brokers(), ","),
			"REDIS_ADDRS=" + strings.Join(redis.Addrs(), ","),
			"DATABASE_URL_RW=" + bouncer.DSN("app", "app-pw", "appdb"),
			"DATABASE_URL_RO=" + bouncer.DSN("app", "app-pw", "appdb_ro"),
			"USERS_ADDR=127.0.0.1:9000",
			"SESSION_COOKIE_SECURE=false",
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ready in %v. In other shells, with these variables exported:\n\n", time.Since(start).Round(time.Millisecond))
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(stdout, "export %s='%s'\n", k, v)
	}
	fmt.Fprintln(stderr, "\n  go run ./apps/users    # gRPC :9000, admin :9091\n  go run ./apps/worker   # admin :9092\n  go run ./apps/gateway  # HTTP :8080, admin :9090\n\nCtrl-C stops every server.")
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopping...")
	return nil
}

// stackTopics are the topics the stack declares (stacks.Env.Topics: the
// partitions follow the worker's replicas), so the services run here see
// the partitions they would see deployed. The replication factor is the
// brokers started here, which a stack's own may exceed.
func stackTopics(root, stack string, nodes int) ([]topics.Topic, error) {
	values, err := stacks.ReadStackConfig(root, stack)
	var env *stacks.Env
	if err == nil {
		env, err = stacks.Parse(stack, values)
	}
	var cfgErr *stacks.ConfigError
	if errors.Is(err, stacks.ErrUnknownStack) || errors.As(err, &cfgErr) {
		return nil, usageError{err}
	}
	if err != nil {
		return nil, err
	}
	declared := env.Topics()
	for i := range declared {
		declared[i].ReplicationFactor = nodes
	}
	return declared, nil
}

// createTopics creates the declared topics as the platform's topics Job
// does (topics.Ensure: partitions, replication, retention, and waiting
// until the brokers serve each topic's metadata). The client caches a
// topic's metadata for MetadataMinAge (5 s by default), so Ensure's "does
// it exist yet?" would see a topic created a moment ago only that late.
func createTopics(ctx context.Context, brokers []string, declared []topics.Topic, log io.Writer) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	changes, err := topics.Ensure(ctx, kadm.NewClient(cl), declared)
	for _, c := range changes {
		fmt.Fprintf(log, "topic %s: %s (%s)\n", c.Topic, c.Action, c.Detail)
	}
	return err
}
