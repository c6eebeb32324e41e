package progress

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// GoBuild is a `go build` whose progress is shown: step 1 lists the packages
// it needs (downloading their modules the first time, which takes a while
// for Kubernetes or Pulumi), step 2 compiles them, counted as the go command
// names each package it compiles (-v). Packages already in Go's build cache
// are not compiled and not counted, so a warm build ends early.
type GoBuild struct {
	// What is built, for the progress line ("kubernetes v1.34.2").
	What string
	// Dir is where the go command runs (the main module).
	Dir string
	// Env is the go command's environment; nil means this process's.
	Env []string
	// Flags are build flags given to every target (-trimpath, -ldflags ...).
	Flags []string
	// Targets are the binaries to build, one go build each, in order.
	Targets []GoTarget
	// Nice runs the go command under nice when it exists: the builds
	// compete with tests and people for a couple of cores.
	Nice bool
}

// GoTarget is one binary: the main package Pkg built to Out.
type GoTarget struct {
	Out string
	Pkg string
}

// tailLines is how much of a failed go command's output an error keeps.
const tailLines = 40

// Run builds every target, reporting progress on ctx's writer (see
// WithWriter). A failure returns the go command's line and the tail of its
// output, the compiler's errors last.
func (b GoBuild) Run(ctx context.Context) error {
	t := Start(ctx, "go build "+b.What, 2)
	return t.Done(b.run(ctx, t))
}

func (b GoBuild) run(ctx context.Context, t *Task) error {
	t.Step(1, "listing packages (downloading modules the first time)")
	pkgs := make([]string, 0, len(b.Targets))
	for _, tg := range b.Targets {
		pkgs = append(pkgs, tg.Pkg)
	}
	var listed bytes.Buffer
	list := b.command(ctx, append(append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, b.Flags...), pkgs...)...)
	list.Stdout, list.Stderr = &listed, &listed
	if err := list.Run(); err != nil {
		return fmt.Errorf("%s (in %s): %w\n%s", strings.Join(list.Args, " "), b.Dir, err, Tail(listed.String(), tailLines))
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(listed.String()) {
		deps[p] = true
	}

	t.Step(2, "compiling")
	c := &compileCounter{deps: deps, total: len(deps), task: t}
	for i, tg := range b.Targets {
		c.target = ""
		if len(b.Targets) > 1 {
			c.target = fmt.Sprintf("binary %d of %d (%s), ", i+1, len(b.Targets), tg.Out[strings.LastIndex(tg.Out, "/")+1:])
		}
		c.report()
		args := append(append([]string{"build", "-v"}, b.Flags...), "-o", tg.Out, tg.Pkg)
		cmd := b.command(ctx, args...)
		out, err := cmd.StderrPipe()
		if err != nil {
			return err
		}
		cmd.Stdout = cmd.Stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
		}
		c.read(out)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s (in %s): %w\n%s", strings.Join(cmd.Args, " "), b.Dir, err, Tail(c.other.String(), tailLines))
		}
	}
	return nil
}

// command is the go command with b's directory and environment, under nice
// when asked and available.
func (b GoBuild) command(ctx context.Context, args ...string) *exec.Cmd {
	name := "go"
	if b.Nice {
		if nice, err := exec.LookPath("nice"); err == nil {
			args = append([]string{"-n", "10", name}, args...)
			name = nice
		}
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = b.Dir, b.Env
	return cmd
}

// compileCounter reads `go build -v` output: lines naming a listed package
// count as compiled, every other line (compiler errors) is kept.
type compileCounter struct {
	deps   map[string]bool
	total  int
	task   *Task
	target string

	mu    sync.Mutex
	seen  map[string]bool
	other bytes.Buffer
}

func (c *compileCounter) read(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		line := s.Text()
		c.mu.Lock()
		if c.deps[line] {
			if c.seen == nil {
				c.seen = map[string]bool{}
			}
			c.seen[line] = true
		} else {
			c.other.WriteString(line + "\n")
		}
		c.mu.Unlock()
		c.report()
	}
}

func (c *compileCounter) report() {
	c.mu.Lock()
	n := len(c.seen)
	c.mu.Unlock()
	c.task.Detail("%s%d of at most %d packages (cached ones are skipped)", c.target, n, c.total)
}

// Tail returns the last n lines of s: a build's or a download's useful error
// is at its end.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
