package bench

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// FixedRate sends GETs to url at rate requests per second for d (an open
// loop: a slow answer does not slow the sender, so queueing shows in the
// latencies) and returns the sorted latencies and the failures.
func FixedRate(ctx context.Context, url string, rate int, d time.Duration) ([]time.Duration, int) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int
		wg     sync.WaitGroup
	)
	send := func() {
		defer wg.Done()
		start := time.Now()
		resp, err := client.Get(url)
		ok := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		mu.Lock()
		defer mu.Unlock()
		if !ok {
			failed++
			return
		}
		lat = append(lat, time.Since(start))
	}
	// Small batches every millisecond: a ticker per request would drop
	// ticks above about a thousand requests per second, and larger batches
	// would measure their own bursts.
	const slot = time.Millisecond
	perSlot := max(1, rate/int(time.Second/slot))
	tick := time.NewTicker(slot)
	defer tick.Stop()
	end := time.After(d)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-tick.C:
			for range perSlot {
				wg.Add(1)
				go send()
			}
		}
	}
	wg.Wait()
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
