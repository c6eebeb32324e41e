package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	data, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	if bin != "" && filepath.Base(exe) != filepath.Base(bin) {
		return 0, false
	}
	if isZombie(pid) {
		return 0, false
	}
	return pid, true
}

func isZombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z'
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
	logf, err := os.OpenFile(c.logFile(comp.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s log: %w", comp.name, err)
	}
	defer func() { _ = logf.Close() }()
	fmt.Fprintf(logf, "\n==== %s: %s %s\n", time.Now().Format(time.RFC3339), comp.bin, strings.Join(comp.args, " "))
	cmd := exec.Command(comp.bin, comp.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.StateDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", comp.name, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it exits while we wait, so a crash is seen as an exit.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(c.pidFile(comp.name), []byte(strconv.Itoa(pid)), 0o644); err != nil {
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
		case werr := <-exited:
			return fmt.Errorf("%s exited during start-up (%v); last lines of %s:\n%s", comp.name, werr, c.logFile(comp.name), lastLines(c.logFile(comp.name), 25))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %s (%v); last lines of %s:\n%s", comp.name, timeout, err, c.logFile(comp.name), lastLines(c.logFile(comp.name), 25))
		}
	}
	c.logf("%-24s started (pid %d) in %s", comp.name, pid, time.Since(begin).Round(100*time.Millisecond))
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
	if err := killWait(pid, grace); err != nil {
		return fmt.Errorf("stopping %s (pid %d): %w", name, pid, err)
	}
	c.logf("%-24s stopped", name)
	return os.Remove(c.pidFile(name))
}

// killWait terminates pid politely, then forcibly, and waits for it to go.
func killWait(pid int, grace time.Duration) error {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("still alive after SIGKILL")
}

// alive reports whether pid exists and is not a zombie (a detached child
// of an earlier scaleplane is reparented to init, which reaps it).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	return !isZombie(pid)
}

// lastLines returns the last n lines of a file, for error messages.
func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
