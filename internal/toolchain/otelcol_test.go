package toolchain_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/observability"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// otelcolBinary is the cached collector distribution, built the first time
// unless -short.
func otelcolBinary(t *testing.T) toolchain.OtelcolBinary {
	t.Helper()
	if _, cached, err := toolchain.OtelcolDir(); err != nil {
		t.Fatalf("OtelcolDir: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("the collector is not in the cache and building it takes minutes; run without -short (or scaleplane warm) to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := toolchain.Otelcol(ctx)
	if err != nil {
		t.Fatalf("building the collector with the builder %s: %v", toolchain.OtelcolVersion, err)
	}
	t.Logf("otelcol %s ready in %s", bin.Version, time.Since(start).Round(time.Millisecond))
	return bin
}

// TestOtelcolCarriesExactlyTheConfigsComponents: the distribution names
// its release and holds the components of the builder manifest, which are
// the ones the rendered collector config uses.
func TestOtelcolCarriesExactlyTheConfigsComponents(t *testing.T) {
	bin := otelcolBinary(t)
	version, err := exec.Command(bin.Path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(version), strings.TrimPrefix(toolchain.OtelcolVersion, "v")) {
		t.Fatalf("%s --version = %q, %v; want it to name %s", bin.Path, version, err, toolchain.OtelcolVersion)
	}
	out, err := exec.Command(bin.Path, "components").CombinedOutput()
	if err != nil {
		t.Fatalf("%s components: %v\n%s", bin.Path, err, out)
	}
	// The otlp exporter's type is otlp_grpc since the 0.14x releases; the
	// config's otlp/jaeger is its deprecated alias (one warning at start),
	// kept because Jaeger's older collector core, which runs the same
	// config in the observability tests, knows only otlp.
	for _, c := range []string{"name: otlp\n", "name: memory_limiter", "name: batch", "name: otlp_grpc", "name: prometheus", "name: healthcheckv2"} {
		if !strings.Contains(string(out), c) {
			t.Errorf("the distribution lacks %q:\n%s", c, out)
		}
	}
	t.Logf("%s: %s", bin.Path, strings.TrimSpace(string(version)))
}

// traceSink is an OTLP gRPC trace receiver standing in for Jaeger.
type traceSink struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string]string // trace id -> service.name
}

func (s *traceSink) Export(_ context.Context, r *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range r.GetResourceSpans() {
		var service string
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.spans[hex.EncodeToString(sp.GetTraceId())] = service + " " + sp.GetName()
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (s *traceSink) span(traceID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.spans[traceID]
	return v, ok
}

// TestOtelcolRunsTheRenderedCollectorConfig runs the built collector with
// the config the observability component renders (on loopback ports, as in
// the pod otherwise): it validates, its health endpoint answers 200, a span
// exported to it over OTLP gRPC reaches the OTLP receiver it points traces
// at (Jaeger in the cluster, a gRPC receiver here), a metric pushed over
// OTLP/HTTP is exposed on its Prometheus endpoint and its own telemetry
// endpoint counts the span.
func TestOtelcolRunsTheRenderedCollectorConfig(t *testing.T) {
	bin := otelcolBinary(t)

	lis, err := net.Listen("tcp", loopbackAddr(realservertest.MustFreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	sink := &traceSink{spans: map[string]string{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, sink)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	c := observability.DefaultCollectorConfig(lis.Addr().String(), resource.MustParse("256Mi"))
	c.Bind = realserver.Loopback
	c.OTLPGRPCPort, c.OTLPHTTPPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	c.HealthPort, c.MetricsPort, c.TelemetryPort = realservertest.MustFreePort(t), realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	c.BatchTimeout = 200 * time.Millisecond
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(observability.RenderCollectorConfig(c)), 0o444); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin.Path, "validate", "--config="+path).CombinedOutput(); err != nil {
		t.Fatalf("validate refuses the rendered config: %v\n%s", err, out)
	}

	// As the component runs it: the one flag --config=<mounted file>.
	var logs strings.Builder
	var logMu sync.Mutex
	cmd := exec.Command(bin.Path, "--config="+path)
	cmd.Dir = "/"
	w := &lockedWriter{mu: &logMu, w: &logs}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("collector log:\n%s", logs.String())
			logMu.Unlock()
		}
	})

	// The probes' endpoint: GET / on the health port.
	health := "http://" + loopbackAddr(c.HealthPort) + "/"
	start := time.Now()
	for {
		code, _, err := get(health)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-done:
			t.Fatalf("the collector exited before it was healthy")
		default:
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("GET %s = %d %v after 1m", health, code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("collector healthy in %s", time.Since(start).Round(time.Millisecond))

	// A span over OTLP gRPC, as the services send them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(loopbackAddr(c.OTLPGRPCPort)), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(sdkresource.NewSchemaless(semconv.ServiceName("users"))))
	_, sp := tp.Tracer("scaleplane-test").Start(ctx, "POST /register")
	id := sp.SpanContext().TraceID().String()
	sp.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("exporting the span to the collector: %v", err)
	}
	start = time.Now()
	var got string
	for ok := false; !ok; got, ok = sink.span(id) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("span %s never reached the OTLP receiver the collector exports to", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != "users POST /register" {
		t.Fatalf("forwarded span = %q, want service users, operation POST /register", got)
	}
	t.Logf("span forwarded over OTLP gRPC in %s", time.Since(start).Round(time.Millisecond))

	// A metric over OTLP/HTTP comes out on the Prometheus exporter.
	gauge := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"worker"}}]},` +
		`"scopeMetrics":[{"metrics":[{"name":"scaleplane_queue_depth","gauge":{"dataPoints":[{"asDouble":42,"timeUnixNano":"` +
		fmt.Sprint(time.Now().UnixNano()) + `"}]}}]}]}]}`
	resp, err := http.Post("http://"+loopbackAddr(c.OTLPHTTPPort)+"/v1/metrics", "application/json", strings.NewReader(gauge))
	if err != nil {
		t.Fatalf("pushing a metric over OTLP/HTTP: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP metrics push: %s", resp.Status)
	}
	var exposed string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !strings.Contains(exposed, "scaleplane_queue_depth"); {
		time.Sleep(200 * time.Millisecond)
		if code, body, err := get("http://" + loopbackAddr(c.MetricsPort) + "/metrics"); err == nil && code == http.StatusOK {
			exposed = body
		}
	}
	if !strings.Contains(exposed, "scaleplane_queue_depth") || !strings.Contains(exposed, `service_name="worker"`) {
		t.Fatalf("the prometheus exporter does not expose the pushed metric with its resource labels:\n%s", exposed)
	}

	// Its own metrics, on the telemetry port Prometheus also scrapes.
	code, body, err := get("http://" + loopbackAddr(c.TelemetryPort) + "/metrics")
	if err != nil || code != http.StatusOK || !strings.Contains(body, "otelcol_receiver_accepted_spans") {
		t.Fatalf("GET telemetry /metrics = %d %v, want otelcol_receiver_accepted_spans:\n%.2000s", code, err, body)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
