package postgres

import (
	"context"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

const (
	// realAppPassword stands in for the Secret's value on loopback.
	realAppPassword = "app-test-password"
	// replicaLagBound is how long a committed row may take to appear on
	// the streaming replica on a busy 2-core machine.
	replicaLagBound = 5 * time.Second
	// concurrentClients is the client count the issue asks PgBouncer to serve.
	concurrentClients = 500
	// transactionsPerClient each hold a server connection for a short sleep.
	transactionsPerClient = 3
)

// TestRealPostgresReplicatesAndPgBouncerPoolsFiveHundredClients starts a
// real primary and a pg_basebackup -R replica from the rendered
// postgresql.conf and pg_hba.conf, checks a committed row reaches the
// replica within a bound, then puts PgBouncer with the rendered ini in
// front and drives 500 concurrent clients through it, counting the
// server connections in pg_stat_activity.
func TestRealPostgresReplicatesAndPgBouncerPoolsFiveHundredClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real PostgreSQL primary, replica and PgBouncer; -short runs only the unit tests")
	}
	a := testArgs()
	conf := a.Conf()
	pg := realservertest.MustStartPostgres(t, realserver.PostgresConfig{Conf: RenderConf(conf), HBA: RenderHBA(conf), Replicas: 1})
	dsn, err := pg.CreateDatabase(conf.ApplicationUser, realAppPassword, conf.ApplicationDB)
	require.NoError(t, err, "create the application database")
	ctx := context.Background()

	primary, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err, "connect to the primary as the app role (SCRAM through the rendered pg_hba.conf)")
	t.Cleanup(func() { _ = primary.Close(ctx) })
	var maxConn int
	var mc string
	require.NoError(t, primary.QueryRow(ctx, "SHOW max_connections").Scan(&mc), "SHOW max_connections")
	maxConn, _ = strconv.Atoi(mc)
	assert.Equal(t, conf.MaxConnections, maxConn, "the primary runs the rendered max_connections")

	_, err = primary.Exec(ctx, "CREATE TABLE probe (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	require.NoError(t, err, "create table on the primary")
	replicaDSN := (&url.URL{Scheme: "postgres", User: url.UserPassword(conf.ApplicationUser, realAppPassword),
		Host: "127.0.0.1:" + strconv.Itoa(pg.ReplicaPorts()[0]), Path: "/" + conf.ApplicationDB, RawQuery: "sslmode=disable"}).String()
	// CREATE DATABASE reaches the replica through the WAL like any write.
	var replica *pgx.Conn
	for deadline := time.Now().Add(replicaLagBound); ; {
		replica, err = pgx.Connect(ctx, replicaDSN)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, err, "connect to the replica as the app role")
	t.Cleanup(func() { _ = replica.Close(ctx) })
	var inRecovery bool
	require.NoError(t, replica.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery), "ask the replica its role")
	assert.True(t, inRecovery, "the replica is a hot standby")
	_, err = replica.Exec(ctx, "INSERT INTO probe (id) VALUES (0)")
	assert.Error(t, err, "the replica refuses writes")

	var worst time.Duration
	for i := 1; i <= 5; i++ {
		written := time.Now()
		_, err := primary.Exec(ctx, "INSERT INTO probe (id) VALUES ($1)", i)
		require.NoError(t, err, "insert row %d on the primary", i)
		for {
			var n int
			err := replica.QueryRow(ctx, "SELECT count(*) FROM probe WHERE id = $1", i).Scan(&n)
			require.NoError(t, err, "read row %d on the replica", i)
			if n == 1 {
				break
			}
			require.Less(t, time.Since(written), replicaLagBound, "row %d not on the replica within %v", i, replicaLagBound)
			time.Sleep(time.Millisecond)
		}
		worst = max(worst, time.Since(written))
	}
	t.Logf("postgres replication: a committed row was readable on the replica after at most %v (5 rows, bound %v)", worst.Round(time.Millisecond), replicaLagBound)

	// PgBouncer in front of the primary with the rendered ini.
	ini := RenderPgBouncerIni(a.PoolerConfig(pg.Host(), pg.Port(), false))
	bouncer := realservertest.MustStartPgBouncer(t, realserver.PgBouncerConfig{Ini: ini, Users: map[string]string{conf.ApplicationUser: realAppPassword}})
	poolDSN := bouncer.DSN(conf.ApplicationUser, realAppPassword, conf.ApplicationDB) + "&default_query_exec_mode=exec"

	admin, err := pgx.Connect(ctx, pg.DSN())
	require.NoError(t, err, "superuser connection for pg_stat_activity")
	t.Cleanup(func() { _ = admin.Close(ctx) })
	serverConns := func() int {
		var n int
		err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' AND datname = $2",
			conf.ApplicationUser, conf.ApplicationDB).Scan(&n)
		require.NoError(t, err, "count server connections")
		return n
	}
	base := serverConns() // the test's own direct connection to the primary

	clients := make([]*pgx.Conn, concurrentClients)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(50)
	for i := range clients {
		g.Go(func() error {
			c, err := pgx.Connect(gctx, poolDSN)
			clients[i] = c
			return err
		})
	}
	require.NoError(t, g.Wait(), "connect %d clients through PgBouncer", concurrentClients)
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close(ctx)
			}
		}
	})

	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int64(serverConns() - base); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	start := make(chan struct{})
	var served atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrentClients)
	for i, c := range clients {
		wg.Go(func() {
			<-start
			for j := range transactionsPerClient {
				var got int
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "SELECT pg_sleep(0.01)"); err != nil {
						return err
					}
					return tx.QueryRow(ctx, "SELECT $1::int", i*10+j).Scan(&got)
				})
				if err != nil {
					errs <- err
					return
				}
				if got != i*10+j {
					errs <- assert.AnError
					return
				}
				served.Add(1)
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a client's transaction through PgBouncer failed")
	}
	assert.Equal(t, int64(concurrentClients*transactionsPerClient), served.Load(), "every transaction of every client was served")
	t.Logf("pgbouncer: %d concurrent clients, %d transactions in %v, over at most %d server connections (default_pool_size %d)",
		concurrentClients, served.Load(), elapsed.Round(time.Millisecond), peak.Load(), a.withDefaults().Pooler.DefaultPoolSize)
	assert.Positive(t, peak.Load(), "the sampler saw the pool at work")
	assert.LessOrEqual(t, peak.Load(), int64(DefaultPoolSize), "PgBouncer never opens more than default_pool_size server connections")
}
