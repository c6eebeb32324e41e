// Package imageplan decides which images a stack needs from this tool and
// under which references: it reads the stack's typed stacks.Env and hands
// internal/images, which reads no deploy configuration, the references,
// the Debian specs and the component values to build with. It sits above
// both so the node side (internal/cluster) can use the builder without
// linking stacks and every component.
package imageplan

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/scaleplane/scaleplane/components/kafka"
	"github.com/scaleplane/scaleplane/internal/images"
	"github.com/scaleplane/scaleplane/stacks"
)

// AppsDir is where the Go services live, one main package per directory.
const AppsDir = "apps"

// Load reads stack's configuration under root and plans its images (For).
func Load(root, stack string, only []string) (images.BuildOptions, error) {
	values, err := stacks.ReadStackConfig(root, stack)
	if err != nil {
		return images.BuildOptions{}, err
	}
	env, err := stacks.Parse(stack, values)
	if err != nil {
		return images.BuildOptions{}, err
	}
	return For(root, env, only)
}

// For plans the images `images build` makes for env: only those Go
// services when only is given, otherwise every main package under
// root/apps and each server, tool and Kafka image under the stack's
// registry. The caller adds where the archive goes (Tarball, Socket, Log).
func For(root string, env *stacks.Env, only []string) (images.BuildOptions, error) {
	names := only
	if len(names) == 0 {
		var err error
		if names, err = Services(root); err != nil {
			return images.BuildOptions{}, err
		}
	}
	if len(names) == 0 {
		return images.BuildOptions{}, fmt.Errorf("no main package under %s", filepath.Join(root, AppsDir))
	}
	o := images.BuildOptions{Root: root, Label: "images of stack " + env.Stack, ServicesOnly: len(only) > 0}
	for _, svc := range names {
		o.Services = append(o.Services, images.GoService{Name: svc, Pkg: "./" + AppsDir + "/" + svc, Ref: env.Image(svc)})
	}
	if o.ServicesOnly {
		return o, nil
	}
	servers := serverImages(env)
	for _, ref := range slices.Sorted(maps.Keys(servers)) {
		spec, _ := images.DebianServerSpec(servers[ref])
		o.Servers = append(o.Servers, images.ServerImage{Ref: ref, Spec: spec})
	}
	tools := toolImages(env)
	for _, ref := range slices.Sorted(maps.Keys(tools)) {
		o.Tools = append(o.Tools, images.ToolImage{Ref: ref, Tool: tools[ref]})
	}
	if ref, ok := kafkaImageRef(env); ok {
		o.Kafka = &images.KafkaBuild{Ref: ref, Spec: images.KafkaSpec{UID: kafka.UID, Port: kafka.Port}}
	}
	return o, nil
}

// Refs are the references `images build` makes for a stack: one per main
// package under apps/ and each server, tool and Kafka image under the
// stack's registry. A stack that refers to anything else on a node without
// a registry leaves a pod that cannot start.
func Refs(root string, env *stacks.Env) ([]string, error) {
	o, err := For(root, env, nil)
	if err != nil {
		return nil, err
	}
	out := o.Refs()
	sort.Strings(out)
	return out, nil
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

// serverImages are the stack's data-tier images that name a Debian server
// spec under the stack's own registry (`<imageRegistry>/<spec>:<tag>`),
// reference -> spec name: those are built here; any other reference (a
// public image, another registry) is the user's to provide.
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
		if _, known := images.DebianServerSpec(spec); known {
			out[ref] = spec
		}
	}
	return out
}

// serverAliases are image names the stacks use for a Debian server spec:
// the edge's image is named after its role and the proxy in it.
var serverAliases = map[string]string{"edge-nginx": "nginx", "edge-haproxy": "haproxy"}

// toolRefs says, for each program images.ToolNames lists, which of the
// stack's images may name its image.
var toolRefs = []struct {
	tool string
	refs func(env *stacks.Env) []string
}{
	// Jaeger v2 is an OpenTelemetry Collector distribution: the same
	// binary can run the stack's collector config too (proven by the
	// observability tests), should a stack point collectorImage at it.
	{"jaeger", func(e *stacks.Env) []string {
		return []string{e.Observability.JaegerImage, e.Observability.CollectorImage}
	}},
	{"otelcol", func(e *stacks.Env) []string { return []string{e.Observability.CollectorImage} }},
	{"prometheus", func(e *stacks.Env) []string { return []string{e.Observability.PrometheusImage} }},
	{"kube-state-metrics", func(e *stacks.Env) []string { return []string{e.Observability.KubeStateMetricsImage} }},
	{images.CertManagerTool, certManagerRefs},
}

// certManagerRefs is the cert-manager image of a stack whose edge
// certificate comes from cert-manager: the in-cluster stacks (local, dev;
// issue 27). The AWS stacks take theirs from ACM and run no cert-manager.
// The reference follows images.ToolRef, under the stack's registry, since
// no registry is reachable from the embedded node.
func certManagerRefs(e *stacks.Env) []string {
	if e.Flavour != stacks.FlavourInCluster {
		return nil
	}
	ref, err := images.ToolRef(e.ImageRegistry, images.CertManagerTool)
	if err != nil {
		return nil // unreachable: CertManagerTool is a tool; TestToolRefsCoverTheBuilder holds it
	}
	return []string{ref}
}

// toolImages are the stack's images of a Go program the toolchain builds
// from the module proxy (Jaeger, the collector, Prometheus,
// kube-state-metrics, cert-manager), under the stack's registry: reference
// -> tool name. Any other reference (a public image, another registry) is
// the user's to provide.
func toolImages(env *stacks.Env) map[string]string {
	out := map[string]string{}
	for _, t := range toolRefs {
		prefix := env.ImageRegistry + "/" + t.tool + ":"
		for _, ref := range t.refs(env) {
			if strings.HasPrefix(ref, prefix) {
				out[ref] = t.tool
			}
		}
	}
	return out
}

// kafkaImageRef returns the stack's Kafka image when it is one under the
// stack's own registry (`<imageRegistry>/kafka:<tag>`), which images build
// makes; any other reference is the user's to provide.
func kafkaImageRef(env *stacks.Env) (ref string, ok bool) {
	ref = env.Data.KafkaImage
	_, ok = strings.CutPrefix(ref, env.ImageRegistry+"/kafka:")
	return ref, ok
}
