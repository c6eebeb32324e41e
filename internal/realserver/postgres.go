package realserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinEnv names the environment variable that picks the PostgreSQL
// bin directory (initdb, postgres, pg_basebackup) when the newest
// /usr/lib/postgresql/<major>/bin is not the one wanted.
const PostgresBinEnv = "SCALEPLANE_PG_BIN"

// postgresSuperuser is the bootstrap superuser initdb creates.
const postgresSuperuser = "postgres"

// PostgresConfig describes a PostgreSQL primary and its streaming replicas.
type PostgresConfig struct {
	// Conf is the rendered postgresql.conf text; it is appended to the one
	// initdb writes, so it overrides initdb's values.
	Conf string
	// HBA is the rendered pg_hba.conf text. Empty means scram-sha-256 for
	// every user and for replication from 127.0.0.1.
	HBA string
	// Replicas is the number of streaming replicas, each bootstrapped with
	// pg_basebackup -R from the primary.
	Replicas int
}

// defaultHBA admits password logins from loopback when no rendered
// pg_hba.conf is given.
const defaultHBA = `host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
`

// harnessHBA comes first in pg_hba.conf (first match wins): only the
// harness's superuser over the private Unix socket, so every TCP login,
// including the replicas' DSNs, meets the rendered rules.
const harnessHBA = `# --- realserver harness: superuser over the test's private Unix socket ---
local all postgres trust
local replication postgres trust
# --- rendered pg_hba.conf ---
`

// Postgres is a running PostgreSQL primary with optional streaming replicas,
// run as the postgres OS user when this process runs as root.
type Postgres struct {
	bin      string
	owner    *account
	dir      string
	password string
	primary  *pgNode
	replicas []*pgNode
	res      resources
}

// pgNode is one postgres server: data dir, socket dir, port, process.
type pgNode struct {
	name    string
	port    int
	data    string
	sockDir string
	proc    *process
}

// StartPostgres runs initdb, appends the rendered postgresql.conf and the
// harness keys (listen address, port, socket dir, file locations, logging to
// the harness log), installs the rendered pg_hba.conf behind one harness
// line, starts the primary and then the replicas, and waits until the
// replicas stream. Close stops them all.
func StartPostgres(cfg PostgresConfig) (p *Postgres, err error) {
	p = &Postgres{password: randomHex(12)}
	defer closeOnError(&err, &p.res)
	if err := p.start(cfg); err != nil {
		return nil, fmt.Errorf("realserver: StartPostgres: %w", err)
	}
	return p, nil
}

// start does StartPostgres's work; its errors get one prefix there.
func (p *Postgres) start(cfg PostgresConfig) error {
	var err error
	if p.owner, err = unprivileged("postgres"); err != nil {
		return err
	}
	if p.bin, err = postgresBin(); err != nil {
		return err
	}
	if p.dir, err = p.res.dir("postgres", p.owner, false); err != nil {
		return err
	}
	if p.primary, err = p.newNode("postgres-primary"); err != nil {
		return err
	}
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := writeFile(pwfile, p.password+"\n", p.owner); err != nil {
		return err
	}
	if err := run(p.owner.cred(), p.dir, filepath.Join(p.bin, "initdb"), "-D", p.primary.data,
		"-U", postgresSuperuser, "--pwfile="+pwfile, "-E", "UTF8", "--locale=C",
		"--auth=trust", "--no-sync", "--no-instructions"); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	hba := cfg.HBA
	if strings.TrimSpace(hba) == "" {
		hba = defaultHBA
	}
	if err := writeFile(filepath.Join(p.primary.data, "pg_hba.conf"), harnessHBA+hba, p.owner); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(p.primary.data, "postgresql.conf"),
		"\n# --- rendered postgresql.conf ---\n"+dropKeys(cfg.Conf, keyNames(p.primary.harnessLines())...)+
			harnessBlock(p.primary.harnessLines())); err != nil {
		return err
	}
	if err := p.primary.startAndWait(p.adminReady(p.primary)); err != nil {
		return err
	}

	for i := range cfg.Replicas {
		n, err := p.newNode(fmt.Sprintf("postgres-replica-%d", i))
		if err != nil {
			return err
		}
		p.replicas = append(p.replicas, n)
	}
	return parallel(cfg.Replicas, func(i int) error { return p.startReplica(p.replicas[i]) })
}

// newNode reserves a port and names the node's directories (created later
// by initdb or pg_basebackup).
func (p *Postgres) newNode(name string) (*pgNode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &pgNode{name: name, port: port, data: filepath.Join(p.dir, name)}
	n.sockDir = filepath.Join(p.dir, name+"-sock")
	if err := os.Mkdir(n.sockDir, 0o755); err != nil {
		return nil, err
	}
	if p.owner != nil {
		if err := os.Chown(n.sockDir, p.owner.uid, p.owner.gid); err != nil {
			return nil, err
		}
	}
	n.proc = p.res.proc(name, filepath.Join(p.dir, name+".log"), p.owner.cred(),
		filepath.Join(p.bin, "postgres"), "-D", n.data)
	return n, nil
}

// harnessLines are the machine-specific settings appended last.
// fsync is off because a test never survives a machine crash, and it makes
// initdb-fresh clusters much faster on a shared CI disk.
func (n *pgNode) harnessLines() []string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return []string{
		"listen_addresses = " + q(Loopback),
		"port = " + strconv.Itoa(n.port),
		"unix_socket_directories = " + q(n.sockDir),
		"data_directory = " + q(n.data),
		"hba_file = " + q(filepath.Join(n.data, "pg_hba.conf")),
		"ident_file = " + q(filepath.Join(n.data, "pg_ident.conf")),
		"external_pid_file = ''",
		"logging_collector = off",
		"log_destination = 'stderr'",
		"fsync = off",
	}
}

