// Package users is the users service: a gRPC API over the users table that
// reads from the replicas and writes to the primary. cmd main and the
// end-to-end tests both start it through New and Run.
package users

import (
	"runtime"
	"time"

	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/topology"
)

// Config is everything the service reads from its environment.
type Config struct {
	GRPCAddr  string
	AdminAddr string
	// DatabaseRW reaches the primary (through PgBouncer); DatabaseRO the
	// read replicas. They may be equal on a single-node database.
	DatabaseRW, DatabaseRO string
	MaxConns               int
	// ReadYourWritesWindow is how long after a write the same user's reads go
	// to the primary; it should exceed the replicas' usual lag.
	ReadYourWritesWindow time.Duration
	// VerifyConcurrency bounds concurrent argon2id verifications: each holds
	// its memory cost, so unbounded logins would exhaust the pod's memory.
	VerifyConcurrency int
	// Migrate applies the schema at start-up.
	Migrate bool
	// MaxConnectionAge makes clients reconnect periodically so that new
	// replicas get a share of the long-lived HTTP/2 connections.
	MaxConnectionAge time.Duration
	DrainDelay       time.Duration
	ShutdownTimeout  time.Duration
	Telemetry        kit.TelemetryConfig
}

// ConfigFromEnv reads the configuration; see apps/README.md for the table.
func ConfigFromEnv(e *kit.Env) (Config, error) {
	c := Config{
		GRPCAddr:             e.Addr("GRPC_ADDR", topology.ListenAddr(topology.UsersGRPCPort)),
		AdminAddr:            e.Addr("ADMIN_ADDR", topology.ListenAddr(topology.UsersLocalAdminPort)),
		DatabaseRW:           e.Required("DATABASE_URL_RW", "Postgres URL of the primary (through PgBouncer)"),
		MaxConns:             e.Int("DATABASE_MAX_CONNS", 10, 1, 1000),
		ReadYourWritesWindow: e.Duration("READ_YOUR_WRITES_WINDOW", 5*time.Second, 0, 10*time.Minute),
		VerifyConcurrency:    e.Int("VERIFY_CONCURRENCY", runtime.GOMAXPROCS(0), 1, 1024),
		Migrate:              e.Bool("MIGRATE", true),
		MaxConnectionAge:     e.Duration("GRPC_MAX_CONNECTION_AGE", 5*time.Minute, time.Second, 24*time.Hour),
		Telemetry:            kit.TelemetryFromEnv(e, "users"),
	}
	c.DatabaseRO = e.String("DATABASE_URL_RO", c.DatabaseRW)
	c.DrainDelay, c.ShutdownTimeout = kit.LifecycleFromEnv(e)
	return c, e.Err()
}
