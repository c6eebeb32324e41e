package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func policy(t *testing.T, ratio, max float64) *Policy {
	t.Helper()
	p := &Policy{Name: "dep", Attempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		CallTimeout: 50 * time.Millisecond, Budget: NewBudget(ratio, max), Retryable: GRPCRetryable, Healthy: GRPCHealthy}
	p.Init(BreakerConfig{Window: time.Second, MinRequests: 4, FailureRatio: 0.5, OpenFor: 100 * time.Millisecond, Probes: 1},
		prometheus.NewRegistry())
	return p
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	p := policy(t, 1, 100)
	down := true
	calls := 0
	fn := func(context.Context) (int, error) {
		calls++
		if down {
			return 0, status.Error(codes.Unavailable, "down")
		}
		return 7, nil
	}
	for range 4 {
		if _, err := Do(context.Background(), p, fn); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Do with the dependency down = %v, want ErrUnavailable", err)
		}
	}
	if p.State().String() != "open" {
		t.Fatalf("state %s after repeated failures, want open", p.State())
	}
	before := calls
	if _, err := Do(context.Background(), p, fn); !errors.Is(err, ErrUnavailable) || calls != before {
		t.Fatalf("open breaker: err %v, %d new calls; want ErrUnavailable and no call", err, calls-before)
	}
	down = false
	time.Sleep(120 * time.Millisecond)
	if v, err := Do(context.Background(), p, fn); err != nil || v != 7 {
		t.Fatalf("half-open probe = %v, %v; want 7, nil", v, err)
	}
	if p.State().String() != "closed" {
		t.Errorf("state %s after a successful probe, want closed", p.State())
	}
}

func TestNotFoundIsFinalAndHealthy(t *testing.T) {
	p := policy(t, 1, 100)
	calls := 0
	for range 10 {
		_, err := Do(context.Background(), p, func(context.Context) (int, error) {
			calls++
			return 0, status.Error(codes.NotFound, "no")
		})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("err = %v, want NotFound passed through", err)
		}
	}
	if calls != 10 || p.State().String() != "closed" {
		t.Errorf("%d calls, state %s; want 10 (no retries of a final error) and closed", calls, p.State())
	}
}

func TestRetriesStayWithinBudget(t *testing.T) {
	p := policy(t, 0.1, 2)
	p.Init(BreakerConfig{Window: time.Second, MinRequests: 1 << 30, FailureRatio: 1, OpenFor: time.Second}, prometheus.NewRegistry())
	attempts := 0
	for range 50 {
		_, _ = Do(context.Background(), p, func(context.Context) (int, error) {
			attempts++
			return 0, status.Error(codes.Unavailable, "flaky")
		})
	}
	req, retries := p.Budget.Stats()
	if req != 50 || float64(retries) > 2+0.1*50 || attempts != 50+int(retries) {
		t.Errorf("%d requests, %d retries, %d attempts; want retries <= 2 + 0.1*50 = 7 and attempts = requests + retries", req, retries, attempts)
	}
	if retries == 0 {
		t.Errorf("no retry at all: the budget should allow some")
	}
}

func TestDeadlinePerAttempt(t *testing.T) {
	p := policy(t, 1, 100)
	start := time.Now()
	_, err := Do(context.Background(), p, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, status.FromContextError(ctx.Err()).Err()
	})
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
		t.Errorf("a hanging dependency: err %v after %v; want ErrUnavailable within 3 x 50ms + backoff", err, time.Since(start))
	}
}
