package images

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scaleplane/scaleplane/internal/progress"
	"github.com/scaleplane/scaleplane/stacks"
)

// AppsDir is where the Go services live, one main package per directory.
const AppsDir = "apps"

// Service is one built service image.
type Service struct {
	// Name is the directory under apps/, also the image repository's last
	// path element.
	Name string
	// Ref is the reference the stack config points at
	// (<imageRegistry>/<name>:<imageTag>).
	Ref string
	// DigestRef is the content-addressed reference of the same image.
	DigestRef string
	// Digest is the image manifest digest (sha256:...).
	Digest string
}

// BuildOptions says what to build and where to load it.
type BuildOptions struct {
	// Root is the repository root (holds apps/ and stacks/).
	Root string
	// Stack names the stack whose imageRegistry/imageTag tag the images.
	Stack string
	// Only limits the build to these services (default: every main package
	// under apps/).
	Only []string
	// Tarball is where the image archive is written (default: a temporary
	// file removed after import).
	Tarball string
	// Socket is the containerd socket to import into; empty writes the
	// tarball only (for `kind load image-archive` or another runtime).
	Socket string
	// Log receives progress lines.
	Log io.Writer
}

// Services lists the directories under root/apps that hold a main package:
// the services that can become images. Libraries (apps/kit) are skipped.
func Services(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, AppsDir))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", AppsDir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, AppsDir, e.Name(), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			if isMain(f) {
				out = append(out, e.Name())
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// isMain reports whether a Go file declares package main (its first
// package clause, after comments and build tags).
func isMain(file string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "package ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "package ")) == "main"
		}
	}
	return false
}

// Build compiles each service statically (CGO off, -trimpath, so the bytes
// depend only on the source), makes its image, tags it with the stack's
// reference and its digest, writes one tarball and imports it.
func Build(ctx context.Context, o BuildOptions) ([]Service, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	values, err := stacks.ReadStackConfig(o.Root, o.Stack)
	if err != nil {
		return nil, err
	}
	env, err := stacks.Parse(o.Stack, values)
	if err != nil {
		return nil, err
	}
	names := o.Only
	if len(names) == 0 {
		if names, err = Services(o.Root); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no main package under %s", filepath.Join(o.Root, AppsDir))
	}
	work, err := os.MkdirTemp("", "scaleplane-images-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()

	steps := 2
	if len(o.Only) == 0 {
		steps = 5
	}
	t := progress.Start(ctx, "images of stack "+o.Stack, steps)
	built, err := build(ctx, o, env, names, work, t, steps)
	return built, t.Done(err)
}

// build does Build's work in steps of t: the Go services, then (for the
// whole stack) the Debian servers, the tool images and Kafka, then the
// archive and its import.
func build(ctx context.Context, o BuildOptions, env *stacks.Env, names []string, work string, t *progress.Task, steps int) ([]Service, error) {
	var built []Service
	var tagged []Tagged
	t.Step(1, "the Go services")
	for i, svc := range names {
		bin := filepath.Join(work, svc)
		t.Detail("%d of %d: %s", i+1, len(names), svc)
		fmt.Fprintf(o.Log, "images: go build ./%s/%s\n", AppsDir, svc)
		if err := goBuild(ctx, o.Root, "./"+AppsDir+"/"+svc, bin); err != nil {
			return nil, err
		}
		img, err := FromBinary(Spec{Binary: bin, Path: "/app/" + svc})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", svc, err)
		}
		sv, err := tagImage(svc, env.Image(svc), img)
		if err != nil {
			return nil, err
		}
		built = append(built, sv.Service)
		tagged = append(tagged, sv.Tagged)
		fmt.Fprintf(o.Log, "images: %s %s (%s)\n", sv.Ref, sv.Digest[:19], sv.DigestRef)
	}
	var servers []server
	if len(o.Only) == 0 {
		t.Step(2, "the Debian server images")
		var err error
		if servers, err = buildServers(ctx, env, o.Log); err != nil {
			return nil, err
		}
		t.Step(3, "the tool images (Jaeger, Prometheus, the collector, kube-state-metrics)")
		tools, err := buildToolImages(ctx, env, o.Log)
		if err != nil {
			return nil, err
		}
		servers = append(servers, tools...)
		t.Step(4, "the Kafka image")
		k, err := buildKafka(ctx, env, o.Log)
		if err != nil {
			return nil, err
		}
		servers = append(servers, k...)
	}
	for _, sv := range servers {
		built = append(built, sv.Service)
		tagged = append(tagged, sv.Tagged)
	}
	t.Step(steps, "writing and importing the archive")
	file := o.Tarball
	if file == "" {
		file = filepath.Join(work, "images.tar")
	}
	if err := WriteTarball(file, tagged); err != nil {
		return nil, err
	}
	if o.Socket != "" {
		if err := Import(ctx, o.Socket, file); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "images: imported %d images into containerd %s\n", len(built), o.Socket)
	} else {
		fmt.Fprintf(o.Log, "images: wrote %s\n", file)
	}
	return built, nil
}

