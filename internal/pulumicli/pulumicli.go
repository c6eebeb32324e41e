// Package pulumicli runs the stack program on the real Pulumi engine with
// the Automation API: the program is stacks.Program, inline (the Go
// language host is not needed), the state is a local file backend, secrets
// use a passphrase kept beside the state, and the CLI and the kubernetes
// provider are the user's own installation or the ones the tool cache
// builds from the Go module proxy.
package pulumicli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"

	"github.com/scaleplane/scaleplane/internal/rollout"
	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/scaleplane/scaleplane/stacks"
)

// DefaultParallel is how many resource operations run at once. The CLI's
// default is 4 per core (8 here), but an operation on a Kubernetes object
// is a round trip to the API server, not CPU work: with more in flight a
// stack's objects are declared in fewer round-trip times.
const DefaultParallel = 32

// passphraseFile keeps the secrets passphrase of a file backend next to its
// state: the state is local to this machine, so the passphrase protects
// secrets at rest from casual reading, not from the machine's root.
const passphraseFile = ".passphrase"

// Options says which stack to run and against what.
type Options struct {
	// Root is the repository root (holds stacks/).
	Root string
	// StackFile names the stack whose config file (stacks/Pulumi.<name>.yaml)
	// is used.
	StackFile string
	// StackName is the Pulumi stack's name; default StackFile. Tests use
	// unique names so runs do not share state.
	StackName string
	// Overrides replace config values of the stack file (keys without the
	// "scaleplane:" prefix), e.g. a unique namespace for a test.
	Overrides map[string]string
	// Kubeconfig is the cluster the kubernetes provider deploys to.
	Kubeconfig string
	// BackendDir holds the file backend's state.
	BackendDir string
	// PolicyPacks are compiled policy pack directories or binaries passed
	// to the engine (preview and up).
	PolicyPacks []string
	// PolicyPackConfigs are JSON files of per-policy config passed with the
	// packs (`--policy-pack-config`): {"<policy id>": {"<threshold>": value}}.
	PolicyPackConfigs []string
	// Progress receives the engine's streamed progress; nil discards it.
	Progress io.Writer
	// ExpectNoChanges makes up fail if anything would change.
	ExpectNoChanges bool
	// Parallel bounds concurrent resource operations; 0 takes
	// DefaultParallel.
	Parallel int
	// Await keeps the kubernetes provider's own readiness wait on
	// Deployments and StatefulSets; by default it is skipped (see
	// skipAwaitAnnotation) and the caller waits with rollout.Checker.
	Await bool
	// Checkpoints keeps the engine's per-step state checkpoints for a
	// stack whose environment is local, where they are skipped by default
	// (see skipCheckpoints); other environments always keep them.
	Checkpoints bool

	// cli times the CLI runs of one operation; set by stack.
	cli *timedCommand
}

// skipCheckpoints decides whether the engine writes the state after every
// step or only when the update ends. On a file backend each checkpoint
// rewrites the whole state (0.9 MB for the local stack, about 230 times per
// update): 8–10 s of a 12 s first `pulumi up` of local, against 2 s
// without. The engine still writes the state when an update ends, whether
// it succeeds, fails or is interrupted once (the command passes a second
// Ctrl-C on, see cmd/scaleplane's engineContext); only a CLI terminated or
// killed mid-update loses the steps of its run, and the objects it created
// are then unknown to the state (the next up reports them as already
// existing). The local environment lives on a disposable cluster that
// `scaleplane cluster down --purge` resets, so it takes the speed; dev,
// staging and prod keep every checkpoint.
func skipCheckpoints(environment string, keep bool) bool {
	return environment == "local" && !keep
}

