package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// goModuleBuild describes how to build Go binaries from the module proxy: a
// throwaway wrapper module that requires the tool's module (and pins or
// replaces what the tool's own go.mod cannot express as a dependency), then
// `go build` of its main packages. The wrapper lives in a temporary directory
// under the cache root, never in the project's module, so the project's
// go.mod is untouched.
type goModuleBuild struct {
	// module is the wrapper module's path.
	module string
	// goVersion is the wrapper's go directive; empty means 1.25. A tool
	// whose go.mod asks for a newer language version needs it here too:
	// the go command refuses to build a dependency newer than its main
	// module's go line under GOTOOLCHAIN=local.
	goVersion string
	// requires are "path version" lines of the wrapper's require block.
	requires []string
	// replaces are "old => new version" lines of the wrapper's replace block.
	replaces []string
	// mains maps an output binary name to the main package that builds it.
	mains map[string]string
	// ldflags are passed to go build (versions stamped with -X).
	ldflags string
	// files are extra files written into the wrapper module (for example a
	// package main of our own), relative to its root.
	files map[string][]byte
	// tags are build tags given to go build (-tags), for sources of our own
	// that scaleplane's module must not compile.
	tags []string
	// nice runs the go command under nice: a long build competes with
	// tests for a couple of cores.
	nice bool
	// cgo enables cgo; off by default so the binaries are static and run
	// inside images without a libc.
	cgo bool
	// prepare runs after go.mod and files are written and before the build,
	// in the wrapper directory (for example to generate files from the
	// downloaded module).
	prepare func(ctx context.Context, work string) error
}

// build writes the wrapper module, resolves it and builds every main into
// out. Output of the go command is kept and returned on failure, tail first.
func (b goModuleBuild) build(ctx context.Context, out string) error {
	root, err := Root()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("creating cache root: %w", err)
	}
	work, err := os.MkdirTemp(root, ".gobuild-")
	if err != nil {
		return fmt.Errorf("creating wrapper module directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()

	goVersion := b.goVersion
	if goVersion == "" {
		goVersion = "1.25"
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module %s\n\ngo %s\n", b.module, goVersion)
	if len(b.requires) > 0 {
		mod.WriteString("\nrequire (\n")
		for _, r := range b.requires {
			fmt.Fprintf(&mod, "\t%s\n", r)
		}
		mod.WriteString(")\n")
	}
	if len(b.replaces) > 0 {
		mod.WriteString("\nreplace (\n")
		for _, r := range b.replaces {
			fmt.Fprintf(&mod, "\t%s\n", r)
		}
		mod.WriteString(")\n")
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(mod.String()), 0o644); err != nil {
		return err
	}
	for name, data := range b.files {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	if b.prepare != nil {
		if err := b.prepare(ctx, work); err != nil {
			return err
		}
	}

	names := make([]string, 0, len(b.mains))
	for n := range b.mains {
		names = append(names, n)
	}
	sort.Strings(names)
	g := progress.GoBuild{What: b.module, Dir: work, Env: b.env(), Nice: b.nice}
	g.Flags = []string{"-trimpath"}
	if len(b.tags) > 0 {
		g.Flags = append(g.Flags, "-tags", strings.Join(b.tags, ","))
	}
	if b.ldflags != "" {
		g.Flags = append(g.Flags, "-ldflags", b.ldflags)
	}
	for _, name := range names {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(out, name)), 0o755); err != nil {
			return err
		}
		g.Targets = append(g.Targets, progress.GoTarget{Out: filepath.Join(out, name), Pkg: b.mains[name]})
	}
	return g.Run(ctx)
}

// env is the go command's environment for the wrapper module: no
// workspace, not the caller's GOFLAGS, go.sum lines added as needed
// (-mod=mod: the wrapper is generated here, in a temporary directory, and
// its go.sum starts empty; scaleplane's own go.mod is never in play), cgo
// only when asked.
func (b goModuleBuild) env() []string {
	cgo := "0"
	if b.cgo {
		cgo = "1"
	}
	return append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false", "CGO_ENABLED="+cgo, "GOTOOLCHAIN=local")
}
