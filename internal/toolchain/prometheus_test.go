package toolchain_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scaleplane/scaleplane/components/observability"
	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// TestPrometheusServesAPIWithRenderedConfig starts the upstream Prometheus
// (the binary of the cluster's image) with the in-cluster prometheus.yml the
// observability component renders (Kubernetes discovery of pods and nodes,
// service-account credentials) and its alert rules, exactly with the
// component's flags but on loopback, with no API server and no service
// account: discovery cannot start, Prometheus logs it and keeps going, so
// /-/ready, the API and its own /metrics still answer. It also proves the
// build without the generated web UI assets serves everything the cluster
// uses, and that the TSDB lands in the --storage.tsdb.path directory only.
func TestPrometheusServesAPIWithRenderedConfig(t *testing.T) {
	if _, cached, err := toolchain.PrometheusDir(); err != nil {
		t.Fatalf("PrometheusDir: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("the upstream Prometheus is not in the cache and building it takes minutes; run without -short (or scaleplane warm) to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	bin, err := toolchain.Prometheus(ctx)
	if err != nil {
		t.Fatalf("building Prometheus %s: %v", toolchain.PrometheusModuleVersion, err)
	}
	out, err := exec.CommandContext(ctx, bin.Path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "version "+toolchain.PrometheusRelease) {
		t.Fatalf("%s --version = %q, %v; want it to name release %s", bin.Path, out, err, toolchain.PrometheusRelease)
	}

	config := observability.RenderPrometheusConfig(observability.PrometheusConfig{
		ScrapeInterval: 30 * time.Second, EvaluationInterval: 30 * time.Second,
		ExternalLabels: map[string]string{"environment": "local"},
	})
	if !strings.Contains(config, "kubernetes_sd_configs") {
		t.Fatalf("the in-cluster config has no Kubernetes discovery:\n%s", config)
	}
	etc := t.TempDir()  // the ConfigMap mount, /etc/prometheus in the pod
	data := t.TempDir() // the volume, /prometheus in the pod
	for name, text := range map[string]string{
		"prometheus.yml":        config,
		observability.RulesFile: observability.RenderAlertRules(observability.DefaultThresholds()),
	} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	addr := loopbackAddr(realservertest.MustFreePort(t))
	var logs strings.Builder
	cmd := exec.CommandContext(ctx, bin.Path,
		"--config.file="+filepath.Join(etc, "prometheus.yml"),
		"--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address="+addr,
	)
	// As in the image: working directory /, no web/ui beside it; no
	// in-cluster API server environment.
	cmd.Dir = "/"
	cmd.Env = withoutKubernetesEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _, err := get(base + "/-/ready")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /-/ready: %d %v after 2m", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body, err := get(base + "/-/healthy"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /-/healthy = %d %v %s", code, err, body)
	}
	if code, body, err := get(base + "/metrics"); err != nil || code != http.StatusOK ||
		!strings.Contains(body, "prometheus_build_info") {
		t.Fatalf("GET /metrics = %d %v, want prometheus_build_info in it", code, err)
	}
	// The API answers, and every scrape job of the rendered config is known to
	// it (as dropped or active targets may come only from discovery; the
	// scrape pools' names show the config was applied).
	code, body, err := get(base + "/api/v1/targets")
	var targets struct {
		Status string `json:"status"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &targets) != nil || targets.Status != "success" {
		t.Fatalf("GET /api/v1/targets = %d %v %s", code, err, body)
	}
	code, body, err = get(base + "/api/v1/status/config")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/status/config = %d %v %s", code, err, body)
	}
	for _, job := range []string{observability.JobPods, observability.JobCAdvisor, observability.JobKubeStateMetrics} {
		if !strings.Contains(body, "job_name: "+job) {
			t.Errorf("the loaded config lacks job %s:\n%s", job, body)
		}
	}
	code, body, err = get(base + "/api/v1/rules")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"type":"alerting"`) {
		t.Fatalf("GET /api/v1/rules = %d %v, want the alert rules loaded: %.500s", code, err, body)
	}
	code, body, err = get(base + "/api/v1/query?query=" + "up")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/query = %d %v %s", code, err, body)
	}
	// The TSDB is in the data directory (the StatefulSet's volume); nothing
	// else is written (the pod's root filesystem is read-only).
	if _, err := os.Stat(filepath.Join(data, "wal")); err != nil {
		t.Fatalf("no WAL in --storage.tsdb.path: %v", err)
	}
	entries, err := os.ReadDir(etc)
	if err != nil || len(entries) != 2 {
		t.Fatalf("the config directory changed: %v %v", entries, err)
	}
}

func loopbackAddr(port int) string { return realserver.Loopback + ":" + strconv.Itoa(port) }

func get(url string) (int, string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func withoutKubernetesEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "KUBERNETES_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			out = append(out, kv)
		}
	}
	return out
}
