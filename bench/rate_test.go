//go:build bench

package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseResponseFramesEachResponseWhole: the half-load generator reads
// every framing the gateway may answer with up to the response's end and
// no further, waits while any part of it is missing, and keeps the
// connection only when HTTP says it may.
func TestParseResponseFramesEachResponseWhole(t *testing.T) {
	const next = "HTTP/1.1 204 No Content\r\n\r\n"
	for _, tc := range []struct {
		name, response string
		code           int
		keep, fails    bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, true, false},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 200, true, false},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", 204, true, false},
		{"connection close", "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 429, false, false},
		{"HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, false, false},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, true, false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nbody", 200, false, true},
		{"chunk without its end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", 200, true, true},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.response + next)
			size, code, keep, err := parseResponse(b)
			if tc.fails {
				assert.Error(t, err, "%q is refused", tc.response)
				return
			}
			require.NoError(t, err, "%q is read", tc.response)
			assert.Equal(t, len(tc.response), size, "the response ends where the next one starts")
			assert.Equal(t, tc.code, code, "status code")
			assert.Equal(t, tc.keep, keep, "whether the connection is kept")
			for cut := range len(tc.response) {
				size, _, _, err := parseResponse(b[:cut])
				assert.NoError(t, err, "the first %d bytes are not an error", cut)
				assert.Zero(t, size, "the first %d bytes are not yet a response", cut)
			}
		})
	}
}

// TestFixedRateCountsFromWhenDue runs the generator against loopback
// servers: every request is answered and counted, a server slower than
// the rate shows its queue in the latencies (counted from when a request
// was due, not from when a connection was free to send it), other
// statuses count as failures, and targets it must not load are refused.
func TestFixedRateCountsFromWhenDue(t *testing.T) {
	const rate, run = 1000, 300 * time.Millisecond
	var served atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer fast.Close()
	lat, failed, err := FixedRate(context.Background(), fast.URL+"/x", rate, 4, run)
	require.NoError(t, err, "a loopback server is loaded")
	assert.Zero(t, failed, "no request failed")
	assert.Len(t, lat, rate*int(run/time.Millisecond)/1000, "one latency per request due in the run")
	assert.EqualValues(t, len(lat), served.Load(), "every request reached the server once")

	// One connection, 2 ms per request, a request due every millisecond:
	// the n-th waits about n ms for the connection.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(2 * time.Millisecond)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer slow.Close()
	lat, failed, err = FixedRate(context.Background(), slow.URL, rate, 1, run)
	require.NoError(t, err, "a loopback server is loaded")
	assert.Zero(t, failed, "no request failed")
	assert.Greater(t, Percentile(lat, 50), 50*time.Millisecond, "the median request waited behind the queue")

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	lat, failed, err = FixedRate(context.Background(), unavailable.URL, rate, 4, run)
	require.NoError(t, err, "a loopback server is loaded")
	assert.Empty(t, lat, "no latency of a failed request")
	assert.Equal(t, rate*int(run/time.Millisecond)/1000, failed, "every 503 is a failure")

	for _, target := range []string{"https://127.0.0.1:1/", "http://192.0.2.1:80/", "http://127.0.0.1:1/"} {
		_, _, err := FixedRate(context.Background(), target, rate, 1, run)
		assert.Error(t, err, "%s is refused or unreachable", target)
	}
	for _, tc := range []struct {
		name string
		rate int
		d    time.Duration
	}{{"a rate of 0", 0, run}, {"a rate over one a microsecond", 2000000, run}, {"a run shorter than one interval", rate, 100 * time.Microsecond}} {
		_, _, err = FixedRate(context.Background(), fast.URL, tc.rate, 1, tc.d)
		assert.Error(t, err, "%s is refused", tc.name)
	}
}
