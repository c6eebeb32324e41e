package kit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// TelemetryConfig says where traces go and how logs look.
type TelemetryConfig struct {
	// Service is the service.name resource attribute and the log "service" field.
	Service string
	// OTLPEndpoint is host:port of an OTLP/gRPC receiver; empty disables
	// export (spans are still created so trace_id reaches the logs).
	OTLPEndpoint string
	// OTLPInsecure dials the receiver without TLS (in-cluster collectors).
	OTLPInsecure bool
	// SampleRatio is the head-sampling ratio for new traces; parents decide
	// for propagated ones so a trace is never cut in the middle.
	SampleRatio float64
	// LogLevel is the minimum slog level.
	LogLevel slog.Level
	// LogWriter receives JSON logs; nil means stderr.
	LogWriter io.Writer
	// Exporter overrides the OTLP exporter, for tests.
	Exporter sdktrace.SpanExporter
}

// TelemetryFromEnv reads OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_INSECURE,
// OTEL_TRACES_SAMPLER_ARG and LOG_LEVEL.
func TelemetryFromEnv(e *Env, service string) TelemetryConfig {
	c := TelemetryConfig{Service: service}
	c.OTLPEndpoint = e.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	c.OTLPInsecure = e.Bool("OTEL_EXPORTER_OTLP_INSECURE", true)
	// The specification makes the endpoint a URL (what the stacks set:
	// http://otel-collector.<ns>:4317), whose scheme decides TLS; the gRPC
	// exporter wants host:port, and a bare host:port is accepted too.
	if scheme, host, ok := strings.Cut(c.OTLPEndpoint, "://"); ok {
		host = strings.TrimSuffix(host, "/")
		switch {
		case (scheme == "http" || scheme == "https") && host != "" && !strings.ContainsAny(host, "/?#"):
			c.OTLPEndpoint, c.OTLPInsecure = host, scheme == "http"
		default:
			e.fail("OTEL_EXPORTER_OTLP_ENDPOINT", c.OTLPEndpoint, "must be host:port or http(s)://host:port (OTLP over gRPC, no path)")
		}
	}
	c.SampleRatio = e.Float("OTEL_TRACES_SAMPLER_ARG", 1, 0, 1)
	switch lvl := e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	}
	return c
}

// Telemetry bundles a service's tracer provider, propagator, logger and
// metrics. Nothing is installed globally: several services can live in one
// test process, each with its own service.name and registry.
type Telemetry struct {
	Service    string
	Logger     *slog.Logger
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	Metrics    *Metrics
	sdk        *sdktrace.TracerProvider
}

// NewTelemetry builds the providers. Call Shutdown with a deadline when the
// service stops, so that buffered spans are flushed and not lost.
func NewTelemetry(ctx context.Context, c TelemetryConfig) (*Telemetry, error) {
	w := c.LogWriter
	if w == nil {
		w = os.Stderr
	}
	t := &Telemetry{
		Service: c.Service,
		Propagator: propagation.NewCompositeTextMapPropagator(
			propagation.TraceContext{}, propagation.Baggage{}),
		Metrics: NewMetrics(),
	}
	t.Logger = slog.New(traceHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: c.LogLevel})}).
		With("service", c.Service)

	exp := c.Exporter
	if exp == nil && c.OTLPEndpoint != "" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(c.OTLPEndpoint)}
		if c.OTLPInsecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		var err error
		if exp, err = otlptracegrpc.New(ctx, opts...); err != nil {
			return nil, fmt.Errorf("OTLP exporter for %s: %w", c.OTLPEndpoint, err)
		}
	}
	res := resource.NewSchemaless(semconv.ServiceName(c.Service))
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	}
	t.sdk = sdktrace.NewTracerProvider(opts...)
	t.Tracer = t.sdk
	return t, nil
}

// NoopTelemetry is for unit tests that do not look at spans or logs.
func NoopTelemetry(service string) *Telemetry {
	return &Telemetry{
		Service:    service,
		Logger:     slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Tracer:     noop.NewTracerProvider(),
		Propagator: propagation.TraceContext{},
		Metrics:    NewMetrics(),
	}
}

// LogStart logs the runtime limits the process honours; GOMEMLIMIT and
// GOMAXPROCS are read by the Go runtime itself (GOMAXPROCS also follows the
// container's CPU limit since Go 1.25), this only makes them visible.
func (t *Telemetry) LogStart(ctx context.Context, attrs ...any) {
	limit := debug.SetMemoryLimit(-1)
	memLimit := "none"
	if limit != 1<<63-1 {
		memLimit = fmt.Sprintf("%d", limit)
	}
	attrs = append(attrs,
		"gomaxprocs", runtime.GOMAXPROCS(0),
		"gomemlimit_bytes", memLimit,
		"go_version", runtime.Version())
	t.Logger.InfoContext(ctx, "starting", attrs...)
}

// Shutdown flushes and stops the tracer provider within ctx's deadline.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracer provider shutdown: %w", err)
	}
	return nil
}

