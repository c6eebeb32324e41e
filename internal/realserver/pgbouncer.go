package realserver

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// PgBouncerConfig describes a PgBouncer to start.
type PgBouncerConfig struct {
	// Ini is the rendered pgbouncer.ini; its [databases] entries name the
	// backend (use Postgres.Host and Postgres.Port when rendering).
	Ini string
	// Users fills the auth_file: user name to password (plain text or a
	// SCRAM secret, as pgbouncer's userlist.txt takes).
	Users map[string]string
}

// PgBouncer is a running pgbouncer, run as the postgres OS user when this
// process runs as root (pgbouncer refuses root).
type PgBouncer struct {
	port int
	dir  string
	proc *process
	res  resources
}

// pgbouncerKeys are the [pgbouncer] settings the harness owns.
var pgbouncerKeys = []string{"listen_addr", "listen_port", "unix_socket_dir", "auth_file", "logfile", "pidfile", "user"}

// StartPgBouncer starts pgbouncer with the rendered ini. The harness
// replaces listen_addr, listen_port, unix_socket_dir, auth_file, logfile,
// pidfile and user in [pgbouncer] and writes auth_file from Users; it waits
// until the port accepts connections. Close stops pgbouncer.
func StartPgBouncer(cfg PgBouncerConfig) (b *PgBouncer, err error) {
	b = &PgBouncer{}
	defer closeOnError(&err, &b.res)
	if err := b.start(cfg); err != nil {
		return nil, fmt.Errorf("realserver: StartPgBouncer: %w", err)
	}
	return b, nil
}

// start does StartPgBouncer's work; its errors get one prefix there.
func (b *PgBouncer) start(cfg PgBouncerConfig) error {
	bin, err := lookBin("pgbouncer", "pgbouncer")
	if err != nil {
		return err
	}
	owner, err := unprivileged("postgres")
	if err != nil {
		return err
	}
	if b.port, err = freePort(); err != nil {
		return err
	}
	if b.dir, err = b.res.dir("pgbouncer", owner, false); err != nil {
		return err
	}

	var users strings.Builder
	for _, u := range slices.Sorted(maps.Keys(cfg.Users)) {
		fmt.Fprintf(&users, "%s %s\n", pgbQuote(u), pgbQuote(cfg.Users[u]))
	}
	authFile := filepath.Join(b.dir, "userlist.txt")
	if err := writeFile(authFile, users.String(), owner); err != nil {
		return err
	}
	harness := []string{
		"listen_addr = " + Loopback,
		"listen_port = " + strconv.Itoa(b.port),
		"unix_socket_dir = " + b.dir,
		"auth_file = " + authFile,
		"logfile = ",
		"pidfile = ",
	}
	ini := withPgbouncerSection(dropKeys(cfg.Ini, pgbouncerKeys...), harness)
	path := filepath.Join(b.dir, "pgbouncer.ini")
	if err := writeFile(path, ini, owner); err != nil {
		return err
	}
	b.proc = b.res.proc("pgbouncer", filepath.Join(b.dir, "pgbouncer.log"), owner.cred(), bin, path)
	if err := b.proc.start(); err != nil {
		return err
	}
	return b.proc.waitReady(startTimeout, dialCheck(b.Addr()))
}

// Close stops pgbouncer and removes its directory.
func (b *PgBouncer) Close() error { return b.res.close() }

// withPgbouncerSection puts the harness lines at the top of the [pgbouncer]
// section (creating it if the rendered ini has none), since ini keys belong
// to the section they follow.
func withPgbouncerSection(ini string, harness []string) string {
	block := "# --- realserver harness: machine-specific keys ---\n" + strings.Join(harness, "\n") + "\n# --- rendered ---"
	lines := strings.Split(ini, "\n")
	for i, l := range lines {
		if strings.EqualFold(strings.TrimSpace(l), "[pgbouncer]") {
			return strings.Join(slices.Insert(lines, i+1, block), "\n")
		}
	}
	return ini + "\n[pgbouncer]\n" + block + "\n"
}

// pgbQuote quotes a userlist.txt field ("" doubles a quote inside).
func pgbQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Addr is pgbouncer's host:port.
func (b *PgBouncer) Addr() string { return addr(b.port) }

// Port is pgbouncer's TCP port.
func (b *PgBouncer) Port() int { return b.port }

// DSN is a URL DSN through pgbouncer for user to database db.
func (b *PgBouncer) DSN(user, password, db string) string { return tcpDSN(user, password, b.port, db) }
