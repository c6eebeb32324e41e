package realserver

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Nginx is an nginx on a free loopback port, prepared by NewNginx so that
// the caller's renderer can take the port and paths before Start.
type Nginx struct {
	bin  string
	port int
	dir  string
	proc *process
	res  resources
}

// nginxOwnedDirective matches main-context directives the harness owns:
// pid (the pid file is in the server's dir), daemon (it runs in the
// foreground) and user (workers run as the default unprivileged user, since
// a pod's user may not exist here).
var nginxOwnedDirective = regexp.MustCompile(`(?m)^[ \t]*(pid|daemon|user)[ \t][^;]*;`)

// NewNginx reserves a free port and a writable prefix directory for one
// nginx. Render the config with Port (listen 127.0.0.1:<Port>) and with
// TempPaths inside http {}, then call Start. Close stops it and removes
// the directory.
func NewNginx() (n *Nginx, err error) {
	n = &Nginx{}
	defer closeOnError(&err, &n.res)
	if n.bin, err = lookBin("nginx", "nginx"); err != nil {
		return nil, fmt.Errorf("realserver: NewNginx: %w", err)
	}
	if n.port, err = FreePort(); err != nil {
		return nil, err
	}
	// World-traversable dir: nginx workers drop root and must reach the
	// temp paths (nginx chowns those to the worker user itself).
	if n.dir, err = n.res.dir("nginx", nil, true); err != nil {
		return nil, fmt.Errorf("realserver: NewNginx: %w", err)
	}
	return n, nil
}

// Close stops nginx and removes its directory.
func (n *Nginx) Close() error { return n.res.close() }

// Port is the port the rendered config must listen on.
func (n *Nginx) Port() int { return n.port }

// Addr is 127.0.0.1:Port.
func (n *Nginx) Addr() string { return addr(n.port) }

// Dir is a writable directory for files the config names (logs, cache,
// static content).
func (n *Nginx) Dir() string { return n.dir }

// TempPaths returns the http-context directives that move nginx's five
// temp directories (compiled in under /var/lib/nginx) into Dir, so it runs
// without writing outside its directory. Put them in the http {} block.
func (n *Nginx) TempPaths() string {
	var b strings.Builder
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "%s_temp_path %s;\n", d, filepath.Join(n.dir, "temp-"+d))
	}
	return b.String()
}

// args are the command line for conf: prefix and startup error log in Dir,
// foreground, pid file in Dir.
func (n *Nginx) args(confPath string, extra ...string) []string {
	args := []string{n.bin, "-p", n.dir + "/", "-e", filepath.Join(n.dir, "error.log"), "-c", confPath,
		"-g", "daemon off; pid " + filepath.Join(n.dir, "nginx.pid") + ";"}
	return append(args, extra...)
}

// writeConf strips the harness-owned directives and writes conf into Dir.
func (n *Nginx) writeConf(conf string) (string, error) {
	path := filepath.Join(n.dir, "nginx.conf")
	conf = nginxOwnedDirective.ReplaceAllString(conf, "# (set by the realserver harness) $0")
	return path, writeFile(path, conf, nil)
}

// Check validates conf with nginx -t, returning nginx's own message.
func (n *Nginx) Check(conf string) error {
	path, err := n.writeConf(conf)
	if err != nil {
		return err
	}
	return run(nil, n.dir, n.args(path, "-t")...)
}

// Start validates conf (nginx -t), starts nginx with it and waits until
// Port accepts connections; Close stops it. Start once per Nginx.
func (n *Nginx) Start(conf string) error {
	if err := n.Check(conf); err != nil {
		return fmt.Errorf("realserver: nginx config rejected: %w", err)
	}
	path := filepath.Join(n.dir, "nginx.conf")
	n.proc = n.res.proc("nginx", filepath.Join(n.dir, "nginx.out"), nil, n.args(path)...)
	if err := n.proc.start(); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	if err := n.proc.waitReady(startTimeout, dialCheck(n.Addr())); err != nil {
		return fmt.Errorf("realserver: nginx: %w\n--- error.log ---\n%s", err, fileTail(filepath.Join(n.dir, "error.log"), logTailLines))
	}
	return nil
}

