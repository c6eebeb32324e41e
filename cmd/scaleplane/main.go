// Command scaleplane is the user's entry point: it renders a stack offline
// under mocks (render, graph) and
// prepares the cached tools (tools). Each verb is a thin call into internal/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes: 1 for a failure of the work, 2 for a usage error (unknown
// verb, flag or stack).
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks errors that exit with exitUsage.
type usageError struct{ error }

type verb struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var verbs = map[string]verb{
	"render":   {"Render a stack under mocks: manifests, resource graph, topology picture.", runRender},
	"graph":    {"Print a stack's resource graph (tree, json or dot) without writing files.", runGraph},
	"services": {"Start Kafka, Redis Cluster, Postgres + replica and PgBouncer on loopback for `go run ./apps/<svc>`.", runServices},
	"tools":    {"Fetch or build the cached tools (Kafka jars, ...) into ~/.cache/scaleplane.", runTools},
	"check":    {"Check a stack against the policy pack offline, over the Analyzer protocol: no cloud, no credentials.", runCheck},

	// The embedded cluster, its images and the real engine.
	"cluster": {"Start, stop or inspect the embedded one-node Kubernetes (up|down|status).", runCluster},
	"images":  {"Build the service images (static, non-root) and load them into the embedded cluster; push them to an aws stack's registry.", runImages},
	"up":      {"Deploy a stack with the real Pulumi engine (Automation API) and wait for its rollouts.", runUp},
	"preview": {"Preview a stack's changes with the real Pulumi engine (and a policy pack).", runPreview},
	"destroy": {"Delete every resource of a deployed stack.", runDestroy},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "scaleplane: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := v.run(args[1:], stdout, stderr)
	// The verb is said once, here, in front of the whole chain; the
	// internal packages name no package in their errors (internal/images'
	// package doc has the rule).
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "scaleplane %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "scaleplane %s: %v\n", args[0], err)
		return exitFailure
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: scaleplane <command> [flags]\n\nCommands:")
	var names []string
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'scaleplane <command> --help' for a command's flags.")
}

// newFlags makes a flag set that reports errors instead of exiting, with
// a usage line naming the command.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scaleplane %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and refuses stray arguments, as usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}
