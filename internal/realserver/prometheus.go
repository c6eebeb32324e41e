package realserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// promtoolTimeout bounds one promtool run (check config, test rules).
const promtoolTimeout = 2 * time.Minute

// Prometheus is a real Prometheus (Debian's prometheus package) on a free
// loopback port, started with a rendered prometheus.yml and the files it
// names (rule files), which sit beside it so relative paths resolve.
type Prometheus struct {
	port int
	dir  string
	proc *process
	res  resources
}

// WritePrometheusFiles writes prometheus.yml and files into dir, for
// promtool and for Prometheus.
func WritePrometheusFiles(dir, config string, files map[string]string) error {
	if err := writeFile(filepath.Join(dir, "prometheus.yml"), config, nil); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	for name, text := range files {
		if err := writeFile(filepath.Join(dir, name), text, nil); err != nil {
			return fmt.Errorf("realserver: %w", err)
		}
	}
	return nil
}

// Promtool runs promtool with args in dir and returns its combined output;
// the error says how it exited, or wraps ErrNotInstalled when there is no
// promtool to run.
func Promtool(dir string, args ...string) (string, error) {
	out, err := promtool(dir, args...)
	if errors.Is(err, ErrNotInstalled) {
		err = fmt.Errorf("realserver: %w", err)
	}
	return out, err
}

// promtool is Promtool for Start, which gives its errors their one prefix.
func promtool(dir string, args ...string) (string, error) {
	bin, err := lookBin("promtool", "prometheus")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), promtoolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// NewPrometheus reserves a free loopback port for one Prometheus, so the
// caller can render a config that names it (a self-scrape) before Start.
// Close stops it and removes its directory.
func NewPrometheus() (*Prometheus, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return &Prometheus{port: port}, nil
}

// StartPrometheus is NewPrometheus followed by Start.
func StartPrometheus(config string, files map[string]string) (*Prometheus, error) {
	p, err := NewPrometheus()
	if err != nil {
		return nil, err
	}
	if err := p.Start(config, files); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// Start checks config with promtool, then starts Prometheus with it
// (storage in the server's directory, listening on 127.0.0.1 only) and
// waits until it reports ready. Start once per Prometheus.
func (p *Prometheus) Start(config string, files map[string]string) error {
	var err error
	if p.dir, err = p.res.dir("prometheus", nil, false); err != nil {
		return fmt.Errorf("realserver: prometheus: %w", err)
	}
	if err := WritePrometheusFiles(p.dir, config, files); err != nil {
		return err
	}
	if out, err := promtool(p.dir, "check", "config", "prometheus.yml"); err != nil {
		return fmt.Errorf("realserver: promtool check config rejected the config: %w\n%s", err, out)
	}
	bin, err := lookBin("prometheus", "prometheus")
	if err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	p.proc = p.res.proc("prometheus", filepath.Join(p.dir, "prometheus.log"), nil, bin,
		"--config.file="+filepath.Join(p.dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address="+p.Addr(),
	)
	if err := p.proc.start(); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	if err := p.proc.waitReady(startTimeout, func() error { return promReady(p.URL() + "/-/ready") }); err != nil {
		return fmt.Errorf("realserver: prometheus: %w", err)
	}
	return nil
}

// Close stops Prometheus and removes its directory.
func (p *Prometheus) Close() error { return p.res.close() }

// Addr is 127.0.0.1:port.
func (p *Prometheus) Addr() string { return addr(p.port) }

// URL is the base URL of the web UI and API.
func (p *Prometheus) URL() string { return "http://" + p.Addr() }

// Dir holds prometheus.yml, the files beside it, the log and the TSDB.
func (p *Prometheus) Dir() string { return p.dir }

// Log returns the tail of Prometheus' log, for failure messages.
func (p *Prometheus) Log() string {
	if p.proc == nil {
		return ""
	}
	return p.proc.logTail()
}

// Stop shuts Prometheus down (SIGTERM flushes the head block); one that
// ignores it is killed, and the error says so.
func (p *Prometheus) Stop() error {
	if p.proc == nil {
		return nil // never started
	}
	if !p.proc.stop(syscall.SIGTERM) {
		return fmt.Errorf("realserver: prometheus ignored SIGTERM for %v and was killed", stopTimeout)
	}
	return nil
}

// PromSample is one element of an instant vector.
type PromSample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates expr now and returns the instant vector.
func (p *Prometheus) Query(expr string) ([]PromSample, error) {
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := promGetJSON(p.URL()+"/api/v1/query?query="+url.QueryEscape(expr), &body); err != nil {
		return nil, err
	}
	if body.Status != "success" || body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: status %s (%s), result type %q", expr, body.Status, body.Error, body.Data.ResultType)
	}
	var out []PromSample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, PromSample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// RuleNames returns the names of the alerting and recording rules
// Prometheus loaded, by group.
func (p *Prometheus) RuleNames() (map[string][]string, error) {
	var body struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := promGetJSON(p.URL()+"/api/v1/rules", &body); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			out[g.Name] = append(out[g.Name], r.Name)
		}
	}
	return out, nil
}

func promGetJSON(u string, into any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func promReady(u string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}
