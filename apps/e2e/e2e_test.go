package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/worker/worker"
)

const registrations = 1000

// TestEndToEnd starts one stack (Kafka with three KRaft nodes, a six-node
// Redis Cluster, Postgres primary + replica behind PgBouncer) and runs the
// proofs in sequence on it; each scenario has its own topic and email
// domain so that counts never mix.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts three Kafka JVMs, six redis-servers, two Postgres and PgBouncer (~1 min on 2 cores)")
	}
	st := startStack(t, 3)
	t.Run("ExactlyOnce", func(t *testing.T) { exactlyOnce(t, st, "plain") })
	t.Run("ExactlyOnceWorkerKilledMidBatch", func(t *testing.T) { exactlyOnce(t, st, "worker-killed") })
	t.Run("ExactlyOncePostgresRestarted", func(t *testing.T) { exactlyOnce(t, st, "postgres-restarted") })
	t.Run("OneTraceAcrossServices", func(t *testing.T) { oneTrace(t, st) })
	t.Run("SessionsAndEventsAcrossInstances", func(t *testing.T) { sessionsAcrossInstances(t, st) })
	t.Run("RateLimitSharedAcrossInstances", func(t *testing.T) { rateLimitShared(t, st) })
	t.Run("BreakerOpensAndRecoversWithinRetryBudget", func(t *testing.T) { breaker(t, st) })
	t.Run("SIGTERMUnderLoad", func(t *testing.T) { sigtermUnderLoad(t, st) })
	// Last: the cluster runs on two nodes afterwards.
	t.Run("ExactlyOnceKafkaBrokerKilled", func(t *testing.T) { exactlyOnce(t, st, "broker-killed") })
}

// exactlyOnce sends 1,000 registrations through two gateways and proves that
// exactly 1,000 rows result, with the named failure injected mid-run.
func exactlyOnce(t *testing.T, st *stack, scenario string) {
	topic := "registrations-" + scenario
	domain := scenario + ".example.com"
	st.topic(t, topic, 6)
	env := map[string]string{"KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": topic + ".dlq", "KAFKA_GROUP": "worker-" + scenario}
	g1, _ := st.startGateway(t, env)
	g2, _ := st.startGateway(t, env)
	gws := []string{"http://" + g1.Addr(), "http://" + g2.Addr()}

	var redelivered float64
	// counter is the registry of the worker that finishes the run.
	counter := make(chan *running, 1)
	switch scenario {
	case "worker-killed":
		// Crash in the worst place: after the database commit, before the
		// offset commit, on the third batch.
		batches := 0
		victim := make(chan *worker.Worker, 1)
		killed := make(chan struct{})
		w, _ := st.startWorker(t, env, func(ctx context.Context, n int) {
			if batches++; batches == 3 {
				v := <-victim
				go func() { v.Abort(); close(killed) }()
				<-ctx.Done()
			}
		})
		victim <- w
		go func() {
			<-killed
			_, r := st.startWorker(t, env, nil)
			counter <- r
		}()
	default:
		_, r := st.startWorker(t, env, nil)
		counter <- r
	}

	var injected time.Time
	inject := func(accepted int64) {
		if accepted != registrations/3 || scenario == "plain" || scenario == "worker-killed" {
			return
		}
		injected = time.Now()
		switch scenario {
		case "postgres-restarted":
			go func() {
				if err := st.pg.Restart(); err != nil {
					t.Errorf("%v", err)
				}
			}()
		case "broker-killed":
			go st.kafka.Kill(0)
		}
	}
	start := time.Now()
	res := registerMany(func(i int) string { return gws[i%2] }, registrations, 16, domain, inject)
	acceptTook := time.Since(start)
	if len(res.failures) > 0 {
		t.Fatalf("%d registrations failed, first: %s", len(res.failures), res.failures[0])
	}
	if got := res.accepted.Load(); got != registrations {
		t.Fatalf("accepted %d registrations with 202, want %d", got, registrations)
	}
	rows, waited := st.waitRows(t, domain, registrations, 3*time.Minute)
	time.Sleep(time.Second) // a late duplicate, were one possible, would show up now
	final, _ := st.waitRows(t, domain, registrations, 0)
	select {
	case r := <-counter:
		redelivered = metric(t, r.reg, "worker_records_total", map[string]string{"outcome": "duplicate"})
		t.Logf("%s: the worker retried %.0f transient store failures", scenario, metric(t, r.reg, "worker_store_retries_total", nil))
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no worker finished the run", scenario)
	}
	t.Logf("%s: %d accepted in %v (%.0f/s, %d retried 503s), %d rows %v after the last 202, %d redelivered duplicates absorbed, failure injected at %v",
		scenario, res.accepted.Load(), acceptTook.Round(time.Millisecond), float64(registrations)/acceptTook.Seconds(),
		res.retried503.Load(), rows, waited.Round(time.Millisecond), int(redelivered), injected.Sub(start).Round(time.Millisecond))
	if rows != registrations || final != registrations {
		t.Fatalf("%s: %d rows (then %d), want exactly %d", scenario, rows, final, registrations)
	}
	if scenario == "worker-killed" && redelivered == 0 {
		t.Errorf("the worker was killed between store and commit, yet the restarted worker saw no redelivered record: the scenario did not exercise redelivery")
	}
	if (scenario == "postgres-restarted" || scenario == "broker-killed") && injected.IsZero() {
		t.Errorf("the %s failure was never injected", scenario)
	}
}

