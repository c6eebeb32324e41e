package images

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

// fakeBinary writes a file standing in for a static binary.
func fakeBinary(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "svc")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o755), "writing the fake binary")
	return p
}

func TestFromBinaryIsNonRootWithoutShellAndRunnable(t *testing.T) {
	img, err := FromBinary(Spec{Binary: fakeBinary(t, "binary-bytes"), Path: "/app/svc", Args: []string{"-v"}})
	require.NoError(t, err, "building the image")
	cf, err := img.ConfigFile()
	require.NoError(t, err, "reading the config")
	assert.Equal(t, "linux", cf.OS, "containerd filters out images without an OS")
	assert.Equal(t, "amd64", cf.Architecture, "containerd filters out images without an architecture")
	assert.Equal(t, "65532:65532", cf.Config.User, "the image runs as the non-root user")
	assert.Equal(t, []string{"/app/svc"}, cf.Config.Entrypoint, "the entrypoint is the binary")
	assert.Equal(t, []string{"-v"}, cf.Config.Cmd, "default args follow")

	layers, err := img.Layers()
	require.NoError(t, err, "listing layers")
	require.Len(t, layers, 1, "one layer: the binary")
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err, "opening the layer")
	defer func() { _ = rc.Close() }()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "reading the layer")
		files[h.Name] = h
	}
	require.Contains(t, files, "app/svc", "the binary is in the layer")
	assert.Equal(t, int64(0o555), files["app/svc"].Mode, "the binary is read-only and executable")
	assert.Contains(t, files, "tmp/", "/tmp exists")
	for name := range files {
		assert.False(t, strings.HasPrefix(name, "bin/"), "no shell or tools in the image: %s", name)
	}
}

func TestSameBinaryGivesSameDigest(t *testing.T) {
	bin := fakeBinary(t, "same")
	a, err := FromBinary(Spec{Binary: bin})
	require.NoError(t, err, "first build")
	b, err := FromBinary(Spec{Binary: bin})
	require.NoError(t, err, "second build")
	da, _ := a.Digest()
	db, _ := b.Digest()
	assert.Equal(t, da, db, "builds are reproducible, so a redeploy sees no change")
	c, err := FromBinary(Spec{Binary: fakeBinary(t, "different")})
	require.NoError(t, err, "third build")
	dc, _ := c.Digest()
	assert.NotEqual(t, da, dc, "different bytes give a different digest")

	tag, err := DigestTag("scaleplane.local/gateway", a)
	require.NoError(t, err, "digest tag")
	assert.Equal(t, "scaleplane.local/gateway:sha-"+da.Hex[:16], tag, "the content tag carries the digest")
}

func TestWriteTarballHoldsEveryReference(t *testing.T) {
	img, err := FromBinary(Spec{Binary: fakeBinary(t, "x")})
	require.NoError(t, err, "building")
	file := filepath.Join(t.TempDir(), "images.tar")
	require.NoError(t, WriteTarball(file, []Tagged{{Image: img, Refs: []string{"scaleplane.local/a:dev", "scaleplane.local/a:sha-1"}}}), "writing")
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	require.NoError(t, err, "reading the archive's manifest")
	require.Len(t, m, 1, "one image")
	assert.ElementsMatch(t, []string{"scaleplane.local/a:dev", "scaleplane.local/a:sha-1"}, m[0].RepoTags, "both tags are in the archive")
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
			"scaleplane.local/postgresql:15.20": "postgresql", "scaleplane.local/pgbouncer:1.18.0": "pgbouncer"},
		// prod's edge is under its own registry: images build makes it (to
		// push); Redis is ElastiCache there.
		"prod": {"registry.scaleplane.example/scaleplane/edge-haproxy:0.1.0": "haproxy"},
	} {
		values, err := stacks.ReadStackConfig("../..", stack)
		if err != nil {
			t.Fatalf("read %s: %v", stack, err)
		}
		env, err := stacks.Parse(stack, values)
		if err != nil {
			t.Fatalf("parse %s: %v", stack, err)
		}
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
