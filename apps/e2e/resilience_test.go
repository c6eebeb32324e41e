package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/gateway/gateway"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// sessionsAcrossInstances: a session opened on one gateway is honoured by
// another and logging out on either ends it everywhere; an event published
// by the worker reaches an SSE client connected to the other gateway.
func sessionsAcrossInstances(t *testing.T, st *stack) {
	topic := "registrations-sessions"
	st.topic(t, topic, 3)
	us, _ := st.startUsers(t, nil)
	env := map[string]string{"KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": topic + ".dlq", "KAFKA_GROUP": "worker-sessions", "USERS_ADDR": us.GRPCAddr()}
	a, _ := st.startGateway(t, env)
	b, _ := st.startGateway(t, env)
	st.startWorker(t, env, nil)

	// An SSE client on B.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.Addr()+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE connect to B: %v %d", err, statusOf(resp))
	}
	defer func() { _ = resp.Body.Close() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	email := "ada@sessions.example.com"
	if r, body, err := post("http://"+a.Addr()+"/v1/register", `{"email":"`+email+`","name":"Ada","password":"difference engine"}`, nil); err != nil || r.StatusCode != 202 {
		t.Fatalf("register on A: %v %d %s", err, statusOf(r), body)
	}
	heard := false
	timeout := time.After(30 * time.Second)
	for !heard {
		select {
		case l := <-lines:
			heard = strings.HasPrefix(l, "data: ") && strings.Contains(l, email)
		case <-timeout:
			t.Fatalf("the SSE client on gateway B never heard the registration accepted by gateway A")
		}
	}

	if r, _, _ := post("http://"+a.Addr()+"/v1/sessions", `{"email":"`+email+`","password":"wrong password"}`, nil); statusOf(r) != 401 {
		t.Errorf("login with a wrong password: %d, want 401", statusOf(r))
	}
	r, body, err := post("http://"+a.Addr()+"/v1/sessions", `{"email":"`+email+`","password":"difference engine"}`, nil)
	if err != nil || r.StatusCode != 201 {
		t.Fatalf("login on A: %v %d %s", err, statusOf(r), body)
	}
	var cookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "sp_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly {
		t.Fatalf("login set no HttpOnly sp_session cookie: %v", r.Cookies())
	}
	hdr := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}
	var me map[string]any
	if r := getJSON(t, "http://"+b.Addr()+"/v1/me", hdr, &me); r.StatusCode != 200 || me["email"] != email {
		t.Fatalf("GET /v1/me on B with A's session: %d %v, want 200 with %s", r.StatusCode, me, email)
	}
	del, _ := http.NewRequest("DELETE", "http://"+b.Addr()+"/v1/sessions?all=true", nil)
	del.Header.Set("Cookie", hdr["Cookie"])
	if r, err := client.Do(del); err != nil || r.StatusCode != 204 {
		t.Fatalf("logout on B: %v %d", err, statusOf(r))
	}
	if r := getJSON(t, "http://"+a.Addr()+"/v1/me", hdr, nil); r.StatusCode != 401 {
		t.Errorf("GET /v1/me on A after logout on B: %d, want 401", r.StatusCode)
	}
}

