// Package realserver starts real servers (Kafka, Redis, PostgreSQL,
// PgBouncer, nginx, HAProxy, Prometheus, Jaeger) on free loopback ports,
// for tests and for `scaleplane services up`. No mocks: a component proves
// its rendered config by starting the real binary with it.
//
// Every start function takes the component's rendered config text as is;
// the harness owns only the machine-specific keys (ports, bind addresses,
// directories, node ids, quorum voters). It comments out the rendered lines
// setting those keys, since some servers act on a value while parsing (Redis
// chdirs to dir at once), and writes its own values last. The final config
// sits in the server's directory with a "realserver harness" marker.
//
// Start functions return the running server or an error; Close kills the
// server's processes and removes its directories, so whoever starts a
// server owns its lifetime. Tests use the wrappers of realservertest,
// which fail the test and close the server when it ends; this package does
// not import testing, so commands that use it do not link it.
//
//	pg, err := realserver.StartPostgres(realserver.PostgresConfig{Conf: postgres.RenderConf(cfg), HBA: postgres.RenderHBA(cfg), Replicas: 1})
//	defer pg.Close()
//	dsn, err := pg.CreateDatabase("app", "secret", "app")
//	ng, err := realserver.NewNginx()
//	err = ng.Start(edge.RenderNginx(ng.Port(), ng.TempPaths()))
//
// Waits are bounded by named constants; a server that does not come up
// fails with the tail of its own log. Servers that refuse root (postgres,
// pgbouncer) run as the postgres OS user when the caller runs as root.
package realserver

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/supervise"
)

const (
	// pollInterval is how often readiness checks are retried.
	pollInterval = 100 * time.Millisecond
	// startTimeout bounds how long a native server (Redis, PostgreSQL,
	// PgBouncer, nginx, HAProxy) may take to accept work.
	startTimeout = 30 * time.Second
	// stopTimeout bounds a graceful stop before the process is killed.
	stopTimeout = 20 * time.Second
	// logTailLines is how much of a server's log a failure message shows.
	logTailLines = 40
	// commandTimeout bounds one helper command (initdb, redis-cli, nginx -t...).
	commandTimeout = 60 * time.Second
)

// Loopback is the only address servers listen on: tests never reach beyond
// this machine.
const Loopback = "127.0.0.1"

var (
	portsMu sync.Mutex
	// portsGiven remembers ports handed out in this process: the kernel may
	// offer a just-closed port again, and two servers of one test must differ.
	portsGiven = map[int]bool{}
)

// maxPortTries bounds the search for a port not handed out before.
const maxPortTries = 200

// fixedPortLow is the bottom of the range FreePort draws from: above the
// well-known and registered services most machines run, below the kernel's
// ephemeral range (see ephemeralLow).
const fixedPortLow = 20000

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this process has not handed out before. It draws from below the
// kernel's ephemeral range: a port the kernel hands out for port 0 can be
// taken again at once as the source port of any outgoing connection (a
// client dialling Redis in a parallel test), which made a just-checked port
// unbindable; ports below that range are only ever taken by an explicit
// bind. Another process could still bind it first; with thousands of ports
// drawn at random the chance is small enough for tests.
func FreePort() (int, error) {
	port, err := freePort()
	if err != nil {
		return 0, fmt.Errorf("realserver: %w", err)
	}
	return port, nil
}

// freePort is FreePort for this package's start functions, whose errors
// get their one prefix where they are returned.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	high := ephemeralLow()
	for range maxPortTries {
		port := 0 // the kernel's choice when no fixed range is left
		if high-fixedPortLow >= 1000 {
			port = fixedPortLow + rand.IntN(high-fixedPortLow)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(Loopback, strconv.Itoa(port)))
		if err != nil {
			if port == 0 {
				return 0, fmt.Errorf("no free loopback port: %w", err)
			}
			continue // taken: draw again
		}
		port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no fresh loopback port after %d tries", maxPortTries)
}

// freePorts returns n ports from freePort.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		var err error
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// defaults to 32768 when the file cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return low
}

// addr is host:port on the loopback address.
func addr(port int) string { return net.JoinHostPort(Loopback, strconv.Itoa(port)) }

// process is one server binary, started (and restarted) through the
// supervisor with its output appended to one log file.
type process struct {
	spec supervise.Spec

	mu  sync.Mutex
	cur *supervise.Process // the current run, nil before the first
}

// newProcess describes a server; nothing runs until start.
func newProcess(name, logPath string, cred *syscall.Credential, args ...string) *process {
	return &process{spec: supervise.Spec{Name: name, Argv: args, Cred: cred, Log: logPath}}
}

// name names the server in messages.
func (p *process) name() string { return p.spec.Name }

// logPath is the server's log file.
func (p *process) logPath() string { return p.spec.Log }

// current is the current run, nil before the first start.
func (p *process) current() *supervise.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// start runs the binary (again), appending to its log.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && p.cur.Running() {
		return fmt.Errorf("%s is already running", p.name())
	}
	cur, err := supervise.Start(p.spec)
	if err != nil {
		return err
	}
	p.cur = cur
	return nil
}

// running reports whether the current run is alive.
func (p *process) running() bool {
	cur := p.current()
	return cur != nil && cur.Running()
}

// kill sends SIGKILL to the server's process group (its children too) and
// waits for it to exit.
func (p *process) kill() {
	if cur := p.current(); cur != nil {
		cur.Kill()
	}
}

// stop sends sig (the server's own graceful-shutdown signal) and waits
// stopTimeout before killing; it reports whether the stop was graceful.
func (p *process) stop(sig syscall.Signal) bool {
	cur := p.current()
	return cur == nil || cur.Stop(sig, stopTimeout)
}

