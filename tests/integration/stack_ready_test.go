package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/postgres"
)

const (
	// jobRetries × jobInterval bounds the topic Job (it waits for the
	// broker, then creates the topics).
	jobRetries  = 40
	jobInterval = 3 * time.Second
	// targetRetries × targetInterval bounds Prometheus' first scrape of
	// every target (15 s interval) after discovery.
	targetRetries  = 30
	targetInterval = 4 * time.Second
)

// assertTopicsJobCompleted waits for the kafka component's topic Job.
func assertTopicsJobCompleted(t *testing.T, o *k8s.KubectlOptions) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), "the topic Job completes", jobRetries, jobInterval, func() (string, error) {
		out := kubectlJSONPath(t, o, "get", "jobs", "-o", `jsonpath={range .items[*]}{.metadata.name}{"="}{.status.succeeded}{"\n"}{end}`)
		for _, line := range strings.Fields(out) {
			if name, n, _ := strings.Cut(line, "="); strings.HasPrefix(name, "kafka-topics") {
				if n != "1" {
					return "", fmt.Errorf("%s: succeeded %q", name, n)
				}
				return name, nil
			}
		}
		return "", fmt.Errorf("no kafka-topics Job in %q", out)
	})
	require.NoError(t, err, "the topic Job created the topics")
}

// assertReplicaStreams asks the primary, as the superuser, for its WAL
// senders: every read replica streams from it.
func assertReplicaStreams(t *testing.T, c *stackClient) {
	t.Helper()
	ctx := t.Context()
	url := fmt.Sprintf("postgres://postgres:%s@%s:%d/postgres?sslmode=disable&connect_timeout=5",
		c.secret("postgres-credentials", postgres.SuperuserKey), c.clusterIP(c.app, "postgres-rw"), postgres.Port)
	out, err := retry.DoWithRetryContextE(t, ctx, "the replica streams from the primary", replicaRetries, replicaInterval, func() (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, url)
		if err != nil {
			return "", err
		}
		defer func() { _ = conn.Close(context.Background()) }()
		var streaming int
		var lag string
		if err := conn.QueryRow(cctx, `SELECT count(*), coalesce(max(replay_lag)::text, '0') FROM pg_stat_replication WHERE state = 'streaming'`).Scan(&streaming, &lag); err != nil {
			return "", err
		}
		if streaming < 1 {
			return "", fmt.Errorf("no streaming replica yet")
		}
		return fmt.Sprintf("%d streaming, replay lag %s", streaming, lag), nil
	})
	require.NoError(t, err, "the read replica streams WAL from the primary")
	t.Logf("Postgres: %s", out)
}

// assertPrometheusTargetsUp waits until Prometheus has scraped every
// target it discovered and each is up.
func assertPrometheusTargetsUp(t *testing.T, c *stackClient) {
	t.Helper()
	url := fmt.Sprintf("http://%s:9090/api/v1/targets?state=active", c.clusterIP(c.obs, "prometheus"))
	out, err := retry.DoWithRetryContextE(t, t.Context(), "every Prometheus target is up", targetRetries, targetInterval, func() (string, error) {
		resp, err := httpClient.Get(url)
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", url, resp.Status)
		}
		var body struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					ScrapeURL string            `json:"scrapeUrl"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return "", err
		}
		jobs := map[string]int{}
		var down []string
		for _, tg := range body.Data.ActiveTargets {
			jobs[tg.Labels["job"]]++
			if tg.Health != "up" {
				down = append(down, fmt.Sprintf("%s %s: %s %s", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
		if len(body.Data.ActiveTargets) == 0 {
			return "", fmt.Errorf("no targets discovered yet")
		}
		if len(down) > 0 {
			return "", fmt.Errorf("%d of %d targets not up: %s", len(down), len(body.Data.ActiveTargets), strings.Join(down, "; "))
		}
		return fmt.Sprintf("%d targets up, per job %v", len(body.Data.ActiveTargets), jobs), nil
	})
	require.NoError(t, err, "Prometheus reports every scrape target up")
	t.Logf("Prometheus: %s", out)
}
