package imageplan

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/kafka"
	"github.com/scaleplane/scaleplane/internal/images"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

func stackEnv(t *testing.T, stack string) *stacks.Env {
	t.Helper()
	values, err := stacks.ReadStackConfig("../..", stack)
	require.NoError(t, err, "reading stack %s", stack)
	env, err := stacks.Parse(stack, values)
	require.NoError(t, err, "parsing stack %s", stack)
	return env
}

func TestServicesListsMainPackagesOnly(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755), "mkdir")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644), "write")
	}
	write("apps/gateway/main.go", "// Command gateway.\npackage main\n")
	write("apps/kit/kit.go", "package kit\n")
	write("apps/users/main_test.go", "package main\n")
	got, err := Services(root)
	require.NoError(t, err, "listing")
	assert.Equal(t, []string{"gateway"}, got, "only directories with a non-test main package are services")
}

// TestServerImagesAreThoseUnderTheStacksRegistry: local's Redis points at
// scaleplane.local/redis, which images build makes from Debian's package;
// an image outside the stack's registry is left to the user.
func TestServerImagesAreThoseUnderTheStacksRegistry(t *testing.T) {
	for stack, want := range map[string]map[string]string{
		"local": {"scaleplane.local/redis:7.0.15": "redis", "scaleplane.local/edge-nginx:dev": "nginx", "scaleplane.local/jaeger:v1.76.0": "jaeger",
			"scaleplane.local/otelcol:v0.165.0": "otelcol", "scaleplane.local/prometheus:v2.55.1": "prometheus", "scaleplane.local/kube-state-metrics:v2.16.0": "kube-state-metrics",
			"scaleplane.local/postgresql:15.20": "postgresql", "scaleplane.local/pgbouncer:1.18.0": "pgbouncer",
			"scaleplane.local/cert-manager:v1.21.2": "cert-manager"},
		// prod's edge, observability tools and read-only pooler are under
		// its own registry: images build makes them (to push); Redis is
		// ElastiCache there.
		"prod": {"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/edge-haproxy:0.1.0": "haproxy",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/jaeger:v1.76.0":             "jaeger",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/otelcol:v0.165.0":           "otelcol",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/prometheus:v2.55.1":         "prometheus",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/kube-state-metrics:v2.16.0": "kube-state-metrics",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/metrics-server:v0.9.0":      "metrics-server",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/pgbouncer:1.18.0":           "pgbouncer"},
	} {
		env := stackEnv(t, stack)
		got := serverImages(env)
		for ref, tool := range toolImages(env) {
			got[ref] = tool
		}
		if len(got) != len(want) {
			t.Errorf("%s: server images %v, want %v", stack, got, want)
		}
		for ref, spec := range want {
			if got[ref] != spec {
				t.Errorf("%s: %s built from spec %q, want %q", stack, ref, got[ref], spec)
			}
		}
	}
}

// TestEveryLocalImageIsBuiltHere renders the local stack and requires every
// container image of every workload to be one `images build` makes: the
// embedded node has no registry, so any other reference is a pod that
// never starts.
func TestEveryLocalImageIsBuiltHere(t *testing.T) {
	g, env, err := render.Stack("../..", "local")
	if err != nil {
		t.Fatalf("render local: %v", err)
	}
	refs, err := Refs("../..", env)
	if err != nil {
		t.Fatalf("refs: %v", err)
	}
	built := map[string]bool{}
	for _, r := range refs {
		built[r] = true
	}
	var seen int
	for _, typ := range []string{"kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:batch/v1:Job"} {
		for _, r := range g.ByType(typ) {
			spec, _ := r.Inputs["spec"].(map[string]any)
			tmpl, _ := spec["template"].(map[string]any)
			pod, _ := tmpl["spec"].(map[string]any)
			for _, key := range []string{"initContainers", "containers"} {
				list, _ := pod[key].([]any)
				for _, c := range list {
					c, _ := c.(map[string]any)
					img, _ := c["image"].(string)
					seen++
					if !built[img] {
						t.Errorf("%s %s: %s %q is not an image images build makes (%v)", typ, r.Name, key, img, refs)
					}
					if c["imagePullPolicy"] != "IfNotPresent" {
						t.Errorf("%s %s: image %q has pull policy %v, want IfNotPresent (no registry to pull from)", typ, r.Name, img, c["imagePullPolicy"])
					}
				}
			}
		}
	}
	if seen < 10 {
		t.Errorf("found %d container images in the local stack; the walk is broken", seen)
	}
}

