package pulumicli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/rollout"
	"github.com/scaleplane/scaleplane/stacks"
)

func TestResourcesFollowTheSteps(t *testing.T) {
	step := func(op apitype.OpType, urn, typ, name string) apitype.StepEventMetadata {
		m := apitype.StepEventMetadata{Op: op, URN: urn}
		if op != apitype.OpDelete {
			m.New = &apitype.StepEventStateMetadata{Type: typ, URN: urn,
				Outputs: map[string]any{"metadata": map[string]any{"name": name, "namespace": "sp"}}}
		}
		return m
	}
	r := &resources{byURN: map[string]resourceSeen{}}
	for _, m := range []apitype.StepEventMetadata{
		{Op: apitype.OpSame, URN: "stack", New: &apitype.StepEventStateMetadata{Type: "pulumi:pulumi:Stack"}},
		step(apitype.OpCreate, "gw", "kubernetes:apps/v1:Deployment", "gateway"),
		step(apitype.OpSame, "redis", "kubernetes:apps/v1:StatefulSet", "redis"),
		step(apitype.OpUpdate, "svc", "kubernetes:core/v1:Service", "gateway"),
		// A replacement: the new object, then the old one's deletion under
		// the same URN, which must not drop it.
		step(apitype.OpCreateReplacement, "pg", "kubernetes:apps/v1:StatefulSet", "postgres"),
		step(apitype.OpReplace, "pg", "kubernetes:apps/v1:StatefulSet", "postgres"),
		step(apitype.OpDeleteReplaced, "pg", "kubernetes:apps/v1:StatefulSet", "postgres"),
		// Something the program no longer declares.
		step(apitype.OpSame, "old", "kubernetes:apps/v1:Deployment", "old"),
		step(apitype.OpDelete, "old", "", ""),
	} {
		r.record(m)
	}
	assert.Equal(t, map[string]int{"pulumi:pulumi:Stack": 1, "kubernetes:apps/v1:Deployment": 1, "kubernetes:apps/v1:StatefulSet": 2, "kubernetes:core/v1:Service": 1},
		r.kinds(), "every declared resource once; the deleted one gone, the replaced one kept")
	assert.Equal(t, []rollout.Workload{{Kind: "Deployment", Namespace: "sp", Name: "gateway"}, {Kind: "StatefulSet", Namespace: "sp", Name: "postgres"}, {Kind: "StatefulSet", Namespace: "sp", Name: "redis"}},
		r.workloads(), "only workloads, sorted, with kind, namespace and name")
}

// TestResourcesFromEventsAreCompleteOnlyWhenTheStreamEnded: the resources
// read off the engine's events are trusted only when the stream closed
// without an error event; otherwise Up reads the state instead.
func TestResourcesFromEventsAreCompleteOnlyWhenTheStreamEnded(t *testing.T) {
	outputs := func(urn string) events.EngineEvent {
		return events.EngineEvent{EngineEvent: apitype.EngineEvent{ResOutputsEvent: &apitype.ResOutputsEvent{
			Metadata: apitype.StepEventMetadata{Op: apitype.OpCreate, URN: urn, New: &apitype.StepEventStateMetadata{Type: "kubernetes:apps/v1:Deployment"}}}}}
	}
	ch, collected := collect(0)
	ch <- outputs("a")
	close(ch)
	_, res := collected()
	assert.NoError(t, res.missed, "a stream that ended is complete")
	assert.Len(t, res.byURN, 1, "its resource is there")

	ch, collected = collect(0)
	ch <- outputs("a")
	ch <- events.EngineEvent{Error: errors.New("unreadable event")}
	close(ch)
	_, res = collected()
	assert.ErrorContains(t, res.missed, "unreadable event", "a stream with an error event is not complete, and says why")
}

// TestResourcesFromTheExportedState: the fallback reads the same kinds and
// workloads from an exported state as the events give.
func TestResourcesFromTheExportedState(t *testing.T) {
	r, err := fromState([]byte(`{"resources":[
		{"urn":"s","type":"pulumi:pulumi:Stack"},
		{"urn":"d","type":"kubernetes:apps/v1:Deployment","outputs":{"metadata":{"name":"gateway","namespace":"sp"}}},
		{"urn":"ss","type":"kubernetes:apps/v1:StatefulSet","outputs":{"metadata":{"name":"redis","namespace":"sp"}}}]}`))
	require.NoError(t, err, "a well-formed state is read")
	assert.Equal(t, map[string]int{"pulumi:pulumi:Stack": 1, "kubernetes:apps/v1:Deployment": 1, "kubernetes:apps/v1:StatefulSet": 1}, r.kinds(), "every resource counted by type")
	assert.Equal(t, []rollout.Workload{{Kind: "Deployment", Namespace: "sp", Name: "gateway"}, {Kind: "StatefulSet", Namespace: "sp", Name: "redis"}},
		r.workloads(), "the workloads with namespace and name")
	_, err = fromState([]byte(`{"resources":`))
	assert.Error(t, err, "a truncated state is an error, not an empty stack")
}

func TestCheckpointsAreSkippedOnlyForLocal(t *testing.T) {
	for _, tc := range []struct {
		environment string
		keep        bool
		skipped     bool
	}{
		{"local", false, true},
		{"local", true, false},
		{"dev", false, false},
		{"prod", false, false},
	} {
		vars := cliEnv(Options{BackendDir: "/state", Checkpoints: tc.keep}, tc.environment, "pass", "/bin")
		_, skipped := vars["PULUMI_SKIP_CHECKPOINTS"]
		assert.Equal(t, tc.skipped, skipped, "%s (Checkpoints %v): checkpoints skipped", tc.environment, tc.keep)
		assert.Equal(t, "file:///state", vars["PULUMI_BACKEND_URL"], "%s: the file backend", tc.environment)
	}
}

