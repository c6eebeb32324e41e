package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// tool is one Go program the toolchain builds from the module proxy, made
// into an image `<registry>/<Name>:<Tag>` holding the binary alone at
// /app/<Name> as its entrypoint, run as a non-root user (FromBinary).
type tool struct {
	// Name is the image's repository's last path element.
	Name string
	// Tag is the tag of the release the toolchain builds; a reference with
	// another tag is refused rather than mislabelled.
	Tag string
	// What names the build in the log.
	What string
	// Binary returns the cached binary, building it the first time.
	Binary func(ctx context.Context) (string, error)
}

// tools are the images `images build` makes from the toolchain's builds.
var tools = []tool{
	{
		Name: "jaeger", Tag: toolchain.JaegerVersion,
		What: "Jaeger " + toolchain.JaegerVersion + " (release " + toolchain.JaegerReleaseV2 + ")",
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
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.Prometheus(ctx)
			return b.Path, err
		},
	},
	{
		Name: "kube-state-metrics", Tag: toolchain.KubeStateMetricsVersion,
		What: "kube-state-metrics " + toolchain.KubeStateMetricsVersion,
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.KubeStateMetrics(ctx)
			return b.Path, err
		},
	},
	{
		// One multi-call binary for the controller, the webhook, the
		// cainjector and the start-up API check: one image for all four
		// pods, which pick their part by the first argument.
		Name: CertManagerTool, Tag: toolchain.CertManagerVersion,
		What: "cert-manager " + toolchain.CertManagerVersion + " (our mains over " + toolchain.CertManagerModule + ")",
		Binary: func(ctx context.Context) (string, error) {
			b, err := toolchain.CertManager(ctx)
			return b.Path, err
		},
	},
}

// CertManagerTool is the tool image name of cert-manager's multi-call
// binary: `<registry>/cert-manager:<toolchain.CertManagerVersion>`, with
// /app/cert-manager as its entrypoint.
const CertManagerTool = "cert-manager"

// ToolRef is the reference images build gives tool name's image under
// registry (`<registry>/<name>:<release tag>`): the one rule a stack's
// image settings and the plan both follow. It fails for a name that is not
// one of ToolNames.
func ToolRef(registry, name string) (string, error) {
	t, ok := toolByName(name)
	if !ok {
		return "", fmt.Errorf("no tool image %q (images build makes %s)", name, strings.Join(ToolNames(), ", "))
	}
	return registry + "/" + t.Name + ":" + t.Tag, nil
}

// ToolNames are the programs a ToolImage may name, in a fixed order.
func ToolNames() []string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Name)
	}
	return out
}

// toolByName is the tools entry called name.
func toolByName(name string) (tool, bool) {
	for _, t := range tools {
		if t.Name == name {
			return t, true
		}
	}
	return tool{}, false
}

// checkToolTags refuses a tool that is not one of tools, and a reference
// whose tag is not the release the toolchain builds: the image would carry
// another version's name.
func checkToolTags(refs []ToolImage) error {
	var bad []string
	for _, r := range refs {
		t, ok := toolByName(r.Tool)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: no tool %q (images build makes %s)", r.Ref, r.Tool, strings.Join(ToolNames(), ", ")))
			continue
		}
		if tag := r.Ref[strings.LastIndex(r.Ref, ":")+1:]; tag != t.Tag {
			bad = append(bad, fmt.Sprintf("%s: images build makes %s with tag %s (%s), not %s", r.Ref, t.Name, t.Tag, t.What, tag))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// buildToolImages makes a one-binary image of each tool asked for (the
// binary is the cached build the toolchain tests run too).
func buildToolImages(ctx context.Context, refs []ToolImage, log io.Writer) ([]server, error) {
	if err := checkToolTags(refs); err != nil {
		return nil, err
	}
	var out []server
	for _, r := range refs {
		t, _ := toolByName(r.Tool)
		ref := r.Ref
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