func (n *pgNode) startAndWait(ready func() error) error {
	if err := n.proc.start(); err != nil {
		return err
	}
	return n.proc.waitReady(startTimeout, ready)
}

// adminDSN reaches a node as the superuser over its Unix socket.
func (n *pgNode) adminDSN() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=2",
		n.sockDir, n.port, postgresSuperuser)
}

// adminReady succeeds once the node accepts the harness's queries.
func (p *Postgres) adminReady(n *pgNode) func() error {
	return func() error {
		_, err := queryString(n.adminDSN(), "SELECT 1")
		return err
	}
}

// startReplica takes a base backup of the primary with -R (standby.signal
// and primary_conninfo written by pg_basebackup itself, as a real replica
// would be bootstrapped), then starts it and waits until it streams.
func (p *Postgres) startReplica(n *pgNode) error {
	err := run(p.owner.cred(), p.dir, filepath.Join(p.bin, "pg_basebackup"),
		"-D", n.data, "-h", p.primary.sockDir, "-p", strconv.Itoa(p.primary.port),
		"-U", postgresSuperuser, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	if err != nil {
		return fmt.Errorf("%s: pg_basebackup: %w", n.name, err)
	}
	if err := appendFile(filepath.Join(n.data, "postgresql.conf"), harnessBlock(n.harnessLines())); err != nil {
		return err
	}
	return n.startAndWait(func() error {
		status, err := queryString(n.adminDSN(), "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')")
		if err != nil {
			return err
		}
		if status != "streaming" {
			return fmt.Errorf("WAL receiver status %q, want streaming", status)
		}
		return nil
	})
}

// queryString runs one query returning one text value on a new connection.
func queryString(dsn, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(ctx) }()
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

// exec runs statements as the superuser on the primary.
func (p *Postgres) exec(stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.primary.adminDSN())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// tcpDSN is a URL DSN over TCP, the way applications connect.
func tcpDSN(user, password string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     addr(port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// DSN is the superuser's DSN for the primary over TCP (subject to the
// rendered pg_hba.conf).
func (p *Postgres) DSN() string {
	return tcpDSN(postgresSuperuser, p.password, p.primary.port, "postgres")
}

// ReplicaDSNs are the superuser's DSNs for the replicas over TCP.
func (p *Postgres) ReplicaDSNs() []string {
	out := make([]string, len(p.replicas))
	for i, r := range p.replicas {
		out[i] = tcpDSN(postgresSuperuser, p.password, r.port, "postgres")
	}
	return out
}

// Host is the address the servers listen on, for rendered client configs
// such as pgbouncer.ini.
func (p *Postgres) Host() string { return Loopback }

// Port is the primary's TCP port.
func (p *Postgres) Port() int { return p.primary.port }

// ReplicaPorts are the replicas' TCP ports.
func (p *Postgres) ReplicaPorts() []int {
	out := make([]int, len(p.replicas))
	for i, r := range p.replicas {
		out[i] = r.port
	}
	return out
}

// CreateDatabase creates a login role with password and a database it owns,
// and returns that role's DSN for it over TCP.
func (p *Postgres) CreateDatabase(user, password, db string) (string, error) {
	lit := "'" + strings.ReplaceAll(password, "'", "''") + "'"
	err := p.exec(
		"CREATE ROLE "+pgx.Identifier{user}.Sanitize()+" LOGIN PASSWORD "+lit,
		"CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER "+pgx.Identifier{user}.Sanitize(),
	)
	if err != nil {
		return "", fmt.Errorf("realserver: CreateDatabase(%q, %q): %w", user, db, err)
	}
	return tcpDSN(user, password, p.primary.port, db), nil
}

// Stop shuts the primary down (fast shutdown: clients are disconnected);
// replicas keep running and retry their stream. A primary that ignores the
// shutdown is killed, and the error says so.
func (p *Postgres) Stop() error {
	if !p.primary.proc.stop(syscall.SIGINT) {
		return fmt.Errorf("realserver: postgres primary ignored fast shutdown for %v and was killed\n%s", stopTimeout, p.primary.proc.logTail())
	}
	return nil
}

// Kill SIGKILLs the primary and its backends, as a crash would.
func (p *Postgres) Kill() { p.primary.proc.kill() }

// Start starts the primary again after Stop or Kill and waits for it.
func (p *Postgres) Start() error {
	if err := p.primary.startAndWait(p.adminReady(p.primary)); err != nil {
		return fmt.Errorf("realserver: restarting postgres primary: %w", err)
	}
	return nil
}

// Restart stops and starts the primary, as a config change needing a
// restart would.
func (p *Postgres) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start()
}

// Close kills every node (a graceful stop buys nothing at the end) and
// removes their directories.
func (p *Postgres) Close() error { return p.res.close() }

// postgresBin finds the PostgreSQL bin directory: $SCALEPLANE_PG_BIN, else
// the newest Debian /usr/lib/postgresql/<major>/bin, else the directory of
// initdb on PATH.
func postgresBin() (string, error) {
	if dir := os.Getenv(PostgresBinEnv); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(a) - majorOf(b) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			return filepath.Dir(real), nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries: %w (apt-get install postgresql, or set %s)", ErrNotInstalled, PostgresBinEnv)
}

// majorOf reads <major> from /usr/lib/postgresql/<major>/bin.
func majorOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// randomHex is a throwaway secret for a test server.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
