package images

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/toolchain"
)

func TestToolTagsMatchTheToolchain(t *testing.T) {
	want := map[string]string{
		"jaeger":             toolchain.JaegerVersion,
		"otelcol":            toolchain.OtelcolVersion,
		"prometheus":         "v" + toolchain.PrometheusRelease,
		"kube-state-metrics": toolchain.KubeStateMetricsVersion,
		"cert-manager":       toolchain.CertManagerVersion,
	}
	require.Len(t, tools, len(want))
	for _, tool := range tools {
		assert.Equal(t, want[tool.Name], tool.Tag, "%s's tag", tool.Name)
	}
	assert.Equal(t, []string{"jaeger", "otelcol", "prometheus", "kube-state-metrics", "cert-manager"}, ToolNames(), "the tools, in order")
	err := checkToolTags([]ToolImage{{Ref: "scaleplane.local/prometheus:dev", Tool: "prometheus"}})
	require.Error(t, err, "a tag that is not the built release is refused")
	assert.Contains(t, err.Error(), "v2.55.1", "the error names the tag to use")
	assert.NoError(t, checkToolTags([]ToolImage{{Ref: "scaleplane.local/otelcol:v0.165.0", Tool: "otelcol"}}), "the collector's tag is the builder's release")
	assert.Error(t, checkToolTags([]ToolImage{{Ref: "scaleplane.local/otelcol:v1.76.0", Tool: "otelcol"}}), "Jaeger's tag on the collector is refused")
	assert.Error(t, checkToolTags([]ToolImage{{Ref: "scaleplane.local/grafana:v1", Tool: "grafana"}}), "a program the toolchain does not build is refused")
}

func TestToolRef(t *testing.T) {
	ref, err := ToolRef("registry.dev.scaleplane.example/scaleplane", CertManagerTool)
	require.NoError(t, err, "cert-manager is a tool image")
	assert.Equal(t, "registry.dev.scaleplane.example/scaleplane/cert-manager:v1.21.2", ref, "cert-manager's reference carries the release")
	assert.NoError(t, checkToolTags([]ToolImage{{Ref: ref, Tool: CertManagerTool}}), "the reference ToolRef gives is one images build accepts")
	_, err = ToolRef("scaleplane.local", "grafana")
	assert.ErrorContains(t, err, `no tool image "grafana"`, "a program the toolchain does not build has no reference")
}

// TestToolImagesRunTheCachedBinariesAsNonRoot makes each tool's image
// exactly as images build does (from the cached builds; it skips
// when one is not cached rather than build it here) and checks each: the
// binary alone at /app/<name>, byte for byte the cached build, as the
// entrypoint, run by a numeric non-root user. Prometheus' pod overrides the
// user with 65534 and fsGroup 65534, which makes the volume its TSDB writes
// to writable; the image user is the fallback.
//
// Each tool is checked when its build is cached, and skipped (saying so)
// when not: the builds take minutes each and are made by the toolchain's
// own tests.
func TestToolImagesRunTheCachedBinariesAsNonRoot(t *testing.T) {
	cachedDir := map[string]func() (string, bool, error){
		"jaeger": toolchain.JaegerDir, "otelcol": toolchain.OtelcolDir, "prometheus": toolchain.PrometheusDir,
		"kube-state-metrics": toolchain.KubeStateMetricsDir, CertManagerTool: toolchain.CertManagerDir,
	}
	require.Len(t, cachedDir, len(tools), "every tool has its cache check here")
	for _, tool := range tools {
		t.Run(tool.Name, func(t *testing.T) {
			d, cached, err := cachedDir[tool.Name]()
			require.NoError(t, err, "%s's cache directory", tool.Name)
			if !cached {
				t.Skipf("%s is not built yet (the toolchain tests or scaleplane warm build it)", d)
			}
			checkToolImage(t, tool)
		})
	}
}

// checkToolImage makes tool's image as images build does and checks it.
func checkToolImage(t *testing.T, tool tool) {
	refs := []ToolImage{{Ref: "scaleplane.local/" + tool.Name + ":" + tool.Tag, Tool: tool.Name}}
	servers, err := buildToolImages(context.Background(), refs, io.Discard)
	require.NoError(t, err, "making the %s image", tool.Name)
	require.Len(t, servers, 1, "one image for one tool")
	for _, sv := range servers {
		tool, ok := toolByName(sv.Name)
		require.True(t, ok, "%s is a tool", sv.Name)
		bin, err := tool.Binary(context.Background())
		require.NoError(t, err)
		want, err := os.ReadFile(bin)
		require.NoError(t, err)

		cf, err := sv.Image.ConfigFile()
		require.NoError(t, err)
		uid, gid, ok := strings.Cut(cf.Config.User, ":")
		require.True(t, ok, "%s: user %q is uid:gid", sv.Ref, cf.Config.User)
		for _, id := range []string{uid, gid} {
			n, err := strconv.Atoi(id)
			require.NoError(t, err, "%s: user %q is numeric (runAsNonRoot needs it)", sv.Ref, cf.Config.User)
			assert.NotZero(t, n, "%s: not root", sv.Ref)
		}
		path := "/app/" + sv.Name
		assert.Equal(t, []string{path}, cf.Config.Entrypoint, "%s: the binary is the entrypoint", sv.Ref)
		assert.Equal(t, "/", cf.Config.WorkingDir, "%s: working directory", sv.Ref)

		layers, err := sv.Image.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 1, "%s: one layer", sv.Ref)
		size, err := layers[0].Size()
		require.NoError(t, err)
		rc, err := layers[0].Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		var found bool
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if h.Name != strings.TrimPrefix(path, "/") {
				continue
			}
			found = true
			assert.Equal(t, int64(0o555), h.Mode, "%s: read-only executable", sv.Ref)
			got, err := io.ReadAll(tr)
			require.NoError(t, err)
			assert.True(t, string(got) == string(want), "%s: %s is the cached build %s", sv.Ref, path, bin)
		}
		_ = rc.Close()
		assert.True(t, found, "%s: %s is in the layer", sv.Ref, path)
		t.Logf("%s: binary %.1f MB, compressed layer %.1f MB", sv.Ref, float64(len(want))/1e6, float64(size)/1e6)
	}
}