// Result summarises one operation.
type Result struct {
	Operation string
	Stack     string
	// Changes counts resources per operation (create, update, same...).
	Changes map[string]int
	// Kinds counts the stack's resources per type after the operation.
	Kinds map[string]int
	// Outputs are the stack outputs (secrets shown as [secret]).
	Outputs map[string]any
	// Duration is the whole operation: stack selection, config, the
	// engine's run and reading the results back.
	Duration time.Duration
	// Update is the `pulumi up` command alone (program, engine, provider,
	// state); Duration less Update is the Automation API's bookkeeping
	// around it, each step a CLI run of its own.
	Update time.Duration
	// Stdout is the engine's full output (for policy messages).
	Stdout string
	// Workloads are the stack's Deployments and StatefulSets after up.
	Workloads []rollout.Workload
	// Policy is what the engine's policy packs reported; nil without packs.
	Policy *PolicyReport
}

// PolicyReport is what the policy packs said during one operation, read
// from the engine's events rather than parsed from its text output.
type PolicyReport struct {
	// Packs are the pack names that ran.
	Packs []string
	// Checked counts resource evaluations (one per resource per pack).
	Checked int
	// Violations lists every policy event.
	Violations []apitype.PolicyEvent
}

// Mandatory counts the violations that fail the operation.
func (p *PolicyReport) Mandatory() int {
	n := 0
	for _, v := range p.Violations {
		if v.EnforcementLevel == "mandatory" && len(v.Exceptions) == 0 {
			n++
		}
	}
	return n
}

// collect drains the engine's events into a policy report and the stack's
// resources. The engine closes the channel when its event stream ends; a
// CLI that fails before opening the stream never does, so the returned
// function waits for the close only briefly before reporting what arrived.
// The resources are complete only when the stream ended within that wait
// and carried no error (an event the SDK could not read, say): a missed
// resource-outputs event would drop a workload from the rollout wait.
func collect(packs int) (chan<- events.EngineEvent, func() (*PolicyReport, *resources)) {
	ch := make(chan events.EngineEvent)
	finished := make(chan struct{})
	var mu sync.Mutex
	rep := &PolicyReport{}
	res := &resources{byURN: map[string]resourceSeen{}}
	seen := map[string]bool{}
	var broken error // the first event the SDK could not read
	go func() {
		defer close(finished)
		for e := range ch {
			mu.Lock()
			switch {
			case e.Error != nil:
				if broken == nil {
					broken = e.Error
				}
			case e.PolicyEvent != nil:
				rep.Violations = append(rep.Violations, *e.PolicyEvent)
			case e.PolicyAnalyzeSummaryEvent != nil:
				rep.Checked++
				if name := e.PolicyAnalyzeSummaryEvent.PolicyPackName; !seen[name] {
					seen[name] = true
					rep.Packs = append(rep.Packs, name)
				}
			case e.ResOutputsEvent != nil:
				res.record(e.ResOutputsEvent.Metadata)
			}
			mu.Unlock()
		}
	}()
	return ch, func() (*PolicyReport, *resources) {
		ended := true
		select {
		case <-finished:
		case <-time.After(eventStreamGrace):
			ended = false
		}
		// Copies: after a timeout the collector may still be writing.
		mu.Lock()
		defer mu.Unlock()
		got := &resources{byURN: maps.Clone(res.byURN), missed: broken}
		if !ended {
			got.missed = fmt.Errorf("the engine's event stream did not end within %s", eventStreamGrace)
		}
		if packs == 0 {
			return nil, got
		}
		out := *rep
		out.Packs = slices.Clone(rep.Packs)
		out.Violations = slices.Clone(rep.Violations)
		return &out, got
	}
}

// eventStreamGrace is how long a finished operation waits for the engine's
// event stream to end.
const eventStreamGrace = 5 * time.Second

