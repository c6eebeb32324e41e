package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/analyzer"
	"github.com/scaleplane/scaleplane/internal/cluster"
	"github.com/scaleplane/scaleplane/internal/pulumicli"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/internal/rollout"
	"github.com/scaleplane/scaleplane/internal/toolchain"
	"github.com/scaleplane/scaleplane/stacks"
)

// engineFlags are the flags shared by up, preview and destroy.
type engineFlags struct {
	stack, root, kubeconfig, policyPack, out *string
	wait                                     *time.Duration
	await, noPolicy, checkpoints             *bool
}

func newEngineFlags(fs *flag.FlagSet) engineFlags {
	return engineFlags{
		stack:      fs.String("stack", "local", "stack to deploy (a stacks/Pulumi.<name>.yaml)"),
		root:       fs.String("project-dir", ".", "directory holding Pulumi.yaml and stacks/"),
		kubeconfig: fs.String("kubeconfig", "", "cluster to deploy to (default $KUBECONFIG, else the embedded cluster)"),
		policyPack: fs.String("policy-pack", "", "compiled policy pack (directory or binary) the engine runs on every resource (default: ./policies, built and cached)"),
		noPolicy:   fs.Bool("no-policy", false, "up, preview: run without the policy pack"),
		out:        fs.String("out", "", "up, preview: where the topology picture and manifests go (default out/<stack>)"),
		wait:       fs.Duration("wait", 5*time.Minute, "up: how long to wait for the workloads' rollouts (0: do not wait)"),
		await:      fs.Bool("await", false, "up: let the kubernetes provider wait for each workload itself (all-or-nothing, 10 minutes each)"),
		checkpoints: fs.Bool("checkpoints", false, "write the state after every step also for the local environment "+
			"(slower; by default local writes it once, when the update ends, even on failure or a first Ctrl-C)"),
	}
}

// target resolves where to deploy: an explicit kubeconfig, $KUBECONFIG, or
// the running embedded cluster; the file backend lives with the cluster it
// describes (inside the embedded cluster's state, which a purge removes).
func target(ctx context.Context, kubeconfig string) (kc, backend string, embedded *cluster.Cluster, err error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig != "" {
		root, err := toolchain.Root()
		if err != nil {
			return "", "", nil, err
		}
		return kubeconfig, filepath.Join(root, "pulumi-state"), nil, nil
	}
	c, err := cluster.New(cluster.Options{})
	if err != nil {
		return "", "", nil, err
	}
	if !c.Running(ctx) {
		return "", "", nil, errors.New("no cluster: `scaleplane cluster up` (or `make up`) starts the embedded one; or pass --kubeconfig / set KUBECONFIG")
	}
	return c.Kubeconfig, filepath.Join(c.StateDir, "pulumi"), c, nil
}

func runUp(args []string, stdout, stderr io.Writer) error {
	return runEngine("up", args, stdout, stderr)
}

func runPreview(args []string, stdout, stderr io.Writer) error {
	return runEngine("preview", args, stdout, stderr)
}

func runDestroy(args []string, stdout, stderr io.Writer) error {
	return runEngine("destroy", args, stdout, stderr)
}

