//go:build scaleplane_certmanager

// Command cert-manager is scaleplane's build of cert-manager: one static
// binary whose first argument picks the part to run (controller, webhook,
// cainjector, apicheck). Upstream ships four images built from four cmd
// modules that the Go module proxy does not serve; only the root module is
// there, so these small mains wire its packages themselves, and one binary
// means one image to build, load and scan.
//
// This file and its siblings carry the scaleplane_certmanager build tag: they
// import cert-manager's internal packages, which only a module under
// github.com/cert-manager/cert-manager/ may do, so scaleplane's own module
// never compiles them. internal/toolchain embeds them and builds them in a
// generated module of that path (toolchain.CertManager).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

// exitUsage is the exit code of a bad command line, as flag packages and
// shells use it: the caller's mistake, not a failure of the program.
const exitUsage = 2

// subcommand is one part of cert-manager run by this binary.
type subcommand struct {
	// summary is the one line shown in the binary's usage.
	summary string
	// flags adds the subcommand's flags to fs and returns the function that
	// runs it once they are parsed and checked.
	flags func(fs *pflag.FlagSet) (run func(ctx context.Context) error)
}

// subcommands are the parts of cert-manager this binary runs, by name.
var subcommands = map[string]subcommand{
	"controller": {"the controllers that issue and renew Certificates (issuers, ACME orders and challenges)", controllerFlags},
	"webhook":    {"the validating and mutating admission webhook, serving with its own dynamic CA", webhookFlags},
	"cainjector": {"injects CA bundles from Secrets into webhook configurations", cainjectorFlags},
	"apicheck":   {"waits until the API accepts a cert-manager Issuer (CRDs established, webhook reachable)", apicheckFlags},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run dispatches args to a subcommand and returns the process's exit code:
// 0 on success (and for --help), 1 when the subcommand fails, exitUsage for
// an unknown subcommand, a bad flag or a stray argument.
func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stderr)
		return 0
	}
	sub, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cert-manager: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	fs := pflag.NewFlagSet("cert-manager "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	start := sub.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cert-manager %s [flags]\n\n%s.\n\nFlags:\n%s", name, upperFirst(sub.summary), fs.FlagUsages())
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0 // pflag has printed the usage
		}
		// Under ContinueOnError pflag prints nothing on a bad flag.
		fmt.Fprintf(stderr, "cert-manager %s: %v\n\n", name, err)
		fs.Usage()
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cert-manager %s: unexpected argument %q (this subcommand takes flags only)\n\n", name, fs.Arg(0))
		fs.Usage()
		return exitUsage
	}

	// SIGTERM is how the kubelet stops a pod: end the context so servers
	// shut down and leader leases are released before the grace period.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf.InitLogs()
	defer logf.FlushLogs()
	ctx = logf.NewContext(ctx, logf.Log, name)

	if err := start(ctx); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "cert-manager %s: %v\n\n", name, err)
			fs.Usage()
			return exitUsage
		}
		logf.Log.Error(err, "cert-manager "+name+" failed")
		return 1
	}
	return 0
}

// usageError is a flag value that parsed but is not allowed; it exits with
// the usage, as a parse error does.
type usageError struct{ error }

// badFlag returns a usageError naming the flag, its value and what is
// allowed.
func badFlag(flag, value, allowed string) error {
	return usageError{fmt.Errorf("--%s=%q: %s", flag, value, allowed)}
}

func usage(w io.Writer) {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "Usage: cert-manager <subcommand> [flags]\n\nscaleplane's build of cert-manager %s, one binary for its parts.\n\nSubcommands:\n", versionString())
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, subcommands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'cert-manager <subcommand> --help' for its flags.\n")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