// fakeCLI answers every CLI run with success and keeps the arguments, so
// a real LocalWorkspace can be driven without the Pulumi CLI.
type fakeCLI struct{ runs *[][]string }

func (f fakeCLI) Run(_ context.Context, _ string, _ io.Reader, _, _ []io.Writer, _ []string, args ...string) (string, string, int, error) {
	if f.runs != nil {
		*f.runs = append(*f.runs, args)
	}
	return "", "", 0, nil
}

func (fakeCLI) Version() semver.Version { return semver.MustParse("3.274.1") }

func TestWriteConfigWithoutASettingsFileAsksTheCLI(t *testing.T) {
	ctx := context.Background()
	var runs [][]string
	proj := workspace.Project{Name: tokens.PackageName(stacks.Project), Runtime: workspace.NewProjectRuntimeInfo("go", nil)}
	ws, err := auto.NewLocalWorkspace(ctx, auto.WorkDir(t.TempDir()), auto.Project(proj), auto.Pulumi(fakeCLI{runs: &runs}))
	require.NoError(t, err, "workspace")
	st, err := auto.SelectStack(ctx, "local", ws)
	require.NoError(t, err, "stack")
	runs = nil
	require.NoError(t, writeConfig(ctx, st, map[string]string{"namespace": "sp"}), "writeConfig without a settings file")
	require.Len(t, runs, 1, "one CLI run writes the file")
	assert.Equal(t, []string{"config", "set-all", "--stack", "local", "--plaintext", "scaleplane:namespace=sp"}, runs[0][:6],
		"the CLI sets the stack file's values (it also takes the salt from the state)")
}

func TestWriteConfigKeepsExactlyTheStackFileValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	proj := workspace.Project{Name: tokens.PackageName(stacks.Project), Runtime: workspace.NewProjectRuntimeInfo("go", nil)}
	ws, err := auto.NewLocalWorkspace(ctx, auto.WorkDir(dir), auto.Project(proj), auto.Pulumi(fakeCLI{}))
	require.NoError(t, err, "workspace")
	st, err := auto.NewStack(ctx, "local", ws)
	require.NoError(t, err, "stack")
	// What the CLI leaves after `stack init` and an earlier run: the salt,
	// a key since removed from the stack file, and another namespace's key.
	settings := "encryptionsalt: v1:abc\nconfig:\n  scaleplane:namespace: old\n  scaleplane:removedKnob: \"1\"\n  kubernetes:context: kind\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.local.yaml"), []byte(settings), 0o600), "settings file")

	require.NoError(t, writeConfig(ctx, st, map[string]string{"namespace": "sp", "kafkaNodes": "1"}), "writeConfig")
	got, err := ws.StackSettings(ctx, "local")
	require.NoError(t, err, "read the settings back")
	assert.Equal(t, "v1:abc", got.EncryptionSalt, "the passphrase salt is kept")
	values := map[string]string{}
	for k, v := range got.Config {
		s, err := v.Value(nil)
		require.NoError(t, err, "value of %s", k)
		values[k.String()] = s
	}
	assert.Equal(t, map[string]string{"scaleplane:namespace": "sp", "scaleplane:kafkaNodes": "1", "kubernetes:context": "kind"}, values,
		"the stack file's values replace the old ones; a removed knob is gone, another namespace's key stays")
}

func TestPassphraseIsCreatedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	a, err := passphrase(dir)
	require.NoError(t, err, "first")
	b, err := passphrase(dir)
	require.NoError(t, err, "second")
	assert.Len(t, a, 32, "16 random bytes in hex")
	assert.Equal(t, a, b, "the same passphrase decrypts the state next time")
}

// TestSummaryReportsPolicyResults: the summary names the packs, counts the
// resources they checked and the violations, counts as mandatory only the
// violations no exception covers, and lists each one on one line.
func TestSummaryReportsPolicyResults(t *testing.T) {
	r := Result{Operation: "up", Stack: "local", Policy: &PolicyReport{
		Packs:   []string{"scaleplane"},
		Checked: 112,
		Violations: []apitype.PolicyEvent{
			{PolicyName: "zone-spread", EnforcementLevel: "advisory", Message: "Deployment gateway: no zone spread\nmore detail"},
			{PolicyName: "hpa-replicas", EnforcementLevel: "mandatory", Message: "minReplicas 1 < 2"},
			{PolicyName: "hpa-replicas", EnforcementLevel: "mandatory", Message: "excepted", Exceptions: []apitype.PolicyEventException{{ID: "EXC-1"}}},
		},
	}}
	if got := r.Policy.Mandatory(); got != 1 {
		t.Errorf("Mandatory() = %d, want 1 (the excepted violation does not count)", got)
	}
	var b strings.Builder
	r.Print(&b)
	for _, want := range []string{
		"policy: scaleplane checked 112 resources: 3 violations, 1 mandatory",
		"  [advisory] zone-spread: Deployment gateway: no zone spread\n",
		"  [mandatory] hpa-replicas: minReplicas 1 < 2\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "more detail") {
		t.Errorf("summary shows only a message's first line:\n%s", b.String())
	}
	if strings.Contains(b.String(), "pulumi up ") {
		t.Errorf("without a timed update the summary names none:\n%s", b.String())
	}
	r.Update, r.Duration = 3400*time.Millisecond, 6*time.Second
	b.Reset()
	r.Print(&b)
	if want := "up of stack local done in 6s (pulumi up 3.4s,"; !strings.Contains(b.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, b.String())
	}
	r.Policy = nil
	b.Reset()
	r.Print(&b)
	if strings.Contains(b.String(), "policy:") {
		t.Errorf("without a pack the summary says nothing about policy:\n%s", b.String())
	}
}
