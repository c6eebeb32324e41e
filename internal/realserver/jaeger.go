package realserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// jaegerReadTimeout bounds how long Trace waits for spans to be queryable.
const jaegerReadTimeout = 30 * time.Second

// Jaeger is a real Jaeger (v2, the cached build of internal/toolchain)
// started with a rendered config on loopback.
type Jaeger struct {
	queryPort int
}

// JaegerPorts are the loopback ports the rendered config must use.
type JaegerPorts struct {
	OTLPGRPC, OTLPHTTP, QueryHTTP, QueryGRPC, Health, Metrics int
}

// NewJaegerPorts reserves the ports for one Jaeger.
func NewJaegerPorts(t testing.TB) JaegerPorts {
	return JaegerPorts{FreePort(t), FreePort(t), FreePort(t), FreePort(t), FreePort(t), FreePort(t)}
}

// StartJaeger runs bin --config=<config> and waits until the health
// endpoint on ports.Health answers; Jaeger is stopped when the test ends.
func StartJaeger(t testing.TB, bin, config string, ports JaegerPorts) *Jaeger {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "jaeger.yaml")
	if err := writeFile(path, config, nil); err != nil {
		t.Fatalf("realserver: jaeger config: %v", err)
	}
	p := newProcess("jaeger", filepath.Join(dir, "jaeger.log"), nil, bin, "--config="+path)
	t.Cleanup(func() {
		// Jaeger drains for up to 10 s; a test has nothing left to drain.
		if !p.stop(syscall.SIGTERM) {
			p.kill()
		}
	})
	if err := p.start(); err != nil {
		t.Fatalf("realserver: %v", err)
	}
	health := fmt.Sprintf("http://%s/", addr(ports.Health))
	if err := p.waitReady(startTimeout, httpOK(health)); err != nil {
		t.Fatalf("realserver: jaeger: %v\n%s", err, p.logTail())
	}
	return &Jaeger{queryPort: ports.QueryHTTP}
}

func httpOK(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// TraceSpan is one span of a trace as Jaeger's query API returns it.
type TraceSpan struct {
	Service   string
	Operation string
}

// Trace reads a trace from the query API; it returns what is there once
// done(spans) holds or the read timeout passes, so callers can wait for
// spans that arrive from several services.
func (j *Jaeger) Trace(traceID string, done func([]TraceSpan) bool) ([]TraceSpan, error) {
	return ReadTrace(addr(j.queryPort), traceID, done)
}

// ReadTrace polls the Jaeger query API at queryAddr (host:port) for a trace
// until done(spans) holds or the read timeout passes, and returns what was
// last read: for a Jaeger this package did not start (a test running a
// rendered config with its own binary).
func ReadTrace(queryAddr, traceID string, done func([]TraceSpan) bool) ([]TraceSpan, error) {
	url := fmt.Sprintf("http://%s/api/traces/%s", queryAddr, traceID)
	var spans []TraceSpan
	var last error
	for deadline := time.Now().Add(jaegerReadTimeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		spans, last = readTrace(url)
		if last == nil && done(spans) {
			return spans, nil
		}
	}
	if last == nil {
		last = fmt.Errorf("%s: %d spans, not the ones awaited, after %s", url, len(spans), jaegerReadTimeout)
	}
	return spans, last
}

// readTrace reads one answer of the query API as spans.
func readTrace(url string) ([]TraceSpan, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	var got struct {
		Data []struct {
			Spans []struct {
				OperationName string `json:"operationName"`
				ProcessID     string `json:"processID"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	var out []TraceSpan
	for _, d := range got.Data {
		for _, s := range d.Spans {
			out = append(out, TraceSpan{Service: d.Processes[s.ProcessID].ServiceName, Operation: s.OperationName})
		}
	}
	return out, nil
}
