//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/internal/realserver"
)

const (
	serverCore     = 0
	gatewayConns   = 50
	gatewayWarmup  = 3 * time.Second
	gatewayRun     = 8 * time.Second
	halfLoadRun    = 5 * time.Second
	registerBody   = `{"email":"ada@example.com","name":"Ada Lovelace","password":"correct horse battery"}`
	cachedUserName = "Ada Lovelace"
	// The goals of the issue: per core, Go serves >= 6x the cached GETs and
	// >= 4x the 202 POSTs of Express; p99 < 5 ms at half of Go's peak.
	getGoal     = 6.0
	postGoal    = 4.0
	halfLoadP99 = 5 * time.Millisecond
	// The limit is evaluated on every request but never reached: one
	// request per microsecond (the finest spacing the limiter allows) with a
	// burst no run comes near.
	rateLimitRate  = "1000000"
	rateLimitBurst = "10000000"
)

// variant is one server implementation measured by TestGatewayVsNode.
type variant struct {
	name     string
	getPath  string
	postPath string
	start    func(t *testing.T, port int) *Server
}

// TestGatewayVsNode runs the Go gateway and the articles' Node.js design
// (Express single-process and in cluster mode) against the same Redis and
// the same real Kafka broker, each pinned to one core with wrk on the
// other, for the cached GET and the 202 POST, and reports the ratios;
// then Go's net/http alone (bench/gofloor) on the same core, the floor
// that shows how much of a request the gateway's own work is.
func TestGatewayVsNode(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed; the Node.js reference cannot run")
	}
	// This process (the open-loop generator) and what it starts (Redis,
	// Kafka) stay off the server's core, with wrk.
	defer pinSelf(t, loadCore)()
	logDir := t.TempDir()
	rds := realserver.StartRedis(t, "")
	kafka := realserver.StartKafka(t, realserver.KafkaConfig{Nodes: 1})
	createTopic(t, kafka.Brokers())
	userID := seedProfile(t, rds.Addr())
	installNodeReference(t)
	gatewayBin := filepath.Join(t.TempDir(), "gateway")
	out, err := exec.Command("go", "build", "-o", gatewayBin, "../apps/gateway").CombinedOutput()
	require.NoError(t, err, "build the gateway: %s", out)
	floorBin := filepath.Join(t.TempDir(), "gofloor")
	out, err = exec.Command("go", "build", "-o", floorBin, "./gofloor").CombinedOutput()
	require.NoError(t, err, "build the net/http floor: %s", out)

	redisHost, redisPort, _ := strings.Cut(rds.Addr(), ":")
	nodeEnv := func(port int, workers string) []string {
		return []string{"PORT=" + strconv.Itoa(port), "REDIS_HOST=" + redisHost, "REDIS_PORT=" + redisPort,
			"KAFKA_BROKERS=" + strings.Join(kafka.Brokers(), ","), "WORKERS=" + workers,
			"RATE_LIMIT_RATE=" + rateLimitRate, "RATE_LIMIT_BURST=" + rateLimitBurst, "L1_TTL_MS=3600000", "NODE_ENV=production"}
	}
	variants := []variant{
		{"Go gateway (GOMAXPROCS=1)", "/v1/users/" + userID, "/v1/register", func(t *testing.T, port int) *Server {
			admin := realserver.FreePort(t)
			s, err := StartServer("gateway", serverCore, []string{
				"HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port), "ADMIN_ADDR=127.0.0.1:" + strconv.Itoa(admin),
				"KAFKA_BROKERS=" + strings.Join(kafka.Brokers(), ","), "REDIS_ADDRS=" + rds.Addr(), "REDIS_CLUSTER=false",
				"USERS_ADDR=127.0.0.1:1", "RATE_LIMIT_RATE=" + rateLimitRate, "RATE_LIMIT_BURST=" + rateLimitBurst,
				"CACHE_L1_TTL=1h", "GOMAXPROCS=1", "GOGC=" + microservice.GoGC, "LOG_LEVEL=warn", "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_TRACES_SAMPLER_ARG=0",
			}, logDir, fmt.Sprintf("http://127.0.0.1:%d/readyz", admin), gatewayBin)
			require.NoError(t, err, "start the gateway")
			return s
		}},
		{"Express (single process)", "/users/" + userID, "/register", func(t *testing.T, port int) *Server {
			s, err := StartServer("express", serverCore, nodeEnv(port, "0"), logDir,
				fmt.Sprintf("http://127.0.0.1:%d/healthz", port), "node", "node-reference/server.js")
			require.NoError(t, err, "start express")
			return s
		}},
		{"Express (cluster, 1 worker per core)", "/users/" + userID, "/register", func(t *testing.T, port int) *Server {
			s, err := StartServer("express-cluster", serverCore, nodeEnv(port, "1"), logDir,
				fmt.Sprintf("http://127.0.0.1:%d/healthz", port), "node", "node-reference/server.js")
			require.NoError(t, err, "start express in cluster mode")
			return s
		}},
		// Last, so the ratios above keep their rows: what net/http and the
		// kernel cost per request on this core, with nothing of the gateway.
		{"Go net/http floor (GOMAXPROCS=1)", "/v1/users/" + userID, "/v1/register", func(t *testing.T, port int) *Server {
			s, err := StartServer("gofloor", serverCore, []string{"ADDR=127.0.0.1:" + strconv.Itoa(port), "GOMAXPROCS=1"}, logDir,
				fmt.Sprintf("http://127.0.0.1:%d/healthz", port), floorBin)
			require.NoError(t, err, "start the net/http floor")
			return s
		}},
	}
	post := "wrk.method = \"POST\"\nwrk.body = '" + registerBody + "'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
	var gets, posts []Row
	var rss []string
	halfRate := 0 // half the gateway's peak, also offered to the floor
	for _, v := range variants {
		port := realserver.FreePort(t)
		s := v.start(t, port)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		gets = append(gets, measure(t, s, v.name+" GET cached", Load{URL: base + v.getPath, Core: loadCore, Connections: gatewayConns, Duration: gatewayRun}))
		if len(gets) == len(variants) {
			// The floor at the gateway's half-load rate: the tail that this
			// machine, the generator and net/http give any server.
			lat, failed := FixedRate(context.Background(), base+v.getPath, halfRate, gatewayConns, halfLoadRun)
			rss = append(rss, fmt.Sprintf("Go net/http floor at the same rate (%d req/s, open loop): %s, %d failed", halfRate, latencies(lat), failed))
		}
		if len(gets) == 1 {
			half := int(gets[0].Result.RPS() / 2)
			halfRate = half
			lat, failed := FixedRate(context.Background(), base+v.getPath, half, gatewayConns, halfLoadRun)
			p99 := Percentile(lat, 99)
			t.Logf("Go gateway at half its peak (%d req/s): %s, %d failed", half, latencies(lat), failed)
			rss = append(rss, fmt.Sprintf("Go gateway cached GET at half its peak (%d req/s, open loop): %s (goal p99 < %v)", half, latencies(lat), halfLoadP99))
			// A failed request leaves no latency: the percentiles of the
			// ones that succeeded would hide it, or read 0 if none did.
			assert.Zero(t, failed, "at half load every request answered 200 (%d of %d failed)", failed, failed+len(lat))
			if p99 >= halfLoadP99 {
				t.Errorf("goal missed: p99 %v at half load, goal < %v", p99, halfLoadP99)
			}
		}
		// After the cached reads: the POST run leaves Kafka, on the load
		// core with Redis and the generator, writing out its records, which
		// a read at half load would then wait behind.
		posts = append(posts, measure(t, s, v.name+" POST 202", Load{URL: base + v.postPath, Core: loadCore, Connections: gatewayConns, Duration: gatewayRun, Script: post}))
		rss = append(rss, fmt.Sprintf("%s: peak RSS %.1f MiB", v.name, float64(s.PeakRSS())/(1<<20)))
		s.Stop()
	}
	Record(t, "Cached GET /users/{id}: Go gateway vs the articles' Express design (one core each)", gets, []Ratio{
		speedup("Go / Express single, requests per core", gets[0], gets[1], getGoal),
		speedup("Go / Express cluster, requests per core", gets[0], gets[2], getGoal),
		NewRatio("Express single / Go, CPU µs per request", gets[1], gets[0], 0),
		NewRatio("Go gateway / net/http floor, CPU µs per request", gets[0], gets[3], 0),
		NewRatio("Express single / net/http floor, CPU µs per request", gets[1], gets[3], 0),
	})
	Record(t, "202 POST /register: Go gateway vs the articles' Express design (one core each)", posts, []Ratio{
		speedup("Go / Express single, requests per core", posts[0], posts[1], postGoal),
		speedup("Go / Express cluster, requests per core", posts[0], posts[2], postGoal),
		NewRatio("Express single / Go, CPU µs per request", posts[1], posts[0], 0),
		NewRatio("Go gateway / net/http floor, CPU µs per request", posts[0], posts[3], 0),
	})
	Note(t, strings.Join(rss, "\n\n"))
}

