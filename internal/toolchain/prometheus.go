package toolchain

import (
	"context"
	"path/filepath"
)

// prometheusTool is the cache name of the upstream Prometheus server.
const prometheusTool = "prometheus"

// PrometheusBinary is the cached upstream Prometheus server of
// PrometheusRelease.
type PrometheusBinary struct {
	// Version is the module version it was built from, PrometheusModuleVersion.
	Version string
	// Dir is the cache directory.
	Dir string
	// Path is the executable.
	Path string
}

// PrometheusDir returns where the upstream Prometheus server is cached and
// whether it is there already, so tests under -short can skip instead of
// building.
func PrometheusDir() (dir string, cached bool, err error) {
	dir, err = Dir(prometheusTool, PrometheusModuleVersion)
	if err != nil {
		return "", false, err
	}
	return dir, regularFile(filepath.Join(dir, "prometheus")), nil
}

// Prometheus returns the upstream Prometheus server of PrometheusRelease (the
// same release as Promtool), building ./cmd/prometheus from the module proxy
// the first time (minutes on two cores). Debian's prometheus package strips
// Kubernetes service discovery; this build has every discovery mechanism.
//
// It is built without the builtinassets tag: the module zip holds only
// web/ui/embed.go.tmpl, not the embed.go and the compiled React bundle that
// `make assets` generates with npm, so `-tags builtinassets` does not compile
// (EmbedFS is undefined). Without the tag the server reads its UI assets from
// ./web/ui/static relative to its working directory; absent, only the web UI
// pages are empty (404). The HTTP API (/api/v1/...), /-/ready, /-/healthy,
// /metrics, scraping, rules and the TSDB do not depend on them, which is all
// the cluster uses (TestPrometheusServesAPIWithRenderedConfig proves it).
// The release's other tags (netgo: irrelevant with CGO off; stringlabels: a
// memory layout choice) are left at the module default.
func Prometheus(ctx context.Context) (PrometheusBinary, error) {
	dir, err := Ensure(ctx, prometheusTool, PrometheusModuleVersion, func(dir string) error {
		return buildReleaseSource(ctx, PrometheusModule, PrometheusModuleVersion, "./cmd/prometheus",
			filepath.Join(dir, "prometheus"),
			"-X github.com/prometheus/common/version.Version="+PrometheusRelease)
	})
	if err != nil {
		return PrometheusBinary{}, err
	}
	return PrometheusBinary{Version: PrometheusModuleVersion, Dir: dir, Path: filepath.Join(dir, "prometheus")}, nil
}
