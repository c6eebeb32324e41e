package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
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
//
// It speaks HTTP/1.1 on raw connections (a request written from prepared
// bytes, a response read up to its Content-Length or last chunk) rather
// than through net/http's client: that client cost about 40 µs of CPU per
// request, so at half the gateway's peak the generator alone used most of
// the load core that Redis shares, and its own lateness in sending (p99
// over 10 ms between a request's due time and its write) and Redis'
// waiting for that core were what the percentiles measured, not the
// gateway.
func FixedRate(ctx context.Context, target string, rate, conns int, d time.Duration) ([]time.Duration, int) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" {
		return nil, int(d / (time.Second / time.Duration(rate)))
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: scaleplane-bench\r\n\r\n")
	interval := time.Second / time.Duration(rate)
	total := int64(d / interval)
	start := time.Now()
	var next atomic.Int64
	lats := make([][]time.Duration, conns)
	fails := make([]int, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			c := &rawConn{addr: u.Host}
			defer c.close()
			for {
				i := next.Add(1) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				if code, err := c.get(req); err != nil || code != 200 {
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

// rawConn is one keep-alive HTTP/1.1 connection, redialled after an error
// or a "Connection: close".
type rawConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

func (c *rawConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// get writes req and reads one response, discarding its body; it returns
// the status code.
func (c *rawConn) get(req []byte) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn = conn
		if c.r == nil {
			c.r = bufio.NewReaderSize(conn, 4096)
		} else {
			c.r.Reset(conn)
		}
	}
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	code, keep, err := c.exchange(req)
	if err != nil || !keep {
		c.close()
	}
	return code, err
}

var (
	errMalformed = errors.New("malformed HTTP response")
	headerCL     = []byte("Content-Length")
	headerTE     = []byte("Transfer-Encoding")
	headerConn   = []byte("Connection")
)

func (c *rawConn) exchange(req []byte) (code int, keep bool, err error) {
	if _, err := c.conn.Write(req); err != nil {
		return 0, false, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	// HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes
	// it unless told otherwise.
	length, chunked, keep := -1, false, line[7] == '1'
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return code, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return code, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, headerCL):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return code, false, errMalformed
			}
		case bytes.EqualFold(name, headerTE):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, headerConn):
			keep = bytes.EqualFold(value, []byte("keep-alive")) || keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		return code, keep, c.discardChunks()
	case length >= 0:
		_, err = c.r.Discard(length)
		return code, keep, err
	}
	return code, false, fmt.Errorf("response without a length: %w", errMalformed)
}

// discardChunks reads a chunked body up to its last chunk and trailers.
func (c *rawConn) discardChunks() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return errMalformed
		}
		if n == 0 {
			for {
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(io.Discard, c.r, n+2); err != nil {
			return err
		}
	}
}

// Percentile of sorted latencies (p in 0..100).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}