// stack prepares the workspace and the stack with its config.
func stack(ctx context.Context, o *Options) (auto.Stack, error) {
	if o.StackName == "" {
		o.StackName = o.StackFile
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	values, err := stacks.ReadStackConfig(o.Root, o.StackFile)
	if err != nil {
		return auto.Stack{}, err
	}
	for k, v := range o.Overrides {
		values[k] = v
	}
	// Validate before the engine starts, for the same clear error the
	// program would give, without a half-run update.
	env, err := stacks.Parse(o.StackName, values)
	if err != nil {
		return auto.Stack{}, err
	}
	if o.BackendDir == "" {
		return auto.Stack{}, errors.New("pulumicli: no backend directory")
	}
	if err := os.MkdirAll(o.BackendDir, 0o700); err != nil {
		return auto.Stack{}, fmt.Errorf("creating backend directory: %w", err)
	}
	pass, err := passphrase(o.BackendDir)
	if err != nil {
		return auto.Stack{}, err
	}
	pulumiDir, path, err := toolchain.PulumiPath(ctx)
	if err != nil {
		return auto.Stack{}, err
	}
	// The Automation API runs <Root>/bin/pulumi, or `pulumi` from this
	// process's PATH when Root is empty.
	root := ""
	if filepath.Base(pulumiDir) == "bin" {
		root = filepath.Dir(pulumiDir)
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root, SkipVersionCheck: true})
	if err != nil {
		return auto.Stack{}, fmt.Errorf("pulumicli: the Pulumi CLI in %s: %w", pulumiDir, err)
	}
	o.cli = &timedCommand{PulumiCommand: cmd}
	work := filepath.Join(o.BackendDir, "work", o.StackName)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return auto.Stack{}, err
	}
	vars := cliEnv(*o, env.Environment, pass, path)
	proj := workspace.Project{Name: tokens.PackageName(stacks.Project), Runtime: workspace.NewProjectRuntimeInfo("go", nil)}
	program := programWithoutAwait
	if o.Await {
		program = stacks.Program
	}
	st, err := auto.UpsertStackInlineSource(ctx, o.StackName, stacks.Project, program,
		auto.Project(proj), auto.WorkDir(work), auto.Pulumi(o.cli), auto.SecretsProvider("passphrase"), auto.EnvVars(vars))
	if err != nil {
		return auto.Stack{}, fmt.Errorf("pulumicli: selecting stack %s: %w", o.StackName, err)
	}
	if err := writeConfig(ctx, st, values); err != nil {
		return auto.Stack{}, fmt.Errorf("pulumicli: setting config of %s: %w", o.StackName, err)
	}
	return st, nil
}

// cliEnv is the environment of every CLI run: the file backend, its
// passphrase, the cluster, and whether the engine checkpoints each step.
func cliEnv(o Options, environment, pass, path string) map[string]string {
	vars := map[string]string{
		"PULUMI_BACKEND_URL":       "file://" + o.BackendDir,
		"PULUMI_CONFIG_PASSPHRASE": pass,
		"PULUMI_SKIP_UPDATE_CHECK": "true",
		"PATH":                     path,
	}
	if skipCheckpoints(environment, o.Checkpoints) {
		vars["PULUMI_SKIP_CHECKPOINTS"] = "true"
	}
	if o.Kubeconfig != "" {
		vars["KUBECONFIG"] = o.Kubeconfig
	}
	return vars
}

// writeConfig makes the stack's settings file hold exactly the stack
// file's values (overrides applied): a key removed from the file must not
// linger in the workspace's copy. The values are plain text, so the file is
// written directly; `pulumi config` would start the CLI twice (0.3–1 s)
// for the same result. Keys of other namespaces are kept.
func writeConfig(ctx context.Context, st auto.Stack, values map[string]string) error {
	ws := st.Workspace()
	settings, err := ws.StackSettings(ctx, st.Name())
	if err != nil {
		// No settings file: the stack lives on in the backend but its work
		// directory was removed. The CLI writes a new file, taking the
		// passphrase salt from the stack's state; nothing stale can be in it.
		all := auto.ConfigMap{}
		for k, v := range values {
			all[stacks.Project+":"+k] = auto.ConfigValue{Value: v}
		}
		return st.SetAllConfig(ctx, all)
	}
	cfg := config.Map{}
	for k, v := range settings.Config {
		if k.Namespace() != stacks.Project {
			cfg[k] = v
		}
	}
	for k, v := range values {
		key, err := config.ParseKey(stacks.Project + ":" + k)
		if err != nil {
			return fmt.Errorf("config key %q: %w", k, err)
		}
		cfg[key] = config.NewValue(v)
	}
	settings.Config = cfg
	return ws.SaveStackSettings(ctx, st.Name(), settings)
}