// latencies summarises sorted latencies as the report prints them.
func latencies(sorted []time.Duration) string {
	return fmt.Sprintf("p50 %v, p99 %v, p99.9 %v", Percentile(sorted, 50).Round(time.Microsecond),
		Percentile(sorted, 99).Round(time.Microsecond), Percentile(sorted, 99.9).Round(time.Microsecond))
}

// speedup is a throughput ratio that must reach at least goal.
func speedup(name string, num, den Row, goal float64) Ratio {
	return Ratio{Name: name, Value: num.Result.RPS() / den.Result.RPS(), Goal: goal, AtLeast: true}
}

// measure warms the server up, then runs l and reads the server group's CPU time.
func measure(t *testing.T, s *Server, name string, l Load) Row {
	t.Helper()
	warm := l
	warm.Duration = gatewayWarmup
	_, err := warm.Run(context.Background())
	require.NoError(t, err, "warm-up %s", name)
	before, err := GroupCPU(s.Pgid())
	require.NoError(t, err, "cpu before %s", name)
	res, err := l.Run(context.Background())
	require.NoError(t, err, "load %s", name)
	after, err := GroupCPU(s.Pgid())
	require.NoError(t, err, "cpu after %s", name)
	require.Zero(t, res.Non2xx+res.Errors, "%s: every request answered 2xx (%d non-2xx, %d socket errors)", name, res.Non2xx, res.Errors)
	row := Row{Group: "gateway", Variant: name, Result: res, CPU: after - before}
	t.Logf("%-48s %8.0f req/s  %6.1f µs CPU/req  p99 %v", name, res.RPS(), row.CPUPerRequestMicros(), res.P99)
	return row
}

func createTopic(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err, "kafka admin client")
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).CreateTopics(ctx, 12, 1, nil, account.TopicRegistrations)
	if err == nil {
		err = res.Error()
	}
	require.NoError(t, err, "create topic")
}

// seedProfile stores one profile in the Go gateway's L2 envelope, fresh
// for an hour, so both implementations serve it from cache.
func seedProfile(t *testing.T, addr string) string {
	t.Helper()
	id := account.UserID("ada@example.com")
	v, _ := json.Marshal(map[string]any{"id": id, "email": "ada@example.com", "name": cachedUserName})
	env, _ := json.Marshal(map[string]any{"f": time.Now().Add(time.Hour).UnixMilli(), "v": json.RawMessage(v)})
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = c.Close() }()
	require.NoError(t, c.Set(context.Background(), account.CacheKey(id), env, 2*time.Hour).Err(), "seed the L2 cache")
	return id
}

// installNodeReference installs the reference's locked packages from the
// npm registry (npm ci), once per checkout.
func installNodeReference(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("node-reference/node_modules/express"); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = "node-reference"
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm ci in bench/node-reference: %s", out)
}
