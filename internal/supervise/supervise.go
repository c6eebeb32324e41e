// Package supervise starts, watches and stops the processes scaleplane
// runs: the embedded node's daemons (detached, so they outlive the command
// that started them, and found again by later commands through pid files),
// the test servers of internal/realserver and the benchmark's servers
// (attached: they die with this process). Every process writes to a log
// file, whose tail is what a failure message shows.
//
// It uses only the standard library, so every command and test may use it.
package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/progress"
)

const (
	// pollInterval is how often Terminate checks whether a process is gone.
	pollInterval = 100 * time.Millisecond
	// killWait bounds how long Terminate waits for a process after
	// SIGKILL: a process in uninterruptible sleep (D state) takes a while.
	killWait = 5 * time.Second
)

// Spec describes a process to start.
type Spec struct {
	// Name names the process in error messages.
	Name string
	// Argv is the program and its arguments.
	Argv []string
	// Dir is the working directory; "" means this process's.
	Dir string
	// Env is the environment; nil means this process's.
	Env []string
	// Cred runs the process as another user; nil means as this process's.
	Cred *syscall.Credential
	// Log is the file stdout and stderr are appended to (created 0644).
	Log string
	// Banner writes a line with the time and the command line to Log
	// before the process starts, so that runs appended to one log can be
	// told apart.
	Banner bool
	// Detach starts the process in its own session, so it outlives this
	// process and a Ctrl-C in its terminal. Otherwise the process leads
	// its own process group (so Kill reaches what it forks) and is
	// SIGKILLed when this process dies, leaving no orphans behind a
	// crashed test binary.
	Detach bool
	// PIDFile, when set, receives the process id once the process runs, so
	// that a later command can find it with Lookup.
	PIDFile string
	// SignalGroup makes Stop's polite signal go to the whole process
	// group, for servers whose leader does not pass it on to its workers.
	// Otherwise it goes to the leader alone, which shuts its children down
	// in its own order.
	SignalGroup bool
}

// Process is a process this one started.
type Process struct {
	spec Spec
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed
}

// Start starts the process described by spec and returns once it runs;
// it does not wait for the process to be ready for work, which only its
// caller knows how to check.
func Start(spec Spec) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, fmt.Errorf("starting %s: no command", spec.Name)
	}
	logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", spec.Name, err)
	}
	defer func() { _ = logf.Close() }() // the child holds its own copy
	if spec.Banner {
		fmt.Fprintf(logf, "\n==== %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(spec.Argv, " "))
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir, cmd.Env = spec.Dir, spec.Env
	if spec.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: spec.Cred}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: spec.Cred}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	p := &Process{spec: spec, cmd: cmd, done: make(chan struct{})}
	// Reap it as soon as it exits, so that an exit is seen as one (not as
	// a zombie that still answers signals) and Done can report it. An
	// attached process's group goes with its leader: whatever the leader
	// left behind (a Node.js cluster's workers) is killed right away, while
	// those processes still hold the group's id, so it names no other group.
	// Signalling the group later, once it may be empty, could reach a
	// stranger that was given the same number.
	go func() {
		p.err = cmd.Wait()
		if !spec.Detach {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		close(p.done)
	}()
	if spec.PIDFile != "" {
		if err := os.WriteFile(spec.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			// Untracked, a detached process would run on unseen by a
			// later stop: better not to leave it running at all.
			p.Kill()
			return nil, fmt.Errorf("writing %s pid file: %w", spec.Name, err)
		}
	}
	return p, nil
}

// Pid is the process's id (with Detach or not, also its process group's).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Log is the path of the process's log file.
func (p *Process) Log() string { return p.spec.Log }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits for the process to exit and returns how it exited (nil for
// status 0, an *exec.ExitError otherwise).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop sends sig (the program's own graceful-shutdown signal), waits up
// to grace for the process to exit, then Kills it. It reports whether the
// process exited within grace. Stopping a process that has exited does
// nothing: its group ended with it (see Start).
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) bool {
	if !p.Running() {
		return true
	}
	target := p.Pid()
	if p.spec.SignalGroup {
		target = -target
	}
	_ = syscall.Kill(target, sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.Kill()
		return false
	}
}

// Kill sends SIGKILL to the process's whole group, as a crash would end
// it and everything it forked, and waits for the process to exit. Killing
// a process that has exited does nothing: its group ended with it.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Lookup returns the id of the process whose id pidFile holds, if that
// process is alive and runs a program named like bin ("" matches any):
// a pid that was recycled for another program is not ours.
func Lookup(pidFile, bin string) (int, bool) {
	data, err := os.ReadFile(pidFile)
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

// Alive reports whether pid exists and is not a zombie (a detached child
// of an earlier command is reparented to init, which reaps it; until then
// it still answers signals).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	return !isZombie(pid)
}

// isZombie reports whether pid has exited but not been reaped; a pid
// whose state cannot be read counts as gone.
func isZombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z'
}

// Terminate ends pid, which need not be this process's child (a detached
// daemon found with Lookup): SIGTERM, up to grace for it to go, then
// SIGKILL and a few seconds more. Only pid itself is signalled.
func Terminate(pid int, grace time.Duration) error {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if gone(pid, grace) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if gone(pid, killWait) {
		return nil
	}
	return errors.New("still alive after SIGKILL")
}

// gone polls until pid is no longer alive or wait has passed.
func gone(pid int, wait time.Duration) bool {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(pollInterval) {
		if !Alive(pid) {
			return true
		}
	}
	return false
}

// Tail returns the last n lines of the file at path (a process's log), for
// error messages.
func Tail(path string, n int) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return progress.Tail(string(data), n), nil
}