// passphrase returns the backend's secrets passphrase, creating it once.
func passphrase(dir string) (string, error) {
	p := filepath.Join(dir, passphraseFile)
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", p, err)
	}
	return s, nil
}

// parallel is o.Parallel or DefaultParallel.
func (o Options) parallel() int {
	if o.Parallel > 0 {
		return o.Parallel
	}
	return DefaultParallel
}

// Up runs `pulumi up` of the stack program.
func Up(ctx context.Context, o Options) (Result, error) {
	begin := time.Now()
	st, err := stack(ctx, &o)
	if err != nil {
		return Result{}, err
	}
	evs, collected := collect(len(o.PolicyPacks))
	opts := []optup.Option{optup.ProgressStreams(o.Progress), optup.Color("never"), optup.EventStreams(evs), optup.Parallel(o.parallel())}
	if len(o.PolicyPacks) > 0 {
		opts = append(opts, optup.PolicyPacks(o.PolicyPacks...), optup.PolicyPackConfigs(o.PolicyPackConfigs...))
	}
	if o.ExpectNoChanges {
		opts = append(opts, optup.ExpectNoChanges())
	}
	res, err := st.Up(ctx, opts...)
	policy, seen := collected()
	if err != nil {
		return Result{Operation: "up", Stack: o.StackName, Stdout: res.StdOut, Policy: policy}, fmt.Errorf("pulumi up of stack %s: %w", o.StackName, err)
	}
	if seen.missed != nil {
		// The events missed something: read the state itself (one more CLI
		// run, which decrypts and prints the whole state).
		if seen, err = exported(ctx, st); err != nil {
			return Result{Operation: "up", Stack: o.StackName, Stdout: res.StdOut, Policy: policy},
				fmt.Errorf("pulumi up of stack %s succeeded, but its resources are unknown: the engine's events were incomplete (%v) and reading the state failed: %w", o.StackName, seen.missed, err)
		}
	}
	r := Result{Operation: "up", Stack: o.StackName, Duration: time.Since(begin), Update: o.cli.took("up"), Stdout: res.StdOut, Outputs: map[string]any{},
		Policy: policy, Kinds: seen.kinds(), Workloads: seen.workloads()}
	if res.Summary.ResourceChanges != nil {
		r.Changes = *res.Summary.ResourceChanges
	}
	for k, v := range res.Outputs {
		if v.Secret {
			r.Outputs[k] = "[secret]"
		} else {
			r.Outputs[k] = v.Value
		}
	}
	return r, nil
}

// Preview runs `pulumi preview`; with policy packs, a mandatory violation
// fails it and the error carries the engine output naming the policy.
func Preview(ctx context.Context, o Options) (Result, error) {
	begin := time.Now()
	st, err := stack(ctx, &o)
	if err != nil {
		return Result{}, err
	}
	evs, collected := collect(len(o.PolicyPacks))
	opts := []optpreview.Option{optpreview.ProgressStreams(o.Progress), optpreview.Color("never"), optpreview.EventStreams(evs), optpreview.Parallel(o.parallel())}
	if len(o.PolicyPacks) > 0 {
		opts = append(opts, optpreview.PolicyPacks(o.PolicyPacks...), optpreview.PolicyPackConfigs(o.PolicyPackConfigs...))
	}
	if o.ExpectNoChanges {
		opts = append(opts, optpreview.ExpectNoChanges())
	}
	res, err := st.Preview(ctx, opts...)
	policy, _ := collected()
	r := Result{Operation: "preview", Stack: o.StackName, Duration: time.Since(begin), Stdout: res.StdOut, Changes: map[string]int{}, Policy: policy}
	if err != nil {
		return r, fmt.Errorf("pulumi preview of stack %s: %w", o.StackName, err)
	}
	for op, n := range res.ChangeSummary {
		r.Changes[string(op)] = n
	}
	return r, nil
}