func traceparent() (traceID, header string) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	traceID = hex.EncodeToString(b[:16])
	return traceID, fmt.Sprintf("00-%s-%s-01", traceID, hex.EncodeToString(b[16:]))
}

// oneTrace proves W3C trace context crosses HTTP -> Kafka -> worker and
// HTTP -> gRPC -> users, read back from a real Jaeger's query API (or the
// in-test OTLP receiver when no Jaeger build is cached).
func oneTrace(t *testing.T, st *stack) {
	topic := "registrations-trace"
	st.topic(t, topic, 1)
	env := map[string]string{"KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": topic + ".dlq", "KAFKA_GROUP": "worker-trace"}
	us, _ := st.startUsers(t, nil)
	env["USERS_ADDR"] = us.GRPCAddr()
	g, gr := st.startGateway(t, env)
	_, wr := st.startWorker(t, env, nil)

	regTrace, tp := traceparent()
	resp, body, err := post("http://"+g.Addr()+"/v1/register", registration(1, "trace.example.com"), map[string]string{"traceparent": tp})
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("register: %v %d %s", err, statusOf(resp), body)
	}
	if n, _ := st.waitRows(t, "trace.example.com", 1, time.Minute); n != 1 {
		t.Fatalf("the traced registration was not stored (%d rows)", n)
	}
	getTrace, tp2 := traceparent()
	id := account.UserID("user00001@trace.example.com")
	if r := getJSON(t, "http://"+g.Addr()+"/v1/users/"+id, map[string]string{"traceparent": tp2}, nil); r.StatusCode != 200 {
		t.Fatalf("GET user: %d", r.StatusCode)
	}
	// Stopping flushes every provider (Shutdown with a deadline).
	if err := gr.stop(); err != nil {
		t.Errorf("gateway stop: %v", err)
	}
	if err := wr.stop(); err != nil {
		t.Errorf("worker stop: %v", err)
	}
	reg := st.traceServices(t, regTrace, func(m map[string][]string) bool { return len(m["gateway"]) > 0 && len(m["worker"]) > 0 })
	get := st.traceServices(t, getTrace, func(m map[string][]string) bool { return len(m["gateway"]) > 0 && len(m["users"]) > 0 })
	t.Logf("trace %s: %v; trace %s: %v", regTrace, reg, getTrace, get)
	if len(reg["gateway"]) == 0 || len(reg["worker"]) == 0 {
		t.Errorf("registration trace lacks gateway or worker spans: %v", reg)
	}
	if len(get["gateway"]) == 0 || len(get["users"]) == 0 {
		t.Errorf("profile trace lacks gateway or users spans: %v", get)
	}
	for _, names := range [][]string{reg["gateway"], get["gateway"]} {
		for _, n := range names {
			if strings.Contains(n, "healthz") || strings.Contains(n, "readyz") {
				t.Errorf("probe span %q was traced; probes must be filtered", n)
			}
		}
	}
}
