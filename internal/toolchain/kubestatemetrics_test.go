package toolchain

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKubeStateMetricsBuildsAndRuns builds kube-state-metrics and runs what
// needs no API server: `version` names the pinned release (set by ldflags)
// and --help lists the flags the observability component passes. Serving
// metrics needs a cluster; that is proven there.
func TestKubeStateMetricsBuildsAndRuns(t *testing.T) {
	if _, cached, err := KubeStateMetricsDir(); err != nil {
		t.Fatalf("KubeStateMetricsDir: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("kube-state-metrics is not in the cache and building it takes minutes; run without -short (or scaleplane warm) to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	bin, err := KubeStateMetrics(ctx)
	if err != nil {
		t.Fatalf("building kube-state-metrics %s: %v", KubeStateMetricsVersion, err)
	}
	out, err := exec.CommandContext(ctx, bin.Path, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), KubeStateMetricsVersion) {
		t.Fatalf("%s version = %q, %v; want it to name %s", bin.Path, out, err, KubeStateMetricsVersion)
	}
	help, err := exec.CommandContext(ctx, bin.Path, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin.Path, err, help)
	}
	for _, flag := range []string{"--port", "--telemetry-port", "--resources"} {
		if !strings.Contains(string(help), flag) {
			t.Errorf("kube-state-metrics --help does not list %s, which the observability component passes:\n%s", flag, help)
		}
	}
}

func TestKubeStateMetricsRefusesAModuleWithOtherHashes(t *testing.T) {
	if _, cached, err := KubeStateMetricsDir(); err != nil {
		t.Fatal(err)
	} else if !cached {
		t.Skip("needs the module downloaded once (TestKubeStateMetricsBuildsAndRuns)")
	}
	err := verifyModuleSums(context.Background(), KubeStateMetricsModule, KubeStateMetricsVersion,
		"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", kubeStateMetricsGoModSum, []string{noSumDB(KubeStateMetricsModule)})
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("verifyModuleSums with a wrong pinned hash = %v, want a refusal", err)
	}
	if err := verifyModuleSums(context.Background(), KubeStateMetricsModule, KubeStateMetricsVersion,
		kubeStateMetricsSum, kubeStateMetricsGoModSum, []string{noSumDB(KubeStateMetricsModule)}); err != nil {
		t.Fatalf("verifyModuleSums with the pinned hashes: %v", err)
	}
}
