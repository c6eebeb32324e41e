package postgres

import (
	"fmt"
	"strings"
)

// Conf holds the values postgresql.conf and pg_hba.conf are rendered from.
type Conf struct {
	MaxConnections     int
	SharedBuffersMB    int64
	EffectiveCacheMB   int64
	MaintenanceWorkMB  int64
	WorkMemKB          int64
	MaxWalSenders      int
	WalKeepSizeMB      int
	ReplicationUser    string
	ApplicationDB      string
	ApplicationUser    string
	StatementTimeoutMS int
}

// RenderConf renders postgresql.conf, shared by the primary and the
// replicas (a standby must have at least its primary's max_connections;
// hot_standby only matters on a standby).
func RenderConf(c Conf) string {
	var b strings.Builder
	line := func(format string, v ...any) { fmt.Fprintf(&b, format+"\n", v...) }
	line("# postgresql.conf rendered by scaleplane components/postgres; edit the component, not this file.")
	line("listen_addresses = '*'")
	line("port = %d", Port)
	line("unix_socket_directories = '/var/run/postgresql'")
	line("")
	line("# Connections: the poolers' budget plus admin and superuser reserves.")
	line("max_connections = %d", c.MaxConnections)
	line("superuser_reserved_connections = %d", SuperuserReservedConnections)
	line("password_encryption = 'scram-sha-256'")
	line("")
	line("# Memory, from the container's limit: a quarter for shared buffers,")
	line("# the planner told the page cache holds about three quarters.")
	line("shared_buffers = %dMB", c.SharedBuffersMB)
	line("effective_cache_size = %dMB", c.EffectiveCacheMB)
	line("maintenance_work_mem = %dMB", c.MaintenanceWorkMB)
	line("work_mem = %dkB", c.WorkMemKB)
	line("")
	line("# Streaming replication: replicas bootstrap with pg_basebackup -R and")
	line("# stream WAL; wal_keep_size lets a briefly disconnected one catch up.")
	line("wal_level = replica")
	line("max_wal_senders = %d", c.MaxWalSenders)
	line("max_replication_slots = %d", c.MaxWalSenders)
	line("wal_keep_size = %dMB", c.WalKeepSizeMB)
	line("hot_standby = on")
	// Queries on a replica tell the primary which rows they still see, so
	// vacuum does not remove them and cancel the query.
	line("hot_standby_feedback = on")
	line("max_standby_streaming_delay = 30s")
	line("wal_compression = on")
	line("synchronous_commit = on")
	line("")
	line("# A runaway query cannot hold a pooled connection forever.")
	line("statement_timeout = %d", c.StatementTimeoutMS)
	line("idle_in_transaction_session_timeout = 60000")
	line("")
	line("log_min_duration_statement = 500")
	line("log_connections = off")
	line("log_line_prefix = '%%m [%%p] %%q%%u@%%d '")
	return b.String()
}

// RenderHBA renders pg_hba.conf: SCRAM for everyone, the replication user
// only for replication, nothing in clear text or trust. The NetworkPolicies
// narrow the sources to the poolers and the replicas.
func RenderHBA(c Conf) string {
	var b strings.Builder
	b.WriteString("# pg_hba.conf rendered by scaleplane components/postgres.\n")
	b.WriteString("# TYPE  DATABASE     USER          ADDRESS      METHOD\n")
	fmt.Fprintf(&b, "local   all          all                        scram-sha-256\n")
	for _, cidr := range []string{"0.0.0.0/0", "::/0"} {
		fmt.Fprintf(&b, "host    replication  %-12s  %-11s  scram-sha-256\n", c.ReplicationUser, cidr)
	}
	for _, cidr := range []string{"0.0.0.0/0", "::/0"} {
		fmt.Fprintf(&b, "host    %-12s %-12s  %-11s  scram-sha-256\n", c.ApplicationDB, c.ApplicationUser, cidr)
	}
	for _, cidr := range []string{"0.0.0.0/0", "::/0"} {
		fmt.Fprintf(&b, "host    all          postgres      %-11s  scram-sha-256\n", cidr)
	}
	return b.String()
}

// PgBouncer holds the values pgbouncer.ini is rendered from.
type PgBouncer struct {
	Database        string
	BackendHost     string
	BackendPort     int
	ListenPort      int
	DefaultPoolSize int
	MaxClientConn   int
	AuthFile        string
	// ServerTLS requires TLS to the backend (RDS).
	ServerTLS bool
}