// rateLimitShared: two gateways sharing Redis enforce one limit per client.
func rateLimitShared(t *testing.T, st *stack) {
	// The client is identified by X-Forwarded-For, as behind the edge: the
	// test's loopback connections play the trusted edge, and the rightmost
	// entry not in 127.0.0.0/8 (203.0.113.7) is the client. Its own key also
	// keeps this tight limit away from other scenarios.
	env := map[string]string{"RATE_LIMIT_RATE": "10", "RATE_LIMIT_PERIOD": "1s", "RATE_LIMIT_BURST": "20", "TRUSTED_PROXY_CIDRS": "127.0.0.0/8"}
	a, _ := st.startGateway(t, env)
	b, _ := st.startGateway(t, env)
	xff := map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
	var allowed, limited [2]atomic.Int64
	var bad atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				gi := (w + i) % 2
				addr := []string{a.Addr(), b.Addr()}[gi]
				r := getJSON(t, "http://"+addr+"/v1/users/not-a-uuid", xff, nil)
				switch r.StatusCode {
				case 400:
					allowed[gi].Add(1)
				case 429:
					limited[gi].Add(1)
					if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Remaining") != "0" || r.Header.Get("RateLimit-Limit") != "20" {
						bad.Store(fmt.Sprintf("429 headers: %v", r.Header))
					}
				default:
					bad.Store(fmt.Sprintf("unexpected status %d", r.StatusCode))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := allowed[0].Load() + allowed[1].Load()
	bound := 20 + 10*elapsed.Seconds() + 1
	t.Logf("100 requests in %v over two gateways: %d allowed (A %d, B %d), %d limited (A %d, B %d); bound %.1f",
		elapsed.Round(time.Millisecond), total, allowed[0].Load(), allowed[1].Load(),
		limited[0].Load()+limited[1].Load(), limited[0].Load(), limited[1].Load(), bound)
	if v := bad.Load(); v != nil {
		t.Errorf("%v", v)
	}
	if float64(total) > bound || total < 20 {
		t.Errorf("allowed %d, want between the burst 20 and %.1f (burst + rate x elapsed): the limit is not shared", total, bound)
	}
	if limited[0].Load() == 0 || limited[1].Load() == 0 {
		t.Errorf("both gateways must answer 429 once the shared bucket is empty: A %d, B %d", limited[0].Load(), limited[1].Load())
	}
}

// breaker: with the users service down the breaker opens and calls fail
// fast; retries never exceed the budget; when the service comes back the
// breaker half-opens and closes.
func breaker(t *testing.T, st *stack) {
	port := realservertest.MustFreePort(t)
	usersAddr := fmt.Sprintf("127.0.0.1:%d", port)
	g, gr := st.startGateway(t, map[string]string{
		"USERS_ADDR": usersAddr, "BREAKER_MIN_REQUESTS": "5", "BREAKER_WINDOW": "5s", "BREAKER_OPEN_FOR": "1s",
		"BREAKER_PROBES": "2", "USERS_ATTEMPTS": "3", "USERS_CALL_TIMEOUT": "300ms",
		"RETRY_BUDGET_RATIO": "0.1", "RETRY_BUDGET_MAX": "3",
	})
	get := func(i int) (int, time.Duration) {
		start := time.Now()
		r := getJSON(t, "http://"+g.Addr()+"/v1/users/"+account.UserID(fmt.Sprintf("nobody%d@breaker.example.com", i)), nil, nil)
		return r.StatusCode, time.Since(start)
	}
	for i := range 10 {
		if code, _ := get(i); code != 503 {
			t.Fatalf("GET with the users service down: %d, want 503", code)
		}
	}
	if s := g.BreakerState(); s != "open" {
		t.Fatalf("breaker %s after 10 failures, want open", s)
	}
	var slowest time.Duration
	for i := 10; i < 20; i++ {
		code, took := get(i)
		if code != 503 {
			t.Fatalf("GET with the breaker open: %d, want 503", code)
		}
		slowest = max(slowest, took)
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("with the breaker open the slowest answer took %v, want a fast failure (< 100ms)", slowest)
	}
	requests, retries := g.Budget().Stats()
	retryAttempts := metric(t, gr.reg, "dependency_attempts_total", map[string]string{"kind": "retry", "result": "error"})
	t.Logf("breaker open; slowest fast-fail %v; %d requests, %d retries (metric %.0f), budget bound %.1f",
		slowest, requests, retries, retryAttempts, g.Budget().Bound())
	if float64(retries) > g.Budget().Bound() || retryAttempts > float64(retries) {
		t.Errorf("retries %d (attempts metric %.0f) exceed the budget bound %.1f", retries, retryAttempts, g.Budget().Bound())
	}

	st.startUsers(t, map[string]string{"GRPC_ADDR": usersAddr})
	recovered := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for g.BreakerState() != "closed" && time.Now().Before(deadline) {
		get(0)
		time.Sleep(100 * time.Millisecond)
	}
	if s := g.BreakerState(); s != "closed" {
		t.Fatalf("breaker %s 20s after the users service returned, want closed", s)
	}
	if code, _ := get(1); code != 404 {
		t.Errorf("GET an unknown user after recovery: %d, want 404 from the users service", code)
	}
	t.Logf("breaker closed %v after the users service came back", time.Since(recovered).Round(time.Millisecond))
}

