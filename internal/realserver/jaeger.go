package realserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"syscall"
	"time"
)

// jaegerReadTimeout bounds how long Trace waits for spans to be queryable.
const jaegerReadTimeout = 30 * time.Second

// Jaeger is a real Jaeger (v2, the cached build of internal/toolchain)
// started with a rendered config on loopback.
type Jaeger struct {
	queryPort int
	proc      *process
	res       resources
}

// JaegerPorts are the loopback ports the rendered config must use.
type JaegerPorts struct {
	OTLPGRPC, OTLPHTTP, QueryHTTP, QueryGRPC, Health, Metrics int
}

// NewJaegerPorts reserves the ports for one Jaeger.
func NewJaegerPorts() (JaegerPorts, error) {
	p, err := freePorts(6)
	if err != nil {
		return JaegerPorts{}, fmt.Errorf("realserver: NewJaegerPorts: %w", err)
	}
	return JaegerPorts{p[0], p[1], p[2], p[3], p[4], p[5]}, nil
}

// StartJaeger runs bin --config=<config> and waits until the health
// endpoint on ports.Health answers. Close stops it.
func StartJaeger(bin, config string, ports JaegerPorts) (j *Jaeger, err error) {
	j = &Jaeger{queryPort: ports.QueryHTTP}
	defer closeOnError(&err, &j.res)
	dir, err := j.res.dir("jaeger", nil, false)
	if err != nil {
		return nil, fmt.Errorf("realserver: jaeger: %w", err)
	}
	path := filepath.Join(dir, "jaeger.yaml")
	if err := writeFile(path, config, nil); err != nil {
		return nil, fmt.Errorf("realserver: jaeger config: %w", err)
	}
	j.proc = j.res.proc("jaeger", filepath.Join(dir, "jaeger.log"), nil, bin, "--config="+path)
	if err := j.proc.start(); err != nil {
		return nil, fmt.Errorf("realserver: %w", err)
	}
	health := fmt.Sprintf("http://%s/", addr(ports.Health))
	if err := j.proc.waitReady(startTimeout, httpOK(health)); err != nil {
		return nil, fmt.Errorf("realserver: jaeger: %w", err) // waitReady's error carries the log's tail
	}
	return j, nil
}

// Close stops Jaeger (SIGTERM, so it flushes what it holds, killed after
// the stop timeout) and removes its directory.
func (j *Jaeger) Close() error {
	if j.proc != nil {
		j.proc.stop(syscall.SIGTERM)
	}
	return j.res.close()
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
