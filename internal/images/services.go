package images

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// Service is one built service image.
type Service struct {
	// Name is the image repository's last path element (a service's
	// directory under apps/, a Debian server spec, a tool).
	Name string
	// Ref is the reference the build was asked for (for a stack:
	// <imageRegistry>/<name>:<imageTag>).
	Ref string
	// DigestRef is the content-addressed reference of the same image.
	DigestRef string
	// Digest is the image manifest digest (sha256:...).
	Digest string
}

// GoService is one Go main package to compile into a one-binary image.
type GoService struct {
	// Name is the binary's name (at /app/<Name>) and the built Service's.
	Name string
	// Pkg is the main package, as go build takes it from Root ("./apps/gateway").
	Pkg string
	// Ref is the reference to tag the image with.
	Ref string
}

// ServerImage is one Debian-packaged server image to build (or take from the
// tool cache).
type ServerImage struct {
	// Ref is the reference to tag the image with.
	Ref string
	// Spec says which packages go in and how the image runs them.
	Spec DebianSpec
}

// ToolImage is one image of a Go program the toolchain builds from the
// module proxy (ToolNames lists them).
type ToolImage struct {
	// Ref is the reference to tag the image with; its tag must be the
	// release the toolchain builds.
	Ref string
	// Tool is the program's name, one of ToolNames.
	Tool string
}

// KafkaBuild is the Kafka image to build.
type KafkaBuild struct {
	// Ref is the reference to tag the image with; its tag must be
	// toolchain.KafkaVersion.
	Ref string
	// Spec is what the pods that run the image expect of it.
	Spec KafkaSpec
}

// BuildOptions say what to build and where to load it. The caller decides
// every reference: this package reads no deploy configuration.
type BuildOptions struct {
	// Root is the directory go build runs in (the module holding the
	// services' packages).
	Root string
	// Label names the build on the progress line ("images of stack local").
	Label string
	// Services are the Go services to build, in order.
	Services []GoService
	// ServicesOnly builds Services alone: the Debian, tool and Kafka steps
	// neither run nor count in the progress (images build --only).
	ServicesOnly bool
	// Servers, Tools and Kafka are the other images, built after the
	// services unless ServicesOnly.
	Servers []ServerImage
	Tools   []ToolImage
	Kafka   *KafkaBuild
	// Tarball is where the image archive is written (default: a temporary
	// file removed after import).
	Tarball string
	// Socket is the containerd socket to import into; empty writes the
	// tarball only (for `kind load image-archive` or another runtime).
	Socket string
	// Log receives progress lines.
	Log io.Writer
}

// Refs are the references o tags images with (the content-addressed ones
// aside), in the order they are built.
func (o BuildOptions) Refs() []string {
	var out []string
	for _, s := range o.Services {
		out = append(out, s.Ref)
	}
	if o.ServicesOnly {
		return out
	}
	for _, s := range o.Servers {
		out = append(out, s.Ref)
	}
	for _, t := range o.Tools {
		out = append(out, t.Ref)
	}
	if o.Kafka != nil {
		out = append(out, o.Kafka.Ref)
	}
	return out
}

// Build compiles each service statically (CGO off, -trimpath, so the bytes
// depend only on the source), makes its image and the other images asked
// for, tags each with its reference and its digest, writes one tarball and
// imports it.
func Build(ctx context.Context, o BuildOptions) ([]Service, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	// The references come from the caller: a malformed one is refused
	// before minutes of building, not found when the image is tagged.
	for _, ref := range o.Refs() {
		if _, err := name.NewTag(ref, name.StrictValidation); err != nil {
			return nil, fmt.Errorf("image reference %q: want registry/repository:tag: %w", ref, err)
		}
	}
	work, err := os.MkdirTemp("", "scaleplane-images-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()

	steps := 5
	if o.ServicesOnly {
		steps = 2
	}
	t := progress.Start(ctx, o.Label, steps)
	built, err := build(ctx, o, work, t, steps)
	return built, t.Done(err)
}

// build does Build's work in steps of t: the Go services, then (unless
// ServicesOnly) the Debian servers, the tool images and Kafka, then the
// archive and its import.
func build(ctx context.Context, o BuildOptions, work string, t *progress.Task, steps int) ([]Service, error) {
	var built []Service
	var tagged []Tagged
	t.Step(1, "the Go services")
	for i, s := range o.Services {
		bin := filepath.Join(work, s.Name)
		t.Detail("%d of %d: %s", i+1, len(o.Services), s.Name)
		fmt.Fprintf(o.Log, "images: go build %s\n", s.Pkg)
		if err := goBuild(ctx, o.Root, s.Pkg, bin); err != nil {
			return nil, err
		}
		img, err := FromBinary(Spec{Binary: bin, Path: "/app/" + s.Name})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		sv, err := tagImage(s.Name, s.Ref, img)
		if err != nil {
			return nil, err
		}
		built = append(built, sv.Service)
		tagged = append(tagged, sv.Tagged)
		fmt.Fprintf(o.Log, "images: %s %s (%s)\n", sv.Ref, sv.Digest[:19], sv.DigestRef)
	}
	var servers []server
	if !o.ServicesOnly {
		t.Step(2, "the Debian server images")
		var err error
		if servers, err = buildServers(ctx, o.Servers, o.Log); err != nil {
			return nil, err
		}
		t.Step(3, "the tool images (Jaeger, Prometheus, the collector, kube-state-metrics)")
		tools, err := buildToolImages(ctx, o.Tools, o.Log)
		if err != nil {
			return nil, err
		}
		servers = append(servers, tools...)
		t.Step(4, "the Kafka image")
		k, err := buildKafka(ctx, o.Kafka, o.Log)
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

// server is one built image with its references, ready for the archive.
type server struct {
	Service
	Tagged
}

// buildServers builds (or finds in the cache) the Debian-based server
// images and tags each with its reference and its digest.
func buildServers(ctx context.Context, servers []ServerImage, log io.Writer) ([]server, error) {
	var out []server
	for _, s := range servers {
		fmt.Fprintf(log, "images: %s from Debian's %s (cached after the first build)\n", s.Ref, strings.Join(s.Spec.Packages, ", "))
		img, err := DebianServer(ctx, DebianOptions{Log: log}, s.Spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Ref, err)
		}
		sv, err := tagImage(s.Spec.Name, s.Ref, img.Image)
		if err != nil {
			return nil, err
		}
		out = append(out, sv)
		fmt.Fprintf(log, "images: %s %s (%s)\n", s.Ref, sv.Digest[:19], sv.DigestRef)
	}
	return out, nil
}

// tagImage names img with its reference and its content digest.
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
		Env:     append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false -mod=readonly"),
		Flags:   []string{"-trimpath", "-ldflags=-s -w -buildid="},
		Targets: []progress.GoTarget{{Out: out, Pkg: pkg}},
	}.Run(ctx)
}