// sigtermUnderLoad: SIGTERM to a gateway under load loses no request. The
// test plays the load balancer: it stops sending to the gateway once its
// /readyz turns 503, as endpoints do in the drain delay.
func sigtermUnderLoad(t *testing.T, st *stack) {
	topic := "registrations-sigterm"
	st.topic(t, topic, 3)
	env := map[string]string{"KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": topic + ".dlq", "KAFKA_GROUP": "worker-sigterm", "DRAIN_DELAY": "600ms"}
	cfg, err := gateway.ConfigFromEnv(st.env(env))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := gateway.New(context.Background(), cfg, st.telemetry(t, cfg.Telemetry, "gateway"))
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	sigctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(sigctx) }()
	waitReady(t, "http://"+a.Addr()+"/readyz")
	b, _ := st.startGateway(t, env)
	st.startWorker(t, env, nil)

	var aReady atomic.Bool
	aReady.Store(true)
	pollCtx, stopPoll := context.WithCancel(context.Background())
	defer stopPoll()
	go func() {
		for pollCtx.Err() == nil {
			r, err := client.Get("http://" + a.Addr() + "/readyz")
			if err != nil || r.StatusCode != 200 {
				aReady.Store(false)
				if r != nil {
					_ = r.Body.Close()
				}
				return
			}
			_ = r.Body.Close()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var toA, toB atomic.Int64
	pick := func(int) string {
		if aReady.Load() {
			toA.Add(1)
			return "http://" + a.Addr()
		}
		toB.Add(1)
		return "http://" + b.Addr()
	}

	// One request in flight across the signal: its body arrives slowly.
	slow := make(chan string, 1)
	pr, pw := io.Pipe()
	go func() {
		req, _ := http.NewRequest("POST", "http://"+a.Addr()+"/v1/register", pr)
		req.Header.Set("Content-Type", "application/json")
		r, err := client.Do(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		_ = r.Body.Close()
		slow <- fmt.Sprint(r.StatusCode)
	}()
	body := registration(99999, "sigterm.example.com")
	_, _ = pw.Write([]byte(body[:10]))

	var res *loadResult
	loadDone := make(chan struct{})
	go func() {
		res = registerMany(pick, 600, 8, "sigterm.example.com", nil)
		close(loadDone)
	}()
	time.Sleep(700 * time.Millisecond)
	signalled := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // inside the drain delay
	_, _ = pw.Write([]byte(body[10:]))
	_ = pw.Close()
	<-loadDone
	var runErr error
	select {
	case runErr = <-aDone:
	case <-time.After(15 * time.Second):
		t.Fatalf("gateway A did not stop within 15s of SIGTERM")
	}
	stopped := time.Since(signalled)
	slowStatus := <-slow
	t.Logf("SIGTERM under load: %d accepted (%d sent to A, %d to B), %d failed, A stopped %v after the signal, slow in-flight request answered %s",
		res.accepted.Load(), toA.Load(), toB.Load(), len(res.failures), stopped.Round(time.Millisecond), slowStatus)
	if len(res.failures) > 0 || res.retried503.Load() > 0 {
		first := ""
		if len(res.failures) > 0 {
			first = res.failures[0]
		}
		t.Errorf("%d requests failed and %d were answered 503 during the stop; first failure: %s", len(res.failures), res.retried503.Load(), first)
	}
	if slowStatus != "202" {
		t.Errorf("the request in flight across SIGTERM got %s, want 202", slowStatus)
	}
	if runErr != nil {
		t.Errorf("gateway A's Run after SIGTERM: %v, want a clean stop", runErr)
	}
	if toA.Load() == 0 || toB.Load() == 0 {
		t.Errorf("load did not span the stop (A %d, B %d)", toA.Load(), toB.Load())
	}
}
