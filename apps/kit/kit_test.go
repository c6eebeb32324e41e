package kit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestEnvReportsEveryProblemWithNameValueAndAllowed(t *testing.T) {
	e := MapEnv(map[string]string{"PORT_X": "8080", "N": "abc", "D": "5parsecs", "L": "a:1,b"})
	e.Addr("PORT_X", ":1")
	e.Int("N", 1, 0, 10)
	e.Duration("D", time.Second, 0, time.Minute)
	e.Addrs("L", nil)
	e.Required("MISSING", "the thing")
	err := e.Err()
	if err == nil {
		t.Fatal("Err() = nil, want the five problems")
	}
	for _, want := range []string{`PORT_X="8080": must be [host]:port`, `N="abc": must be an integer from 0 to 10`,
		`D="5parsecs": must be a duration`, `L="a:1,b": each item must be host:port`, `MISSING="": is required: the thing`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestEnvDefaultsAndValidValues(t *testing.T) {
	e := MapEnv(map[string]string{"N": "7", "B": "false", "L": " x:1 , y:2 "})
	if got := e.Int("N", 1, 0, 10); got != 7 {
		t.Errorf("Int = %d, want 7", got)
	}
	if got := e.Bool("B", true); got {
		t.Errorf("Bool = %v, want false", got)
	}
	if got := e.Addrs("L", nil); len(got) != 2 || got[1] != "y:2" {
		t.Errorf("Addrs = %q, want [x:1 y:2]", got)
	}
	if got := e.Duration("UNSET", 3*time.Second, 0, time.Minute); got != 3*time.Second {
		t.Errorf("Duration default = %s, want 3s", got)
	}
	if err := e.Err(); err != nil {
		t.Errorf("Err() = %v, want nil for valid values", err)
	}
}

// TestEnvCIDRs: a list of networks, none when unset or empty; a bad item
// is refused naming the variable, its value and what is allowed, never
// widened, narrowed or dropped.
func TestEnvCIDRs(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    string // the parsed list, fmt'd
		wantErr string
	}{
		{value: "", want: "[]"},
		{value: " , ", want: "[]"},
		{value: "10.244.0.0/16", want: "[10.244.0.0/16]"},
		{value: " 10.244.0.0/16 , fd00:10:244::/56 ", want: "[10.244.0.0/16 fd00:10:244::/56]"},
		{value: "127.0.0.0/8,10.0.0.0/16", want: "[127.0.0.0/8 10.0.0.0/16]"},
		{value: "10.244.0.0", wantErr: `CIDRS="10.244.0.0": "10.244.0.0" is not a network`},
		{value: "10.244.0.0/16,edge", wantErr: `CIDRS="10.244.0.0/16,edge": "edge" is not a network`},
		{value: "10.244.0.0/33", wantErr: `"10.244.0.0/33" is not a network`},
		{value: "10.244.1.0/16", wantErr: `"10.244.1.0/16" has host bits set: write the network, e.g. 10.244.0.0/16`},
		{value: "::ffff:10.0.0.0/104", wantErr: `"::ffff:10.0.0.0/104" is an IPv4 network written as IPv6: write it as IPv4, e.g. 10.0.0.0/8`},
	} {
		e := MapEnv(map[string]string{"CIDRS": tc.value})
		got := e.CIDRs("CIDRS")
		err := e.Err()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CIDRs(%q): err = %v, want one containing %q", tc.value, err, tc.wantErr)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("CIDRs(%q) = %v, %v; want %s and no error", tc.value, got, err, tc.want)
		}
	}
}

