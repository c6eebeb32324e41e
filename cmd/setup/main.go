// Command setup is the first thing `make up`, `make test` and `make bench`
// run: a preflight of the machine in seconds (internal/preflight), one
// apt-get of every missing Debian package when run as root, and for
// `make up` the phases after it, each timed: building scaleplane (with
// progress), the embedded cluster, the images and the real `pulumi up`.
//
// It depends on the standard library and two stdlib-only packages, so it
// compiles in seconds on a fresh machine: a missing package or a taken port
// is named before the minutes-long build of scaleplane, not after it.
//
//	go run ./cmd/setup check up|test|bench   # report only; never installs
//	go run ./cmd/setup test|bench            # preflight, install as root
//	go run ./cmd/setup up [-stack local] [-bin out/bin/scaleplane]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/preflight"
	"github.com/scaleplane/scaleplane/internal/progress"
)

// Exit codes: 1 when the machine is not ready or a phase failed, 2 for a
// usage error.
const (
	exitFailure = 1
	exitUsage   = 2
)

const usageText = `usage:
  setup check up|test|bench          check the machine for a job; install nothing
  setup test|bench                   check, and install missing Debian packages (as root)
  setup up [-stack S] [-bin PATH]    check, install, build scaleplane, start the
                                     embedded cluster, build the images, pulumi up
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "check":
		if len(rest) != 1 || !validJob(rest[0]) {
			fmt.Fprintf(stderr, "setup check: want one job (up, test or bench), got %q\n%s", rest, usageText)
			return exitUsage
		}
		return exit(stderr, checkOnly(ctx, preflight.Job(rest[0]), stderr))
	case "test", "bench":
		if len(rest) != 0 {
			fmt.Fprintf(stderr, "setup %s: takes no arguments, got %q\n", verb, rest)
			return exitUsage
		}
		return exit(stderr, prepare(ctx, preflight.Job(verb), stderr))
	case "up":
		fs := flag.NewFlagSet("setup up", flag.ContinueOnError)
		fs.SetOutput(stderr)
		stack := fs.String("stack", "local", "the stack to deploy")
		bin := fs.String("bin", filepath.Join("out", "bin", "scaleplane"), "where to build the scaleplane command")
		if err := fs.Parse(rest); err != nil || fs.NArg() != 0 {
			return exitUsage
		}
		return exit(stderr, up(ctx, *stack, *bin, stdout, stderr))
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return 0
	}
	fmt.Fprintf(stderr, "setup: unknown verb %q\n%s", verb, usageText)
	return exitUsage
}

func validJob(s string) bool {
	return slices.Contains(preflight.Jobs, preflight.Job(s))
}

func exit(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "setup: %v\n", err)
	return exitFailure
}

// check reads the machine, checks it for job and prints the report.
func check(ctx context.Context, job preflight.Job, w io.Writer) (*preflight.Machine, preflight.Report, error) {
	m, err := preflight.New()
	if err != nil {
		return nil, preflight.Report{}, err
	}
	r, err := m.Check(ctx, job)
	if err != nil {
		return nil, r, err
	}
	r.Print(w, m.Root)
	return m, r, nil
}

// checkOnly reports the machine for job and installs nothing.
func checkOnly(ctx context.Context, job preflight.Job, w io.Writer) error {
	m, r, err := check(ctx, job, w)
	if err != nil {
		return err
	}
	if len(r.Missing) > 0 && m.Root {
		return fmt.Errorf("%w for make %s: %d Debian packages missing (setup %s installs them)", preflight.ErrNotReady, job, len(r.Missing), job)
	}
	return r.Ready(m.Root)
}

// prepare checks the machine for job and, when only packages are missing
// and this runs as root, installs them.
func prepare(ctx context.Context, job preflight.Job, w io.Writer) error {
	m, r, err := check(ctx, job, w)
	if err != nil {
		return err
	}
	if err := r.Ready(m.Root); err != nil {
		return err
	}
	return preflight.Install(ctx, w, r.Missing)
}

// phase is one timed step of make up.
type phase struct {
	name string
	took time.Duration
}

// up runs make up's phases in order, stopping at the first failure, and
// prints how long each took either way.
func up(ctx context.Context, stack, bin string, stdout, stderr io.Writer) (err error) {
	begin := time.Now()
	var done []phase
	defer func() {
		verdict := "done"
		if err != nil {
			verdict = "failed"
		}
		fmt.Fprintf(stderr, "\nmake up (stack %s): %s in %s\n", stack, verdict, progress.Duration(time.Since(begin)))
		for _, p := range done {
			fmt.Fprintf(stderr, "  %-24s %8s\n", p.name, progress.Duration(p.took))
		}
	}()
	step := func(name string, f func() error) error {
		fmt.Fprintf(stderr, "\n== make up: %s\n", name)
		t := time.Now()
		err := f()
		done = append(done, phase{name, time.Since(t)})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := step("preflight and packages", func() error { return prepare(ctx, preflight.Up, stderr) }); err != nil {
		return err
	}
	if err := step("build scaleplane", func() error {
		// The tools and images are built static with -trimpath; so is
		// scaleplane, so that Go's build cache serves their shared packages.
		return progress.GoBuild{What: "scaleplane", Env: append(os.Environ(), "CGO_ENABLED=0"), Flags: []string{"-trimpath"},
			Targets: []progress.GoTarget{{Out: bin, Pkg: "./cmd/scaleplane"}}}.Run(ctx)
	}); err != nil {
		return err
	}
	scaleplane := func(args ...string) func() error {
		return func() error {
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return fmt.Errorf("scaleplane %s exited %d (its error is above)", args[0], exit.ExitCode())
				}
				return err
			}
			return nil
		}
	}
	if os.Getenv("KUBECONFIG") == "" {
		if err := step("cluster up", scaleplane("cluster", "up")); err != nil {
			return err
		}
	}
	if err := step("images", scaleplane("images", "build", "--stack", stack)); err != nil {
		return err
	}
	return step("pulumi up and rollouts", scaleplane("up", "--stack", stack))
}
