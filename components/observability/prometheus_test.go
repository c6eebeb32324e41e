package observability

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/internal/realserver"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// inCluster is the configuration every stack renders.
func inCluster() PrometheusConfig {
	return PrometheusConfig{ScrapeInterval: 30 * time.Second, EvaluationInterval: 30 * time.Second,
		ExternalLabels: map[string]string{"environment": "prod"}}
}

func TestPromtoolAcceptsRenderedConfigAndRules(t *testing.T) {
	// Debian's promtool (2.42) is built without Kubernetes discovery, so it
	// checks the rules and the config as the tests run it (static targets);
	// the in-cluster config is checked by the upstream promtool below.
	static := inCluster()
	static.Static = []StaticTarget{{Address: "127.0.0.1:9", Labels: map[string]string{"__meta_kubernetes_namespace": "shop"}}}
	dir := realservertest.MustWritePrometheusFiles(t, RenderPrometheusConfig(static),
		map[string]string{RulesFile: RenderAlertRules(DefaultThresholds())})
	out, err := realservertest.Promtool(t, dir, "check", "config", "prometheus.yml")
	require.NoError(t, err, "promtool check config (it also checks the rule file it names):\n%s", out)
	out, err = realservertest.Promtool(t, dir, "check", "rules", RulesFile)
	require.NoError(t, err, "promtool check rules:\n%s", out)
	assert.Contains(t, out, fmt.Sprintf("SUCCESS: %d rules found", len(Alerts(DefaultThresholds()))), "promtool saw every alert")
	t.Logf("debian promtool: %s", strings.Join(strings.Fields(out), " "))
}

func TestUpstreamPromtoolAcceptsTheInClusterConfig(t *testing.T) {
	bin := upstreamPromtool(t)
	dir := realservertest.MustWritePrometheusFiles(t, RenderPrometheusConfig(inCluster()),
		map[string]string{RulesFile: RenderAlertRules(DefaultThresholds())})
	// --syntax-only: the service account token and CA it names exist only in a pod.
	cmd := exec.Command(bin, "check", "config", "--syntax-only", "prometheus.yml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s check config (Kubernetes discovery, cAdvisor, kube-state-metrics):\n%s", toolchain.PrometheusRelease, out)
	t.Logf("promtool %s: %s", toolchain.PrometheusRelease, strings.Join(strings.Fields(string(out)), " "))

	// And it can fail: an unknown discovery role is refused.
	broken := strings.Replace(RenderPrometheusConfig(inCluster()), "role: node", "role: nodes", 1)
	dir = realservertest.MustWritePrometheusFiles(t, broken, map[string]string{RulesFile: RenderAlertRules(DefaultThresholds())})
	cmd = exec.Command(bin, "check", "config", "--syntax-only", "prometheus.yml")
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	assert.Error(t, err, "promtool must refuse an unknown Kubernetes discovery role:\n%s", out)
}

