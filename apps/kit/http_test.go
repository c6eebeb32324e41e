package kit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// tracedMux is what a service serves: a mux of routes behind HTTPHandler.
// Each handler reports the span context it ran in.
func tracedMux(t *testing.T, ratio float64) (*Telemetry, *tracetest.InMemoryExporter, http.Handler, *trace.SpanContext) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tel, err := NewTelemetry(context.Background(), TelemetryConfig{Service: "t", SampleRatio: ratio, Exporter: exp})
	if err != nil {
		t.Fatalf("NewTelemetry: %v", err)
	}
	var seen trace.SpanContext
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		_, _ = w.Write([]byte("{}"))
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
	})
	return tel, exp, tel.HTTPHandler(mux, "t"), &seen
}

func flushed(t *testing.T, tel *Telemetry, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	if err := tel.sdk.ForceFlush(context.Background()); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	return exp.GetSpans()
}

func TestSampledRequestIsAServerSpanNamedByRouteChildOfTheCaller(t *testing.T) {
	tel, exp, h, _ := tracedMux(t, 1)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := httptest.NewRequest("GET", "/v1/users/42", nil)
	req.Header.Set("traceparent", parent)
	h.ServeHTTP(httptest.NewRecorder(), req)
	req = httptest.NewRequest("GET", "/fail", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)

	spans := flushed(t, tel, exp)
	if len(spans) != 2 {
		t.Fatalf("want 2 spans, got %d", len(spans))
	}
	s := spans[0]
	if s.Name != "GET /v1/users/{id}" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q kind %v, want the route pattern and server kind", s.Name, s.SpanKind)
	}
	if s.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("parent %v, want the caller's traceparent", s.Parent)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes {
		attrs[a.Key] = a.Value
	}
	for k, want := range map[attribute.Key]string{"http.route": "/v1/users/{id}", "http.request.method": "GET", "url.path": "/v1/users/42"} {
		if attrs[k].AsString() != want {
			t.Errorf("%s = %q, want %q", k, attrs[k].AsString(), want)
		}
	}
	if attrs["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("status code attribute %v, want 200", attrs["http.response.status_code"])
	}
	if spans[1].Status.Code != codes.Error || spans[1].Name != "GET /fail" {
		t.Errorf("a 503 span is %q with status %v, want an error", spans[1].Name, spans[1].Status)
	}
}

func TestUnsampledRequestStillCarriesTheTraceContext(t *testing.T) {
	tel, exp, h, seen := tracedMux(t, 0)
	// A new trace the sampler drops: the handler still has a valid span
	// context, so logs and downstream calls carry a trace id.
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/users/42", nil))
	if !seen.IsValid() || seen.IsSampled() {
		t.Errorf("handler span context %v, want valid and not sampled", *seen)
	}
	// A caller's unsampled trace is continued, not restarted.
	req := httptest.NewRequest("GET", "/v1/users/42", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s, want the caller's", seen.TraceID())
	}
	// A caller's sampled trace is recorded whatever the ratio (parent based).
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if spans := flushed(t, tel, exp); len(spans) != 1 || spans[0].Name != "GET /v1/users/{id}" {
		t.Errorf("want only the sampled caller's span, got %d spans", len(spans))
	}
}