// Destroy runs `pulumi destroy`: every resource of the stack is deleted.
func Destroy(ctx context.Context, o Options) (Result, error) {
	begin := time.Now()
	st, err := stack(ctx, &o)
	if err != nil {
		return Result{}, err
	}
	res, err := st.Destroy(ctx, optdestroy.ProgressStreams(o.Progress), optdestroy.Color("never"), optdestroy.Parallel(o.parallel()))
	if err != nil {
		return Result{Operation: "destroy", Stack: o.StackName, Stdout: res.StdOut}, fmt.Errorf("pulumi destroy of stack %s: %w", o.StackName, err)
	}
	r := Result{Operation: "destroy", Stack: o.StackName, Duration: time.Since(begin), Stdout: res.StdOut}
	if res.Summary.ResourceChanges != nil {
		r.Changes = *res.Summary.ResourceChanges
	}
	return r, nil
}

// removeBackupsSince is the first Pulumi CLI whose `stack rm` takes
// --remove-backups (pulumi/pulumi#20203).
var removeBackupsSince = semver.Version{Major: 3, Minor: 188}

// RemoveStack deletes the stack's (empty) state from the backend with its
// backups, so a test leaves nothing behind: the file backend otherwise
// keeps a copy of every update's state per removed stack (0.9 MB each for
// local). The Automation API's RemoveStack has no option for backups, so
// the CLI is run directly, with the workspace's environment.
func RemoveStack(ctx context.Context, o Options) error {
	st, err := stack(ctx, &o)
	if err != nil {
		return err
	}
	ws := st.Workspace()
	if o.cli.Version().LT(removeBackupsSince) {
		// A user's older CLI has no --remove-backups: remove the stack alone.
		return ws.RemoveStack(ctx, o.StackName)
	}
	var env []string
	for k, v := range ws.GetEnvVars() {
		env = append(env, k+"="+v)
	}
	stdout, stderr, _, err := o.cli.Run(ctx, ws.WorkDir(), nil, nil, nil, env, "stack", "rm", "--yes", "--remove-backups", "--stack", o.StackName)
	if err != nil {
		return fmt.Errorf("pulumicli: removing stack %s: %w: %s%s", o.StackName, err, stdout, stderr)
	}
	return nil
}

// Print writes the summary: changes, resources per kind and outputs.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "\n%s of stack %s done in %s", r.Operation, r.Stack, r.Duration.Round(100*time.Millisecond))
	if r.Update > 0 {
		fmt.Fprintf(w, " (pulumi up %s, the rest stack selection and reading back outputs and history)", r.Update.Round(100*time.Millisecond))
	}
	fmt.Fprintln(w)
	if len(r.Changes) > 0 {
		fmt.Fprintf(w, "changes: %s\n", sortedCounts(r.Changes, ", "))
	}
	if len(r.Kinds) > 0 {
		fmt.Fprintln(w, "resources:")
		keys := make([]string, 0, len(r.Kinds))
		for k := range r.Kinds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %4d  %s\n", r.Kinds[k], k)
		}
	}
	if p := r.Policy; p != nil {
		fmt.Fprintf(w, "policy: %s checked %d resources: %d violations, %d mandatory\n",
			strings.Join(p.Packs, ", "), p.Checked, len(p.Violations), p.Mandatory())
		for _, v := range p.Violations {
			fmt.Fprintf(w, "  [%s] %s: %s\n", v.EnforcementLevel, v.PolicyName, firstLine(v.Message))
		}
	}
	if len(r.Outputs) > 0 {
		fmt.Fprintln(w, "outputs:")
		keys := make([]string, 0, len(r.Outputs))
		for k := range r.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-16s %v\n", k, r.Outputs[k])
		}
	}
}

// firstLine keeps a policy message to its first line in the summary.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func sortedCounts(m map[string]int, sep string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, sep)
}
