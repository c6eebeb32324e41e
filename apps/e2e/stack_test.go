package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/apps/gateway/gateway"
	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/apps/users/users"
	"github.com/scaleplane/scaleplane/apps/worker/worker"
	"github.com/scaleplane/scaleplane/components/observability"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// stack is the set of real servers one end-to-end run shares.
type stack struct {
	kafka *realserver.Kafka
	redis *realserver.RedisCluster
	pg    *realserver.Postgres
	db    *pgxpool.Pool // direct to the primary, for counting rows
	otlp  *receiver
	// jaeger, when the cached Jaeger build exists, receives every span
	// instead of otlp, and the trace proof reads it back from its query API.
	jaeger   *realserver.Jaeger
	otlpAddr string
	rwURL    string
	roURL    string
	admin    *kadm.Client
	logDir   string
	started  time.Duration
}

func startStack(t *testing.T, kafkaNodes int) *stack {
	t.Helper()
	begin := time.Now()
	st := &stack{logDir: os.Getenv("E2E_LOG_DIR")}
	st.startTracing(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.redis = realservertest.MustStartRedisCluster(t, realserver.RedisClusterConfig{})
	}()
	st.pg = realservertest.MustStartPostgres(t, realserver.PostgresConfig{Replicas: 1})
	direct, err := st.pg.CreateDatabase("app", "app-pw", "appdb")
	if err != nil {
		t.Fatal(err)
	}
	ini := fmt.Sprintf(`[databases]
appdb = host=%[1]s port=%[2]d dbname=appdb
appdb_ro = host=%[1]s port=%[3]d dbname=appdb

[pgbouncer]
auth_type = scram-sha-256
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
server_login_retry = 1
`, st.pg.Host(), st.pg.Port(), st.pg.ReplicaPorts()[0])
	b := realservertest.MustStartPgBouncer(t, realserver.PgBouncerConfig{Ini: ini, Users: map[string]string{"app": "app-pw"}})
	st.rwURL, st.roURL = b.DSN("app", "app-pw", "appdb"), b.DSN("app", "app-pw", "appdb_ro")
	st.kafka = realservertest.MustStartKafka(t, realserver.KafkaConfig{
		Nodes:      kafkaNodes,
		Properties: fmt.Sprintf("default.replication.factor=%d\nmin.insync.replicas=%d\nauto.create.topics.enable=false\n", kafkaNodes, max(1, kafkaNodes-1)),
		Overrides:  map[string]string{"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"},
	})
	<-done
	if st.db, err = pgxpool.New(context.Background(), direct); err != nil {
		t.Fatalf("pool to the primary: %v", err)
	}
	t.Cleanup(st.db.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.kafka.Brokers()...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	st.admin = kadm.NewClient(cl)
	st.started = time.Since(begin)
	t.Logf("stack up in %v: Kafka %d node(s), Redis Cluster 6 nodes, Postgres primary + replica, PgBouncer", st.started.Round(time.Millisecond), kafkaNodes)
	return st
}

// topic creates name and name.dlq with the partitions and the cluster's
// replication, the way the platform's Kafka component would.
func (st *stack) topic(t *testing.T, name string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rf := int16(len(st.kafka.Brokers()))
	for _, n := range []string{name, name + ".dlq"} {
		res, err := st.admin.CreateTopics(ctx, partitions, rf, nil, n)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", n, err)
		}
	}
}

// env is the environment every service gets; tests add their overrides.
func (st *stack) env(extra map[string]string) *kit.Env {
	m := map[string]string{
		"KAFKA_BROKERS":               strings.Join(st.kafka.Brokers(), ","),
		"REDIS_ADDRS":                 strings.Join(st.redis.Addrs(), ","),
		"DATABASE_URL_RW":             st.rwURL,
		"DATABASE_URL_RO":             st.roURL,
		"OTEL_EXPORTER_OTLP_ENDPOINT": st.otlpAddr,
		"HTTP_ADDR":                   "127.0.0.1:0",
		"ADMIN_ADDR":                  "127.0.0.1:0",
		"GRPC_ADDR":                   "127.0.0.1:0",
		"DRAIN_DELAY":                 "0s",
		"SHUTDOWN_TIMEOUT":            "10s",
		"ARGON2_MEMORY_KIB":           "256", // cheap hashes: the proofs are about delivery, not cost
		"ARGON2_TIME":                 "1",
		"SESSION_COOKIE_SECURE":       "false",
		"RATE_LIMIT_RATE":             "1000000",
		"RATE_LIMIT_BURST":            "1000000",
		"WORKER_MAX_POLL_RECORDS":     "100",
		"STORE_RETRY_MAX":             "1s",
	}
	for k, v := range extra {
		m[k] = v
	}
	return kit.MapEnv(m)
}

