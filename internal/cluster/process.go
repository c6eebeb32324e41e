package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/supervise"
)

// component is one process of the node: how to start it and how to know it
// is healthy.
type component struct {
	name string
	bin  string
	args []string
	// healthy returns nil once the component serves.
	healthy func(ctx context.Context) error
	// startTimeout bounds the wait for healthy.
	startTimeout time.Duration
}

// pidFile is where a component's process id is kept between commands.
func (c *Cluster) pidFile(name string) string { return filepath.Join(c.RunDir, name+".pid") }

// logFile is where a component's output goes.
func (c *Cluster) logFile(name string) string { return filepath.Join(c.LogDir, name+".log") }

// running returns the pid of the component if its pid file names a live
// process running the expected binary (a recycled pid is not ours).
func (c *Cluster) running(name, bin string) (int, bool) {
	return supervise.Lookup(c.pidFile(name), bin)
}

// start launches the component detached (its own session, so it outlives
// the scaleplane process and a Ctrl-C of it), unless it already runs, then
// waits for it to be healthy. Its output is appended to its log file.
func (c *Cluster) start(ctx context.Context, comp component) error {
	if _, ok := c.running(comp.name, comp.bin); ok {
		if comp.healthy == nil || comp.healthy(ctx) == nil {
			c.logf("%-24s already running", comp.name)
			return nil
		}
	}
	begin := time.Now()
	p, err := supervise.Start(supervise.Spec{
		Name:    comp.name,
		Argv:    append([]string{comp.bin}, comp.args...),
		Dir:     c.StateDir,
		Env:     append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin"),
		Log:     c.logFile(comp.name),
		Banner:  true,
		Detach:  true,
		PIDFile: c.pidFile(comp.name),
	})
	if err != nil {
		return err
	}
	timeout := comp.startTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for comp.healthy != nil {
		err := comp.healthy(ctx)
		if err == nil {
			break
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited during start-up (%v); last lines of %s:\n%s", comp.name, p.Wait(), p.Log(), lastLines(p.Log(), 25))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %s (%v); last lines of %s:\n%s", comp.name, timeout, err, p.Log(), lastLines(p.Log(), 25))
		}
	}
	c.logf("%-24s started (pid %d) in %s", comp.name, p.Pid(), time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// stop sends SIGTERM to the component, then SIGKILL after grace, and
// removes its pid file. Stopping what is not running is not an error.
func (c *Cluster) stop(name, bin string, grace time.Duration) error {
	pid, ok := c.running(name, bin)
	if !ok {
		_ = os.Remove(c.pidFile(name))
		return nil
	}
	if err := supervise.Terminate(pid, grace); err != nil {
		return fmt.Errorf("stopping %s (pid %d): %w", name, pid, err)
	}
	c.logf("%-24s stopped", name)
	return os.Remove(c.pidFile(name))
}

// lastLines returns the last n lines of a log for error messages, nothing
// when it cannot be read (the message then still names its path).
func lastLines(path string, n int) string {
	tail, _ := supervise.Tail(path, n)
	return tail
}

// run executes a short command and returns its combined output, wrapping
// a failure with the command line and output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, buf.String())
	}
	return buf.String(), nil
}
