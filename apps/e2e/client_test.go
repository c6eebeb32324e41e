package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var client = &http.Client{Timeout: 15 * time.Second}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 30s", url)
}

func post(url, body string, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest("POST", url, bytes.NewBufferString(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func registration(i int, domain string) string {
	return fmt.Sprintf(`{"email":"user%05d@%s","name":"User %d","password":"password-%d"}`, i, domain, i, i)
}

// loadResult counts what a registration load saw.
type loadResult struct {
	accepted, retried503 atomic.Int64
	failures             []string
	mu                   sync.Mutex
}

func (r *loadResult) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, msg)
}

// registerMany sends n registrations with conc clients spread over the
// gateways, as a well-behaved client would: a 503 (backpressure, Kafka
// unavailable) is retried after Retry-After with the same Idempotency-Key.
// progress is called after each acceptance with the running count.
func registerMany(gateways func(i int) string, n, conc int, domain string, progress func(int64)) *loadResult {
	res := &loadResult{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				key := fmt.Sprintf("%s-%d", domain, i)
				for attempt := 0; ; attempt++ {
					resp, body, err := post(gateways(i)+"/v1/register", registration(i, domain), map[string]string{"Idempotency-Key": key})
					if err == nil && resp.StatusCode == http.StatusAccepted {
						if progress != nil {
							progress(res.accepted.Add(1))
						} else {
							res.accepted.Add(1)
						}
						break
					}
					if attempt >= 60 || (err == nil && resp.StatusCode != http.StatusServiceUnavailable) {
						res.fail(fmt.Sprintf("registration %d: %v %v %s", i, err, statusOf(resp), body))
						break
					}
					res.retried503.Add(1)
					wait := time.Second
					if resp != nil {
						if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
							wait = time.Duration(s) * time.Second
						}
					}
					time.Sleep(wait / 4) // the tests do not need to be as patient as the header asks
				}
			}
		})
	}
	wg.Wait()
	return res
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// waitRows polls until the domain has want rows or the timeout passes, and
// returns the last count.
func (st *stack) waitRows(t *testing.T, domain string, want int, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	var n int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := st.db.QueryRow(ctx, `SELECT count(*) FROM users WHERE email LIKE '%@' || $1`, domain).Scan(&n)
		cancel()
		if err == nil && n >= want || time.Since(start) >= timeout {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return n, time.Since(start)
}

func getJSON(t *testing.T, url string, hdr map[string]string, into any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if into != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("GET %s: body: %v", url, err)
		}
	}
	return resp
}

var _ = context.Background
