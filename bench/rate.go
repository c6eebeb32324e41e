package bench

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// FixedRate sends GETs to url at rate requests per second for d over at
// most conns keep-alive connections, as wrk2 does: request i is due at
// start + i/rate, and its latency counts from when it was due, not from
// when a connection was free, so a server that falls behind shows its
// queueing in the percentiles (no coordinated omission). A bounded
// connection pool keeps the generator itself cheap: one goroutine per
// request and a new connection whenever all are busy would cost the
// generator more CPU than the server under test. It returns the sorted
// latencies and the failures.
func FixedRate(ctx context.Context, url string, rate, conns int, d time.Duration) ([]time.Duration, int) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	interval := time.Second / time.Duration(rate)
	total := int64(d / interval)
	start := time.Now()
	var next atomic.Int64
	lats := make([][]time.Duration, conns)
	fails := make([]int, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				resp, err := client.Get(url)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				if !ok {
					fails[w]++
					continue
				}
				lats[w] = append(lats[w], time.Since(due))
			}
		})
	}
	wg.Wait()
	var lat []time.Duration
	failed := 0
	for w := range conns {
		lat = append(lat, lats[w]...)
		failed += fails[w]
	}
	slices.Sort(lat)
	return lat, failed
}

// Percentile of sorted latencies (p in 0..100).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}
