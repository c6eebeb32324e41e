package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/components/kafka/topicadmin"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/stacks"
	"github.com/scaleplane/scaleplane/topology"
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

	start := time.Now()
	fmt.Fprintln(stderr, "starting Redis Cluster (6 nodes), Postgres primary + replica, PgBouncer and Kafka on loopback...")
	// Every server started is closed on the way out, whether the start
	// failed half-way, or Ctrl-C ended the wait.
	redis, err := realserver.StartRedisCluster(realserver.RedisClusterConfig{})
	if err != nil {
		return err
	}
	defer closeServer(stderr, redis)
	pg, err := realserver.StartPostgres(realserver.PostgresConfig{Replicas: 1})
	if err != nil {
		return err
	}
	defer closeServer(stderr, pg)
	if _, err := pg.CreateDatabase("app", "app-pw", "appdb"); err != nil {
		return err
	}
	bouncer, err := realserver.StartPgBouncer(realserver.PgBouncerConfig{
		Ini: fmt.Sprintf("[databases]\nappdb = host=%[1]s port=%[2]d dbname=appdb\nappdb_ro = host=%[1]s port=%[3]d dbname=appdb\n\n"+
			"[pgbouncer]\nauth_type = scram-sha-256\npool_mode = transaction\nmax_client_conn = 400\ndefault_pool_size = 20\n",
			pg.Host(), pg.Port(), pg.ReplicaPorts()[0]),
		Users: map[string]string{"app": "app-pw"},
	})
	if err != nil {
		return err
	}
	defer closeServer(stderr, bouncer)
	kafka, err := realserver.StartKafka(realserver.KafkaConfig{
		Nodes:      *nodes,
		Properties: fmt.Sprintf("default.replication.factor=%d\nmin.insync.replicas=%d\nauto.create.topics.enable=false\n", *nodes, max(1, *nodes-1)),
	})
	if err != nil {
		return err
	}
	defer closeServer(stderr, kafka)
	if err := createTopics(ctx, kafka.Brokers(), declared, stderr); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	env := []string{
		"KAFKA_BROKERS=" + strings.Join(kafka.Brokers(), ","),
		"REDIS_ADDRS=" + strings.Join(redis.Addrs(), ","),
		"DATABASE_URL_RW=" + bouncer.DSN("app", "app-pw", "appdb"),
		"DATABASE_URL_RO=" + bouncer.DSN("app", "app-pw", "appdb_ro"),
		"USERS_ADDR=" + net.JoinHostPort(realserver.Loopback, strconv.Itoa(topology.UsersGRPCPort)),
		"SESSION_COOKIE_SECURE=false",
	}
	fmt.Fprintf(stderr, "ready in %v. In other shells, with these variables exported:\n\n", time.Since(start).Round(time.Millisecond))
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(stdout, "export %s='%s'\n", k, v)
	}
	fmt.Fprintf(stderr, "\n  go run ./apps/users    # gRPC :%d, admin :%d\n  go run ./apps/worker   # admin :%d\n  go run ./apps/gateway  # HTTP :%d, admin :%d\n\nCtrl-C stops every server.\n",
		topology.UsersGRPCPort, topology.UsersLocalAdminPort, topology.WorkerLocalAdminPort, topology.GatewayHTTPPort, topology.AdminHTTPPort)
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopping...")
	return nil
}

// closeServer stops a server at exit; a failure to clean up is worth a
// line, not a failed command.
func closeServer(stderr io.Writer, s interface{ Close() error }) {
	if err := s.Close(); err != nil {
		fmt.Fprintln(stderr, err)
	}
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
// does (topicadmin.Ensure: partitions, replication, retention, and waiting
// until the brokers serve each topic's metadata).
func createTopics(ctx context.Context, brokers []string, declared []topics.Topic, log io.Writer) error {
	cl, err := kgo.NewClient(append(topicadmin.ClientOpts(), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	changes, err := topicadmin.Ensure(ctx, kadm.NewClient(cl), declared)
	for _, c := range changes {
		fmt.Fprintf(log, "topic %s: %s (%s)\n", c.Topic, c.Action, c.Detail)
	}
	return err
}