// Refs are the references `images build` makes for a stack: one per main
// package under apps/ and each server, tool and Kafka image under the
// stack's registry. A stack that refers to anything else on a node without
// a registry leaves a pod that cannot start.
func Refs(root string, env *stacks.Env) ([]string, error) {
	svcs, err := Services(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, svc := range svcs {
		out = append(out, env.Image(svc))
	}
	for ref := range serverImages(env) {
		out = append(out, ref)
	}
	for ref := range toolImages(env) {
		out = append(out, ref)
	}
	if ref, _, ok := kafkaImageRef(env); ok {
		out = append(out, ref)
	}
	sort.Strings(out)
	return out, nil
}

// server is one Debian-based server image the stack points at.
type server struct {
	Service
	Tagged
}

// serverImages are the stack's data-tier images that name a Debian server
// spec under the stack's own registry (`<imageRegistry>/<spec>:<tag>`):
// those are built here; any other reference (a public image, another
// registry) is the user's to provide.
func serverImages(env *stacks.Env) map[string]string {
	out := map[string]string{}
	for _, ref := range []string{env.Data.RedisImage, env.Edge.Image, env.Data.PostgresImage, env.Data.PgBouncerImage} {
		repo, _, ok := strings.Cut(strings.TrimPrefix(ref, env.ImageRegistry+"/"), ":")
		if !ok || !strings.HasPrefix(ref, env.ImageRegistry+"/") {
			continue
		}
		spec := repo
		if s, ok := serverAliases[repo]; ok {
			spec = s
		}
		if _, known := DebianServerSpec(spec); known {
			out[ref] = spec
		}
	}
	return out
}

// serverAliases are image names the stacks use for a Debian server spec:
// the edge's image is named after its role and the proxy in it.
var serverAliases = map[string]string{"edge-nginx": "nginx", "edge-haproxy": "haproxy"}

// buildServers builds (or finds in the cache) the stack's Debian-based
// server images and tags each with the stack's reference and its digest.
func buildServers(ctx context.Context, env *stacks.Env, log io.Writer) ([]server, error) {
	refs := serverImages(env)
	var out []server
	for _, ref := range slices.Sorted(maps.Keys(refs)) {
		spec, _ := DebianServerSpec(refs[ref])
		fmt.Fprintf(log, "images: %s from Debian's %s (cached after the first build)\n", ref, strings.Join(spec.Packages, ", "))
		img, err := DebianServer(ctx, DebianOptions{Log: log}, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		sv, err := tagImage(spec.Name, ref, img.Image)
		if err != nil {
			return nil, err
		}
		out = append(out, sv)
		fmt.Fprintf(log, "images: %s %s (%s)\n", ref, sv.Digest[:19], sv.DigestRef)
	}
	return out, nil
}

// tagImage names img with the stack's reference and its content digest.
func tagImage(name, ref string, img v1.Image) (server, error) {
	dref, err := DigestTag(ref[:strings.LastIndex(ref, ":")], img)
	if err != nil {
		return server{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return server{}, err
	}
	return server{
		Service: Service{Name: name, Ref: ref, DigestRef: dref, Digest: d.String()},
		Tagged:  Tagged{Image: img, Refs: []string{ref, dref}},
	}, nil
}

// goBuild builds one main package as a static, stripped, reproducible binary.
func goBuild(ctx context.Context, root, pkg, out string) error {
	return progress.GoBuild{
		What: pkg, Dir: root,
		Env:     append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false -mod=mod"),
		Flags:   []string{"-trimpath", "-ldflags=-s -w -buildid="},
		Targets: []progress.GoTarget{{Out: out, Pkg: pkg}},
	}.Run(ctx)
}
