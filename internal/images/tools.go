package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/scaleplane/scaleplane/stacks"
)

// toolImage is the image of one Go program the toolchain builds from the
// module proxy: `<imageRegistry>/<Name>:<Tag>`, holding the binary alone at
// /app/<Name> as its entrypoint, run as a non-root user (FromBinary).
type toolImage struct {
	// Name is the image's repository under the stack's registry.
	Name string
	// Tag is the tag of the release the toolchain builds; a stack reference
	// under the registry with another tag is refused rather than mislabelled.
	Tag string
	// What names the build in the log.
	What string
	// Refs are the stack's image references that may name this image.
	Refs func(o stacks.ObservabilitySettings) []string
	// Binary returns the cached binary, building it the first time.
	Binary func(ctx context.Context) (string, error)
}

// tools are the images `images build` makes from the toolchain's builds.
var tools = []toolImage{
	{
		Name: "jaeger", Tag: toolchain.JaegerVersion,
		What: "Jaeger " + toolchain.JaegerVersion + " (release " + toolchain.JaegerReleaseV2 + ")",
		// Jaeger v2 is an OpenTelemetry Collector distribution: the same
		// binary can run the stack's collector config too (proven by the
		// observability tests), should a stack point collectorImage at it.
		Refs: func(o stacks.ObservabilitySettings) []string { return []string{o.JaegerImage, o.CollectorImage} },
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.Jaeger(ctx)
			return b.Path, err
		},
	},
	{
		// The collector distribution the OpenTelemetry Collector Builder
		// makes with exactly the components of the rendered config.
		Name: "otelcol", Tag: toolchain.OtelcolVersion,
		What: "OpenTelemetry Collector " + toolchain.OtelcolDistribution + " (builder " + toolchain.OtelcolVersion + ")",
		Refs: func(o stacks.ObservabilitySettings) []string { return []string{o.CollectorImage} },
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.Otelcol(ctx)
			return b.Path, err
		},
	},
	{
		// The upstream server, not Debian's package, which lacks Kubernetes
		// service discovery; built without the web UI's generated assets
		// (the API, /-/ready and /metrics serve without them).
		Name: "prometheus", Tag: "v" + toolchain.PrometheusRelease,
		What: "Prometheus " + toolchain.PrometheusRelease + " (module " + toolchain.PrometheusModuleVersion + ")",
		Refs: func(o stacks.ObservabilitySettings) []string { return []string{o.PrometheusImage} },
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.Prometheus(ctx)
			return b.Path, err
		},
	},
	{
		Name: "kube-state-metrics", Tag: toolchain.KubeStateMetricsVersion,
		What: "kube-state-metrics " + toolchain.KubeStateMetricsVersion,
		Refs: func(o stacks.ObservabilitySettings) []string { return []string{o.KubeStateMetricsImage} },
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.KubeStateMetrics(ctx)
			return b.Path, err
		},
	},
}

// toolByName is the tools entry called name.
func toolByName(name string) (toolImage, bool) {
	for _, t := range tools {
		if t.Name == name {
			return t, true
		}
	}
	return toolImage{}, false
}

// toolImages are the stack's images of a Go program the toolchain builds
// from the module proxy (Jaeger, the collector, Prometheus,
// kube-state-metrics), under the
// stack's registry: reference -> tool name. Any other reference (a public
// image, another registry) is the user's to provide.
func toolImages(env *stacks.Env) map[string]string {
	out := map[string]string{}
	for _, t := range tools {
		prefix := env.ImageRegistry + "/" + t.Name + ":"
		for _, ref := range t.Refs(env.Observability) {
			if strings.HasPrefix(ref, prefix) {
				out[ref] = t.Name
			}
		}
	}
	return out
}

// checkToolTags refuses a tool reference whose tag is not the release the
// toolchain builds: the image would carry another version's name.
func checkToolTags(refs map[string]string) error {
	var bad []string
	for ref, name := range refs {
		t, _ := toolByName(name)
		if tag := ref[strings.LastIndex(ref, ":")+1:]; tag != t.Tag {
			bad = append(bad, fmt.Sprintf("%s: images build makes %s with tag %s (%s), not %s", ref, t.Name, t.Tag, t.What, tag))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// buildToolImages makes a one-binary image of each tool the stack points
// at (the binary is the cached build the toolchain tests run too).
func buildToolImages(ctx context.Context, env *stacks.Env, log io.Writer) ([]server, error) {
	refs := toolImages(env)
	if err := checkToolTags(refs); err != nil {
		return nil, err
	}
	var out []server
	for _, ref := range slices.Sorted(maps.Keys(refs)) {
		t, _ := toolByName(refs[ref])
		bin, err := t.Binary(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		img, err := FromBinary(Spec{Binary: bin, Path: "/app/" + t.Name})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		sv, err := tagImage(t.Name, ref, img)
		if err != nil {
			return nil, err
		}
		out = append(out, sv)
		fmt.Fprintf(log, "images: %s %s (%s, %s from the module proxy)\n", ref, sv.Digest[:19], sv.DigestRef, t.What)
	}
	return out, nil
}
