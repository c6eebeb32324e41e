package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err, "reading %s", path)
	b, _ := pem.Decode(data)
	require.NotNil(t, b, "%s is PEM", path)
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err, "parsing %s", path)
	return c
}

func TestPKIChainsToTheCAAndIsStableAcrossRuns(t *testing.T) {
	c, err := New(Options{StateDir: t.TempDir(), RunDir: t.TempDir(), NodeIP: "192.0.2.10"})
	require.NoError(t, err, "new")
	require.NoError(t, os.MkdirAll(c.PKIDir, 0o755), "mkdir pki")
	require.NoError(t, c.writePKI(), "first writePKI")

	ca := readCert(t, filepath.Join(c.PKIDir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	api := readCert(t, filepath.Join(c.PKIDir, "apiserver.crt"))
	_, err = api.Verify(x509.VerifyOptions{Roots: roots, DNSName: "kubernetes.default.svc.cluster.local"})
	assert.NoError(t, err, "the API server's certificate is valid for the in-cluster name")
	assert.True(t, hasIP(api, APIServiceIP), "pods reach the API server at the kubernetes Service IP")
	assert.True(t, hasIP(api, "192.0.2.10"), "and at the advertised node address")

	kubelet := readCert(t, filepath.Join(c.PKIDir, "kubelet-client.crt"))
	assert.Equal(t, "system:node:"+NodeName, kubelet.Subject.CommonName, "the Node authorizer needs system:node:<name>")
	assert.Equal(t, []string{"system:nodes"}, kubelet.Subject.Organization, "and the system:nodes group")

	kc, err := os.ReadFile(c.Kubeconfig)
	require.NoError(t, err, "the admin kubeconfig is written")
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(kc, &doc), "the kubeconfig is YAML")
	assert.Equal(t, "scaleplane", doc["current-context"], "the kubeconfig selects the cluster")

	// A second run reuses every key: kubeconfigs handed out stay valid.
	require.NoError(t, c.writePKI(), "second writePKI")
	assert.Equal(t, ca.SerialNumber, readCert(t, filepath.Join(c.PKIDir, "ca.crt")).SerialNumber, "the CA is kept")
	assert.Equal(t, api.SerialNumber, readCert(t, filepath.Join(c.PKIDir, "apiserver.crt")).SerialNumber, "the serving certificate is kept")

	// A new node address re-issues what names it, and only that.
	c.NodeIP = "192.0.2.11"
	require.NoError(t, c.writePKI(), "writePKI with a new node IP")
	assert.True(t, hasIP(readCert(t, filepath.Join(c.PKIDir, "apiserver.crt")), "192.0.2.11"), "the serving certificate follows the node address")
	assert.Equal(t, kubelet.SerialNumber, readCert(t, filepath.Join(c.PKIDir, "kubelet-client.crt")).SerialNumber, "client certificates without addresses are kept")
}

func hasIP(c *x509.Certificate, ip string) bool {
	for _, a := range c.IPAddresses {
		if a.String() == ip {
			return true
		}
	}
	return false
}

func TestConfigsCarryTheSettingsPodsNeedHere(t *testing.T) {
	c, err := New(Options{StateDir: "/state", RunDir: "/run/sp", NodeIP: "192.0.2.10"})
	require.NoError(t, err, "new")
	ctd := c.containerdConfig()
	assert.Contains(t, ctd, "restrict_oom_score_adj = true", "without it every sandbox fails: the sandbox lacks CAP_SYS_RESOURCE")
	assert.Contains(t, ctd, `sandbox_image = "`+sandboxImage+`"`, "the pause image is our own, no registry needed")
	assert.Contains(t, ctd, `address = "/run/sp/containerd.sock"`, "containerd has its own socket, apart from any system one")

	var kubelet map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(c.kubeletConfig()), &kubelet), "kubelet config is YAML")
	assert.Equal(t, "cgroupfs", kubelet["cgroupDriver"], "no systemd here")
	assert.Equal(t, false, kubelet["failCgroupV1"], "these machines run cgroup v1")
	assert.Equal(t, float64(0), kubelet["readOnlyPort"], "no unauthenticated kubelet port")
	assert.Equal(t, []any{DNSServiceIP}, kubelet["clusterDNS"], "pods resolve through CoreDNS")
	assert.Equal(t, float64(100), kubelet["imageGCHighThresholdPercent"], "no image GC: nothing it removes can be pulled back here")

	for name, m := range map[string]string{"coredns": corednsManifest(), "metrics-server": metricsServerManifest()} {
		for i, doc := range strings.Split(m, "\n---\n") {
			var obj map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(doc), &obj), "%s document %d is YAML", name, i)
			assert.NotEmpty(t, obj["kind"], "%s document %d has a kind", name, i)
		}
		assert.Contains(t, m, "runAsNonRoot: true", "%s runs non-root", name)
		assert.Contains(t, m, "imagePullPolicy: Never", "%s uses the image we imported, never a registry", name)
	}
}

func TestUnescapeMount(t *testing.T) {
	assert.Equal(t, "/a b/c", unescapeMount(`/a\040b/c`), "mountinfo escapes spaces as \\040")
	assert.Equal(t, "/plain", unescapeMount("/plain"), "plain paths are unchanged")
}