func (st *stack) telemetry(t *testing.T, c kit.TelemetryConfig, name string) *kit.Telemetry {
	t.Helper()
	c.LogWriter = io.Discard
	if st.logDir != "" {
		f, err := os.OpenFile(filepath.Join(st.logDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("log file: %v", err)
		}
		t.Cleanup(func() { _ = f.Close() })
		c.LogWriter = f
	}
	tel, err := kit.NewTelemetry(context.Background(), c)
	if err != nil {
		t.Fatalf("telemetry: %v", err)
	}
	return tel
}

// running is a service started in the test; stop cancels it as SIGTERM
// would and returns what Run returned.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	reg    *prometheus.Registry
}

func (r *running) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

func run(t *testing.T, reg *prometheus.Registry, fn func(ctx context.Context) error) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), reg: reg}
	go func() { r.err = fn(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("a service did not stop within 30s")
		}
	})
	return r
}

func (st *stack) startUsers(t *testing.T, extra map[string]string) (*users.Service, *running) {
	t.Helper()
	cfg, err := users.ConfigFromEnv(st.env(extra))
	if err != nil {
		t.Fatalf("users config: %v", err)
	}
	tel := st.telemetry(t, cfg.Telemetry, "users")
	svc, err := users.New(context.Background(), cfg, tel)
	if err != nil {
		t.Fatalf("users: %v", err)
	}
	return svc, run(t, tel.Metrics.Registry, svc.Run)
}

func (st *stack) startWorker(t *testing.T, extra map[string]string, onStored func(context.Context, int)) (*worker.Worker, *running) {
	t.Helper()
	cfg, err := worker.ConfigFromEnv(st.env(extra))
	if err != nil {
		t.Fatalf("worker config: %v", err)
	}
	cfg.OnStored = onStored
	tel := st.telemetry(t, cfg.Telemetry, "worker")
	w, err := worker.New(context.Background(), cfg, tel)
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	return w, run(t, tel.Metrics.Registry, w.Run)
}

func (st *stack) startGateway(t *testing.T, extra map[string]string) (*gateway.Gateway, *running) {
	t.Helper()
	cfg, err := gateway.ConfigFromEnv(st.env(extra))
	if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	tel := st.telemetry(t, cfg.Telemetry, "gateway")
	g, err := gateway.New(context.Background(), cfg, tel)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	r := run(t, tel.Metrics.Registry, g.Run)
	waitReady(t, "http://"+g.AdminAddr()+"/readyz")
	return g, r
}

// metric sums the samples of name whose labels include all of labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			} else if m.GetGauge() != nil {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// startTracing starts a real Jaeger (the observability component's
// rendered config, in-memory storage) when its build is cached, else the
// in-test OTLP receiver, and says which.
func (st *stack) startTracing(t *testing.T) {
	t.Helper()
	if _, cached, err := toolchain.JaegerDir(); err != nil || !cached {
		t.Logf("traces go to the in-test OTLP receiver: the Jaeger build is not cached (go run ./cmd/scaleplane tools builds it)")
		st.otlp = startReceiver(t)
		st.otlpAddr = st.otlp.addr
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin, err := toolchain.Jaeger(ctx)
	if err != nil {
		t.Fatalf("jaeger: %v", err)
	}
	ports := realservertest.MustNewJaegerPorts(t)
	c := observability.DefaultJaegerConfig(observability.JaegerStorage{Kind: observability.StorageMemory, MaxTraces: 10000})
	c.Bind = realserver.Loopback
	c.OTLPGRPCPort, c.OTLPHTTPPort, c.QueryHTTPPort, c.QueryGRPCPort = ports.OTLPGRPC, ports.OTLPHTTP, ports.QueryHTTP, ports.QueryGRPC
	c.HealthPort, c.MetricsPort = ports.Health, ports.Metrics
	st.jaeger = realservertest.MustStartJaeger(t, bin.Path, observability.RenderJaegerConfig(c), ports)
	st.otlpAddr = fmt.Sprintf("%s:%d", realserver.Loopback, ports.OTLPGRPC)
}

// traceServices is, for one trace, each service's span names, once
// complete(services) holds or the backend's wait ends.
func (st *stack) traceServices(t *testing.T, traceID string, complete func(map[string][]string) bool) map[string][]string {
	t.Helper()
	group := func(spans []realserver.TraceSpan) map[string][]string {
		out := map[string][]string{}
		for _, s := range spans {
			out[s.Service] = append(out[s.Service], s.Operation)
		}
		return out
	}
	if st.jaeger != nil {
		spans, err := st.jaeger.Trace(traceID, func(s []realserver.TraceSpan) bool { return complete(group(s)) })
		if err != nil {
			t.Logf("jaeger: %v", err)
		}
		return group(spans)
	}
	var got map[string][]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = st.otlp.services(traceID); complete(got) {
			break
		}
	}
	return got
}
