package toolchain

import (
	"context"
	"path/filepath"
)

// PrometheusModule is the Go module of Prometheus' sources.
const PrometheusModule = "github.com/prometheus/prometheus"

// PrometheusModuleVersion is the module version of the Prometheus release
// that runs in the cluster (v2.55.1: Prometheus tags its Go module v0.x).
// Distribution packages strip service discovery mechanisms (Debian's has no
// Kubernetes discovery), so the in-cluster configuration can only be checked
// by a promtool built from the same release as the image.
const PrometheusModuleVersion = "v0.55.1"

// PrometheusRelease is the release (and image tag, without the v) built
// from PrometheusModuleVersion.
const PrometheusRelease = "2.55.1"

// promtoolTool is the cache name of the upstream promtool.
const promtoolTool = "promtool"

// PromtoolDir returns where the upstream promtool is cached and whether it
// is there already, so tests under -short can skip instead of building.
func PromtoolDir() (dir string, cached bool, err error) {
	dir, err = Dir(promtoolTool, PrometheusModuleVersion)
	if err != nil {
		return "", false, err
	}
	return dir, regularFile(filepath.Join(dir, "promtool")), nil
}

// Promtool returns the path of the upstream promtool of PrometheusRelease,
// building it from the module proxy the first time (minutes on two cores).
func Promtool(ctx context.Context) (string, error) {
	dir, err := Ensure(ctx, promtoolTool, PrometheusModuleVersion, func(dir string) error {
		return buildReleaseSource(ctx, PrometheusModule, PrometheusModuleVersion, "./cmd/promtool",
			filepath.Join(dir, "promtool"),
			"-X github.com/prometheus/common/version.Version="+PrometheusRelease)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "promtool"), nil
}