// upstreamPromtool is the promtool of the in-cluster release, from the cache.
func upstreamPromtool(t *testing.T) string {
	t.Helper()
	if _, cached, err := toolchain.PromtoolDir(); err != nil {
		t.Fatalf("promtool cache: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("the upstream promtool is not cached and building it takes minutes; run without -short to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	bin, err := toolchain.Promtool(ctx)
	require.NoError(t, err, "build promtool %s", toolchain.PrometheusModuleVersion)
	return bin
}

func TestPromtoolRejectsABrokenRule(t *testing.T) {
	// The check above must be able to fail: the same pipeline with one
	// expression broken is refused.
	rules := strings.Replace(RenderAlertRules(DefaultThresholds()), "max by (namespace, app, pod) (go_goroutines)", "max by (namespace, app, pod (go_goroutines)", 1)
	require.NotEqual(t, RenderAlertRules(DefaultThresholds()), rules, "the mutation applies")
	dir := realservertest.MustWritePrometheusFiles(t, RenderPrometheusConfig(inCluster()), map[string]string{RulesFile: rules})
	out, err := realservertest.Promtool(t, dir, "check", "rules", RulesFile)
	assert.Error(t, err, "promtool must refuse a broken expression:\n%s", out)
}

// ruleCase crafts the input series for one alert: hot series (above the
// threshold) must fire, cold ones (below it, other label values) must not.
type ruleCase struct {
	alert string
	hot   []string // series lines "metric{labels}" -> values
	cold  []string
	// labels of the firing alert besides alertname and severity.
	labels map[string]string
}

// series formats one input series that holds value v for the whole test.
func series(metric string, v float64) string {
	return fmt.Sprintf("{series: '%s', values: '%sx60'}", metric, strconv.FormatFloat(v, 'f', -1, 64)+"+0")
}

// counter formats one input series that grows by perMinute every minute.
func counter(metric string, perMinute float64) string {
	return fmt.Sprintf("{series: '%s', values: '0+%sx60'}", metric, strconv.FormatFloat(perMinute, 'f', -1, 64))
}

// histogram spreads perMinute observations: share "fast" in a bucket at
// limit/2, the rest in a bucket at 4*limit; the p99 lands below the limit
// when all are fast and well above it when all are slow.
func histogram(metric, labels string, limit float64, fast, slow float64) []string {
	le := func(b string) string { return fmt.Sprintf("%s_bucket{%s,le=\"%s\"}", metric, labels, b) }
	f := strconv.FormatFloat(limit/2, 'f', -1, 64)
	s := strconv.FormatFloat(limit*4, 'f', -1, 64)
	return []string{counter(le(f), fast), counter(le(s), fast+slow), counter(le("+Inf"), fast+slow)}
}

func ruleCases(th Thresholds) []ruleCase {
	app := func(a string) string { return fmt.Sprintf(`namespace="shop",app="%s"`, a) }
	pod := func(a string) string { return fmt.Sprintf(`namespace="shop",app="%s",pod="%s-1"`, a, a) }
	over := func(limit float64) float64 { return limit * 2 }
	under := func(limit float64) float64 { return limit / 2 }
	badShare := func(ratio float64) (bad, good float64) { return ratio * 100, 100 - ratio*100 }
	hb, hg := badShare(over(th.ErrorRatio))
	cb, cg := badShare(under(th.ErrorRatio))
	return []ruleCase{
		{alert: AlertHTTPErrorRate,
			hot: []string{counter(`http_server_requests_total{`+app("gateway")+`,route="/",method="GET",code="503"}`, hb),
				counter(`http_server_requests_total{`+app("gateway")+`,route="/",method="GET",code="200"}`, hg)},
			cold: []string{counter(`http_server_requests_total{`+app("users")+`,route="/",method="GET",code="500"}`, cb),
				counter(`http_server_requests_total{`+app("users")+`,route="/",method="GET",code="200"}`, cg),
				// 4xx are the caller's fault and never count.
				counter(`http_server_requests_total{`+app("users")+`,route="/",method="GET",code="404"}`, 1000)},
			labels: map[string]string{"namespace": "shop", "app": "gateway"}},
		{alert: AlertGRPCErrorRate,
			hot: []string{counter(`grpc_server_handled_total{`+app("users")+`,method="/u/Get",code="Unavailable"}`, hb),
				counter(`grpc_server_handled_total{`+app("users")+`,method="/u/Get",code="OK"}`, hg)},
			cold: []string{counter(`grpc_server_handled_total{`+app("billing")+`,method="/b/Get",code="Internal"}`, cb),
				counter(`grpc_server_handled_total{`+app("billing")+`,method="/b/Get",code="OK"}`, cg),
				counter(`grpc_server_handled_total{`+app("billing")+`,method="/b/Get",code="NotFound"}`, 1000)},
			labels: map[string]string{"namespace": "shop", "app": "users"}},
		{alert: AlertHTTPLatencyP99,
			hot:    histogram("http_server_request_duration_seconds", app("gateway")+`,route="/",method="GET"`, th.P99LatencySeconds, 0, 100),
			cold:   histogram("http_server_request_duration_seconds", app("users")+`,route="/",method="GET"`, th.P99LatencySeconds, 100, 0),
			labels: map[string]string{"namespace": "shop", "app": "gateway"}},
		{alert: AlertGRPCLatencyP99,
			hot:    histogram("grpc_server_handling_seconds", app("users")+`,method="/u/Get"`, th.P99LatencySeconds, 0, 100),
			cold:   histogram("grpc_server_handling_seconds", app("billing")+`,method="/b/Get"`, th.P99LatencySeconds, 100, 0),
			labels: map[string]string{"namespace": "shop", "app": "users"}},
		{alert: AlertGoSchedulerLatency,
			hot:    histogram("go_sched_latencies_seconds", pod("worker"), th.SchedLatencyP99Seconds, 0, 1000),
			cold:   histogram("go_sched_latencies_seconds", pod("users"), th.SchedLatencyP99Seconds, 1000, 0),
			labels: map[string]string{"namespace": "shop", "app": "worker", "pod": "worker-1"}},
		{alert: AlertGoGCPauses,
			// A counter of seconds paused: fraction f of each 60 s minute.
			hot:    []string{counter(`go_gc_duration_seconds_sum{`+pod("worker")+`}`, 60*over(th.GCPauseFraction))},
			cold:   []string{counter(`go_gc_duration_seconds_sum{`+pod("users")+`}`, 60*under(th.GCPauseFraction))},
			labels: map[string]string{"namespace": "shop", "app": "worker", "pod": "worker-1"}},
		{alert: AlertGoroutines,
			hot:    []string{series(`go_goroutines{`+pod("gateway")+`}`, over(float64(th.Goroutines)))},
			cold:   []string{series(`go_goroutines{`+pod("users")+`}`, under(float64(th.Goroutines)))},
			labels: map[string]string{"namespace": "shop", "app": "gateway", "pod": "gateway-1"}},
		{alert: AlertContainerMemory,
			hot: []string{series(`container_memory_working_set_bytes{namespace="shop",pod="gateway-1",container="gateway"}`, 1e9*(1+th.MemoryLimitRatio)/2),
				series(`container_spec_memory_limit_bytes{namespace="shop",pod="gateway-1",container="gateway"}`, 1e9)},
			cold: []string{series(`container_memory_working_set_bytes{namespace="shop",pod="users-1",container="users"}`, 1e9*under(th.MemoryLimitRatio)),
				series(`container_spec_memory_limit_bytes{namespace="shop",pod="users-1",container="users"}`, 1e9),
				// No limit (0) is not "near the limit".
				series(`container_memory_working_set_bytes{namespace="shop",pod="edge-1",container="edge"}`, 1e9),
				series(`container_spec_memory_limit_bytes{namespace="shop",pod="edge-1",container="edge"}`, 0)},
			labels: map[string]string{"namespace": "shop", "pod": "gateway-1", "container": "gateway"}},
		{alert: AlertOpenConnections,
			hot:    []string{series(`server_open_connections{`+pod("gateway")+`,protocol="http"}`, over(float64(th.OpenConnections)))},
			cold:   []string{series(`server_open_connections{`+pod("users")+`,protocol="grpc"}`, under(float64(th.OpenConnections)))},
			labels: map[string]string{"namespace": "shop", "app": "gateway", "pod": "gateway-1"}},
		{alert: AlertFileDescriptors,
			hot: []string{series(`process_open_fds{`+pod("gateway")+`}`, 1000*(1+th.FDRatio)/2),
				series(`process_max_fds{`+pod("gateway")+`}`, 1000)},
			cold: []string{series(`process_open_fds{`+pod("users")+`}`, 1000*under(th.FDRatio)),
				series(`process_max_fds{`+pod("users")+`}`, 1000)},
			labels: map[string]string{"namespace": "shop", "app": "gateway", "pod": "gateway-1"}},
		{alert: AlertHPAAtMax,
			hot: []string{series(`kube_horizontalpodautoscaler_status_current_replicas{namespace="shop",horizontalpodautoscaler="gateway"}`, 30),
				series(`kube_horizontalpodautoscaler_spec_max_replicas{namespace="shop",horizontalpodautoscaler="gateway"}`, 30)},
			cold: []string{series(`kube_horizontalpodautoscaler_status_current_replicas{namespace="shop",horizontalpodautoscaler="users"}`, 11),
				series(`kube_horizontalpodautoscaler_spec_max_replicas{namespace="shop",horizontalpodautoscaler="users"}`, 12)},
			labels: map[string]string{"namespace": "shop", "horizontalpodautoscaler": "gateway"}},
		{alert: AlertKafkaConsumerLag,
			// Lag summed over partitions: two partitions each over half the limit.
			hot: []string{series(`kafka_consumergroup_lag{consumergroup="worker",topic="signups",partition="0"}`, float64(th.KafkaConsumerLag)*0.6),
				series(`kafka_consumergroup_lag{consumergroup="worker",topic="signups",partition="1"}`, float64(th.KafkaConsumerLag)*0.6)},
			cold:   []string{series(`kafka_consumergroup_lag{consumergroup="audit",topic="signups",partition="0"}`, under(float64(th.KafkaConsumerLag)))},
			labels: map[string]string{"consumergroup": "worker", "topic": "signups"}},
		{alert: AlertPostgresReplicationLag,
			hot:    []string{series(`pg_replication_lag_seconds{`+pod("postgres")+`}`, over(th.PostgresReplicaLagSeconds))},
			cold:   []string{series(`pg_replication_lag_seconds{namespace="shop",app="postgres",pod="postgres-2"}`, under(th.PostgresReplicaLagSeconds))},
			labels: map[string]string{"namespace": "shop", "app": "postgres", "pod": "postgres-1"}},
		{alert: AlertRedisMemory,
			hot: []string{series(`redis_memory_used_bytes{`+pod("redis")+`}`, 1e9*(1+th.RedisMemoryRatio)/2),
				series(`redis_memory_max_bytes{`+pod("redis")+`}`, 1e9)},
			cold: []string{series(`redis_memory_used_bytes{namespace="shop",app="redis",pod="redis-2"}`, 1e9*under(th.RedisMemoryRatio)),
				series(`redis_memory_max_bytes{namespace="shop",app="redis",pod="redis-2"}`, 1e9)},
			labels: map[string]string{"namespace": "shop", "app": "redis", "pod": "redis-1"}},
	}
}

// ruleTests renders a promtool test file: per alert, hot and cold series,
// evaluated after the alert's "for" has passed (it must fire for the hot
// ones only) and before it has (it must not fire yet).
func ruleTests(th Thresholds, cases []ruleCase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rule_files: [%s]\nevaluation_interval: 1m\ntests:\n", RulesFile)
	alerts := Alerts(th)
	for _, c := range cases {
		i := slices.IndexFunc(alerts, func(a Alert) bool { return a.Name == c.alert })
		a := alerts[i]
		fmt.Fprintf(&b, "  - name: %s\n    interval: 1m\n    input_series:\n", c.alert)
		for _, s := range append(slices.Clone(c.hot), c.cold...) {
			fmt.Fprintf(&b, "      - %s\n", s)
		}
		exp := map[string]string{"severity": a.Severity}
		for k, v := range c.labels {
			exp[k] = v
		}
		labels, _ := yaml.Marshal(exp)
		var where []string
		for _, l := range a.By {
			where = append(where, l+"="+c.labels[l])
		}
		annotations, _ := yaml.Marshal(map[string]string{"summary": a.Summary, "description": strings.Join(where, " ")})
		early := a.For - 2*time.Minute
		fmt.Fprintf(&b, "    alert_rule_test:\n      - eval_time: %s\n        alertname: %s\n        exp_alerts: []\n", promDuration(early), c.alert)
		fmt.Fprintf(&b, "      - eval_time: %s\n        alertname: %s\n        exp_alerts:\n          - exp_labels:\n", promDuration(a.For+10*time.Minute), c.alert)
		for _, line := range strings.Split(strings.TrimSpace(string(labels)), "\n") {
			fmt.Fprintf(&b, "              %s\n", line)
		}
		b.WriteString("            exp_annotations:\n")
		for _, line := range strings.Split(strings.TrimSpace(string(annotations)), "\n") {
			fmt.Fprintf(&b, "              %s\n", line)
		}
	}
	return b.String()
}

func TestEveryAlertFiresOnItsCraftedSeries(t *testing.T) {
	th := DefaultThresholds()
	cases := ruleCases(th)
	var covered []string
	for _, c := range cases {
		covered = append(covered, c.alert)
	}
	for _, a := range Alerts(th) {
		require.Contains(t, covered, a.Name, "every alert has a promtool case")
	}
	dir := realservertest.MustWritePrometheusFiles(t, RenderPrometheusConfig(inCluster()), map[string]string{
		RulesFile:        RenderAlertRules(th),
		"rules_test.yml": ruleTests(th, cases),
	})
	start := time.Now()
	out, err := realservertest.Promtool(t, dir, "test", "rules", "rules_test.yml")
	require.NoError(t, err, "promtool test rules:\n%s", out)
	assert.Contains(t, out, "SUCCESS", "promtool reports success")
	t.Logf("promtool test rules: %d alerts, each firing on its hot series and quiet on its cold ones and before its for: (%s)",
		len(cases), time.Since(start).Round(time.Millisecond))
}

func TestRuleTestsCanFail(t *testing.T) {
	// The same cases against rules whose thresholds are 10x higher must
	// fail: the hot series no longer cross them.
	th := DefaultThresholds()
	lax := th
	lax.ErrorRatio, lax.Goroutines = th.ErrorRatio*10, th.Goroutines*10
	dir := realservertest.MustWritePrometheusFiles(t, RenderPrometheusConfig(inCluster()), map[string]string{
		RulesFile:        RenderAlertRules(lax),
		"rules_test.yml": ruleTests(th, ruleCases(th)[:1]),
	})
	out, err := realservertest.Promtool(t, dir, "test", "rules", "rules_test.yml")
	assert.Error(t, err, "a rule that no longer fires on the hot series fails the rule test:\n%s", out)
}

func TestPrometheusScrapesAnAnnotatedTargetWithTheRenderedConfig(t *testing.T) {
	// A small target that serves its metrics on a custom path, as a pod
	// with prometheus.io/path would.
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "scaleplane_test_ready", Help: "1 when the test target is up."})
	g.Set(1)
	reg.MustRegister(g)
	mux := http.NewServeMux()
	mux.Handle("/custom-metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	target := httptest.NewServer(mux)
	t.Cleanup(target.Close)
	host, port, err := net.SplitHostPort(strings.TrimPrefix(target.URL, "http://"))
	require.NoError(t, err, "target address")

	conf := inCluster()
	conf.ScrapeInterval, conf.EvaluationInterval = time.Second, time.Second
	conf.Static = []StaticTarget{
		{
			// Discovery's address carries the container's first port; the
			// annotation names the metrics port, which relabelling must pick.
			Address: net.JoinHostPort(host, "1"),
			Labels: map[string]string{
				"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
				"__meta_kubernetes_pod_annotation_prometheus_io_port":   port,
				"__meta_kubernetes_pod_annotation_prometheus_io_path":   "/custom-metrics",
				"__meta_kubernetes_pod_phase":                           "Running",
				"__meta_kubernetes_namespace":                           "shop",
				"__meta_kubernetes_pod_name":                            "gateway-7d9-abcde",
				"__meta_kubernetes_pod_label_app_kubernetes_io_name":    "gateway",
			},
		},
		{
			// Not annotated: discovery finds it, relabelling must drop it.
			Address: net.JoinHostPort(host, port),
			Labels:  map[string]string{"__meta_kubernetes_pod_name": "unannotated"},
		},
	}
	p := realservertest.MustStartPrometheus(t, RenderPrometheusConfig(conf), map[string]string{RulesFile: RenderAlertRules(DefaultThresholds())})

	var got []realserver.PromSample
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got, err = p.Query(`scaleplane_test_ready`); err == nil && len(got) > 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.Len(t, got, 1, "the annotated target was scraped once per interval (err %v)\n%s", err, p.Log())
	l := got[0].Labels
	assert.Equal(t, "shop", l["namespace"], "namespace label from discovery")
	assert.Equal(t, "gateway-7d9-abcde", l["pod"], "pod label from discovery")
	assert.Equal(t, "gateway", l["app"], "app label from app.kubernetes.io/name")
	assert.Equal(t, net.JoinHostPort(host, port), l["instance"], "the annotated port replaced the discovered one")
	assert.InDelta(t, 1, got[0].Value, math.SmallestNonzeroFloat64, "the target's value")

	up, err := p.Query(`count(up{job="` + JobPods + `"})`)
	require.NoError(t, err, "count targets")
	require.Len(t, up, 1, "one up result")
	assert.Equal(t, 1.0, up[0].Value, "the unannotated target was dropped by relabelling")

	groups, err := p.RuleNames()
	require.NoError(t, err, "list rules")
	var loaded int
	for _, names := range groups {
		loaded += len(names)
	}
	assert.Equal(t, len(Alerts(DefaultThresholds())), loaded, "the real Prometheus loaded every alert rule")
}
