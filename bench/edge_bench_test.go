//go:build bench

package bench

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/edge"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// Cores: the proxy under test gets one, the load generator and the
// backend the other, so every variant competes for the same CPUs.
const (
	proxyCore     = 0
	loadCore      = 1
	edgeConns     = 50
	edgeWarmup    = 2 * time.Second
	edgeDuration  = 8 * time.Second
	backendBody   = `{"id":"42","name":"Ada","email":"ada@example.com"}`
	unlimitedRate = 10_000_000
)

// edgeRounds is how many times every edge variant is measured, in turn:
// the machine's speed drifts over minutes, and one pass of the six once
// measured the nginx minimal proxy at 20.0 µs a request and the rendered
// config, a minute later, at 33.2 µs (1.66x, where the day before gave
// 1.15x).
const edgeRounds = 3

// edgeVariant is one proxy config measured by TestEdgeTierCost.
type edgeVariant struct {
	proxy, name string
	conf        func(port int, dir, backend string) (string, error)
}

// edgeProxy is a started nginx or haproxy.
type edgeProxy interface {
	Port() int
	Dir() string
	Addr() string
	Pid() int
	Start(string) error
}

// TestEdgeTierCost measures, for nginx and haproxy, the CPU per request
// of the proxy process group for three configs on the same cores: a
// static 200 (the floor), a minimal reverse proxy, and the config
// scaleplane renders (least connections, keepalive, gzip, limits, rate
// limit raised out of the way but still evaluated, health checks). The
// goal: rendered <= 1.5x minimal. Every proxy runs from the start, idle
// on the proxy core but for the one under load, and is measured once per
// round; each table row is the variant's median round by CPU per request.
func TestEdgeTierCost(t *testing.T) {
	defer pinSelf(t, loadCore)()
	backend := startBackend(t)
	variants := edgeVariants()
	pids := make([]int, len(variants))
	loads := make([]Load, len(variants))
	for i, v := range variants {
		var p edgeProxy
		switch v.proxy {
		case "nginx":
			p = realservertest.MustNewNginx(t)
		default:
			p = realservertest.MustNewHAProxy(t)
		}
		conf, err := v.conf(p.Port(), p.Dir(), backend)
		require.NoError(t, err, "%s %s config", v.proxy, v.name)
		require.NoError(t, p.Start(conf), "start %s %s", v.proxy, v.name)
		pin(t, p.Pid(), proxyCore)
		pids[i] = p.Pid()
		loads[i] = Load{URL: "http://" + p.Addr() + "/v1/users/42", Core: loadCore, Connections: edgeConns, Duration: edgeWarmup}
		_, err = loads[i].Run(context.Background())
		require.NoError(t, err, "warm-up %s %s", v.proxy, v.name)
		loads[i].Duration = edgeDuration
	}
	rounds := make([][]Row, len(variants))
	for round := range edgeRounds {
		for i, v := range variants {
			rounds[i] = append(rounds[i], measure(t, pids[i], "edge", fmt.Sprintf("%s %s, round %d", v.proxy, v.name, round+1), loads[i]))
		}
	}
	rows := make([]Row, len(variants))
	notes := make([]string, len(variants))
	for i, v := range variants {
		rows[i] = median(rounds[i], func(a, b Row) int { return cmp.Compare(a.CPUPerRequestMicros(), b.CPUPerRequestMicros()) })
		rows[i].Variant = v.proxy + " " + v.name
		notes[i] = fmt.Sprintf("- %s %s: %s", v.proxy, v.name, roundsText(rounds[i]))
	}
	ratios := []Ratio{
		NewRatio("nginx rendered / minimal proxy (CPU per request)", rows[2], rows[1], 1.5),
		NewRatio("haproxy rendered / minimal proxy (CPU per request)", rows[5], rows[4], 1.5),
		NewRatio("nginx minimal proxy / return 200 (CPU per request)", rows[1], rows[0], 0),
		NewRatio("haproxy minimal proxy / return 200 (CPU per request)", rows[4], rows[3], 0),
	}
	Record(t, "Edge tier against its limit", rows, ratios)
	Note(t, fmt.Sprintf("Edge tier, %d rounds of every variant in turn; each table row is the variant's median round by CPU per request:\n\n%s",
		edgeRounds, strings.Join(notes, "\n")))
}

