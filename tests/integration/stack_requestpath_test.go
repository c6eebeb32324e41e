package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/postgres"
	"github.com/scaleplane/scaleplane/internal/realserver"
)

const (
	// storedRetries × storedInterval bounds the way of a registration
	// from the 202 to a row: Kafka, the worker's batch, the insert.
	storedRetries  = 40
	storedInterval = time.Second
	// replicaRetries × replicaInterval bounds the streaming replica's lag
	// as seen through the read-only pooler.
	replicaRetries  = 20
	replicaInterval = time.Second
	// eventTimeout bounds how long a gateway's event stream takes to hear
	// a registration stored through another pod.
	eventTimeout = 60 * time.Second
)

// checkRegistrationPath follows the seeds' request path through the
// deployed local stack, entering at the edge Service:
//   - POST /v1/register answers 202; the row appears on the primary
//     (postgres-rw) and is readable through the read-only pooler
//     (postgres-pgbouncer-ro -> the streaming replica);
//   - GET /v1/users/{id} is loaded once, then served from the cache
//     (X-Cache l1 or l2: the edge may pick the other gateway pod, whose L1
//     is cold but whose L2 is the shared Redis);
//   - Jaeger holds the registration's trace across gateway -> Kafka ->
//     worker -> Postgres and the profile's across gateway -> users (the
//     edge, an nginx without a tracing module, forwards the client's
//     traceparent, so the traces start at the edge's caller);
//   - GET /v1/events on one gateway pod hears a registration sent to the
//     other pod (stored by a worker, fanned out through Redis).
func checkRegistrationPath(t *testing.T, c *stackClient) {
	ctx := t.Context()
	domain := fmt.Sprintf("path-%d.it.example.com", time.Now().UnixNano())
	email := "ada@" + domain
	regTrace, tp := newTraceparent()
	status, id, err := register(ctx, c.edge, email, map[string]string{"traceparent": tp})
	require.NoError(t, err, "POST /v1/register through the edge")
	require.Equal(t, http.StatusAccepted, status, "the edge and gateway accept the registration")
	require.NotEmpty(t, id, "the 202 names the user id")

	_, err = retry.DoWithRetryContextE(t, ctx, "the row reaches the primary", storedRetries, storedInterval, func() (string, error) {
		n, err := c.countRows(ctx, "postgres-rw", postgres.Port, domain)
		if err != nil || n != 1 {
			return "", fmt.Errorf("%d rows (%v)", n, err)
		}
		return "", nil
	})
	require.NoError(t, err, "the accepted registration is stored on the primary")
	_, err = retry.DoWithRetryContextE(t, ctx, "the row is readable through the read-only pooler", replicaRetries, replicaInterval, func() (string, error) {
		n, err := c.countRows(ctx, "postgres-pgbouncer-ro", postgres.PoolerPort, domain)
		if err != nil || n != 1 {
			return "", fmt.Errorf("%d rows (%v)", n, err)
		}
		return "", nil
	})
	require.NoError(t, err, "the replica streams the row and the read-only pooler serves it")

	getTrace, tp2 := newTraceparent()
	var first string
	_, err = retry.DoWithRetryContextE(t, ctx, "GET the new user", replicaRetries, replicaInterval, func() (string, error) {
		code, src, err := getUser(ctx, c.edge, id, tp2)
		if err != nil || code != http.StatusOK {
			return "", fmt.Errorf("%d (%v)", code, err)
		}
		first = src
		return "", nil
	})
	require.NoError(t, err, "GET /v1/users/{id} through the edge finds the user")
	code, second, err := getUser(ctx, c.edge, id, "")
	require.NoError(t, err, "second GET")
	require.Equal(t, http.StatusOK, code, "second GET")
	assert.Contains(t, []string{"l1", "l2"}, second, "the second GET is served from the cache (first: %s)", first)
	t.Logf("GET /v1/users/%s: first %s, second %s", id, first, second)

	has := func(spans []realserver.TraceSpan, service string) bool {
		return slices.ContainsFunc(spans, func(s realserver.TraceSpan) bool { return s.Service == service })
	}
	reg, err := realserver.ReadTrace(c.jaegerQuery(), regTrace, func(s []realserver.TraceSpan) bool {
		return has(s, "gateway") && slices.Contains(s, realserver.TraceSpan{Service: "worker", Operation: "INSERT users"})
	})
	require.NoError(t, err, "Jaeger has the registration's trace")
	assert.True(t, has(reg, "gateway") && has(reg, "worker"), "one trace spans gateway -> Kafka -> worker: %v", reg)
	assert.True(t, slices.ContainsFunc(reg, func(s realserver.TraceSpan) bool {
		return s.Service == "worker" && s.Operation == "INSERT users"
	}), "the worker's span of the Postgres write is in the trace: %v", reg)
	get, err := realserver.ReadTrace(c.jaegerQuery(), getTrace, func(s []realserver.TraceSpan) bool { return has(s, "gateway") && has(s, "users") })
	require.NoError(t, err, "Jaeger has the profile's trace")
	assert.True(t, has(get, "gateway") && has(get, "users"), "one trace spans gateway -> users: %v", get)
	t.Logf("traces: registration %s %d spans, profile %s %d spans", regTrace, len(reg), getTrace, len(get))

	pods := c.gatewayPods()
	require.GreaterOrEqual(t, len(pods), 2, "two gateway pods run")
	heard := make(chan string, 16)
	sctx, stop := context.WithTimeout(ctx, eventTimeout)
	defer stop()
	connected := make(chan error, 1)
	go listenEvents(sctx, fmt.Sprintf("http://%s:%d/v1/events", pods[0], gatewayPort), connected, heard)
	require.NoError(t, <-connected, "GET /v1/events on gateway pod %s", pods[0])
	other := "eve@" + domain
	status, otherID, err := register(ctx, fmt.Sprintf("http://%s:%d", pods[1], gatewayPort), other, nil)
	require.NoError(t, err, "POST /v1/register to gateway pod %s", pods[1])
	require.Equal(t, http.StatusAccepted, status, "the other pod accepts")
	for {
		select {
		case ev := <-heard:
			if strings.Contains(ev, otherID) || strings.Contains(ev, other) {
				t.Logf("pod %s heard the registration sent to %s: %s", pods[0], pods[1], ev)
				return
			}
		case <-sctx.Done():
			t.Fatalf("gateway pod %s's event stream did not hear %s, sent to pod %s, within %s", pods[0], other, pods[1], eventTimeout)
		}
	}
}

// getUser GETs a profile and returns the status and the X-Cache source.
func getUser(ctx context.Context, base, id, traceparent string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/users/"+id, nil)
	if err != nil {
		return 0, "", err
	}
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Cache"), nil
}

// listenEvents reads a server-sent event stream, reporting the connection
// (nil once the stream has said it is connected) and each event's data.
func listenEvents(ctx context.Context, url string, connected chan<- error, heard chan<- string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		connected <- err
		return
	}
	resp, err := http.DefaultClient.Do(req) // a stream: no overall timeout
	if err != nil {
		connected <- err
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		connected <- fmt.Errorf("%s: %s", url, resp.Status)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	once := false
	for sc.Scan() {
		line := sc.Text()
		if !once && strings.HasPrefix(line, ": connected") {
			once = true
			connected <- nil
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			select {
			case heard <- data:
			default:
			}
		}
	}
	if !once {
		connected <- fmt.Errorf("%s: stream ended before it connected", url)
	}
}
