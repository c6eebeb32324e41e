package realserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPgBouncerInFrontOfPostgres(t *testing.T) {
	t.Parallel()
	pg := must(t, StartPostgres, PostgresConfig{})
	_, err := pg.CreateDatabase("app", "app-pw", "appdb")
	ok(t, err)
	// Rendered as the component would, with the pod's own port and paths
	// that the harness replaces.
	ini := fmt.Sprintf(`[databases]
appdb = host=%s port=%d dbname=appdb

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
pool_mode = transaction
max_client_conn = 50
default_pool_size = 4
`, pg.Host(), pg.Port())
	b := must(t, StartPgBouncer, PgBouncerConfig{Ini: ini, Users: map[string]string{"app": "app-pw"}})

	cfg, err := pgx.ParseConfig(b.DSN("app", "app-pw", "appdb"))
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	// Transaction pooling: no server-side prepared statements across queries.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through pgbouncer at %s: %v", b.Addr(), err)
	}
	defer func() { _ = c.Close(ctx) }()
	var db string
	var port int
	if err := c.QueryRow(ctx, "SELECT current_database(), inet_server_port()").Scan(&db, &port); err != nil {
		t.Fatalf("query through pgbouncer: %v", err)
	}
	if db != "appdb" || port != pg.Port() {
		t.Fatalf("query through pgbouncer reached %s on port %d, want appdb on the Postgres port %d", db, port, pg.Port())
	}

	if c, err := pgx.Connect(ctx, b.DSN("app", "wrong", "appdb")); err == nil {
		_ = c.Close(ctx)
		t.Fatalf("pgbouncer accepted a wrong password; auth_file and auth_type must be in force")
	}
}
