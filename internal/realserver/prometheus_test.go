package realserver

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPrometheusScrapesItself(t *testing.T) {
	p := newServer(t, NewPrometheus)
	conf := "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['" + p.Addr() + "']\n"
	ok(t, p.Start(conf, nil))
	deadline := time.Now().Add(20 * time.Second)
	var last []PromSample
	var err error
	for time.Now().Before(deadline) {
		if last, err = p.Query(`up{job="self"}`); err == nil && len(last) == 1 && last[0].Value == 1 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || len(last) != 1 || last[0].Value != 1 {
		t.Fatalf("up{job=\"self\"} = %v (err %v) after 20s, want one sample of 1: Prometheus did not scrape itself\n%s", last, err, p.Log())
	}
	if _, err := p.Query(`sum(`); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("a malformed query must fail with the API's 400, got %v", err)
	}
}

func TestPromtoolRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	ok(t, WritePrometheusFiles(dir, "scrape_configs:\n  - job_name: x\n    scrape_interval: banana\n", nil))
	out, err := Promtool(dir, "check", "config", "prometheus.yml")
	if errors.Is(err, ErrNotInstalled) {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatalf("promtool accepted an invalid scrape_interval; output:\n%s", out)
	}
}