func TestMetricsExposeRuntimeSchedulerGCAndRED(t *testing.T) {
	m := NewMetrics()
	h := m.Route("GET /x/{id}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(418) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x/1", nil))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"go_sched_latencies_seconds", // the Go counterpart of event-loop lag
		"go_sched_pauses_total_gc_seconds",
		"go_goroutines",
		`http_server_requests_total{code="418",method="GET",route="GET /x/{id}"} 1`,
		"http_server_request_duration_seconds_bucket",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestReadinessFollowsStartDrainAndChecks(t *testing.T) {
	h := NewHealth(time.Second)
	code := func() int {
		rec := httptest.NewRecorder()
		h.ReadyHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	if c := code(); c != 503 {
		t.Errorf("before Started: %d, want 503", c)
	}
	h.Started()
	if c := code(); c != 200 {
		t.Errorf("after Started: %d, want 200", c)
	}
	fail := true
	h.AddCheck("db", func(context.Context) error {
		if fail {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if c := code(); c != 503 {
		t.Errorf("with a failing check: %d, want 503", c)
	}
	fail = false
	if c := code(); c != 200 {
		t.Errorf("with the check passing again: %d, want 200", c)
	}
	h.Drain()
	if c := code(); c != 503 {
		t.Errorf("while draining: %d, want 503", c)
	}
}

func TestTraceContextCrossesKafkaHeadersAndReachesLogs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	var logs bytes.Buffer
	tel, err := NewTelemetry(context.Background(), TelemetryConfig{Service: "t", SampleRatio: 1, Exporter: exp, LogWriter: &logs})
	if err != nil {
		t.Fatalf("NewTelemetry: %v", err)
	}
	ctx, span := tel.Tracer.Tracer("t").Start(context.Background(), "produce")
	rec := &kgo.Record{}
	tel.Propagator.Inject(ctx, KafkaHeaders{R: rec})
	span.End()
	if (KafkaHeaders{R: rec}).Get("traceparent") == "" {
		t.Fatalf("no traceparent header injected; headers %v", rec.Headers)
	}
	cctx := tel.Propagator.Extract(context.Background(), KafkaHeaders{R: rec})
	cctx, child := tel.Tracer.Tracer("t").Start(cctx, "consume")
	tel.Logger.InfoContext(cctx, "hello")
	child.End()
	// ForceFlush, not Shutdown: the in-memory exporter forgets on Shutdown.
	if err := tel.sdk.ForceFlush(context.Background()); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].SpanContext.TraceID() != spans[1].SpanContext.TraceID() {
		t.Fatalf("want 2 spans in one trace, got %d: %+v", len(spans), spans)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log is not one JSON object: %v: %s", err, logs.String())
	}
	if line["trace_id"] != spans[0].SpanContext.TraceID().String() {
		t.Errorf("log trace_id = %v, want %s", line["trace_id"], spans[0].SpanContext.TraceID())
	}
}

// TestOTLPEndpointIsAURLOrHostPort: the stacks set the endpoint as the
// specification's URL; the gRPC exporter needs host:port, and the scheme
// decides TLS. A URL the exporter cannot dial is refused at start.
func TestOTLPEndpointIsAURLOrHostPort(t *testing.T) {
	for _, tc := range []struct {
		value, host string
		insecure    bool
		bad         bool
	}{
		{"http://otel-collector.scaleplane.svc.cluster.local:4317", "otel-collector.scaleplane.svc.cluster.local:4317", true, false},
		{"https://collector.example.com:4317", "collector.example.com:4317", false, false},
		{"collector:4317", "collector:4317", true, false},
		{"http://collector:4317/", "collector:4317", true, false},
		{"grpc://collector:4317", "", false, true},
		{"http://collector:4318/v1/traces", "", false, true},
	} {
		e := NewEnv(func(k string) (string, bool) {
			if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
				return tc.value, true
			}
			return "", false
		})
		c := TelemetryFromEnv(e, "gateway")
		if tc.bad {
			if err := e.Err(); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_ENDPOINT") {
				t.Errorf("%s: want an error naming the variable, got %v", tc.value, err)
			}
			continue
		}
		if err := e.Err(); err != nil {
			t.Errorf("%s: %v", tc.value, err)
		}
		if c.OTLPEndpoint != tc.host || c.OTLPInsecure != tc.insecure {
			t.Errorf("%s: endpoint %q insecure %v, want %q %v", tc.value, c.OTLPEndpoint, c.OTLPInsecure, tc.host, tc.insecure)
		}
	}
}

// TestStartupCheckGatesReadinessOnce: a shared dependency keeps the pod
// unready until it first answers, and its later outage does not take the
// pod (and with it every replica) out of its Service.
func TestStartupCheckGatesReadinessOnce(t *testing.T) {
	h := NewHealth(time.Second)
	h.Started()
	up := false
	h.AddStartupCheck("kafka", func(context.Context) error {
		if !up {
			return errors.New("no broker")
		}
		return nil
	})
	if failed := h.Ready(context.Background()); failed["kafka"] == "" {
		t.Fatalf("ready before Kafka ever answered: %v", failed)
	}
	up = true
	if failed := h.Ready(context.Background()); len(failed) != 0 {
		t.Fatalf("not ready once Kafka answered: %v", failed)
	}
	up = false
	if failed := h.Ready(context.Background()); len(failed) != 0 {
		t.Fatalf("a later Kafka outage made the pod unready: %v", failed)
	}
}
