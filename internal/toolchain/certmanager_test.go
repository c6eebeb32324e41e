package toolchain

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCertManagerBuildsAndRuns builds our cert-manager mains over the
// pinned release (this is the test that compiles them: scaleplane's module
// does not) and runs what needs no API server: each subcommand's --help
// lists the flags the certmanager component passes, and a bad command line
// exits 2 with the usage on stderr. Running against a cluster is proven by
// the component's suite.
func TestCertManagerBuildsAndRuns(t *testing.T) {
	if _, cached, err := CertManagerDir(); err != nil {
		t.Fatalf("CertManagerDir: %v", err)
	} else if !cached && testing.Short() {
		t.Skip("cert-manager is not in the cache (or was built from other sources of our mains) and building it takes minutes; run without -short to build it once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	start := time.Now()
	cm, err := CertManager(ctx)
	if err != nil {
		t.Fatalf("building cert-manager %s: %v", CertManagerVersion, err)
	}
	t.Logf("cert-manager %s at %s in %v", cm.Version, cm.Path, time.Since(start).Round(time.Millisecond))

	for _, crd := range []string{"cert-manager.io_certificates.yaml", "cert-manager.io_issuers.yaml", "cert-manager.io_clusterissuers.yaml",
		"cert-manager.io_certificaterequests.yaml", "acme.cert-manager.io_orders.yaml", "acme.cert-manager.io_challenges.yaml"} {
		data, err := os.ReadFile(filepath.Join(cm.CRDDir, crd))
		if err != nil || !strings.Contains(string(data), "kind: CustomResourceDefinition") {
			t.Errorf("CRD %s in %s: %v (want the release's CustomResourceDefinition)", crd, cm.CRDDir, err)
		}
	}

	for sub, flags := range map[string][]string{
		"controller": {"--namespace", "--cluster-resource-namespace", "--leader-elect", "--metrics-listen-address", "--healthz-listen-address"},
		"webhook":    {"--secure-port", "--healthz-port", "--dynamic-serving-ca-secret-namespace", "--dynamic-serving-ca-secret-name", "--dynamic-serving-dns-names"},
		"cainjector": {"--namespace", "--leader-elect"},
		"apicheck":   {"--namespace", "--timeout"},
	} {
		out, err := exec.CommandContext(ctx, cm.Path, sub, "--help").CombinedOutput()
		if err != nil {
			t.Errorf("cert-manager %s --help: %v\n%s", sub, err, out)
			continue
		}
		for _, f := range flags {
			if !strings.Contains(string(out), f) {
				t.Errorf("cert-manager %s --help does not list %s, which the certmanager component passes:\n%s", sub, f, out)
			}
		}
	}

	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"controller", "--no-such-flag"},
		{"apicheck", "--timeout=soon"},
		{"apicheck", "--timeout=1m"}, // no --namespace
		{"controller", "stray"},
	} {
		cmd := exec.CommandContext(ctx, cm.Path, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("cert-manager %q: %v, want exit status 2 for a bad command line; stderr:\n%s", args, err, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), "Usage: cert-manager") {
			t.Errorf("cert-manager %q exited 2 without the usage on stderr:\n%s", args, stderr.String())
		}
	}

	// The second call finds the build: nothing is rebuilt.
	again := time.Now()
	if _, err := CertManager(ctx); err != nil {
		t.Fatalf("CertManager a second time: %v", err)
	}
	if d := time.Since(again); d > 2*time.Second {
		t.Errorf("CertManager with a warm cache took %v; it must find the build, not redo it", d)
	}
}

// TestCertManagerMainsAreHidden proves our mains stay out of scaleplane's
// own build (they import cert-manager's internal packages, which this
// module may not), and that the embedded set is what the build writes.
func TestCertManagerMainsAreHidden(t *testing.T) {
	files, err := certManagerFiles()
	if err != nil {
		t.Fatalf("certManagerFiles: %v", err)
	}
	if _, ok := files["main.go"]; !ok || len(files) < 5 {
		t.Fatalf("embedded cert-manager mains = %d files, want main.go and one per subcommand", len(files))
	}
	for name, src := range files {
		if !strings.HasPrefix(string(src), "//go:build "+certManagerTag+"\n") {
			t.Errorf("certmanager/%s does not start with //go:build %s: scaleplane's module would try to compile it", name, certManagerTag)
		}
	}
}
