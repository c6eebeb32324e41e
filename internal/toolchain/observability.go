package toolchain

import "context"

// WarmObservability builds the observability tools the tests prove the
// rendered configs with: Jaeger v2 (also the collector that validates and
// runs the collector config) and the upstream promtool of the in-cluster
// Prometheus release. Both take tens of minutes of wall time on two busy
// cores the first time, so CI should warm them before the tests.
func WarmObservability(ctx context.Context, logf func(format string, args ...any)) error {
	j, err := Jaeger(ctx)
	if err != nil {
		return err
	}
	logf("jaeger %s: %s", j.Version, j.Dir)
	p, err := Promtool(ctx)
	if err != nil {
		return err
	}
	logf("promtool %s: %s", PrometheusModuleVersion, p)
	return nil
}