// RenderPgBouncerIni renders pgbouncer.ini in transaction pooling mode.
// max_db_connections equals default_pool_size and there is no reserve
// pool, so a pod's server connections are bounded by one number, which is
// what the connection budget (MaxConnections) is computed from.
func RenderPgBouncerIni(p PgBouncer) string {
	var b strings.Builder
	line := func(format string, v ...any) { fmt.Fprintf(&b, format+"\n", v...) }
	line("; pgbouncer.ini rendered by scaleplane components/postgres; edit the component, not this file.")
	line("[databases]")
	line("%s = host=%s port=%d dbname=%s", p.Database, p.BackendHost, p.BackendPort, p.Database)
	line("")
	line("[pgbouncer]")
	line("listen_addr = *")
	line("listen_port = %d", p.ListenPort)
	line("unix_socket_dir =")
	line("auth_type = scram-sha-256")
	line("auth_file = %s", p.AuthFile)
	line("")
	line("; A client holds a server connection only inside a transaction.")
	line("pool_mode = transaction")
	line("default_pool_size = %d", p.DefaultPoolSize)
	line("max_db_connections = %d", p.DefaultPoolSize)
	line("min_pool_size = 0")
	line("reserve_pool_size = 0")
	line("max_client_conn = %d", p.MaxClientConn)
	line("")
	line("server_lifetime = 3600")
	line("server_idle_timeout = 600")
	line("server_connect_timeout = 5")
	line("server_login_retry = 2")
	line("; A server that vanished without closing its connections (a killed pod, a lost")
	line("; node) is given up within seconds, not the kernel's 15-minute retransmission timeout.")
	line("tcp_keepalive = 1")
	line("tcp_keepidle = 10")
	line("tcp_keepintvl = 5")
	line("tcp_keepcnt = 3")
	line("tcp_user_timeout = 10000")
	line("; A client waiting longer than this for a server connection gets an error, not a hang.")
	line("query_wait_timeout = 30")
	line("ignore_startup_parameters = extra_float_digits")
	if p.ServerTLS {
		// Encrypted; not verify-full, since RDS's CA is not in the image's
		// bundle and the security group already pins who answers.
		line("server_tls_sslmode = require")
	}
	line("")
	line("logfile =")
	line("pidfile =")
	line("log_connections = 0")
	line("log_disconnections = 0")
	line("stats_period = 60")
	return b.String()
}

// InitScriptName is the init script the primary's start script runs once,
// when it initialises an empty data directory.
const InitScriptName = "10-roles.sh"

// RenderInitScript renders the script that creates the replication role
// and the application's role and database. Passwords come from the
// environment (the Secret) as psql variables, never from the file; the
// server, user and password come from libpq's PG* variables, which the
// start script points at its temporary server.
func RenderInitScript(c Conf) string {
	return fmt.Sprintf(`#!/bin/sh
# 10-roles.sh rendered by scaleplane components/postgres; run once by start.sh on a new cluster.
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname postgres \
  -v repl_password="$REPLICATION_PASSWORD" -v app_password="$APP_PASSWORD" <<'SQL'
CREATE ROLE %[1]s WITH REPLICATION LOGIN PASSWORD :'repl_password';
CREATE ROLE %[2]s WITH LOGIN PASSWORD :'app_password';
CREATE DATABASE %[3]s OWNER %[2]s;
SQL
`, c.ReplicationUser, c.ApplicationUser, c.ApplicationDB)
}

// StartScriptName is the primary's command (`sh start.sh <postgres args>`).
const StartScriptName = "start.sh"

