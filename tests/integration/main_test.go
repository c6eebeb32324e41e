// Package integration holds the terratest suites that run scaleplane for
// real: the embedded Kubernetes node with real pods (or the cluster named by
// KUBECONFIG), the Pulumi CLI and kubernetes provider built from the module
// proxy, the images built by `scaleplane images build`. One file per area
// and scenario; each suite's doc comment says what it deploys and asserts.
//
// TestMain prepares what every suite shares, once: the tools, the cluster
// (started here if none runs, and stopped at the end if it was started
// here; SKIP_cluster_down=1 keeps it), the service images and the suites'
// own test workload image. On the embedded node, another stack's workloads
// (make up's) are paused for the run and resumed after (nodeshare_test.go). The suites skip, saying why, when the machine
// cannot have a cluster: SCALEPLANE_INTEGRATION=0, -short, not root and no
// KUBECONFIG, or a missing prerequisite that `scaleplane cluster up`
// names.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"

	"github.com/scaleplane/scaleplane/internal/cluster"
	"github.com/scaleplane/scaleplane/internal/imageplan"
	"github.com/scaleplane/scaleplane/internal/images"
	"github.com/scaleplane/scaleplane/internal/pulumicli"
	"github.com/scaleplane/scaleplane/internal/rollout"
	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/scaleplane/scaleplane/stacks"
)

// EnableEnv turns the suites off when set to 0 (for a quick `make test` on
// a machine that could run them).
const EnableEnv = "SCALEPLANE_INTEGRATION"

// deployedStacks are the stack files the suites deploy; TestMain builds
// and loads the images of each.
var deployedStacks = []string{"local", "dev"}

// burnerImage is the suites' own workload (testdata/burner), loaded like
// the services' images.
const burnerImage = "scaleplane.local/it-burner:dev"

// suite is what TestMain prepared for every test.
type suite struct {
	root       string
	kubeconfig string
	kubectl    string
	// node is the embedded cluster, nil when KUBECONFIG names another.
	node    *cluster.Cluster
	backend string
	// services are the service images built and loaded.
	services []images.Service
	// burner is set when the test workload image is on the node.
	burner string
	// certManagerNamespace is where a cert-manager another stack
	// installed runs (make up's, typically), empty when none does.
	// cert-manager is one installation per cluster (its CRDs, webhook
	// configurations and cluster roles are cluster-wide), so the suites'
	// stacks then use it (certManagerInstall false) and it is not paused.
	certManagerNamespace string
}

