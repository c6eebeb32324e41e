package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// SignalContext is cancelled by SIGTERM (what Kubernetes sends) or SIGINT.
// main calls it before anything starts serving so that no signal is missed.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// HTTPTimeouts bounds every phase of an HTTP exchange; a server without them
// can be held open forever by slow clients (slowloris).
type HTTPTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// HTTPTimeoutsFromEnv reads HTTP_READ_HEADER_TIMEOUT, HTTP_READ_TIMEOUT,
// HTTP_WRITE_TIMEOUT and HTTP_IDLE_TIMEOUT.
func HTTPTimeoutsFromEnv(e *Env) HTTPTimeouts {
	return HTTPTimeouts{
		ReadHeader: e.Duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute),
		Read:       e.Duration("HTTP_READ_TIMEOUT", 15*time.Second, 100*time.Millisecond, 10*time.Minute),
		Write:      e.Duration("HTTP_WRITE_TIMEOUT", 30*time.Second, 100*time.Millisecond, 10*time.Minute),
		Idle:       e.Duration("HTTP_IDLE_TIMEOUT", 120*time.Second, time.Second, time.Hour),
	}
}

// NewHTTPServer returns a server with every timeout set and open connections
// counted.
func NewHTTPServer(h http.Handler, t HTTPTimeouts, m *Metrics, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		ConnState:         m.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Unit is one thing a service runs until shutdown: a listener being served,
// a consumer loop. Run blocks; Stop asks it to finish in-flight work within
// ctx's deadline.
type Unit struct {
	Name string
	Run  func() error
	Stop func(ctx context.Context) error
}

// HTTPUnit serves srv on ln; Stop is http.Server.Shutdown: it closes the
// listener at once and waits for in-flight requests.
func HTTPUnit(name string, srv *http.Server, ln net.Listener) Unit {
	return Unit{
		Name: name,
		Run: func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		Stop: srv.Shutdown,
	}
}

// Closer releases a resource after every unit has stopped: producers,
// consumers, pools, then telemetry last so the shutdown itself is traced.
type Closer struct {
	Name  string
	Close func(ctx context.Context) error
}

// Lifecycle is the shape of a graceful stop.
type Lifecycle struct {
	Log    *slog.Logger
	Health *Health
	// DrainDelay is how long to stay up, not ready, before closing listeners:
	// the time endpoints controllers and load balancers need to stop sending
	// new requests (keep it below terminationGracePeriodSeconds minus
	// ShutdownTimeout).
	DrainDelay time.Duration
	// ShutdownTimeout bounds draining in-flight work and closing resources.
	ShutdownTimeout time.Duration
}

// LifecycleFromEnv reads DRAIN_DELAY and SHUTDOWN_TIMEOUT.
func LifecycleFromEnv(e *Env) (drainDelay, shutdownTimeout time.Duration) {
	return e.Duration("DRAIN_DELAY", 5*time.Second, 0, time.Minute),
		e.Duration("SHUTDOWN_TIMEOUT", 20*time.Second, time.Second, 5*time.Minute)
}

// Run runs units until ctx is cancelled or one fails, then: marks the
// service not ready, waits DrainDelay, stops every unit (in-flight work
// finishes) and runs closers in reverse order, all within ShutdownTimeout.
func (l Lifecycle) Run(ctx context.Context, units []Unit, closers []Closer) error {
	errc := make(chan error, len(units))
	for _, u := range units {
		go func() {
			if err := u.Run(); err != nil {
				errc <- fmt.Errorf("%s: %w", u.Name, err)
				return
			}
			errc <- nil
		}()
	}
	l.Health.Started()
	l.Log.InfoContext(ctx, "serving")

	var runErr error
	select {
	case <-ctx.Done():
		l.Log.Info("shutdown requested", "reason", context.Cause(ctx).Error())
	case runErr = <-errc:
		if runErr == nil {
			runErr = errors.New("a unit stopped on its own")
		}
		l.Log.Error("unit failed, shutting down", "err", runErr)
	}

	l.Health.Drain()
	if runErr == nil && l.DrainDelay > 0 {
		time.Sleep(l.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), l.ShutdownTimeout)
	defer cancel()
	var mu sync.Mutex
	errs := []error{runErr}
	var wg sync.WaitGroup
	for _, u := range units {
		wg.Go(func() {
			if err := u.Stop(sctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop %s: %w", u.Name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].Close(sctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", closers[i].Name, err))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		l.Log.Error("stopped with errors", "err", err)
	} else {
		l.Log.Info("stopped cleanly")
	}
	return err
}
