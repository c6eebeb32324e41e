package observability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// startTimeout bounds how long Jaeger or a collector may take to be healthy.
const startTimeout = 60 * time.Second

// jaegerBinary is the cached Jaeger v2 build (also a collector
// distribution with every component the rendered collector config uses).
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if _, cached, err := toolchain.JaegerDir(); err != nil {
		t.Fatalf("jaeger cache: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("Jaeger is not cached and building it takes minutes; run without -short to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := toolchain.Jaeger(ctx)
	require.NoError(t, err, "build Jaeger %s", toolchain.JaegerVersion)
	t.Logf("jaeger %s ready in %s", toolchain.JaegerVersion, time.Since(start).Round(time.Millisecond))
	return bin.Path
}

// runConfig starts bin with a rendered config on loopback, stops it at the
// end of the test, and waits for its health endpoint.
func runConfig(t *testing.T, bin, name, config string, healthPort int) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o644), "write %s config", name)
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	require.NoError(t, err, "create %s log", name)
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(bin, "--config="+path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start(), "start %s", name)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		// Jaeger drains its servers for up to 10 s; a test has nothing to drain.
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	health := fmt.Sprintf("http://127.0.0.1:%d/", healthPort)
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get(health)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before it was healthy:\n%s", name, tailLines(string(log), 30))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s not healthy on %s after %s:\n%s", name, health, startTimeout, tailLines(string(log), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loopbackJaeger is the rendered Jaeger config on free loopback ports.
func loopbackJaeger(t *testing.T, s JaegerStorage) JaegerConfig {
	c := DefaultJaegerConfig(s)
	c.Bind = realserver.Loopback
	c.OTLPGRPCPort, c.OTLPHTTPPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	c.QueryHTTPPort, c.QueryGRPCPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	c.HealthPort, c.MetricsPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	return c
}

// sendSpan exports one span over OTLP gRPC to endpoint and returns its trace id.
func sendSpan(t *testing.T, endpoint, service string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	require.NoError(t, err, "OTLP exporter")
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(sdkresource.NewSchemaless(semconv.ServiceName(service))))
	_, span := tp.Tracer("scaleplane-test").Start(ctx, "POST /register")
	id := span.SpanContext().TraceID().String()
	span.End()
	require.NoError(t, tp.Shutdown(ctx), "flush the span to %s", endpoint)
	return id
}

// readTrace polls Jaeger's query API until the trace holds its one span.
func readTrace(t *testing.T, queryPort int, traceID string) (service, operation string) {
	t.Helper()
	spans, err := realserver.ReadTrace(fmt.Sprintf("%s:%d", realserver.Loopback, queryPort), traceID,
		func(s []realserver.TraceSpan) bool { return len(s) == 1 })
	require.NoError(t, err, "trace %s readable from Jaeger's query API", traceID)
	return spans[0].Service, spans[0].Operation
}

func TestJaegerStoresASpanAndServesItBack(t *testing.T) {
	bin := jaegerBinary(t)
	for _, s := range []JaegerStorage{
		{Kind: StorageMemory, MaxTraces: 1000},
		{Kind: StorageBadger, Retention: 48 * time.Hour, Dir: t.TempDir()},
	} {
		t.Run(string(s.Kind), func(t *testing.T) {
			c := loopbackJaeger(t, s)
			start := time.Now()
			runConfig(t, bin, "jaeger", RenderJaegerConfig(c), c.HealthPort)
			up := time.Since(start)
			start = time.Now()
			id := sendSpan(t, fmt.Sprintf("127.0.0.1:%d", c.OTLPGRPCPort), "gateway")
			svc, op := readTrace(t, c.QueryHTTPPort, id)
			assert.Equal(t, "gateway", svc, "the span's service")
			assert.Equal(t, "POST /register", op, "the span's operation")
			t.Logf("jaeger (%s): healthy in %s; span sent over OTLP and read back from the query API in %s",
				s.Kind, up.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestRenderedCollectorConfigValidatesAndCarriesSpansAndMetrics(t *testing.T) {
	bin := jaegerBinary(t)
	j := loopbackJaeger(t, JaegerStorage{Kind: StorageMemory, MaxTraces: 1000})
	runConfig(t, bin, "jaeger", RenderJaegerConfig(j), j.HealthPort)

	c := DefaultCollectorConfig(fmt.Sprintf("127.0.0.1:%d", j.OTLPGRPCPort), resource.MustParse("256Mi"))
	c.Bind = realserver.Loopback
	c.OTLPGRPCPort, c.OTLPHTTPPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	c.HealthPort, c.MetricsPort, c.TelemetryPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	c.BatchTimeout = 200 * time.Millisecond
	conf := RenderCollectorConfig(c)

	// validate: the collector's own check of every component's settings.
	path := filepath.Join(t.TempDir(), "collector.yaml")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644), "write collector config")
	out, err := exec.Command(bin, "validate", "--config="+path).CombinedOutput()
	require.NoError(t, err, "the collector's validate command rejects the rendered config:\n%s", out)

	// It can fail: a limiter whose spike exceeds its limit is refused.
	bad := strings.Replace(conf, fmt.Sprintf("spike_limit_mib: %d", c.SpikeLimitMiB), fmt.Sprintf("spike_limit_mib: %d", c.MemoryLimitMiB+1), 1)
	require.NotEqual(t, conf, bad, "the mutation applies")
	badPath := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(badPath, []byte(bad), 0o644), "write broken config")
	out, err = exec.Command(bin, "validate", "--config="+badPath).CombinedOutput()
	assert.Error(t, err, "validate must refuse spike_limit_mib above limit_mib:\n%s", out)

	// The same file run for real: service -> collector -> Jaeger -> query API.
	runConfig(t, bin, "collector", conf, c.HealthPort)
	start := time.Now()
	id := sendSpan(t, fmt.Sprintf("127.0.0.1:%d", c.OTLPGRPCPort), "users")
	svc, op := readTrace(t, j.QueryHTTPPort, id)
	assert.Equal(t, "users", svc, "the span's service after the collector hop")
	assert.Equal(t, "POST /register", op, "the span's operation after the collector hop")
	t.Logf("collector -> jaeger round trip: %s", time.Since(start).Round(time.Millisecond))

	// Metrics pushed over OTLP/HTTP come out on the Prometheus endpoint the
	// pod annotation points Prometheus at (through memory_limiter and batch).
	gauge := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"worker"}}]},` +
		`"scopeMetrics":[{"metrics":[{"name":"scaleplane_queue_depth","gauge":{"dataPoints":[{"asDouble":42,"timeUnixNano":"` +
		fmt.Sprint(time.Now().UnixNano()) + `"}]}}]}]}]}`
	post, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/metrics", c.OTLPHTTPPort), "application/json", strings.NewReader(gauge))
	require.NoError(t, err, "push a metric over OTLP/HTTP")
	_ = post.Body.Close()
	require.Equal(t, http.StatusOK, post.StatusCode, "the collector accepts the metric")
	var exposed string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(exposed, "scaleplane_queue_depth") {
		time.Sleep(200 * time.Millisecond)
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.MetricsPort)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			exposed = string(b)
		}
	}
	assert.Contains(t, exposed, "scaleplane_queue_depth", "the pushed metric is exposed for Prometheus")
	assert.Contains(t, exposed, `service_name="worker"`, "resource attributes become labels (resource_to_telemetry_conversion)")

	// The collector's own metrics (what Prometheus scrapes) count the span.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.TelemetryPort))
	require.NoError(t, err, "collector telemetry endpoint")
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Contains(t, string(body), "otelcol_receiver_accepted_spans", "the collector reports accepted spans")
}
