package toolchain

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestJaegerBuildsAndRuns(t *testing.T) {
	if _, cached, err := JaegerDir(); err != nil {
		t.Fatalf("JaegerDir: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("Jaeger is not in the cache and building it takes minutes; run without -short (or scaleplane warm) to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	bin, err := Jaeger(ctx)
	if err != nil {
		t.Fatalf("building Jaeger %s: %v", JaegerVersion, err)
	}
	out, err := exec.CommandContext(ctx, bin.Path, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin.Path, err, out)
	}
	if !strings.Contains(string(out), JaegerReleaseV2) {
		t.Fatalf("jaeger version printed %q, want it to name release %s (set by -ldflags at build)", out, JaegerReleaseV2)
	}
	// validate is the collector command the observability tests rely on to
	// check the rendered collector configuration.
	help, err := exec.CommandContext(ctx, bin.Path, "validate", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s validate --help: %v\n%s", bin.Path, err, help)
	}
}

func TestUpstreamPromtoolBuildsAndKnowsKubernetesDiscovery(t *testing.T) {
	if _, cached, err := PromtoolDir(); err != nil {
		t.Fatalf("PromtoolDir: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("the upstream promtool is not in the cache and building it takes minutes; run without -short to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	bin, err := Promtool(ctx)
	if err != nil {
		t.Fatalf("building promtool %s: %v", PrometheusModuleVersion, err)
	}
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), PrometheusRelease) {
		t.Fatalf("%s --version = %q, %v; want it to name release %s", bin, out, err, PrometheusRelease)
	}
}

func TestWarmObservabilityReportsEveryTool(t *testing.T) {
	for _, dir := range []func() (string, bool, error){JaegerDir, PromtoolDir, PrometheusDir, KubeStateMetricsDir} {
		if _, cached, err := dir(); err != nil {
			t.Fatalf("cache lookup: %v", err)
		} else if !cached {
			t.Skip("the observability tools are not cached yet; TestJaegerBuildsAndRuns, TestUpstreamPromtool..., TestPrometheus... and TestKubeStateMetrics... build them")
		}
	}
	var logged []string
	err := WarmObservability(context.Background(), func(format string, args ...any) {
		logged = append(logged, fmt.Sprintf(format, args...))
	})
	if err != nil {
		t.Fatalf("WarmObservability with every tool cached: %v", err)
	}
	want := []string{"jaeger " + JaegerVersion, "otelcol " + OtelcolVersion, "promtool " + PrometheusModuleVersion,
		"prometheus " + PrometheusModuleVersion, "kube-state-metrics " + KubeStateMetricsVersion}
	if len(logged) != len(want) {
		t.Fatalf("WarmObservability logged %q, want lines starting %q", logged, want)
	}
	for i := range want {
		if !strings.HasPrefix(logged[i], want[i]+":") {
			t.Fatalf("WarmObservability logged %q, want lines starting %q", logged, want)
		}
	}
}
