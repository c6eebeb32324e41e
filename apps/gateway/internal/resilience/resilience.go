// Package resilience wraps calls to a dependency so that its failure costs
// the gateway little: a per-attempt deadline, retries with exponential
// backoff and full jitter drawn from a retry budget, and a circuit breaker
// that fails fast while the dependency is down and probes it when it may be
// back.
package resilience

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// ErrUnavailable is returned when the breaker is open or the call failed
// after the retries the budget allowed; callers answer 503 or a fallback.
var ErrUnavailable = errors.New("dependency unavailable")

// Budget caps retries to a fraction of requests, so that when a dependency
// struggles the retries cannot multiply its load (a retry storm). Each
// request deposits Ratio tokens, each retry spends one; the bucket holds at
// most Max and starts full, so over any run retries <= Max + Ratio*requests.
type Budget struct {
	mu              sync.Mutex
	tokens, max     float64
	ratio           float64
	requests, spent uint64
}

// NewBudget returns a full budget.
func NewBudget(ratio, max float64) *Budget { return &Budget{tokens: max, max: max, ratio: ratio} }

// OnRequest records a first attempt.
func (b *Budget) OnRequest() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests++
	b.tokens = min(b.max, b.tokens+b.ratio)
}

// TryRetry spends a token if one is left.
func (b *Budget) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	b.spent++
	return true
}

// Stats returns the requests and retries seen so far.
func (b *Budget) Stats() (requests, retries uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests, b.spent
}

// Bound is the most retries the budget can have allowed so far.
func (b *Budget) Bound() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max + b.ratio*float64(b.requests)
}

// BreakerConfig shapes the circuit breaker.
type BreakerConfig struct {
	// Window is the rolling window over which the failure ratio is counted
	// (in 10 buckets).
	Window time.Duration
	// MinRequests is how many calls the window needs before it may trip, so
	// that one failure out of one call does not open the circuit.
	MinRequests uint32
	// FailureRatio trips the breaker (the articles' 50 %).
	FailureRatio float64
	// OpenFor is how long the breaker stays open before half-open probing.
	OpenFor time.Duration
	// Probes is how many calls half-open lets through; all must succeed.
	Probes uint32
}

// Policy is how one dependency is called.
type Policy struct {
	Name string
	// Attempts is the most tries per call, the first included.
	Attempts int
	// BaseBackoff and MaxBackoff bound the full-jitter backoff:
	// sleep = random(0, min(MaxBackoff, BaseBackoff * 2^attempt)).
	BaseBackoff, MaxBackoff time.Duration
	// CallTimeout is each attempt's deadline.
	CallTimeout time.Duration
	Budget      *Budget
	// Retryable tells transient errors (worth another try) from final ones.
	Retryable func(error) bool
	// Healthy tells errors that prove the dependency works (not found,
	// invalid argument): they count as successes for the breaker.
	Healthy func(error) bool

	breaker  *gobreaker.CircuitBreaker[any]
	state    prometheus.Gauge
	attempts *prometheus.CounterVec
}

// Init builds the breaker and registers the policy's metrics on reg.
func (p *Policy) Init(bc BreakerConfig, reg prometheus.Registerer) {
	p.state = prometheus.NewGauge(prometheus.GaugeOpts{Name: "circuit_breaker_state",
		Help: "0 closed, 1 half-open, 2 open.", ConstLabels: prometheus.Labels{"dependency": p.Name}})
	p.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dependency_attempts_total",
		Help:        "Calls to a dependency by kind (first, retry) and result (ok, error, rejected).",
		ConstLabels: prometheus.Labels{"dependency": p.Name}}, []string{"kind", "result"})
	reg.MustRegister(p.state, p.attempts)
	p.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:         p.Name,
		MaxRequests:  bc.Probes,
		Interval:     bc.Window,
		BucketPeriod: bc.Window / 10,
		Timeout:      bc.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= bc.MinRequests && float64(c.TotalFailures) >= bc.FailureRatio*float64(c.Requests)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) { p.state.Set(float64(to)) },
		IsSuccessful:  func(err error) bool { return err == nil || (p.Healthy != nil && p.Healthy(err)) },
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
	})
}

// State is the breaker's state.
func (p *Policy) State() gobreaker.State { return p.breaker.State() }

// Do calls fn under the policy. It returns fn's own error when that error
// is final, ErrUnavailable (wrapping the cause) when the breaker rejected
// the call or the retries ran out, and ctx's error when the caller gave up.
func Do[T any](ctx context.Context, p *Policy, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	p.Budget.OnRequest()
	var last error
	for attempt := 0; attempt < p.Attempts; attempt++ {
		kind := "first"
		if attempt > 0 {
			if !p.Budget.TryRetry() {
				p.attempts.WithLabelValues("retry", "budget_exhausted").Inc()
				break
			}
			kind = "retry"
			d := min(p.MaxBackoff, p.BaseBackoff<<min(attempt-1, 30))
			select {
			case <-time.After(time.Duration(rand.Int64N(int64(d) + 1))):
			case <-ctx.Done():
				return zero, ctx.Err()
			}
		}
		v, err := p.breaker.Execute(func() (any, error) {
			cctx, cancel := context.WithTimeout(ctx, p.CallTimeout)
			defer cancel()
			return fn(cctx)
		})
		switch {
		case err == nil:
			p.attempts.WithLabelValues(kind, "ok").Inc()
			return v.(T), nil
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			// Fail fast: the breaker exists so that nobody waits on a
			// dependency known to be down.
			p.attempts.WithLabelValues(kind, "rejected").Inc()
			return zero, errors.Join(ErrUnavailable, err)
		}
		p.attempts.WithLabelValues(kind, "error").Inc()
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		if p.Retryable == nil || !p.Retryable(err) {
			return zero, err
		}
		last = err
	}
	return zero, errors.Join(ErrUnavailable, last)
}