func TestProbesAreNotTraced(t *testing.T) {
	tel, exp, h, seen := tracedMux(t, 1)
	req := httptest.NewRequest("GET", "/readyz", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if seen.IsValid() {
		t.Errorf("a probe ran in span context %v", *seen)
	}
	if spans := flushed(t, tel, exp); len(spans) != 0 {
		t.Errorf("probes make no spans, got %d", len(spans))
	}
}

func TestRouteCountsByRouteMethodAndCode(t *testing.T) {
	m := NewMetrics()
	code := http.StatusOK
	h := m.Route("GET /x/{id}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if code != http.StatusOK {
			w.WriteHeader(code)
		}
	}))
	for _, c := range []struct {
		method string
		code   int
	}{{"GET", 200}, {"GET", 200}, {"GET", 404}, {"HEAD", 200}} {
		code = c.code
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, "/x/1", nil))
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`http_server_requests_total{code="200",method="GET",route="GET /x/{id}"} 2`,
		`http_server_requests_total{code="404",method="GET",route="GET /x/{id}"} 1`,
		`http_server_requests_total{code="200",method="HEAD",route="GET /x/{id}"} 1`,
		`http_server_request_duration_seconds_count{method="GET",route="GET /x/{id}"} 3`,
		`http_server_request_duration_seconds_count{method="HEAD",route="GET /x/{id}"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestTraceHeadersAreFoundWhateverTheirSpelling: the extraction carrier
// looks the W3C headers up under their canonical forms and every other key
// as Header.Get would, so a caller's trace state and baggage still arrive.
func TestTraceHeadersAreFoundWhateverTheirSpelling(t *testing.T) {
	h := http.Header{}
	h.Set("TRACEPARENT", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("tracestate", "vendor=x")
	h.Add("Baggage", "a=1")
	h.Add("baggage", "b=2")
	h.Set("X-Other", "y")
	c := requestCarrier(h)
	if c.Get("traceparent") != h.Get("Traceparent") || c.Get("tracestate") != "vendor=x" || c.Get("x-other") != "y" {
		t.Errorf("Get: %q %q %q", c.Get("traceparent"), c.Get("tracestate"), c.Get("x-other"))
	}
	if got := c.Values("baggage"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Values(baggage) = %q, want both values", got)
	}
	if c.Get("baggage") != "a=1" || c.Get("nothing") != "" || len(c.Values("tracestate")) != 1 {
		t.Errorf("Get(baggage) = %q, Get(nothing) = %q", c.Get("baggage"), c.Get("nothing"))
	}
	tel := NoopTelemetry("t")
	tel.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	ctx := tel.Propagator.Extract(context.Background(), c)
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.TraceState().Get("vendor") != "x" {
		t.Errorf("span context %v, want the caller's trace and its state", sc)
	}
	if b := baggage.FromContext(ctx); b.Member("a").Value() != "1" || b.Member("b").Value() != "2" {
		t.Errorf("baggage %v, want both members", b)
	}
}

// TestResolvedClientReachesSpanLogsAndHandler: with ResolveClient the
// client is resolved once and the span's client.address, the log line's
// client.address and the handler's ClientAddress are that one value, while
// network.peer.address stays the connection's peer (the edge pod).
func TestResolvedClientReachesSpanLogsAndHandler(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	var logs bytes.Buffer
	tel, err := NewTelemetry(context.Background(), TelemetryConfig{Service: "t", SampleRatio: 1, Exporter: exp, LogWriter: &logs})
	if err != nil {
		t.Fatalf("NewTelemetry: %v", err)
	}
	resolved := 0
	var seen string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		seen = ClientAddress(r.Context())
		tel.Logger.WarnContext(r.Context(), "something the request logs")
	})
	h := tel.HTTPHandler(mux, "t", ResolveClient(func(r *http.Request) string {
		resolved++
		return r.Header.Get("X-Forwarded-For")
	}))
	req := httptest.NewRequest("GET", "/v1/me", nil)
	req.RemoteAddr = "10.244.0.7:41000"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	h.ServeHTTP(httptest.NewRecorder(), req)

	if resolved != 1 || seen != "203.0.113.9" {
		t.Errorf("resolved %d times, handler saw %q; want once and 203.0.113.9", resolved, seen)
	}
	spans := flushed(t, tel, exp)
	if len(spans) != 1 {
		t.Fatalf("want 1 span, got %d", len(spans))
	}
	attrs := map[attribute.Key]string{}
	for _, a := range spans[0].Attributes {
		attrs[a.Key] = a.Value.String()
	}
	if attrs["client.address"] != "203.0.113.9" || attrs["network.peer.address"] != "10.244.0.7" {
		t.Errorf("span client.address %q, network.peer.address %q; want the resolved client 203.0.113.9 and the peer 10.244.0.7",
			attrs["client.address"], attrs["network.peer.address"])
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log is not one JSON object: %v: %s", err, logs.String())
	}
	if line["client.address"] != "203.0.113.9" {
		t.Errorf("log client.address = %v, want the resolved 203.0.113.9; line %s", line["client.address"], logs.String())
	}
}

// TestWithoutAResolverTheClientIsThePeer: a service that resolves nothing
// reports the connection's peer as the client, as semconv says.
func TestWithoutAResolverTheClientIsThePeer(t *testing.T) {
	tel, exp, h, _ := tracedMux(t, 1)
	req := httptest.NewRequest("GET", "/v1/users/42", nil)
	req.RemoteAddr = "192.0.2.8:1234"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	h.ServeHTTP(httptest.NewRecorder(), req)
	spans := flushed(t, tel, exp)
	if len(spans) != 1 {
		t.Fatalf("want 1 span, got %d", len(spans))
	}
	for _, a := range spans[0].Attributes {
		if a.Key == "client.address" && a.Value.AsString() != "192.0.2.8" {
			t.Errorf("client.address = %q without a resolver, want the peer 192.0.2.8", a.Value.AsString())
		}
	}
}

// BenchmarkHTTPHandlerResolvingTheClient is the cost ResolveClient adds to
// an unsampled request: compare with BenchmarkHTTPHandler.
func BenchmarkHTTPHandlerResolvingTheClient(b *testing.B) {
	benchmarkHTTPHandler(b, ResolveClient(func(*http.Request) string { return "203.0.113.9" }))
}

// BenchmarkHTTPHandler is an unsampled request through HTTPHandler.
func BenchmarkHTTPHandler(b *testing.B) { benchmarkHTTPHandler(b) }

func benchmarkHTTPHandler(b *testing.B, opts ...HTTPOption) {
	tel, err := NewTelemetry(context.Background(), TelemetryConfig{Service: "t", SampleRatio: 0})
	if err != nil {
		b.Fatalf("NewTelemetry: %v", err)
	}
	h := tel.HTTPHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), "t", opts...)
	r := httptest.NewRequest("GET", "/v1/me", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
