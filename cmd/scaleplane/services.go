package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/internal/realserver"
)

// Topics the bundled services use, created the way the platform's topic Job does.
var serviceTopics = map[string]int32{"registrations": 12, "registrations.dlq": 3}

func runServices(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "up" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "Usage: scaleplane services up [--kafka-nodes N]")
			return nil
		}
		return usageError{fmt.Errorf("want: scaleplane services up [--kafka-nodes N]")}
	}
	fs := newFlags("services up", "[--kafka-nodes N]", stderr)
	nodes := fs.Int("kafka-nodes", 1, "Kafka KRaft nodes to start (1 or 3)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *nodes != 1 && *nodes != 3 {
		return usageError{fmt.Errorf("--kafka-nodes %d: must be 1 or 3", *nodes)}
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
	if err := createTopics(ctx, kafka.Brokers(), int16(*nodes)); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	env := []string{
		"KAFKA_BROKERS=" + strings.Join(kafka.Brokers(), ","),
		"REDIS_ADDRS=" + strings.Join(redis.Addrs(), ","),
		"DATABASE_URL_RW=" + bouncer.DSN("app", "app-pw", "appdb"),
		"DATABASE_URL_RO=" + bouncer.DSN("app", "app-pw", "appdb_ro"),
		"USERS_ADDR=127.0.0.1:9000",
		"SESSION_COOKIE_SECURE=false",
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

// closeServer stops a server at exit; a failure to clean up is worth a
// line, not a failed command.
func closeServer(stderr io.Writer, s interface{ Close() error }) {
	if err := s.Close(); err != nil {
		fmt.Fprintln(stderr, err)
	}
}

func createTopics(ctx context.Context, brokers []string, rf int16) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for name, partitions := range serviceTopics {
		res, err := adm.CreateTopics(ctx, partitions, rf, nil, name)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
