package kit

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Metrics is one service's Prometheus registry with the RED series every
// service exposes: rate and errors through the code label, duration through
// the histogram, per route (HTTP) or method (gRPC).
type Metrics struct {
	Registry     *prometheus.Registry
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInflight prometheus.Gauge
	openConns    *prometheus.GaugeVec
	grpcHandled  *prometheus.CounterVec
	grpcDuration *prometheus.HistogramVec
}

// runtimeMetrics picks, from runtime/metrics, what the articles watch on Node
// (event-loop lag, GC, handles): scheduler latency is the Go counterpart of
// event-loop lag (how long a runnable goroutine waits for a thread), then the
// GC pauses (stop-the-world) and the goroutine count.
var runtimeMetrics = regexp.MustCompile(`^/(sched/latencies|sched/pauses/total/gc|gc/pauses|sched/goroutines|gc/heap/goal|gc/gogc|gc/gomemlimit|sched/gomaxprocs)`)

// NewMetrics registers the process, Go runtime and RED collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_server_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		httpInflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_server_requests_in_flight",
			Help: "HTTP requests being served now; what a graceful stop drains.",
		}),
		openConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "server_open_connections",
			Help: "Open client connections by protocol (http, grpc).",
		}, []string{"protocol"}),
		grpcHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "gRPC calls by full method and status code.",
		}, []string{"method", "code"}),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "gRPC call latency by full method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
	}
	r.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: runtimeMetrics})),
		m.httpRequests, m.httpDuration, m.httpInflight, m.openConns, m.grpcHandled, m.grpcDuration,
	)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Route wraps one route's handler; the pattern is the label, never the raw
// path, so ids in URLs cannot explode the series count.
//
// The series a route mostly records, its own method answered 200, are
// looked up once here: WithLabelValues hashes every label and formats the
// code on each call, which on a cached GET was a measurable share of the
// request. Other methods (HEAD on a GET route) and codes take that path.
func (m *Metrics) Route(pattern string, h http.Handler) http.Handler {
	method, _, hasMethod := strings.Cut(pattern, " ")
	if !hasMethod {
		method = ""
	}
	var okCount prometheus.Counter
	var methodDuration prometheus.Observer
	if method != "" {
		okCount = m.httpRequests.WithLabelValues(pattern, method, "200")
		methodDuration = m.httpDuration.WithLabelValues(pattern, method)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Since(epoch)
		m.httpInflight.Inc()
		defer m.httpInflight.Dec()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		d := (time.Since(epoch) - start).Seconds()
		if r.Method == method {
			if sw.code == http.StatusOK {
				okCount.Inc()
			} else {
				m.httpRequests.WithLabelValues(pattern, method, strconv.Itoa(sw.code)).Inc()
			}
			methodDuration.Observe(d)
			return
		}
		m.httpRequests.WithLabelValues(pattern, r.Method, strconv.Itoa(sw.code)).Inc()
		m.httpDuration.WithLabelValues(pattern, r.Method).Observe(d)
	})
}

// epoch is what Route measures from: time.Since of a time with a monotonic
// reading reads only the monotonic clock, where time.Now reads the wall
// clock too, so a request's duration costs two clock reads instead of
// three.
var epoch = time.Now()

// ConnState counts open HTTP connections; set it as http.Server.ConnState.
func (m *Metrics) ConnState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		m.openConns.WithLabelValues("http").Inc()
	case http.StateClosed, http.StateHijacked:
		m.openConns.WithLabelValues("http").Dec()
	}
}

// GRPCUnary records RED metrics for unary gRPC calls.
func (m *Metrics) GRPCUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		m.grpcHandled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		m.grpcDuration.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// GRPCConns is a stats handler counting open gRPC connections.
func (m *Metrics) GRPCConns() stats.Handler { return grpcConns{m} }

type grpcConns struct{ m *Metrics }

func (g grpcConns) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (g grpcConns) HandleRPC(context.Context, stats.RPCStats)                         {}
func (g grpcConns) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (g grpcConns) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		g.m.openConns.WithLabelValues("grpc").Inc()
	case *stats.ConnEnd:
		g.m.openConns.WithLabelValues("grpc").Dec()
	}
}

// statusWriter remembers the status code; it forwards Flush and Unwrap so
// that streaming handlers (SSE) and http.ResponseController keep working.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
