package certmanager

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedCRDsParse(t *testing.T) {
	crds, err := CRDs()
	require.NoError(t, err, "parse the embedded CRDs")
	var kinds []string
	for _, c := range crds {
		kinds = append(kinds, c.Kind)
	}
	assert.ElementsMatch(t, []string{"Challenge", "Order", "CertificateRequest", "Certificate", "ClusterIssuer", "Issuer"}, kinds, "the six kinds of cert-manager")
}

// TestEmbeddedCRDsAreTheModules: crds/ is byte for byte the module's
// deploy/crds of Version. To refresh after a bump:
//
//	go mod download github.com/cert-manager/cert-manager@<version>
//	cp $(go env GOMODCACHE)/github.com/cert-manager/cert-manager@<version>/deploy/crds/*.yaml components/certmanager/crds/
func TestEmbeddedCRDsAreTheModules(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err, "go env GOMODCACHE")
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com", "cert-manager", "cert-manager@"+Version, "deploy", "crds")
	upstream, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err, "list %s", dir)
	if len(upstream) == 0 {
		t.Skipf("cert-manager %s is not in the module cache (%s): `go mod download github.com/cert-manager/cert-manager@%s` to compare", Version, dir, Version)
	}
	ours, err := filepath.Glob("crds/*.yaml")
	require.NoError(t, err, "list crds/")
	require.Len(t, ours, len(upstream), "the same files as %s", dir)
	for _, f := range upstream {
		want, err := os.ReadFile(f)
		require.NoError(t, err, "read %s", f)
		got, err := os.ReadFile(filepath.Join("crds", filepath.Base(f)))
		require.NoError(t, err, "crds/%s is embedded", filepath.Base(f))
		assert.Equal(t, string(want), string(got), "crds/%s equals the module's (refresh: see the test's comment)", filepath.Base(f))
	}
}
