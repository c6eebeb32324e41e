package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/kit"
)

type metrics struct {
	records        *prometheus.CounterVec
	batches        prometheus.Counter
	storeRetries   prometheus.Counter
	announceErrors prometheus.Counter
	hashSeconds    prometheus.Histogram
	batchSeconds   prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "worker_records_total",
			Help: "Registration records by outcome: stored, duplicate (redelivered), dead_lettered."}, []string{"outcome"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "worker_batches_committed_total",
			Help: "Batches whose offsets were committed."}),
		storeRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "worker_store_retries_total",
			Help: "Transient database failures retried."}),
		announceErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "worker_announce_errors_total",
			Help: "Failed cache invalidations or event publishes."}),
		hashSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "worker_hash_seconds",
			Help: "argon2id hashing time per password.", Buckets: prometheus.ExponentialBuckets(.001, 2, 12)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "worker_batch_seconds",
			Help: "Time from poll to offset commit per batch.", Buckets: prometheus.ExponentialBuckets(.005, 2, 12)}),
	}
	r.MustRegister(m.records, m.batches, m.storeRetries, m.announceErrors, m.hashSeconds, m.batchSeconds)
	return m
}

// Worker consumes registrations until stopped.
type Worker struct {
	cfg      Config
	tel      *kit.Telemetry
	tracer   trace.Tracer
	health   *kit.Health
	metrics  *metrics
	kafka    *kgo.Client
	db       *pgxpool.Pool
	redis    redis.UniversalClient
	adminLn  net.Listener
	adminSrv *http.Server

	// pollCtx ends the poll loop (graceful: the current batch finishes);
	// workCtx ends the batch itself (hard: at the shutdown deadline).
	pollCtx, workCtx   context.Context
	stopPoll, stopWork context.CancelFunc
	done               chan struct{}
	closeOnce          sync.Once
}

// New connects to Kafka, Postgres and Redis and binds the admin listener.
func New(ctx context.Context, cfg Config, tel *kit.Telemetry) (_ *Worker, err error) {
	w := &Worker{cfg: cfg, tel: tel, tracer: tel.Tracer.Tracer("scaleplane/worker"),
		health: kit.NewHealth(2 * time.Second), metrics: newMetrics(tel.Metrics.Registry), done: make(chan struct{})}
	defer func() {
		if err != nil {
			w.closeAll()
		}
	}()
	pc, err := account.PoolConfig(cfg.DatabaseRW, int32(cfg.MaxConns))
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL_RW: %w", err)
	}
	if w.db, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.Migrate {
		if err = account.Migrate(ctx, w.db); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	if w.redis, err = kit.NewRedis(cfg.Redis); err != nil {
		return nil, err
	}
	kafkaTLS, err := kit.KafkaTLSOpts(cfg.KafkaTLS)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	w.kafka, err = kgo.NewClient(append(kafkaTLS,
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),    // commit after the database commit, never before
		kgo.BlockRebalanceOnPoll(), // a batch is never revoked half-way
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ClientID("scaleplane-worker"),
	)...)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_BROKERS: %w", err)
	}
	w.health.AddCheck("postgres", func(ctx context.Context) error { return w.db.Ping(ctx) })
	w.health.AddCheck("kafka", func(ctx context.Context) error { return w.kafka.Ping(ctx) })

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.Metrics.Handler())
	mux.Handle("GET /healthz", w.health.LiveHandler())
	mux.Handle("GET /readyz", w.health.ReadyHandler())
	w.adminSrv = kit.NewHTTPServer(mux, kit.HTTPTimeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second,
		Write: 30 * time.Second, Idle: time.Minute}, tel.Metrics, tel.Logger)
	if w.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	w.pollCtx, w.stopPoll = context.WithCancel(context.WithoutCancel(ctx))
	w.workCtx, w.stopWork = context.WithCancel(context.WithoutCancel(ctx))
	return w, nil
}

// AdminAddr is the bound address of /metrics, /healthz and /readyz.
func (w *Worker) AdminAddr() string { return w.adminLn.Addr().String() }

func (w *Worker) closeAll() {
	w.closeOnce.Do(func() {
		if w.kafka != nil {
			// Close alone would wait for a rebalance that BlockRebalanceOnPoll holds.
			w.kafka.CloseAllowingRebalance()
		}
		if w.redis != nil {
			_ = w.redis.Close()
		}
		if w.db != nil {
			w.db.Close()
		}
		if w.adminLn != nil {
			_ = w.adminLn.Close()
		}
	})
}

// consume is the poll loop: poll a batch, process it, commit its offsets,
// then let a pending rebalance happen.
func (w *Worker) consume() error {
	defer close(w.done)
	for {
		fetches := w.kafka.PollRecords(w.pollCtx, w.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || w.pollCtx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			w.tel.Logger.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			w.kafka.AllowRebalance()
			continue
		}
		start := time.Now()
		if err := w.processBatch(w.workCtx, recs); err != nil {
			// Only a hard stop gets here; the batch will be redelivered.
			w.tel.Logger.Warn("batch abandoned uncommitted", "records", len(recs), "err", err)
			return nil
		}
		if w.workCtx.Err() != nil {
			return nil // hard stop between store and commit: redelivered, absorbed by the idempotent insert
		}
		if err := w.kafka.CommitRecords(w.workCtx, recs...); err != nil {
			// Redelivery follows; the idempotent insert absorbs it.
			w.tel.Logger.Warn("offset commit failed", "records", len(recs), "err", err)
		} else {
			w.metrics.batches.Inc()
		}
		w.metrics.batchSeconds.Observe(time.Since(start).Seconds())
		w.kafka.AllowRebalance()
	}
}

// Abort stops at once without committing anything further, as a crash or a
// SIGKILL would; what was stored but not committed is redelivered to the
// next member of the group.
func (w *Worker) Abort() {
	w.stopWork()
	w.stopPoll()
	<-w.done
	w.closeAll()
}

// Run consumes until ctx ends, then finishes the batch in hand, commits it
// and leaves the group, all within the shutdown deadline.
func (w *Worker) Run(ctx context.Context) error {
	consumer := kit.Unit{
		Name: "consumer",
		Run:  w.consume,
		Stop: func(ctx context.Context) error {
			w.stopPoll()
			select {
			case <-w.done:
				return nil
			case <-ctx.Done():
				w.stopWork()
				<-w.done
				return errors.New("batch in hand abandoned at the shutdown deadline; it will be redelivered")
			}
		},
	}
	lc := kit.Lifecycle{Log: w.tel.Logger, Health: w.health, DrainDelay: w.cfg.DrainDelay, ShutdownTimeout: w.cfg.ShutdownTimeout}
	w.tel.LogStart(ctx, "topic", w.cfg.Topic, "group", w.cfg.Group, "hash_concurrency", w.cfg.HashConcurrency,
		"admin_addr", w.AdminAddr())
	return lc.Run(ctx, []kit.Unit{consumer, kit.HTTPUnit("admin", w.adminSrv, w.adminLn)}, []kit.Closer{
		{Name: "telemetry", Close: w.tel.Shutdown},
		{Name: "kafka, redis, postgres", Close: func(context.Context) error { w.stopWork(); w.closeAll(); return nil }},
	})
}
