// Package toolchain is the one versioned cache for every tool scaleplane
// builds or downloads (Kafka jars today; Kubernetes, Pulumi, Jaeger later).
//
// Each tool lives in ~/.cache/scaleplane/<tool>-<version>/ so the command,
// the tests and CI share one copy and a version bump is a new directory, never
// an in-place update. A directory that exists is complete: it is built in a
// temporary sibling and renamed into place, and a file lock keeps concurrent
// processes (go test runs packages in parallel) from building it twice.
//
// Errors name the tool, its version and the step that failed ("building
// kafka 4.4.0 into DIR: ..."), never this package: the caller's context and
// the command's "scaleplane <verb>: " go in front (the rule is written out in
// internal/images' package doc).
package toolchain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/preflight"
	"github.com/scaleplane/scaleplane/internal/progress"
)

// CacheEnv names the environment variable that overrides the cache root.
const CacheEnv = preflight.CacheEnv

// lockPollInterval is how often a process waiting for another's build checks
// the lock again; polling (not a blocking flock) lets ctx cancel the wait.
const lockPollInterval = 200 * time.Millisecond

// Root returns the cache root: $SCALEPLANE_CACHE if set, else
// <user cache dir>/scaleplane (~/.cache/scaleplane on Linux). The preflight
// owns the rule, so both read one cache.
func Root() (string, error) { return preflight.CacheRoot() }

// Dir returns where tool at version lives in the cache, whether or not it has
// been built yet.
func Dir(tool, version string) (string, error) {
	if err := checkName(tool, version); err != nil {
		return "", err
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, tool+"-"+version), nil
}

// Ensure returns the cache directory of tool at version, calling build to
// fill it first if it is not there. build receives an empty temporary
// directory; when it returns nil the directory is renamed into place
// atomically, so a half-built tool is never seen. A file lock serialises
// builders across processes; the loser of the race finds the directory built.
func Ensure(ctx context.Context, tool, version string, build func(dir string) error) (string, error) {
	dir, err := Dir(tool, version)
	if err != nil {
		return "", err
	}
	if isDir(dir) {
		return dir, nil
	}
	root := filepath.Dir(dir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("creating tool cache root: %w", err)
	}
	unlock, err := lock(ctx, dir+".lock")
	if err != nil {
		return "", fmt.Errorf("waiting to build %s %s: %w", tool, version, err)
	}
	defer unlock()
	if isDir(dir) { // another process built it while we waited
		return dir, nil
	}
	tmp, err := os.MkdirTemp(root, "."+tool+"-"+version+".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating build directory for %s %s: %w", tool, version, err)
	}
	// The first build of a tool takes minutes: say what and how long, and
	// let the builds below report their steps inside this task's line.
	t := progress.Start(ctx, "building "+tool+" "+version+" into the tool cache (once)", 0)
	err = t.Done(build(tmp))
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("building %s %s into %s: %w", tool, version, dir, err)
	}
	if err := ctx.Err(); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("building %s %s: %w", tool, version, err)
	}
	// MkdirTemp made it 0700; the cache is read by whoever runs the tool.
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("installing %s %s: %w", tool, version, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("installing %s %s: %w", tool, version, err)
	}
	return dir, nil
}

// checkName refuses names that would escape the cache root or collide with
// the lock and temporary files Ensure keeps beside the tools.
func checkName(tool, version string) error {
	for _, s := range []string{tool, version} {
		if s == "" || strings.ContainsAny(s, `/\`) || strings.HasPrefix(s, ".") {
			return fmt.Errorf("invalid tool name or version %q (want a non-empty name without slashes or a leading dot)", s)
		}
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// lock takes an exclusive flock on path, polling so that ctx can end the wait.
func lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPollInterval):
		}
	}
}
