//go:build bench

package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/cluster"
	"github.com/scaleplane/scaleplane/internal/pulumicli"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

// applyRounds is how many fresh deployments each side makes; the best
// round is compared (the others paid for cold caches and noise).
const applyRounds = 2

// applyGoal is the budget: a real `pulumi up` of local costs at most
// twice a server-side apply of the same manifests.
const applyGoal = 2.0

// TestPulumiUpVsServerSideApply deploys the local stack's objects twice
// onto the embedded cluster's control plane, each time into fresh
// namespaces: once as `kubectl apply --server-side` of the manifests the
// render writes (the floor: the API server's own work plus one client),
// once as a real `pulumi up` through the Automation API, the Pulumi CLI and
// the kubernetes provider (program, engine, state, provider diffs). Neither
// waits for pods (the stack's workloads skip the provider's readiness
// wait; kubectl never waits), so both measure declaring the same objects.
// The goal compares the `pulumi up` command itself, what a user runs;
// the whole path as `scaleplane up` drives it (the Automation API's stack
// selection and its outputs and history reads, each a CLI run that
// derives the passphrase key) is reported beside it.
func TestPulumiUpVsServerSideApply(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("KUBECONFIG") == "" {
		t.Skip("not root and no KUBECONFIG: the embedded cluster needs root")
	}
	if err := cluster.Preflight(); err != nil && os.Getenv("KUBECONFIG") == "" {
		t.Skipf("the embedded cluster cannot run here: %v", err)
	}
	ctx := context.Background()
	root, err := filepath.Abs("..")
	require.NoError(t, err, "project root")
	c, err := cluster.New(cluster.Options{Log: io.Discard})
	require.NoError(t, err, "embedded cluster")
	startedHere := !c.Running(ctx)
	require.NoError(t, c.Up(ctx), "embedded cluster up")
	if startedHere {
		defer func() { require.NoError(t, c.Down(context.Background(), false), "embedded cluster down") }()
	}
	kubectl, err := cluster.KubectlPath(ctx)
	require.NoError(t, err, "kubectl")
	kc := func(args ...string) error {
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}

	var ssa, up, whole time.Duration
	var objects int
	for round := range applyRounds {
		// Server-side apply of the rendered manifests, namespaces first.
		over := uniqueNamespaces("bench-ssa")
		values, err := stacks.ReadStackConfig(root, "local")
		require.NoError(t, err, "read the local stack")
		for k, v := range over {
			values[k] = v
		}
		g, _, err := render.Values("local", values)
		require.NoError(t, err, "render local")
		files, err := render.Write(g, t.TempDir())
		require.NoError(t, err, "write the manifests")
		maskSecrets(t, files.Objects)
		nsFiles, err := filepath.Glob(filepath.Join(files.Objects, "namespace-*.yaml"))
		require.NoError(t, err, "namespace manifests")
		objects = len(g.Kubernetes())
		// Exactly what is applied, cluster-scoped objects included; deferred
		// first, so a failed apply leaves nothing behind either.
		defer func() { _ = kc("delete", "--wait=false", "--ignore-not-found", "-f", files.Objects) }()
		apply := []string{"apply", "--server-side", "--field-manager=scaleplane-bench"}
		start := time.Now()
		for _, f := range nsFiles {
			require.NoError(t, kc(append(apply, "-f", f)...), "apply the namespaces")
		}
		require.NoError(t, kc(append(apply, "-f", files.Objects)...), "apply the objects")
		d := time.Since(start)
		t.Logf("round %d: kubectl apply --server-side of %d objects: %v", round+1, objects, d.Round(time.Millisecond))
		if ssa == 0 || d < ssa {
			ssa = d
		}

		// The real engine on the same control plane.
		var progress strings.Builder
		o := pulumicli.Options{Root: root, StackFile: "local", StackName: "bench-" + randomSuffix(), Overrides: uniqueNamespaces("bench-pulumi"),
			Kubeconfig: c.Kubeconfig, BackendDir: filepath.Join(c.StateDir, "pulumi"), Progress: &progress}
		defer func() {
			_, err := pulumicli.Destroy(context.Background(), o)
			require.NoError(t, err, "pulumi destroy")
			require.NoError(t, pulumicli.RemoveStack(context.Background(), o), "remove the bench stack")
		}()
		start = time.Now()
		res, err := pulumicli.Up(ctx, o)
		d = time.Since(start)
		require.NoError(t, err, "pulumi up")
		t.Logf("round %d: pulumi up of %d resources: %v (the whole Automation API path: %v)",
			round+1, res.Changes["create"], res.Update.Round(time.Millisecond), d.Round(time.Millisecond))
		if up == 0 || res.Update < up {
			up = res.Update
		}
		if whole == 0 || d < whole {
			whole = d
		}
	}
	ratio := up.Seconds() / ssa.Seconds()
	met := "yes"
	if ratio > applyGoal {
		met = "**no**"
	}
	Note(t, fmt.Sprintf("### pulumi up vs kubectl apply --server-side (local, same control plane, best of %d)\n\n"+
		"| variant | time |\n|---|---:|\n| kubectl apply --server-side (%d objects) | %v |\n| pulumi up (the CLI's update: program, engine, kubernetes provider, state) | %v |\n| scaleplane's whole path (Automation API: stack, config, up, outputs, history) | %v |\n\n"+
		"| ratio | value | goal | met |\n|---|---:|---:|---|\n| pulumi up / server-side apply | %.2f | ≤ %.2f | %s |\n| whole path / server-side apply | %.2f | — | — |",
		applyRounds, objects, ssa.Round(time.Millisecond), up.Round(time.Millisecond), whole.Round(time.Millisecond), ratio, applyGoal, met, whole.Seconds()/ssa.Seconds()))
	if ratio > applyGoal {
		t.Errorf("goal missed: pulumi up / server-side apply = %.2f, goal ≤ %.2f", ratio, applyGoal)
	}
}

// maskSecrets replaces the render's secret placeholder (the whole
// stringData of a Secret is one secret value under mocks) with a one-key
// map the API server accepts; the values do not change the apply's cost.
func maskSecrets(t *testing.T, objects string) {
	t.Helper()
	secrets, err := filepath.Glob(filepath.Join(objects, "secret-*.yaml"))
	require.NoError(t, err, "secret manifests")
	for _, f := range secrets {
		b, err := os.ReadFile(f)
		require.NoError(t, err, "read %s", f)
		masked := strings.ReplaceAll(string(b), "stringData: '"+render.SecretPlaceholder+"'", "stringData: {value: rendered-under-mocks}")
		require.NoError(t, os.WriteFile(f, []byte(masked), 0o644), "write %s", f)
	}
}

// uniqueNamespaces overrides every namespace knob of the stack, so a run
// never shares objects (namespaced or cluster-scoped, whose names carry the
// namespace) with `make up` or another run.
func uniqueNamespaces(prefix string) map[string]string {
	ns := prefix + "-" + randomSuffix()
	over := map[string]string{"namespace": ns}
	for _, k := range stacks.Knobs {
		if base, ok := strings.CutSuffix(k.Key, "Namespace"); ok && base != "" {
			over[k.Key] = ns + "-" + strings.ToLower(base)
		}
	}
	return over
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
