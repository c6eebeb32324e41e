// Package worker is the registrations consumer: it hashes passwords off the
// request path, stores each registration exactly once and announces it.
package worker

import (
	"context"
	"runtime"
	"time"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/topology"
)

// Config is everything the worker reads from its environment.
type Config struct {
	KafkaBrokers []string
	// KafkaTLS is on for MSK's TLS listener.
	KafkaTLS kit.TLSConfig
	Topic    string
	DLQTopic string
	Group    string
	// MaxPollRecords bounds one batch: the unit of a database transaction
	// and of an offset commit.
	MaxPollRecords int
	// HashConcurrency bounds the argon2id pool; GOMAXPROCS keeps the CPU busy
	// without oversubscribing it (Go's answer to a worker-thread pool).
	HashConcurrency int
	Hash            account.HashParams
	DatabaseRW      string
	MaxConns        int
	Migrate         bool
	Redis           kit.RedisConfig
	AdminAddr       string
	// RetryBase and RetryMax shape the backoff of transient store failures
	// (the database restarting): retried, never sent to the dead letters.
	RetryBase, RetryMax time.Duration
	// StoreTimeout bounds one store attempt: a primary that vanished
	// without closing its connections (a killed pod) would otherwise hold
	// the batch, and its partitions, until the kernel gives up on TCP.
	StoreTimeout    time.Duration
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	Telemetry       kit.TelemetryConfig
	// OnStored, when set, is called after a batch's transaction committed
	// and before its offsets are: the window in which a crash causes a
	// redelivery. Tests use it to crash there on purpose; ctx is the batch's
	// context, cancelled by a hard stop.
	OnStored func(ctx context.Context, records int)
}

// ConfigFromEnv reads the configuration; see apps/README.md for the table.
func ConfigFromEnv(e *kit.Env) (Config, error) {
	c := Config{
		KafkaBrokers:    e.Addrs("KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
		KafkaTLS:        kit.TLSFromEnv(e, "KAFKA"),
		Topic:           e.String("KAFKA_TOPIC", topology.RegistrationsTopic),
		DLQTopic:        e.String("KAFKA_DLQ_TOPIC", topology.RegistrationsDLQTopic),
		Group:           e.String("KAFKA_GROUP", topology.WorkerGroup),
		MaxPollRecords:  e.Int("WORKER_MAX_POLL_RECORDS", 200, 1, 10000),
		HashConcurrency: e.Int("HASH_CONCURRENCY", runtime.GOMAXPROCS(0), 1, 1024),
		Hash: account.HashParams{
			Time:    uint32(e.Int("ARGON2_TIME", int(account.DefaultHashParams.Time), 1, 100)),
			Memory:  uint32(e.Int("ARGON2_MEMORY_KIB", int(account.DefaultHashParams.Memory), 8, 1<<22)),
			Threads: uint8(e.Int("ARGON2_THREADS", int(account.DefaultHashParams.Threads), 1, 255)),
		},
		DatabaseRW:   e.Required("DATABASE_URL_RW", "Postgres URL of the primary (through PgBouncer)"),
		MaxConns:     e.Int("DATABASE_MAX_CONNS", 4, 1, 1000),
		Migrate:      e.Bool("MIGRATE", true),
		Redis:        kit.RedisFromEnv(e),
		AdminAddr:    e.Addr("ADMIN_ADDR", topology.ListenAddr(topology.WorkerLocalAdminPort)),
		RetryBase:    e.Duration("STORE_RETRY_BASE", 100*time.Millisecond, time.Millisecond, time.Minute),
		RetryMax:     e.Duration("STORE_RETRY_MAX", 5*time.Second, time.Millisecond, 10*time.Minute),
		StoreTimeout: e.Duration("STORE_TIMEOUT", 15*time.Second, 100*time.Millisecond, 10*time.Minute),
		Telemetry:    kit.TelemetryFromEnv(e, "worker"),
	}
	c.DrainDelay, c.ShutdownTimeout = kit.LifecycleFromEnv(e)
	c.DrainDelay = e.Duration("DRAIN_DELAY", 0, 0, time.Minute) // no traffic is routed to a worker
	return c, e.Err()
}