// edgeVariants are the three configs of each proxy, in the order the
// ratios index them: return 200, minimal proxy, rendered.
func edgeVariants() []edgeVariant {
	rendered := func(render func(edge.Config) (string, error)) func(int, string, string) (string, error) {
		return func(port int, dir, backend string) (string, error) {
			// The https listener in plain HTTP (TLS terminated upstream), so
			// the rendered row stays comparable with the plain-HTTP floors;
			// the redirect and status listeners take ports nobody calls.
			httpPort, err := realserver.FreePort()
			if err != nil {
				return "", err
			}
			statusPort, err := realserver.FreePort()
			if err != nil {
				return "", err
			}
			return render(edge.Config{
				ListenHost: "127.0.0.1", HTTPSPort: port, HTTPPort: httpPort, StatusPort: statusPort, RuntimeDir: dir,
				TLSTerminatedUpstream: true,
				BodyLimitBytes:        1 << 20, RateLimitPerSecond: unlimitedRate, RateBurst: unlimitedRate,
				Backends: []edge.Backend{{Name: "gateway", PathPrefix: "/", Servers: []string{backend}, HealthPath: "/healthz"}},
			})
		}
	}
	return []edgeVariant{
		{"nginx", "return 200", func(port int, dir, _ string) (string, error) {
			return fmt.Sprintf(nginxFloor, dir, port, backendBody), nil
		}},
		{"nginx", "minimal proxy", func(port int, dir, backend string) (string, error) {
			return fmt.Sprintf(nginxMinimal, dir, backend, port), nil
		}},
		{"nginx", "rendered", rendered(edge.RenderNginx)},
		{"haproxy", "return 200", func(port int, dir, _ string) (string, error) {
			return fmt.Sprintf(haproxyFloor, port, backendBody), nil
		}},
		{"haproxy", "minimal proxy", func(port int, dir, backend string) (string, error) {
			return fmt.Sprintf(haproxyMinimal, port, backend), nil
		}},
		{"haproxy", "rendered", rendered(edge.RenderHAProxy)},
	}
}

const nginxFloor = `worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/cb; proxy_temp_path %[1]s/p; fastcgi_temp_path %[1]s/f; uwsgi_temp_path %[1]s/u; scgi_temp_path %[1]s/s;
  server { listen 127.0.0.1:%[2]d; location / { default_type application/json; return 200 '%[3]s'; } }
}
`

const nginxMinimal = `worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/cb; proxy_temp_path %[1]s/p; fastcgi_temp_path %[1]s/f; uwsgi_temp_path %[1]s/u; scgi_temp_path %[1]s/s;
  upstream b { server %[2]s; keepalive 64; }
  server { listen 127.0.0.1:%[3]d; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
`

const haproxyFloor = `global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:%d
  http-request return status 200 content-type application/json string '%s'
`

const haproxyMinimal = `global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:%d
  default_backend b
backend b
  server s1 %s
`

// startBackend serves a fixed small JSON document, standing in for the
// gateway's cached GET.
func startBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "listen backend")
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(backendBody))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// pin moves every thread of the process group's processes to one core.
func pin(t *testing.T, pid, core int) {
	t.Helper()
	out, err := exec.Command("sh", "-c", "for p in $(pgrep -g "+strconv.Itoa(pid)+"); do taskset -a -p -c "+strconv.Itoa(core)+" $p >/dev/null; done").CombinedOutput()
	require.NoError(t, err, "pin %d to core %d: %s", pid, core, out)
}

// pinSelf moves every thread of this test process to one core, so that it
// and the servers it starts next (Redis, Kafka: children inherit the
// affinity) stay off the server core, and returns the function that undoes
// it. GOMAXPROCS follows to 1 at once, where the runtime would notice the
// narrower affinity only at its next periodic check: two Ps on one core
// are two threads the kernel time-slices, each waiting milliseconds for
// the other's slice.
func pinSelf(t *testing.T, core int) func() {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(core), self).CombinedOutput()
	require.NoError(t, err, "pin this process to core %d: %s", core, out)
	procs := runtime.GOMAXPROCS(1)
	return func() {
		runtime.GOMAXPROCS(procs)
		out, err := exec.Command("taskset", "-a", "-p", "-c", fmt.Sprintf("0-%d", runtime.NumCPU()-1), self).CombinedOutput()
		require.NoError(t, err, "unpin this process: %s", out)
	}
}
