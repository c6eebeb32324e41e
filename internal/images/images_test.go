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