// Stop shuts nginx down gracefully (SIGQUIT lets workers finish requests);
// an nginx that ignores it is killed, and the error says so.
func (n *Nginx) Stop() error {
	if !n.proc.stop(syscall.SIGQUIT) {
		return fmt.Errorf("realserver: nginx ignored SIGQUIT for %v and was killed", stopTimeout)
	}
	return nil
}

// HAProxy is an haproxy on a free loopback port, prepared by NewHAProxy so
// that the caller's renderer can take the port before Start.
type HAProxy struct {
	bin  string
	port int
	dir  string
	proc *process
	res  resources
}

// NewHAProxy reserves a free port and a directory for one haproxy. Render
// the config with Port (bind 127.0.0.1:<Port>); take more ports with
// FreePort for stats or other frontends. Then call Start. Close stops it
// and removes the directory.
func NewHAProxy() (h *HAProxy, err error) {
	h = &HAProxy{}
	defer closeOnError(&err, &h.res)
	if h.bin, err = lookBin("haproxy", "haproxy"); err != nil {
		return nil, fmt.Errorf("realserver: NewHAProxy: %w", err)
	}
	if h.port, err = FreePort(); err != nil {
		return nil, err
	}
	if h.dir, err = h.res.dir("haproxy", nil, false); err != nil {
		return nil, fmt.Errorf("realserver: NewHAProxy: %w", err)
	}
	return h, nil
}

// Close stops haproxy and removes its directory.
func (h *HAProxy) Close() error { return h.res.close() }

// Port is the port the rendered config must bind.
func (h *HAProxy) Port() int { return h.port }

// Addr is 127.0.0.1:Port.
func (h *HAProxy) Addr() string { return addr(h.port) }

// Dir is a writable directory for files the config names (sockets, maps).
func (h *HAProxy) Dir() string { return h.dir }

func (h *HAProxy) writeConf(conf string) (string, error) {
	path := filepath.Join(h.dir, "haproxy.cfg")
	return path, writeFile(path, conf, nil)
}

// Check validates conf with haproxy -c, returning haproxy's own message.
func (h *HAProxy) Check(conf string) error {
	path, err := h.writeConf(conf)
	if err != nil {
		return err
	}
	return run(nil, h.dir, h.bin, "-c", "-f", path)
}

// Start validates conf (haproxy -c), starts haproxy in the foreground (-db
// overrides a daemon line in the config) and waits until Port accepts
// connections; Close stops it. Start once per HAProxy.
func (h *HAProxy) Start(conf string) error {
	if err := h.Check(conf); err != nil {
		return fmt.Errorf("realserver: haproxy config rejected: %w", err)
	}
	path := filepath.Join(h.dir, "haproxy.cfg")
	h.proc = h.res.proc("haproxy", filepath.Join(h.dir, "haproxy.log"), nil, h.bin, "-db", "-f", path)
	if err := h.proc.start(); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	if err := h.proc.waitReady(startTimeout, dialCheck(h.Addr())); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	return nil
}

// Stop shuts haproxy down gracefully (SIGUSR1: soft stop, finishing
// established connections); an haproxy that ignores it is killed, and the
// error says so.
func (h *HAProxy) Stop() error {
	if !h.proc.stop(syscall.SIGUSR1) {
		return fmt.Errorf("realserver: haproxy ignored SIGUSR1 for %v and was killed", stopTimeout)
	}
	return nil
}

// Pid is nginx's master process id, which is also its process group: the
// workers share it, so benchmarks can sum the group's CPU time.
func (n *Nginx) Pid() int { return n.proc.pid() }

// Pid is haproxy's process id (and process group).
func (h *HAProxy) Pid() int { return h.proc.pid() }
