package toolchain

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// OtelcolBuilderModule is the OpenTelemetry Collector Builder (ocb).
const OtelcolBuilderModule = "go.opentelemetry.io/collector/cmd/builder"

// OtelcolVersion is the pinned builder version. The builder pins the
// collector core (otelcol, service, the v1.x stable modules) to its own
// release, so every component below is at the same version: a contrib
// component of another release would pull a second core.
const OtelcolVersion = "v0.165.0"

// OtelcolDistribution is the name of the built distribution (and of the
// binary the builder would write); the cache and the image call it otelcol.
const OtelcolDistribution = "otelcol-scaleplane"

// otelcolTool is the cache name of the collector binary.
const otelcolTool = "otelcol"

// OtelcolComponents is the builder manifest's component list: exactly what
// the collector config rendered by components/observability uses: the otlp
// receiver (gRPC and HTTP), the memory_limiter and batch processors, the
// otlp exporter (to Jaeger) and the contrib prometheus exporter, and the
// contrib healthcheckv2 extension. The service telemetry (the pull
// Prometheus reader of its own metrics, its own spans over OTLP) is part of
// the core service and needs no component. (The otlp exporter's type is
// otlp_grpc in this release; the config's otlp/jaeger uses its deprecated
// alias, which the binary accepts with a warning.) The confmap providers are the
// builder's defaults (env, file, http, https, yaml), so --config=<file> works.
const OtelcolComponents = `receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v0.165.0
processors:
  - gomod: go.opentelemetry.io/collector/processor/memorylimiterprocessor v0.165.0
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor v0.165.0
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/otlpexporter v0.165.0
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter v0.165.0
extensions:
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckv2extension v0.165.0
`

// otelcolManifest is the builder manifest that writes the distribution's
// sources into output (the builder only generates them; Otelcol compiles).
func otelcolManifest(output string) string {
	return fmt.Sprintf(`dist:
  name: %s
  description: scaleplane OpenTelemetry Collector (the local stack's collector)
  version: %s
  output_path: %q
`, OtelcolDistribution, strings.TrimPrefix(OtelcolVersion, "v"), output) + OtelcolComponents
}

// OtelcolBinary is the cached collector distribution.
type OtelcolBinary struct {
	// Version is the builder (and collector core) version, OtelcolVersion.
	Version string
	// Dir is the cache directory.
	Dir string
	// Path is the executable.
	Path string
}

// OtelcolDir returns where the collector is cached and whether it is there
// already, so tests under -short can skip instead of building.
func OtelcolDir() (dir string, cached bool, err error) {
	dir, err = Dir(otelcolTool, OtelcolVersion)
	if err != nil {
		return "", false, err
	}
	return dir, regularFile(filepath.Join(dir, "otelcol")), nil
}

// Otelcol returns the cached collector distribution, building it the first
// time (minutes on two cores): the builder is installed from the module
// proxy into a temporary directory, generates the distribution's sources
// from the manifest (resolving every module's go.mod and go.sum, the
// network part), and the sources are compiled like the other tools: nice,
// CGO off, -trimpath, stripped, with a private GOFLAGS so the caller's,
// whatever they are, change nothing.
func Otelcol(ctx context.Context) (OtelcolBinary, error) {
	dir, err := Ensure(ctx, otelcolTool, OtelcolVersion, func(dir string) error {
		return buildOtelcol(ctx, filepath.Join(dir, "otelcol"))
	})
	if err != nil {
		return OtelcolBinary{}, err
	}
	return OtelcolBinary{Version: OtelcolVersion, Dir: dir, Path: filepath.Join(dir, "otelcol")}, nil
}

func buildOtelcol(ctx context.Context, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the collector: %w", err)
	}
	work, err := os.MkdirTemp("", "scaleplane-build-otelcol-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	base := append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")

	// The builder runs go get and go mod tidy in the sources it generates,
	// which -mod=readonly would refuse; installing it (a pkg@version
	// install) ignores any go.mod.
	gen := slices.Concat(base, []string{"GOFLAGS=-buildvcs=false", "GOBIN=" + filepath.Join(work, "bin")})
	if err := runNiced(ctx, work, gen, goBin, "install", "-trimpath", OtelcolBuilderModule+"@"+OtelcolVersion); err != nil {
		return err
	}
	manifest := filepath.Join(work, "manifest.yaml")
	src := filepath.Join(work, "src")
	if err := os.WriteFile(manifest, []byte(otelcolManifest(src)), 0o644); err != nil {
		return err
	}
	if err := runNiced(ctx, work, gen, filepath.Join(work, "bin", "builder"), "--config="+manifest, "--skip-compilation"); err != nil {
		return err
	}

	// The generated go.mod and go.sum are complete (the builder tidied
	// them); the build must not change them.
	env := slices.Concat(base, []string{"GOFLAGS=-buildvcs=false -mod=readonly"})
	build := progress.GoBuild{What: "otelcol " + OtelcolVersion, Dir: src, Env: env, Nice: true,
		Flags: []string{"-trimpath", "-ldflags", "-s -w"}, Targets: []progress.GoTarget{{Out: out, Pkg: "."}}}
	if err := build.Run(ctx); err != nil {
		return err
	}
	if !regularFile(out) {
		return fmt.Errorf("go build finished but %s is missing", out)
	}
	return nil
}
