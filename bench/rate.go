package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// OpenLoad is one open-loop run of the openloop command (bench/openloop,
// built to Bin): Rate GETs a second for Duration against URL over at most
// Connections, the command pinned to Core as wrk is.
type OpenLoad struct {
	Bin         string
	URL         string
	Core        int
	Rate        int
	Connections int
	Duration    time.Duration
}

// OpenResult is what an open-loop run measured: how many requests were
// answered 200 and how many not, and the percentiles of the 200s'
// latencies, counted from when each was due.
type OpenResult struct {
	Answered int           `json:"answered"`
	Failed   int           `json:"failed"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	P999     time.Duration `json:"p999"`
}

// Run runs the command and reads its result.
func (l OpenLoad) Run(ctx context.Context) (OpenResult, error) {
	ctx, cancel := context.WithTimeout(ctx, l.Duration+answerWait+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(l.Core), l.Bin, "-url", l.URL, "-rate", strconv.Itoa(l.Rate),
		"-conns", strconv.Itoa(l.Connections), "-duration", l.Duration.String())
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return OpenResult{}, fmt.Errorf("openloop %s: %w: %s", l.URL, err, exit.Stderr)
		}
		return OpenResult{}, fmt.Errorf("openloop %s: %w", l.URL, err)
	}
	var r OpenResult
	if err := json.Unmarshal(out, &r); err != nil {
		return OpenResult{}, fmt.Errorf("openloop %s: its output %q: %w", l.URL, out, err)
	}
	return r, nil
}

// maxRate is the most requests a second FixedRate sends: one a
// microsecond, far beyond what one core answers.
const maxRate = int(time.Second / time.Microsecond)

// answerWait is how long FixedRate waits, after the last request was due,
// for the answers still outstanding before it counts them as failed.
const answerWait = 5 * time.Second

// FixedRate sends GETs to target (http://, loopback only) at rate requests
// per second for d over at most conns keep-alive connections, as wrk2
// does: request i is due at i/rate after the start, and its latency counts
// from when it was due, not from when it was sent, so a server that falls
// behind shows its queueing in the percentiles (no coordinated omission).
// It returns the sorted latencies of the requests answered 200 and how
// many were not (another status, a broken connection, no answer in time).
//
// The generator is one event loop on one locked OS thread, as wrk's are:
// the connections and a timerfd in one epoll set, the timer armed for the
// next request due whenever a connection is free, each response read whole
// without a copy of net/http's client (which cost 40 µs of CPU per
// request). Goroutines on Go's netpoller made two kinds of lateness of the
// generator's own, which the percentiles then counted as the server's: the
// runtime rounds a timer wait under a millisecond up to one when its thread
// sleeps in epoll, so with no response coming in, a request due in 40 µs
// went out up to a millisecond late and those due meanwhile went out
// together behind it; and the runtime's threads, sharing the load core,
// waited milliseconds for each other's time slices. At half the gateway's
// peak its sends were late by 0.3 ms at p90 and 3–4 ms at p99.
func FixedRate(ctx context.Context, target string, rate, conns int, d time.Duration) ([]time.Duration, int, error) {
	if rate <= 0 || conns <= 0 || d <= 0 {
		return nil, 0, fmt.Errorf("fixed rate: rate %d, connections %d and duration %v must all be positive", rate, conns, d)
	}
	if rate > maxRate {
		return nil, 0, fmt.Errorf("fixed rate: %d requests a second: at most %d, one a microsecond", rate, maxRate)
	}
	interval := time.Second / time.Duration(rate)
	if d < interval {
		return nil, 0, fmt.Errorf("fixed rate: %v is shorter than one request's interval at %d a second", d, rate)
	}
	u, addr, err := loopbackTarget(target)
	if err != nil {
		return nil, 0, fmt.Errorf("fixed rate: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())

	// One thread for the whole loop, which sleeps only in epoll_wait, and
	// its timers as exact as the kernel makes them (the default slack of
	// 50 µs is more than the gap between two requests).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if slack, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0); err == nil {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		defer func() { _ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0) }()
	}
	l, err := newLoop(sa, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+"\r\nUser-Agent: scaleplane-bench\r\n\r\n", conns)
	if err != nil {
		return nil, 0, fmt.Errorf("fixed rate: %s: %w", target, err)
	}
	defer l.close()
	lat, failed, err := l.run(ctx, interval, int(d/interval))
	if err != nil {
		return nil, 0, fmt.Errorf("fixed rate: %s: %w", target, err)
	}
	slices.Sort(lat)
	return lat, failed, nil
}

// loopbackTarget parses target, an http:// URL, and resolves its host,
// which must be a loopback address: the benchmarks load nothing else.
func loopbackTarget(target string) (*url.URL, *net.TCPAddr, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme != "http" {
		return nil, nil, fmt.Errorf("%q: only http:// targets are benchmarked", target)
	}
	addr, err := net.ResolveTCPAddr("tcp4", u.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: %w", target, err)
	}
	if !addr.IP.IsLoopback() {
		return nil, nil, fmt.Errorf("%q: only loopback addresses are benchmarked", target)
	}
	return u, addr, nil
}

// timerSlot marks the timerfd's events apart from the connections' slots.
const timerSlot = -1

// loop is FixedRate's event loop: slots of connections, each with at most
// one request in flight, and the timer of the next request due.
type loop struct {
	epfd, timer int
	sa          *unix.SockaddrInet4
	req         []byte
	conns       []loopConn
	// idle holds the slots with no request in flight, the next to send on
	// last.
	idle    []int
	scratch []byte
}

// loopConn is one slot: its socket (-1 while closed, redialled when next
// used), the bytes of the response read so far, and when the request in
// flight was due (since the start; -1 while the slot is idle).
type loopConn struct {
	fd  int
	in  []byte
	due time.Duration
}

func newLoop(sa *unix.SockaddrInet4, req string, conns int) (*loop, error) {
	l := &loop{epfd: -1, timer: -1, sa: sa, req: []byte(req), conns: make([]loopConn, conns), scratch: make([]byte, 16<<10)}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if l.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		l.close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.timer, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: timerSlot}); err != nil {
		l.close()
		return nil, fmt.Errorf("epoll the timer: %w", err)
	}
	// Every connection is open before the first request is due, so that
	// no latency counts a connection's setup.
	for slot := range l.conns {
		l.conns[slot] = loopConn{fd: -1, due: -1}
		if err := l.dial(slot); err != nil {
			l.close()
			return nil, err
		}
		l.idle = append(l.idle, slot)
	}
	return l, nil
}

// dial connects slot's socket (on loopback a blocking connect returns at
// once) and adds it to the epoll set, non-blocking from then on.
func (l *loop) dial(slot int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	timeout := unix.NsecToTimeval(answerWait.Nanoseconds())
	if err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &timeout); err == nil {
		err = unix.Connect(fd, l.sa)
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err == nil {
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(slot)})
	}
	if err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	l.conns[slot].fd = fd
	return nil
}

// drop closes slot's socket (which leaves the epoll set with it) and
// forgets what was read on it.
func (l *loop) drop(slot int) {
	c := &l.conns[slot]
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
	c.in = c.in[:0]
}

func (l *loop) close() {
	for slot := range l.conns {
		l.drop(slot)
	}
	for _, fd := range []int{l.timer, l.epfd} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}

// run sends total requests, one every interval, and collects their
// answers; an error is the loop's own (epoll, the timer), not a request's.
func (l *loop) run(ctx context.Context, interval time.Duration, total int) ([]time.Duration, int, error) {
	lat := make([]time.Duration, 0, total)
	failed, sent, done := 0, 0, 0
	events := make([]unix.EpollEvent, len(l.conns)+1)
	start := time.Now()
	for done < total {
		now := time.Since(start)
		if ctx.Err() != nil || now > time.Duration(total)*interval+answerWait {
			failed += total - done
			break
		}
		for sent < total && time.Duration(sent)*interval <= now && len(l.idle) > 0 {
			slot := l.idle[len(l.idle)-1]
			l.idle = l.idle[:len(l.idle)-1]
			c := &l.conns[slot]
			c.due = time.Duration(sent) * interval
			sent++
			if err := l.send(slot); err != nil {
				failed++
				done++
				l.drop(slot)
				c.due = -1
				l.idle = append(l.idle, slot)
			}
		}
		if sent < total && len(l.idle) > 0 {
			// A relative timer: 0 would disarm it.
			wait := max(time.Duration(sent)*interval-time.Since(start), time.Nanosecond)
			if err := unix.TimerfdSettime(l.timer, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(wait.Nanoseconds())}, nil); err != nil {
				return nil, 0, fmt.Errorf("arm the timer: %w", err)
			}
		}
		// Wakes at least every 100 ms to see the context and the deadline.
		n, err := unix.EpollWait(l.epfd, events, 100)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("epoll_wait: %w", err)
		}
		at := time.Since(start)
		for _, ev := range events[:n] {
			if ev.Fd == timerSlot {
				var expirations [8]byte
				_, _ = unix.Read(l.timer, expirations[:])
				continue
			}
			slot := int(ev.Fd)
			c := &l.conns[slot]
			if c.due < 0 {
				// An idle connection the server closed (or wrote to
				// unasked): redialled when next used.
				l.drop(slot)
				continue
			}
			whole, code, keep, err := l.read(slot)
			if !whole && err == nil {
				continue
			}
			done++
			switch {
			case err != nil:
				failed++
			case code == 200:
				lat = append(lat, at-c.due)
			default:
				failed++
			}
			if err != nil || !keep {
				l.drop(slot)
			}
			c.due = -1
			l.idle = append(l.idle, slot)
		}
	}
	return lat, failed, nil
}

// errShortWrite: a request did not fit its idle connection's empty send
// buffer, which a request of a few hundred bytes always does.
var errShortWrite = errors.New("short write of a request")

// send writes the request on slot, dialling it first if it was dropped.
func (l *loop) send(slot int) error {
	if l.conns[slot].fd < 0 {
		if err := l.dial(slot); err != nil {
			return err
		}
	}
	n, err := unix.Write(l.conns[slot].fd, l.req)
	if err == nil && n < len(l.req) {
		err = errShortWrite
	}
	return err
}

// errClosed: the server closed the connection before its answer was whole.
var errClosed = errors.New("connection closed before the response was whole")

// read takes what slot's socket has and reports whether the response is
// now whole, with its status and whether the connection may be kept.
func (l *loop) read(slot int) (whole bool, code int, keep bool, err error) {
	c := &l.conns[slot]
	n, err := unix.Read(c.fd, l.scratch)
	switch {
	case errors.Is(err, unix.EAGAIN):
		return false, 0, false, nil
	case err != nil:
		return false, 0, false, err
	case n == 0:
		return false, 0, false, errClosed
	}
	c.in = append(c.in, l.scratch[:n]...)
	size, code, keep, err := parseResponse(c.in)
	if err != nil || size == 0 {
		return false, code, keep, err
	}
	if size != len(c.in) {
		// One request in flight per connection: nothing may follow its
		// response.
		return false, code, keep, fmt.Errorf("%d bytes after the response: %w", len(c.in)-size, errMalformed)
	}
	c.in = c.in[:0]
	return true, code, keep, nil
}

var (
	errMalformed = errors.New("malformed HTTP response")
	crlf         = []byte("\r\n")
	headerCL     = []byte("Content-Length")
	headerTE     = []byte("Transfer-Encoding")
	headerConn   = []byte("Connection")
)

// maxHead bounds a response's status line and headers.
const maxHead = 64 << 10

// parseResponse parses the HTTP/1.x response at the head of b, which may
// be incomplete: size is its length in bytes, or 0 until it is whole; code
// its status; keep whether HTTP lets the connection carry another request.
// A response that cannot be HTTP is an error as soon as that shows.
func parseResponse(b []byte) (size, code int, keep bool, err error) {
	const proto = "HTTP/1."
	if !bytes.HasPrefix(b, []byte(proto)) && !bytes.HasPrefix([]byte(proto), b) {
		return 0, 0, false, errMalformed
	}
	headEnd := bytes.Index(b, []byte("\r\n\r\n"))
	if headEnd < 0 {
		if len(b) > maxHead {
			return 0, 0, false, fmt.Errorf("headers over %d bytes: %w", maxHead, errMalformed)
		}
		return 0, 0, false, nil
	}
	lines := bytes.Split(b[:headEnd], crlf)
	// "HTTP/1.1 200 OK"
	status := lines[0]
	if len(status) < 12 || status[8] != ' ' {
		return 0, 0, false, errMalformed
	}
	if code, err = strconv.Atoi(string(status[9:12])); err != nil {
		return 0, 0, false, errMalformed
	}
	// HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes
	// it unless told otherwise.
	length, chunked := -1, false
	keep = status[7] == '1'
	for _, line := range lines[1:] {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, code, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, headerCL):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, code, false, errMalformed
			}
		case bytes.EqualFold(name, headerTE):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, headerConn):
			keep = bytes.EqualFold(value, []byte("keep-alive")) || keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	bodyStart := headEnd + 4
	switch {
	case chunked:
		n, err := chunkedLength(b[bodyStart:])
		if err != nil || n == 0 {
			return 0, code, keep, err
		}
		return bodyStart + n, code, keep, nil
	case length >= 0:
		if len(b) < bodyStart+length {
			return 0, code, keep, nil
		}
		return bodyStart + length, code, keep, nil
	case code/100 == 1 || code == 204 || code == 304:
		return bodyStart, code, keep, nil
	}
	return 0, code, false, fmt.Errorf("response without a length: %w", errMalformed)
}

// chunkedLength is the length of the chunked body (trailers included) at
// the head of b, or 0 until it is whole.
func chunkedLength(b []byte) (int, error) {
	pos := 0
	for {
		eol := bytes.Index(b[pos:], crlf)
		if eol < 0 {
			return 0, nil
		}
		sizeText, _, _ := bytes.Cut(b[pos:pos+eol], []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
		if err != nil || size < 0 || size > maxHead<<4 {
			return 0, errMalformed
		}
		pos += eol + 2
		if size == 0 {
			// Trailers, up to an empty line.
			for {
				eol := bytes.Index(b[pos:], crlf)
				if eol < 0 {
					return 0, nil
				}
				pos += eol + 2
				if eol == 0 {
					return pos, nil
				}
			}
		}
		if len(b) < pos+int(size)+2 {
			return 0, nil
		}
		if !bytes.Equal(b[pos+int(size):pos+int(size)+2], crlf) {
			return 0, errMalformed
		}
		pos += int(size) + 2
	}
}

// Percentile of sorted latencies (p in 0..100).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}