// RenderStartScript renders the primary's start script, so the pod needs
// nothing of an image but PostgreSQL's own programs and sh: the Debian
// image scaleplane builds has no docker-entrypoint.sh, and the official
// image runs this as well.
//
// A data directory with PG_VERSION is started as it is. Otherwise the
// cluster is made beside it (PGDATA.initdb): initdb with the superuser
// postgres, its password from POSTGRES_PASSWORD through a 0600 file in a
// private mktemp directory (never on a command line), SCRAM for every
// connection and UTF8 with the C.UTF-8 locale (glibc's built-in one, so no
// locales package is needed); then a temporary server listening on a unix
// socket in that private directory only (no TCP client can reach a
// half-made cluster, and /var/run/postgresql need not be writable) runs the
// init scripts and stops; only then is the directory renamed to PGDATA.
// A start that dies half way leaves no PG_VERSION in PGDATA, so the next
// one starts over instead of serving a cluster without its roles. PGDATA
// is a subdirectory of the volume: initdb wants a 0700 directory of its
// own, which a volume's root (maybe 1777, not ours) is not.
// Finally the script execs postgres with its arguments, so the server is
// the container's main process and gets its signals.
func RenderStartScript(initScripts ...string) string {
	var run strings.Builder
	for _, s := range initScripts {
		fmt.Fprintf(&run, "  PGHOST=\"$work\" PGPORT=%d PGUSER=postgres PGPASSWORD=\"$POSTGRES_PASSWORD\" sh %s\n", Port, s)
	}
	return fmt.Sprintf(`#!/bin/sh
# start.sh rendered by scaleplane components/postgres; edit the component, not this file.
set -eu
: "${PGDATA:?names the data directory}"
# At most one postmaster per data directory. PostgreSQL's postmaster.pid
# cannot tell: every container's postmaster is PID 1, which it takes for
# its own. A pod deleted with --force is replaced while its postmaster
# still runs (two of them on one volume lost committed rows in the
# deploy suite); this lock, held through fd 9 by the server and its
# children until the last one exits, makes the replacement wait.
command -v flock >/dev/null || { echo "start.sh: flock (util-linux) is missing from the image" >&2; exit 1; }
lock="$(dirname "$PGDATA")/.postmaster.lock"
exec 9>>"$lock"
until flock -n 9; do
  echo "start.sh: another postmaster holds $lock; waiting for it to exit"
  sleep 1
done
if [ -s "$PGDATA/PG_VERSION" ]; then
  echo "start.sh: $PGDATA holds a cluster; starting it as it is"
else
  : "${POSTGRES_PASSWORD:?holds the superuser's password}"
  if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
    echo "start.sh: $PGDATA holds files but no cluster (no PG_VERSION); refusing to initialise over them" >&2
    exit 1
  fi
  staging="$PGDATA.initdb"
  rm -rf "$staging"
  work=$(mktemp -d)
  trap 'pg_ctl -D "$staging" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  (umask 077 && printf '%%s\n' "$POSTGRES_PASSWORD" > "$work/pwfile")
  echo "start.sh: initialising a cluster in $staging"
  initdb -D "$staging" --username=postgres --pwfile="$work/pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8
  rm -f "$work/pwfile"
  pg_ctl -D "$staging" -w -t 120 -o "-c listen_addresses='' -c unix_socket_directories='$work' -p %[1]d" start
%[2]s  pg_ctl -D "$staging" -m fast -w -t 120 stop
  trap - EXIT
  rm -rf "$work"
  if [ -d "$PGDATA" ]; then rmdir "$PGDATA"; fi
  mv "$staging" "$PGDATA"
  echo "start.sh: initialised $PGDATA"
fi
exec postgres "$@"
`, Port, run.String())
}

// BasebackupScriptName is the replica init container's script.
const BasebackupScriptName = "basebackup.sh"

// RenderBasebackupScript renders the replica's bootstrap: on an empty data
// directory, a base backup of the primary with -R, which writes
// standby.signal and primary_conninfo so the server starts as a streaming
// standby. A replica with data starts as it is. The replication password
// comes from PGPASSWORD.
func RenderBasebackupScript(primaryHost string, primaryPort int, c Conf) string {
	return fmt.Sprintf(`#!/bin/sh
# basebackup.sh rendered by scaleplane components/postgres.
set -eu
# The shell is the init container's PID 1, which the kernel shields from a
# signal it has no handler for: without this, a replica deleted while it
# waits for its primary holds its pod (and its namespace's deletion) for the
# whole grace period.
trap 'echo "basebackup.sh: stopped"; exit 143' TERM INT
if [ -s "$PGDATA/PG_VERSION" ]; then
  echo "basebackup.sh: $PGDATA holds a cluster; starting as it is"
  exit 0
fi
rm -rf "${PGDATA:?}"/* 2>/dev/null || true
until pg_isready -h %[1]s -p %[2]d -q; do
  echo "basebackup.sh: waiting for the primary %[1]s"
  sleep 2
done
pg_basebackup -h %[1]s -p %[2]d -U %[3]s -D "$PGDATA" -R -X stream -c fast
chmod 0700 "$PGDATA"
`, primaryHost, primaryPort, c.ReplicationUser)
}
