package toolchain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// JaegerModule is the Go module that holds Jaeger's sources.
const JaegerModule = "github.com/jaegertracing/jaeger"

// JaegerVersion is the pinned Jaeger module version. Its cmd/jaeger is the
// Jaeger v2 binary (release 2.13.0): an OpenTelemetry Collector distribution
// with Jaeger's storage and query extensions, so the same binary stores and
// serves traces and can `validate` a plain collector configuration that only
// uses the components it carries (otlp, memory_limiter, batch, prometheus…).
const JaegerVersion = "v1.76.0"

// JaegerReleaseV2 is the Jaeger v2 release built from JaegerVersion; it is the
// tag of the jaegertracing/jaeger container image that runs in the cluster, so
// the binary the tests prove and the image that is deployed are one release.
const JaegerReleaseV2 = "2.13.0"

// jaegerTool is the cache name of the Jaeger binary.
const jaegerTool = "jaeger"

// JaegerBinary is the cached Jaeger v2 binary.
type JaegerBinary struct {
	// Version is the module version it was built from, JaegerVersion.
	Version string
	// Dir is the cache directory.
	Dir string
	// Path is the executable.
	Path string
}

// JaegerDir returns where the Jaeger binary is cached and whether it is there
// already, so slow callers (tests under -short) can skip instead of building.
func JaegerDir() (dir string, cached bool, err error) {
	dir, err = Dir(jaegerTool, JaegerVersion)
	if err != nil {
		return "", false, err
	}
	return dir, regularFile(filepath.Join(dir, "jaeger")), nil
}

// Jaeger returns the cached Jaeger v2 binary, building it from the module
// proxy the first time: the released module source is copied out of the
// read-only module cache into a temporary directory and built there as the
// main module, so its own go.mod (replace directives included) and go.sum
// decide every dependency, exactly as the release build does. It takes
// minutes on two cores; later calls return at once.
func Jaeger(ctx context.Context) (JaegerBinary, error) {
	dir, err := Ensure(ctx, jaegerTool, JaegerVersion, func(dir string) error {
		return buildReleaseSource(ctx, JaegerModule, JaegerVersion, "./cmd/jaeger",
			filepath.Join(dir, "jaeger"),
			"-X "+JaegerModule+"/internal/version.latestVersion=v"+JaegerReleaseV2)
	})
	if err != nil {
		return JaegerBinary{}, err
	}
	return JaegerBinary{Version: JaegerVersion, Dir: dir, Path: filepath.Join(dir, "jaeger")}, nil
}

// buildReleaseSource builds pkg (a path relative to the module root) of
// module at version into out. The build runs with nice when it exists, since
// it competes with tests and other engineers for a couple of cores. extra
// is more environment for the go command (GONOSUMDB for a module the
// checksum database cannot vouch for: the go command checks a module's
// go.mod against it on every read, so download and build both need it).
func buildReleaseSource(ctx context.Context, module, version, pkg, out, ldflags string, extra ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build %s: %w", module, err)
	}
	work, err := os.MkdirTemp("", "scaleplane-build-"+filepath.Base(module)+"-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	// A private GOFLAGS: the caller's, whatever they are (a user's
	// -mod=mod), must not let the build rewrite the release's go.mod; the
	// release's go.sum is complete.
	env := append(append(os.Environ(), "GOFLAGS=-buildvcs=false -mod=readonly", "GOTOOLCHAIN=local", "CGO_ENABLED=0"), extra...)

	var dl bytes.Buffer
	download := exec.CommandContext(ctx, goBin, "mod", "download", "-json", module+"@"+version)
	download.Dir, download.Env, download.Stdout, download.Stderr = work, env, &dl, &dl
	if err := download.Run(); err != nil {
		return fmt.Errorf("go mod download %s@%s: %w\n%s", module, version, err, progress.Tail(dl.String(), 20))
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(dl.Bytes(), &info); err != nil || info.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: no source directory in %q", module, version, progress.Tail(dl.String(), 5))
	}
	src := filepath.Join(work, "src")
	if err := copySourceTree(info.Dir, src); err != nil {
		return fmt.Errorf("copying %s source: %w", module, err)
	}

	build := progress.GoBuild{What: module + "@" + version, Dir: src, Env: env, Nice: true,
		Flags: []string{"-trimpath", "-ldflags", "-s -w " + ldflags}, Targets: []progress.GoTarget{{Out: out, Pkg: pkg}}}
	if err := build.Run(ctx); err != nil {
		return err
	}
	if !regularFile(out) {
		return fmt.Errorf("go build finished but %s is missing", out)
	}
	return nil
}

// runNiced runs name in dir under nice when there is one (the builds
// compete with tests for a couple of cores) and returns the output's tail
// in its error.
func runNiced(ctx context.Context, dir string, env []string, name string, args ...string) error {
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{"-n", "10", name}, args...)
		name = nice
	}
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, &log, &log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s (in %s): %w\n%s", strings.Join(cmd.Args, " "), dir, err, progress.Tail(log.String(), 40))
	}
	return nil
}

// copySourceTree copies the regular files and directories under from into to,
// making them writable (the module cache is read-only and go build may write
// nothing there, but the copy must be removable afterwards).
func copySourceTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func regularFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
