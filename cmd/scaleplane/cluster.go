package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/cluster"
)

// subcommand splits "verb sub --flags..." into sub and the flag arguments;
// a leading flag (such as --help) leaves sub empty.
func subcommand(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// signalContext is cancelled by Ctrl-C or SIGTERM, so a long wait stops
// cleanly (the node's processes are detached and keep running).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runCluster(args []string, stdout, stderr io.Writer) error {
	sub, rest := subcommand(args)
	fs := newFlags("cluster", "up|down|status [--state DIR] [--purge]", stderr)
	state := fs.String("state", "", "state directory of the embedded cluster (default <tool cache>/cluster)")
	purge := fs.Bool("purge", false, "down: also delete the state (certificates, etcd data, images, Pulumi state of stacks deployed to it)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	c, err := cluster.New(cluster.Options{StateDir: *state, Log: stderr})
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	switch sub {
	case "up":
		start := time.Now()
		if err := c.Up(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "embedded cluster up in %s\n  export KUBECONFIG=%s\n", time.Since(start).Round(time.Second), c.Kubeconfig)
		fmt.Fprintln(stdout, c.Kubeconfig)
		return nil
	case "down":
		start := time.Now()
		if err := c.Down(ctx, *purge); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "embedded cluster down in %s\n", time.Since(start).Round(time.Second))
		return nil
	case "status":
		st := c.Status(ctx)
		for _, comp := range st.Components {
			state := "stopped"
			if comp.Running {
				state = fmt.Sprintf("running (pid %d)", comp.PID)
			}
			fmt.Fprintf(stdout, "%-24s %s\n", comp.Name, state)
		}
		fmt.Fprintf(stdout, "%-24s %v\n%-24s %v\n%-24s %s\n", "api server ready", st.APIReady, "node ready", st.NodeReady, "kubeconfig", st.Kubeconfig)
		if !st.Healthy() {
			return fmt.Errorf("the embedded cluster is not (fully) running: `scaleplane cluster up` starts it")
		}
		return nil
	case "":
		return usageError{fmt.Errorf("missing subcommand: up, down or status")}
	default:
		return usageError{fmt.Errorf("unknown subcommand %q: want up, down or status", sub)}
	}
}
