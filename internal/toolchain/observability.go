package toolchain

import "context"

// WarmObservability builds the observability tools: Jaeger v2 (also a
// collector that validates and runs the collector config), the local
// stack's collector built with the OpenTelemetry Collector Builder, the upstream
// promtool of the in-cluster Prometheus release that the tests prove the
// rendered configs with, and the upstream Prometheus server and
// kube-state-metrics that `images build` puts in the local stack's images.
// Each takes minutes (Jaeger tens of minutes) of wall time on two busy cores
// the first time, so CI should warm them before the tests.
func WarmObservability(ctx context.Context, logf func(format string, args ...any)) error {
	j, err := Jaeger(ctx)
	if err != nil {
		return err
	}
	logf("jaeger %s: %s", j.Version, j.Dir)
	oc, err := Otelcol(ctx)
	if err != nil {
		return err
	}
	logf("otelcol %s: %s", oc.Version, oc.Dir)
	p, err := Promtool(ctx)
	if err != nil {
		return err
	}
	logf("promtool %s: %s", PrometheusModuleVersion, p)
	prom, err := Prometheus(ctx)
	if err != nil {
		return err
	}
	logf("prometheus %s: %s", prom.Version, prom.Dir)
	ksm, err := KubeStateMetrics(ctx)
	if err != nil {
		return err
	}
	logf("kube-state-metrics %s: %s", ksm.Version, ksm.Dir)
	return nil
}