func runEngine(op string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(op, "--stack NAME [--kubeconfig FILE] [--policy-pack PATH] [--project-dir DIR]", stderr)
	f := newEngineFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := stacks.ReadStackConfig(*f.root, *f.stack); err != nil {
		if errors.Is(err, stacks.ErrUnknownStack) {
			return usageError{err}
		}
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	kc, backend, embedded, err := target(ctx, *f.kubeconfig)
	if err != nil {
		return err
	}
	o := pulumicli.Options{Root: *f.root, StackFile: *f.stack, Kubeconfig: kc, BackendDir: backend, Progress: stderr, Await: *f.await, Checkpoints: *f.checkpoints}
	var picture string
	if op != "destroy" {
		// The engine runs the policy pack on every resource, so a mandatory
		// violation stops the deployment before anything changes.
		if o.PolicyPacks, err = policyPacks(ctx, f, stderr); err != nil {
			return err
		}
		if picture, err = drawTopology(*f.root, *f.stack, *f.out); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "%s of stack %s on %s (state: %s)\n", op, *f.stack, kc, backend)
	engineCtx, stopEngine := engineContext()
	defer stopEngine()
	var res pulumicli.Result
	switch op {
	case "up":
		res, err = pulumicli.Up(engineCtx, o)
	case "preview":
		res, err = pulumicli.Preview(engineCtx, o)
	case "destroy":
		res, err = pulumicli.Destroy(engineCtx, o)
	}
	if err != nil {
		return err
	}
	res.Print(stdout)
	if rf, ok := res.Outputs["kafkaReplication"].(float64); ok && rf == 1 {
		fmt.Fprintln(stdout, "kafka: one combined broker+controller node, replication 1 (local only): while it restarts, registrations are refused with 503, none accepted is lost")
	}
	if picture != "" {
		fmt.Fprintf(stdout, "topology: %s\n", picture)
	}
	if op != "up" || *f.wait == 0 || len(res.Workloads) == 0 {
		return nil
	}
	kubectl, err := cluster.KubectlPath(ctx)
	if err != nil {
		return err
	}
	r := rollout.Checker{Kubectl: kubectl, Kubeconfig: kc}
	if embedded != nil {
		r.ContainerdSocket = embedded.ContainerdSocket
	}
	fmt.Fprintf(stdout, "\nwaiting up to %s for the rollouts:\n", *f.wait)
	states, werr := r.Wait(ctx, res.Workloads, *f.wait, stdout)
	var blocked []string
	for _, s := range states {
		if !s.Expected() {
			blocked = append(blocked, fmt.Sprintf("  %s: %s", s, strings.Join(s.Blockers, "; ")))
		}
	}
	if len(blocked) > 0 {
		fmt.Fprintf(stdout, "\nnot started, waiting for what they need (another part of the platform creates it):\n%s\n", strings.Join(blocked, "\n"))
	}
	howToReach(ctx, stdout, kubectl, kc, res)
	// The stack's own CA (self-signed chain): written out so clients can
	// trust the edge; failing to get it means cert-manager issued nothing.
	return errors.Join(werr, printCA(ctx, stdout, kubectl, kc, *f.stack, res))
}

// engineContext is what the Pulumi CLI runs under. A Ctrl-C at the
// terminal reaches the CLI directly (it runs in scaleplane's process group),
// and the CLI answers a first interrupt by finishing its in-flight steps and
// writing the state. Cancelling the context too would send it a second
// interrupt, which it takes as "terminate now", and the Automation API
// kills it 10 s later: the local environment, which writes its state only
// when an update ends, would lose the run's steps. So an interrupt cancels
// the context only the second time (the user will not wait); a SIGTERM,
// sent to scaleplane alone, cancels it at once, which the CLI receives as
// its first interrupt, with 10 s to finish before the Automation API kills
// it (cmd.WaitDelay, not configurable).
func engineContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for interrupts := 0; ; {
			select {
			case sig := <-sigs:
				if sig == os.Interrupt {
					if interrupts++; interrupts < 2 {
						continue
					}
				}
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
	}
}

// policyPacks is the pack the engine runs: the one given, none with
// --no-policy, else ./policies built once and cached.
func policyPacks(ctx context.Context, f engineFlags, stderr io.Writer) ([]string, error) {
	switch {
	case *f.noPolicy:
		return nil, nil
	case *f.policyPack != "":
		return []string{*f.policyPack}, nil
	}
	modRoot, err := analyzer.ModuleRoot(*f.root)
	if err != nil {
		return nil, fmt.Errorf("find the policy pack's sources (or pass --no-policy): %w", err)
	}
	bin, err := analyzer.BuildCached(ctx, modRoot)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "policy pack: %s\n", bin)
	return []string{bin}, nil
}

// drawTopology renders the stack under mocks into dir (default out/<stack>)
// and returns its picture (SVG with graphviz, else the DOT source), so the
// summary can say where the deployed topology is drawn.
func drawTopology(root, stack, dir string) (string, error) {
	if dir == "" {
		dir = filepath.Join("out", stack)
	}
	g, _, err := renderStack(root, stack)
	if err != nil {
		return "", err
	}
	files, err := render.Write(g, dir)
	if err != nil {
		return "", fmt.Errorf("write the topology to %s: %w", dir, err)
	}
	for _, p := range files.Pictures {
		if strings.HasSuffix(p, ".svg") {
			return p, nil
		}
	}
	return files.DOT, nil
}

// howToReach prints where the gateway, the edge, Jaeger's UI and
// Prometheus answer. With the embedded cluster, Service IPs are reachable
// from this machine through kube-proxy's rules.
func howToReach(ctx context.Context, w io.Writer, kubectl, kc string, res pulumicli.Result) {
	ns, _ := res.Outputs["namespace"].(string)
	if ns == "" {
		return
	}
	// port empty: the Service's first port.
	type target struct{ label, namespace, service, port, path string }
	// The edge speaks HTTPS only, for the stack's domain: printCA says how
	// to reach it with the stack's CA.
	targets := []target{{"gateway", ns, "gateway", "", "/"}}
	// The observability outputs are in-cluster URLs: <service>.<namespace>.svc...
	for _, o := range []struct{ label, output, path string }{{"jaeger", "jaegerQueryUrl", "/search"}, {"prometheus", "prometheusUrl", "/api/v1/targets"}} {
		u, err := url.Parse(fmt.Sprint(res.Outputs[o.output]))
		if err != nil {
			continue
		}
		if parts := strings.Split(u.Hostname(), "."); len(parts) > 2 {
			targets = append(targets, target{o.label, parts[1], parts[0], u.Port(), o.path})
		}
	}
	fmt.Fprintln(w, "\nreach it:")
	for _, t := range targets {
		out, err := runOut(ctx, kubectl, "--kubeconfig", kc, "-n", t.namespace, "get", "service", t.service, "-o", `jsonpath={.spec.clusterIP}:{.spec.ports[0].port}`)
		if err != nil || strings.HasPrefix(out, "None") || out == "" {
			continue
		}
		if t.port != "" {
			out = out[:strings.LastIndex(out, ":")+1] + t.port
		}
		fmt.Fprintf(w, "  %-10s curl http://%s%s   (from this machine; elsewhere: kubectl -n %s port-forward svc/%s LOCALPORT:%s)\n",
			t.label, out, t.path, t.namespace, t.service, out[strings.LastIndex(out, ":")+1:])
	}
	fmt.Fprintf(w, "  kubectl: export KUBECONFIG=%s\n", kc)
}

// runOut runs a short command and returns its trimmed standard output.
func runOut(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return strings.TrimSpace(string(out)), err
}
