package realserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// replicaVisibleTimeout bounds how long a committed row may take to appear
// on a streaming replica.
const replicaVisibleTimeout = 10 * time.Second

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestPostgresReplication(t *testing.T) {
	t.Parallel()
	start := time.Now()
	pg := must(t, StartPostgres, PostgresConfig{
		Conf:     "max_connections = 40\nshared_buffers = '32MB'\nwal_level = replica\nmax_wal_senders = 5\nport = 5432\n",
		HBA:      "host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n",
		Replicas: 1,
	})
	t.Logf("primary + 1 streaming replica up in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	primary := connect(t, pg.DSN())
	var maxConn string
	if err := primary.QueryRow(ctx, "SHOW max_connections").Scan(&maxConn); err != nil || maxConn != "40" {
		t.Fatalf("rendered max_connections not in force: %q (err %v), want 40", maxConn, err)
	}
	if _, err := primary.Exec(ctx, "CREATE TABLE t (id int primary key, v text)"); err != nil {
		t.Fatalf("create table on primary: %v", err)
	}
	if _, err := primary.Exec(ctx, "INSERT INTO t VALUES (1, 'hello')"); err != nil {
		t.Fatalf("insert on primary: %v", err)
	}
	written := time.Now()
	replica := connect(t, pg.ReplicaDSNs()[0])
	for {
		var v string
		err := replica.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v)
		if err == nil && v == "hello" {
			break
		}
		if time.Since(written) > replicaVisibleTimeout {
			t.Fatalf("row written on the primary not visible on the replica within %v (last: %q, %v)", replicaVisibleTimeout, v, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("row visible on the replica %v after commit on the primary", time.Since(written).Round(time.Millisecond))
	if _, err := replica.Exec(ctx, "INSERT INTO t VALUES (2, 'no')"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("insert on the replica: err = %v, want a read-only transaction error", err)
	}
}

func TestPostgresCreateDatabaseAndRestart(t *testing.T) {
	t.Parallel()
	pg := must(t, StartPostgres, PostgresConfig{})
	dsn, err := pg.CreateDatabase("app", "s3cr'et", "appdb")
	ok(t, err)
	ctx := context.Background()
	c := connect(t, dsn)
	if _, err := c.Exec(ctx, "CREATE TABLE kv (k text primary key, v text); INSERT INTO kv VALUES ('a', 'b')"); err != nil {
		t.Fatalf("the new role cannot write its own database: %v", err)
	}
	_ = c.Close(ctx)

	start := time.Now()
	ok(t, pg.Restart())
	t.Logf("primary restarted in %v", time.Since(start).Round(time.Millisecond))
	var v string
	if err := connect(t, dsn).QueryRow(ctx, "SELECT v FROM kv WHERE k = 'a'").Scan(&v); err != nil || v != "b" {
		t.Fatalf("row after restart = %q (err %v), want b", v, err)
	}

	bad := strings.Replace(dsn, "s3cr%27et", "wrong", 1)
	if c, err := pgx.Connect(ctx, bad); err == nil {
		_ = c.Close(ctx)
		t.Fatalf("login with a wrong password succeeded; the default pg_hba.conf must require scram-sha-256")
	}
}
