package kit

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Health tracks readiness: not ready until Started, not ready again from the
// moment draining begins, and not ready while a dependency check fails, so
// that Kubernetes stops routing to the pod before it stops listening.
type Health struct {
	started  atomic.Bool
	draining atomic.Bool
	mu       sync.Mutex
	checks   map[string]Check
	timeout  time.Duration
}

// NewHealth returns a Health whose checks each get timeout.
func NewHealth(timeout time.Duration) *Health {
	return &Health{checks: map[string]Check{}, timeout: timeout}
}

// AddCheck registers a named dependency check run by Ready.
func (h *Health) AddCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// AddStartupCheck registers a check of a dependency every replica shares
// (Kafka, Redis): it holds readiness back until it first passes, and from
// then on a failure no longer makes the pod unready. Otherwise one shared
// outage makes every replica unready at once, the Service loses all its
// endpoints, and the edge answers 502/504 even to requests the pods could
// serve (cached reads) or refuse properly (503 with Retry-After).
func (h *Health) AddStartupCheck(name string, c Check) {
	var passed atomic.Bool
	h.AddCheck(name, func(ctx context.Context) error {
		if passed.Load() {
			return nil
		}
		err := c(ctx)
		if err == nil {
			passed.Store(true)
		}
		return err
	})
}

// Started marks the service as having finished its start-up.
func (h *Health) Started() { h.started.Store(true) }

// Drain marks the service as stopping: readiness fails from now on.
func (h *Health) Drain() { h.draining.Store(true) }

// Draining reports whether Drain was called.
func (h *Health) Draining() bool { return h.draining.Load() }

// Ready runs the checks and returns the failures by name (empty when ready).
func (h *Health) Ready(ctx context.Context) map[string]string {
	failed := map[string]string{}
	if !h.started.Load() {
		failed["startup"] = "not started"
	}
	if h.draining.Load() {
		failed["shutdown"] = "draining"
	}
	h.mu.Lock()
	checks := make(map[string]Check, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	var fm sync.Mutex
	for name, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, h.timeout)
			defer cancel()
			if err := c(cctx); err != nil {
				fm.Lock()
				failed[name] = err.Error()
				fm.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// LiveHandler answers 200 while the process can serve HTTP at all; it checks
// no dependency, because restarting a pod never fixes its database.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
}

// ReadyHandler answers 200 when ready and 503 with the failing checks.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "not ready", "failed": failed})
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
}

// SyncGRPC keeps a gRPC health server's status for services (and for "",
// the whole server) equal to Ready, every interval until ctx ends; the final
// state is NOT_SERVING so that clients move away before the server stops.
func (h *Health) SyncGRPC(ctx context.Context, hs *health.Server, interval time.Duration, services ...string) {
	set := func(s healthpb.HealthCheckResponse_ServingStatus) {
		hs.SetServingStatus("", s)
		for _, name := range services {
			hs.SetServingStatus(name, s)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if len(h.Ready(ctx)) == 0 {
			set(healthpb.HealthCheckResponse_SERVING)
		} else {
			set(healthpb.HealthCheckResponse_NOT_SERVING)
		}
		select {
		case <-ctx.Done():
			set(healthpb.HealthCheckResponse_NOT_SERVING)
			return
		case <-t.C:
		}
	}
}