// HTTPHandler wraps h with server spans; probes and scrapes are left out of
// traces because they are noise that would drown the sampled requests.
//
// It is not otelhttp's handler: on a cached GET that one cost about a fifth
// of the gateway's CPU, mostly for work nobody reads. It records OTel
// metrics on every request, building and sorting an attribute set, and no
// option turns that off (WithMeterProvider only changes where they go;
// the services install no MeterProvider, their RED metrics are Prometheus'),
// and it builds the request and response attributes even for the spans the
// sampler drops. Here every request still gets a span, so the trace context
// is extracted, propagated downstream and logged, but the attributes, the
// final name and the status writer are paid for only when the span records.
//
// With ResolveClient, the request's client address is resolved here, once,
// before anything else sees the request, and carried in its context
// (WithClientAddress) for the span, the logs and the handlers. Here rather
// than in a middleware of its own because a context value needs a copy of
// the request, and this handler makes one anyway: a middleware's own copy
// cost 384 bytes in three allocations per request, this 64 in two
// (BenchmarkHTTPHandlerResolvingTheClient).
func (t *Telemetry) HTTPHandler(h http.Handler, operation string, opts ...HTTPOption) http.Handler {
	var o httpOptions
	for _, opt := range opts {
		opt(&o)
	}
	tracer := t.Tracer.Tracer("scaleplane/kit/http")
	// Built once: an option is an interface value, boxed anew on each call.
	server := trace.WithSpanKind(trace.SpanKindServer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isProbe(r.URL.Path) {
			// Neither traced nor resolved: probes and scrapes come from the
			// kubelet and Prometheus, are never rate-limited and log nothing.
			h.ServeHTTP(w, r)
			return
		}
		ctx := t.Propagator.Extract(r.Context(), requestCarrier(r.Header))
		if o.resolveClient != nil {
			ctx = WithClientAddress(ctx, o.resolveClient(r))
		}
		// The sampler sees the operation; the route is only known once the
		// mux has matched, so a recorded span is renamed below.
		ctx, span := tracer.Start(ctx, operation, server)
		defer span.End()
		r = r.WithContext(ctx)
		if !span.IsRecording() {
			h.ServeHTTP(w, r)
			return
		}
		span.SetAttributes(requestAttrs(r)...)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		if r.Pattern != "" {
			span.SetName(r.Pattern)
			span.SetAttributes(semconv.HTTPRoute(route(r.Pattern)))
		} else {
			span.SetName(r.Method + " " + r.URL.Path)
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
	})
}

// HTTPOption adjusts HTTPHandler.
type HTTPOption func(*httpOptions)

type httpOptions struct {
	resolveClient func(*http.Request) string
}

// ResolveClient makes HTTPHandler resolve each request's client address
// with resolve (behind trusted proxies, not necessarily the connection's
// peer) and carry it in the request's context: the server span's
// client.address, the logs' client.address and the service's own
// per-client decisions (ClientAddress) then all name the same client.
func ResolveClient(resolve func(*http.Request) string) HTTPOption {
	return func(o *httpOptions) { o.resolveClient = resolve }
}

// requestCarrier is propagation.HeaderCarrier for extraction, with the
// W3C headers the propagators read looked up under their canonical forms.
// They ask in lower case ("traceparent", "baggage"), which Header.Get
// canonicalizes anew on every call, allocating each time: on a cached GET
// that was about 1 % of the gateway's CPU, for headers most requests lack.
type requestCarrier http.Header

// canonicalTraceHeader is the canonical form of a header the propagators
// read, if key is one of them.
func canonicalTraceHeader(key string) (string, bool) {
	switch key {
	case "traceparent":
		return "Traceparent", true
	case "tracestate":
		return "Tracestate", true
	case "baggage":
		return "Baggage", true
	}
	return "", false
}

func (c requestCarrier) Get(key string) string {
	if k, ok := canonicalTraceHeader(key); ok {
		if v := c[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return propagation.HeaderCarrier(c).Get(key)
}

func (c requestCarrier) Values(key string) []string {
	if k, ok := canonicalTraceHeader(key); ok {
		return c[k]
	}
	return propagation.HeaderCarrier(c).Values(key)
}

func (c requestCarrier) Set(key, value string) { propagation.HeaderCarrier(c).Set(key, value) }

func (c requestCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// requestAttrs are the HTTP semantic-convention attributes of a server
// span that are known before the handler runs.
func requestAttrs(r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLScheme(scheme),
		semconv.URLPath(r.URL.Path),
		semconv.NetworkProtocolVersion(strings.TrimPrefix(r.Proto, "HTTP/")),
	}
	// network.peer.address is the connection's other end (behind the edge,
	// an edge pod); client.address is the client the service resolved
	// (WithClientAddress), the peer itself when none was.
	client := ClientAddress(r.Context())
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.NetworkPeerPort(p))
		}
		if client == "" {
			client = host
		}
	}
	if client != "" {
		attrs = append(attrs, semconv.ClientAddress(client))
	}
	if host, port, err := net.SplitHostPort(r.Host); err == nil {
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	} else if r.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(r.Host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	return attrs
}

// route is a mux pattern without its method ("GET /v1/users/{id}" gives
// "/v1/users/{id}"), the form http.route takes.
func route(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		return pattern[i:]
	}
	return pattern
}

func isProbe(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// GRPCServerHandler is the stats handler for gRPC servers, with the health
// service filtered out of traces.
func (t *Telemetry) GRPCServerHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.Tracer),
		otelgrpc.WithPropagators(t.Propagator),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	)
}

// GRPCDialOption instruments a gRPC client so the trace context travels in
// the call's metadata.
func (t *Telemetry) GRPCDialOption() grpc.DialOption {
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.Tracer),
		otelgrpc.WithPropagators(t.Propagator),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	))
}

// traceHandler adds trace_id and span_id to every record logged with a
// context that carries a span, so logs and traces join on one id, and
// client.address to every record logged with a request's context that
// carries the resolved client (WithClientAddress), under the name the
// server span gives it, so a log line and its span name the same client.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()))
	}
	if ctx != nil {
		if addr := ClientAddress(ctx); addr != "" {
			r.AddAttrs(slog.String(string(semconv.ClientAddressKey), addr))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// Attr is a shorthand for span attributes built from strings.
func Attr(k, v string) attribute.KeyValue { return attribute.String(k, v) }
