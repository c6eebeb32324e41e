// Package realservertest wraps internal/realserver for tests: each Must…
// function starts a server, fails the test with the server's error (and
// log tail) when it cannot, and closes the server when the test ends. It is
// the only place the harness meets package testing, so commands that start
// servers (scaleplane services up) do not link it.
//
//	pg := realservertest.MustStartPostgres(t, realserver.PostgresConfig{Replicas: 1})
//	dsn, err := pg.CreateDatabase("app", "secret", "app")
//	require.NoError(t, err)
package realservertest

import (
	"errors"
	"testing"

	"github.com/scaleplane/scaleplane/internal/realserver"
)

// closer is what every server of the harness is: Close ends its processes
// and removes its directories.
type closer interface{ Close() error }

// closedAtEnd fails the test on err, else has s closed when the test ends.
// A Close that fails (a directory that cannot be removed) fails the test
// too, as t.TempDir does.
func closedAtEnd[S closer](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s
}

// MustFreePort returns realserver.FreePort's port, failing the test when
// there is none.
func MustFreePort(t testing.TB) int {
	t.Helper()
	port, err := realserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// MustStartRedis is realserver.StartRedis for a test.
func MustStartRedis(t testing.TB, conf string) *realserver.Redis {
	t.Helper()
	r, err := realserver.StartRedis(conf)
	return closedAtEnd(t, r, err)
}

// MustStartRedisCluster is realserver.StartRedisCluster for a test.
func MustStartRedisCluster(t testing.TB, cfg realserver.RedisClusterConfig) *realserver.RedisCluster {
	t.Helper()
	c, err := realserver.StartRedisCluster(cfg)
	return closedAtEnd(t, c, err)
}

// MustStartPostgres is realserver.StartPostgres for a test.
func MustStartPostgres(t testing.TB, cfg realserver.PostgresConfig) *realserver.Postgres {
	t.Helper()
	p, err := realserver.StartPostgres(cfg)
	return closedAtEnd(t, p, err)
}

// MustStartPgBouncer is realserver.StartPgBouncer for a test.
func MustStartPgBouncer(t testing.TB, cfg realserver.PgBouncerConfig) *realserver.PgBouncer {
	t.Helper()
	b, err := realserver.StartPgBouncer(cfg)
	return closedAtEnd(t, b, err)
}

// MustStartKafka is realserver.StartKafka for a test.
func MustStartKafka(t testing.TB, cfg realserver.KafkaConfig) *realserver.Kafka {
	t.Helper()
	k, err := realserver.StartKafka(cfg)
	return closedAtEnd(t, k, err)
}

// MustNewJaegerPorts is realserver.NewJaegerPorts for a test.
func MustNewJaegerPorts(t testing.TB) realserver.JaegerPorts {
	t.Helper()
	ports, err := realserver.NewJaegerPorts()
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// MustStartJaeger is realserver.StartJaeger for a test.
func MustStartJaeger(t testing.TB, bin, config string, ports realserver.JaegerPorts) *realserver.Jaeger {
	t.Helper()
	j, err := realserver.StartJaeger(bin, config, ports)
	return closedAtEnd(t, j, err)
}

// MustNewNginx is realserver.NewNginx for a test; the test still checks
// the error of Start.
func MustNewNginx(t testing.TB) *realserver.Nginx {
	t.Helper()
	n, err := realserver.NewNginx()
	return closedAtEnd(t, n, err)
}

// MustNewHAProxy is realserver.NewHAProxy for a test; the test still
// checks the error of Start.
func MustNewHAProxy(t testing.TB) *realserver.HAProxy {
	t.Helper()
	h, err := realserver.NewHAProxy()
	return closedAtEnd(t, h, err)
}

// MustNewPrometheus is realserver.NewPrometheus for a test; the test still
// checks the error of Start.
func MustNewPrometheus(t testing.TB) *realserver.Prometheus {
	t.Helper()
	p, err := realserver.NewPrometheus()
	return closedAtEnd(t, p, err)
}

// MustStartPrometheus is realserver.StartPrometheus for a test.
func MustStartPrometheus(t testing.TB, config string, files map[string]string) *realserver.Prometheus {
	t.Helper()
	p, err := realserver.StartPrometheus(config, files)
	return closedAtEnd(t, p, err)
}

// MustWritePrometheusFiles writes prometheus.yml and files into a new
// test directory (realserver.WritePrometheusFiles) and returns it.
func MustWritePrometheusFiles(t testing.TB, config string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := realserver.WritePrometheusFiles(dir, config, files); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Promtool is realserver.Promtool, failing the test when promtool is not
// installed: a test expecting promtool to reject a file would otherwise
// pass on a machine without it.
func Promtool(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	out, err := realserver.Promtool(dir, args...)
	if errors.Is(err, realserver.ErrNotInstalled) {
		t.Fatal(err)
	}
	return out, err
}