var (
	shared     *suite
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code, err := setUp(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// setUp prepares the shared suite and runs the tests; an error here is a
// failure of the machinery under test (the cluster did not come up), not a
// reason to skip.
func setUp(m *testing.M) (int, error) {
	switch {
	case os.Getenv(EnableEnv) == "0":
		skipReason = EnableEnv + "=0: the real-cluster suites are turned off"
	case testing.Short():
		skipReason = "-short: the real-cluster suites take minutes"
	}
	if skipReason != "" {
		return m.Run(), nil
	}
	ctx := context.Background()
	root, err := filepath.Abs("../..")
	if err != nil {
		return 0, err
	}
	s := &suite{root: root}
	startedHere := false
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		s.kubeconfig = kc
		rootCache, err := toolchain.Root()
		if err != nil {
			return 0, err
		}
		s.backend = filepath.Join(rootCache, "pulumi-state")
	} else {
		if os.Geteuid() != 0 {
			skipReason = "not root and no KUBECONFIG: the embedded cluster needs root (kubelet, containerd); set KUBECONFIG to use another cluster"
			return m.Run(), nil
		}
		if err := cluster.Preflight(); err != nil {
			skipReason = err.Error()
			return m.Run(), nil
		}
		c, err := cluster.New(cluster.Options{Log: os.Stderr})
		if err != nil {
			return 0, err
		}
		if !c.Running(ctx) {
			startedHere = true
		}
		begin := time.Now()
		if err := c.Up(ctx); err != nil {
			return 0, fmt.Errorf("embedded cluster up: %w", err)
		}
		fmt.Fprintf(os.Stderr, "integration: cluster ready in %s (started here: %v)\n", time.Since(begin).Round(time.Second), startedHere)
		s.node, s.kubeconfig, s.backend = c, c.Kubeconfig, filepath.Join(c.StateDir, "pulumi")
	}
	if startedHere && os.Getenv("SKIP_cluster_down") == "" {
		defer func() {
			if err := s.node.Down(context.Background(), false); err != nil {
				fmt.Fprintf(os.Stderr, "integration: cluster down: %v\n", err)
			}
		}()
	}
	kubectl, err := cluster.KubectlPath(ctx)
	if err != nil {
		return 0, err
	}
	s.kubectl = kubectl
	removeLeftovers(ctx, s)
	s.certManagerNamespace = installedCertManager(ctx, s)
	if s.node != nil {
		// The embedded node is ours to share out; a cluster named by
		// KUBECONFIG is the user's, and its workloads are left alone.
		resume, err := pauseOthers(ctx, s)
		if err != nil {
			return 0, fmt.Errorf("pausing the other stacks on the node: %w", err)
		}
		defer resume()
	}
	// terratest's k8s module runs `kubectl` from PATH.
	if err := os.Setenv("PATH", filepath.Dir(kubectl)+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
		return 0, err
	}
	if s.node != nil {
		begin := time.Now()
		// The suites deploy local (nginx edge) and dev (prod's HAProxy
		// edge, in-cluster), each under its own registry's references.
		for _, stack := range deployedStacks {
			o, err := imageplan.Load(root, stack, nil)
			if err != nil {
				return 0, fmt.Errorf("planning the images of %s: %w", stack, err)
			}
			o.Socket, o.Log = s.node.ContainerdSocket, os.Stderr
			built, err := images.Build(ctx, o)
			if err != nil {
				return 0, fmt.Errorf("building the images of %s: %w", stack, err)
			}
			s.services = append(s.services, built...)
		}
		if err := buildBurner(ctx, s); err != nil {
			return 0, err
		}
		s.burner = burnerImage
		fmt.Fprintf(os.Stderr, "integration: images built and loaded in %s\n", time.Since(begin).Round(time.Second))
	}
	shared = s
	return m.Run(), nil
}

// leftoverAge is how old a suite's namespace must be before a later run
// deletes it: older than any run, so a concurrent run's are never touched.
const leftoverAge = 30 * time.Minute

// leftoverPrefixes name the namespaces the suites and the benchmarks make.
var leftoverPrefixes = []string{"it-", "sp-it-", "bench-"}

// removeLeftovers deletes the suites' namespaces that a killed or failed
// run left behind. The cluster keeps its state between runs, and a
// leftover's pods keep their CPU requests on the one node: enough of them
// and the next run's pods stay Pending. Skipped when a SKIP_* stage
// variable says someone is keeping a deployment on purpose.
func removeLeftovers(ctx context.Context, s *suite) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SKIP_") {
			return
		}
	}
	out, err := exec.CommandContext(ctx, s.kubectl, "--kubeconfig", s.kubeconfig, "get", "namespaces",
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.metadata.creationTimestamp}{"\n"}{end}`).Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: listing namespaces for leftovers: %v\n", err)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, created, ok := strings.Cut(line, " ")
		if !ok || !slices.ContainsFunc(leftoverPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		at, err := time.Parse(time.RFC3339, created)
		if err != nil || time.Since(at) < leftoverAge {
			continue
		}
		if err := exec.CommandContext(ctx, s.kubectl, "--kubeconfig", s.kubeconfig, "delete", "namespace", name, "--wait=false").Run(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: deleting leftover namespace %s: %v\n", name, err)
			continue
		}
		fmt.Fprintf(os.Stderr, "integration: deleted leftover namespace %s (created %s)\n", name, created)
	}
}

// buildBurner builds testdata/burner into an image and loads it.
func buildBurner(ctx context.Context, s *suite) error {
	dir, err := os.MkdirTemp("", "scaleplane-burner-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bin := filepath.Join(dir, "burner")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./tests/integration/testdata/burner")
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the burner: %w\n%s", err, out)
	}
	img, err := images.FromBinary(images.Spec{Binary: bin, Path: "/burner"})
	if err != nil {
		return err
	}
	tar := filepath.Join(dir, "burner.tar")
	if err := images.WriteTarball(tar, []images.Tagged{{Image: img, Refs: []string{burnerImage}}}); err != nil {
		return err
	}
	return images.Import(ctx, s.node.ContainerdSocket, tar)
}

// need returns the shared suite or skips the test, saying why.
func need(t *testing.T) *suite {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if shared == nil {
		t.Skip("the shared cluster was not prepared")
	}
	return shared
}

// needNode also requires the embedded node (image loading, node-level
// checks).
func needNode(t *testing.T) *suite {
	s := need(t)
	if s.node == nil {
		t.Skip("KUBECONFIG names another cluster: this suite needs the embedded node (it loads its own image into the node's containerd)")
	}
	return s
}

// uniqueName is a DNS-label-safe name with a random suffix, so runs and
// suites never share objects or stacks.
func uniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// kubectlOptions are terratest's options for a namespace of the cluster.
func (s *suite) kubectlOptions(ns string) *k8s.KubectlOptions {
	o := k8s.NewKubectlOptions("", s.kubeconfig, ns)
	// Every kubectl call would otherwise be echoed into the test log.
	o.Logger = logger.Discard
	return o
}

// engine returns runner options for the local stack under a unique stack
// name and namespace.
func (s *suite) engine(stack, namespace string, extra map[string]string) pulumicli.Options {
	return s.engineFor("local", stack, namespace, extra)
}

// engineFor returns runner options for the stack file stackFile (local,
// dev) under a unique stack name and namespace.
func (s *suite) engineFor(stackFile, stack, namespace string, extra map[string]string) pulumicli.Options {
	over := map[string]string{"namespace": namespace}
	// Every other namespace the stack declares gets a unique name too, so
	// a test stack never shares a namespace with `make up` or another run.
	for _, k := range stacks.Knobs {
		if base, ok := strings.CutSuffix(k.Key, "Namespace"); ok && base != "" {
			over[k.Key] = namespace + "-" + strings.ToLower(base)
		}
	}
	if s.certManagerNamespace != "" {
		over["certManagerInstall"] = "false"
	}
	for k, v := range extra {
		over[k] = v
	}
	return pulumicli.Options{
		Root: s.root, StackFile: stackFile, StackName: stack, Overrides: over,
		Kubeconfig: s.kubeconfig, BackendDir: s.backend, Progress: testWriter{},
	}
}

// rollouts is the exact readiness check shared with `scaleplane up`.
func (s *suite) rollouts() rollout.Checker {
	r := rollout.Checker{Kubectl: s.kubectl, Kubeconfig: s.kubeconfig}
	if s.node != nil {
		r.ContainerdSocket = s.node.ContainerdSocket
	}
	return r
}

// testWriter sends engine progress to the test binary's stderr, visible
// with -v and in CI logs, without interleaving it into t.Log.
type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) {
	if os.Getenv("SCALEPLANE_IT_QUIET") != "" {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

// kubectlJSONPath runs kubectl get with a jsonpath and returns the output.
func kubectlJSONPath(t *testing.T, o *k8s.KubectlOptions, args ...string) string {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputContextE(t, context.Background(), o, args...)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// envOr returns the environment variable or def.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// certManagerWebhook is the name of cert-manager's admission webhooks
// (components/certmanager), in every installation.
const certManagerWebhook = "webhook.cert-manager.io"

// installedCertManager returns the namespace of the cert-manager a stack
// already installed on the cluster (the one its validating webhook
// calls), or "" when there is none.
func installedCertManager(ctx context.Context, s *suite) string {
	out, err := exec.CommandContext(ctx, s.kubectl, "--kubeconfig", s.kubeconfig, "get", "validatingwebhookconfigurations", "-o",
		`jsonpath={range .items[*].webhooks[?(@.name=="`+certManagerWebhook+`")]}{.clientConfig.service.namespace}{"\n"}{end}`).Output()
	if err != nil {
		return ""
	}
	ns, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if ns != "" {
		fmt.Fprintf(os.Stderr, "integration: cert-manager already runs in namespace %s: the suites' stacks use it (certManagerInstall=false) and it keeps running\n", ns)
	}
	return ns
}