// pid is the running process's id, 0 before the first start.
func (p *process) pid() int {
	if cur := p.current(); cur != nil {
		return cur.Pid()
	}
	return 0
}

// logTail returns the last lines of the server's log for failure messages.
func (p *process) logTail() string {
	return fileTail(p.logPath(), logTailLines)
}

// fileTail is the last n lines of a file, or why there are none.
func fileTail(path string, n int) string {
	tail, err := supervise.Tail(path, n)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail
}

// errLog wraps err with the server's log tail, the first thing one needs to
// see when a server fails to start.
func (p *process) errLog(err error) error {
	return fmt.Errorf("%s: %w\n--- last %d lines of %s ---\n%s", p.name(), err, logTailLines, p.logPath(), p.logTail())
}

// waitReady polls check until it succeeds, the process exits, or timeout.
func (p *process) waitReady(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if !p.running() {
			return p.errLog(fmt.Errorf("exited before it was ready (last check: %v)", err))
		}
		if time.Now().After(deadline) {
			return p.errLog(fmt.Errorf("not ready after %v: %v", timeout, err))
		}
		time.Sleep(pollInterval)
	}
}

// dialCheck succeeds once something accepts TCP connections on address.
func dialCheck(address string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", address, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// run executes a helper command to completion with a bounded time, returning
// its output in the error.
func run(cred *syscall.Credential, dir string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return nil
	case <-time.After(commandTimeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		killed := <-done
		return fmt.Errorf("%s: no exit after %v (%v)\n%s", strings.Join(args, " "), commandTimeout, killed, out.String())
	}
}

// account is an OS user a server runs as.
type account struct {
	uid, gid int
}

// cred is the credential for exec; nil means "as this process itself".
func (a *account) cred() *syscall.Credential {
	if a == nil {
		return nil
	}
	return &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}
}

// unprivileged returns the account to run servers that refuse root (postgres,
// pgbouncer) as: the named OS user when this process runs as root, else nil
// (the current user is fine then).
func unprivileged(name string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root and %s refuses root, but there is no %q OS user to run it as: %w", name, name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &account{uid: uid, gid: gid}, nil
}

// newDir returns a fresh directory for one server under the system temp
// dir; its server's Close removes it. Servers that run as another user
// (owner != nil) or whose workers drop privileges (shared) get a
// world-traversable one, owned by owner.
func newDir(name string, owner *account, shared bool) (string, error) {
	dir, err := os.MkdirTemp("", "scaleplane-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("temp dir for %s: %w", name, err)
	}
	if owner == nil && !shared {
		return dir, nil
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("chmod %s: %w", dir, err)
	}
	if owner != nil {
		if err := os.Chown(dir, owner.uid, owner.gid); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("chown %s to uid %d: %w", dir, owner.uid, err)
		}
	}
	return dir, nil
}

// resources are what one server holds: processes, killed first at Close,
// then directories, removed (a live server could write into them again).
type resources struct {
	mu    sync.Mutex
	procs []*process
	dirs  []string
}

// dir makes a directory with newDir and holds it.
func (r *resources) dir(name string, owner *account, shared bool) (string, error) {
	dir, err := newDir(name, owner, shared)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dirs = append(r.dirs, dir)
	return dir, nil
}

// proc describes a process with newProcess and holds it.
func (r *resources) proc(name, logPath string, cred *syscall.Credential, args ...string) *process {
	p := newProcess(name, logPath, cred, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, p)
	return p
}

// close kills every process, then removes every directory; a second call
// does nothing.
func (r *resources) close() error {
	r.mu.Lock()
	procs, dirs := r.procs, r.dirs
	r.procs, r.dirs = nil, nil
	r.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	var errs []error
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("realserver: removing server directories: %w", err)
	}
	return nil
}

// closeOnError closes a server whose start failed, so nothing it started
// outlives the error.
func closeOnError(err *error, r *resources) {
	if *err != nil {
		_ = r.close()
	}
}

// writeFile writes a config file readable by owner.
func writeFile(path, content string, owner *account) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	if owner != nil {
		return os.Chown(path, owner.uid, owner.gid)
	}
	return nil
}

// ErrNotInstalled is wrapped by the errors that say a server's binary is
// not on this machine, so a caller can tell a missing binary from one that
// rejected its input.
var ErrNotInstalled = errors.New("not found on PATH")

// lookBin finds a server binary; the error names the package to install.
func lookBin(name, pkg string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s %w (apt-get install %s): %w", name, ErrNotInstalled, pkg, err)
	}
	return path, nil
}

// harnessBlock renders key/value lines under a marker, so a reader of the
// final config sees which values the harness imposed.
func harnessBlock(lines []string) string {
	return "\n\n# --- realserver harness: machine-specific keys, these win ---\n" + strings.Join(lines, "\n") + "\n"
}

// dropKeys removes from a config text every line setting one of names
// ("key value" as in redis.conf, or "key=value" as in server.properties),
// leaving it as a comment, so the value the harness appends is the only one.
func dropKeys(text string, names ...string) string {
	owned := map[string]bool{}
	for _, n := range names {
		owned[strings.ToLower(n)] = true
	}
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if k := configKey(line); k != "" && owned[k] {
			out = append(out, "# (set by the realserver harness) "+line)
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// configKey is the lower-cased key a config line sets, "" for comments,
// blank lines and section headers.
func configKey(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
		return ""
	}
	end := strings.IndexAny(line, " \t=")
	if end < 0 {
		end = len(line)
	}
	return strings.ToLower(line[:end])
}

// parallel runs f(0..n-1) concurrently and joins their errors: servers of a
// cluster start at the same time, since most of their start-up is waiting.
func parallel(n int, f func(i int) error) error {
	list := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { list[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(list...)
}