// TestLocalToolImages: the local stack points Jaeger, the collector,
// Prometheus and kube-state-metrics at its own registry, with the tags of the
// releases the toolchain builds, so images build makes all four, and
// cert-manager's, which the in-cluster stacks get their edge certificate
// from.
func TestLocalToolImages(t *testing.T) {
	got := toolImages(stackEnv(t, "local"))
	assert.Equal(t, map[string]string{
		"scaleplane.local/jaeger:v1.76.0":             "jaeger",
		"scaleplane.local/otelcol:v0.165.0":           "otelcol",
		"scaleplane.local/prometheus:v2.55.1":         "prometheus",
		"scaleplane.local/kube-state-metrics:v2.16.0": "kube-state-metrics",
		"scaleplane.local/cert-manager:v1.21.2":       "cert-manager",
	}, got, "the local stack's tool images")
	// dev runs every image from its team registry, metrics-server too (a
	// shared cluster has none of its own), and cert-manager in-cluster;
	// the AWS stacks use ACM.
	dev := "registry.dev.scaleplane.example/scaleplane/"
	assert.Equal(t, map[string]string{
		dev + "jaeger:v1.76.0":             "jaeger",
		dev + "otelcol:v0.165.0":           "otelcol",
		dev + "prometheus:v2.55.1":         "prometheus",
		dev + "kube-state-metrics:v2.16.0": "kube-state-metrics",
		dev + "metrics-server:v0.9.0":      "metrics-server",
		dev + "cert-manager:v1.21.2":       "cert-manager",
	}, toolImages(stackEnv(t, "dev")), "dev's tool images: all from its registry")
	// The AWS stacks run the observability tools from their ECR registry
	// and no cert-manager (their certificate is ACM's).
	ecr := "123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane/"
	for _, stack := range []string{"staging", "prod"} {
		assert.Equal(t, map[string]string{
			ecr + "jaeger:v1.76.0":             "jaeger",
			ecr + "otelcol:v0.165.0":           "otelcol",
			ecr + "prometheus:v2.55.1":         "prometheus",
			ecr + "kube-state-metrics:v2.16.0": "kube-state-metrics",
			ecr + "metrics-server:v0.9.0":      "metrics-server",
		}, toolImages(stackEnv(t, stack)), "%s's tool images: the observability tools from its ECR registry", stack)
	}
}

// TestToolRefsCoverTheBuilder: every program the builder makes has a
// stack image that may name it, and no entry names one it does not make.
func TestToolRefsCoverTheBuilder(t *testing.T) {
	var names []string
	for _, r := range toolRefs {
		names = append(names, r.tool)
	}
	assert.Equal(t, images.ToolNames(), names, "toolRefs follows images.ToolNames")
}

// TestForLocal: the local stack's plan names every image in ref order
// within each kind, gives the Kafka image the component's uid and port, and
// --only limits it to the services named.
func TestForLocal(t *testing.T) {
	env := stackEnv(t, "local")
	o, err := For("../..", env, nil)
	require.NoError(t, err, "planning local")
	assert.Equal(t, "images of stack local", o.Label, "the progress line names the stack")
	assert.False(t, o.ServicesOnly, "the whole stack")
	svcs, err := Services("../..")
	require.NoError(t, err, "listing services")
	require.Len(t, o.Services, len(svcs), "one image per service")
	for i, s := range o.Services {
		assert.Equal(t, images.GoService{Name: svcs[i], Pkg: "./apps/" + svcs[i], Ref: env.Image(svcs[i])}, s, "service %d", i)
	}
	assert.IsIncreasing(t, refsOf(o.Servers, func(s images.ServerImage) string { return s.Ref }), "servers built in reference order")
	assert.IsIncreasing(t, refsOf(o.Tools, func(s images.ToolImage) string { return s.Ref }), "tools built in reference order")
	require.NotNil(t, o.Kafka, "local runs its own Kafka image")
	assert.Equal(t, images.KafkaBuild{Ref: "scaleplane.local/kafka:4.4.0", Spec: images.KafkaSpec{UID: kafka.UID, Port: kafka.Port}}, *o.Kafka, "the component's uid and port")

	only, err := For("../..", env, []string{"gateway"})
	require.NoError(t, err, "planning local --only gateway")
	assert.True(t, only.ServicesOnly, "--only builds services alone")
	assert.Equal(t, []string{"scaleplane.local/gateway:dev"}, only.Refs(), "only the service named")

	_, err = For(t.TempDir(), env, nil)
	assert.Error(t, err, "a directory without apps/ has nothing to build")
	empty := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(empty, AppsDir, "kit"), 0o755), "mkdir")
	_, err = For(empty, env, nil)
	assert.ErrorContains(t, err, "no main package under", "an apps/ without main packages is refused")
}

// refsOf lists the references of a plan's images.
func refsOf[T any](xs []T, ref func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, ref(x))
	}
	return out
}

// TestAWSStacksPushExactlyTheirRepositories: `images push` pushes the
// references `images build` makes; on an aws stack each must land in a
// repository the stack declares (ECR refuses a push to a missing one), and
// each declared repository gets its image.
func TestAWSStacksPushExactlyTheirRepositories(t *testing.T) {
	for _, stack := range []string{"staging", "prod"} {
		env := stackEnv(t, stack)
		refs, err := Refs("../..", env)
		require.NoError(t, err, "refs of %s", stack)
		pushed := map[string]bool{}
		for _, ref := range refs {
			require.Truef(t, strings.HasPrefix(ref, env.ImageRegistry+"/"), "%s: %s is under the stack's registry", stack, ref)
			repo := strings.TrimPrefix(ref[:strings.LastIndex(ref, ":")], env.RegistryHost()+"/")
			pushed[repo] = true
		}
		assert.ElementsMatch(t, env.RegistryRepositories(), slices.Collect(maps.Keys(pushed)),
			"%s: the repositories declared are the ones pushed to", stack)
	}
}
