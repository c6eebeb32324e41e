package images

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// TestMissingDebootstrapErrorSaysItOnce: a server image whose Debian base
// cannot be made (no debootstrap on PATH, an empty tool cache) fails with an
// error that says each thing once and no package name (the rule in the
// package doc), and still says how to fix it. Nothing is downloaded or
// built: the build stops at the PATH lookup.
func TestMissingDebootstrapErrorSaysItOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Debian base checks for root before it looks for debootstrap")
	}
	cache := t.TempDir()
	t.Setenv(toolchain.CacheEnv, cache)
	t.Setenv("PATH", t.TempDir())
	nginx, _ := DebianServerSpec("nginx")

	_, err := buildServers(context.Background(), []ServerImage{{Ref: "scaleplane.local/edge-nginx:dev", Spec: nginx}}, io.Discard)
	require.Error(t, err, "no debootstrap on PATH")
	msg := err.Error()
	t.Log("scaleplane images: " + msg) // as cmd/scaleplane prints it
	assert.Equal(t, 0, strings.Count(msg, "images:"), "the package does not name itself: %s", msg)
	assert.Equal(t, 0, strings.Count(msg, "toolchain:"), "the tool cache does not name its package: %s", msg)
	tool, version := "debian-base", DebianSuite+"-"+debianBaseRecipe
	for _, layer := range []string{
		// which image
		"scaleplane.local/edge-nginx:dev: ",
		// which cached tool, and where
		"building " + tool + " " + version + " into " + filepath.Join(cache, tool+"-"+version) + ": ",
		// what failed, and the remedy
		"debootstrap not found (apt-get install debootstrap)",
	} {
		assert.Equal(t, 1, strings.Count(msg, layer), "the error says %q once: %s", layer, msg)
	}
	assert.True(t, strings.HasSuffix(msg, "(apt-get install debootstrap)"), "the remedy ends the message: %s", msg)
}

// TestBuildRefusesAMalformedReference: a reference without a tag (which
// tagging would cut at its last colon) is refused before anything builds,
// naming the reference.
func TestBuildRefusesAMalformedReference(t *testing.T) {
	for _, ref := range []string{"scaleplane.local/gateway", "Scaleplane.local/UPPER:dev", ""} {
		_, err := Build(context.Background(), BuildOptions{Root: t.TempDir(), ServicesOnly: true,
			Services: []GoService{{Name: "gateway", Pkg: "./apps/gateway", Ref: ref}}})
		require.Error(t, err, "reference %q is refused", ref)
		assert.Contains(t, err.Error(), `image reference "`+ref+`"`, "the error names the reference")
	}
}
