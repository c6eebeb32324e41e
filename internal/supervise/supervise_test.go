package supervise

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond for up to 10 s; child processes on a busy machine
// take a moment to get going.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// start starts a shell script attached, its log in a temp dir, and kills
// it when the test ends.
func start(t *testing.T, spec Spec, script string) *Process {
	t.Helper()
	spec.Name = "sh"
	spec.Argv = []string{"sh", "-c", script}
	if spec.Log == "" {
		spec.Log = filepath.Join(t.TempDir(), "sh.log")
	}
	p, err := Start(spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Kill)
	return p
}

// logged waits until the process's log contains s.
func logged(t *testing.T, p *Process, s string) {
	t.Helper()
	waitFor(t, "log line "+strconv.Quote(s), func() bool {
		b, _ := os.ReadFile(p.Log())
		return strings.Contains(string(b), s)
	})
}

// readPID reads a pid a script wrote to a file.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid in "+path, func() bool {
		b, readErr := os.ReadFile(path)
		if readErr != nil {
			return false // not written yet
		}
		var err error
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

func TestStopEndsASleepAtOnce(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "sleep.log")
	p, err := Start(Spec{Name: "sleep", Argv: []string{"sleep", "30"}, Log: log})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !p.Running() || !Alive(p.Pid()) {
		t.Fatalf("sleep 30 not running right after Start")
	}
	begin := time.Now()
	if !p.Stop(syscall.SIGTERM, 10*time.Second) {
		t.Fatalf("sleep did not exit on SIGTERM within the grace period")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("Stop took %v for a process that dies on SIGTERM", took)
	}
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("Wait() = %v, want death by SIGTERM", err)
	}
	if p.Running() {
		t.Fatalf("Running() after Stop")
	}
	if !p.Stop(syscall.SIGTERM, time.Second) {
		t.Fatalf("stopping an exited process must report a graceful stop")
	}
}

func TestStopLetsATrapFinish(t *testing.T) {
	t.Parallel()
	p := start(t, Spec{}, `trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
	logged(t, p, "ready")
	if !p.Stop(syscall.SIGTERM, 10*time.Second) {
		t.Fatalf("a script that exits on TERM was killed instead")
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("Wait() = %v, want the trap's exit 0", err)
	}
	tail, err := Tail(p.Log(), 1)
	if err != nil || tail != "got TERM" {
		t.Fatalf("Tail = %q (err %v), want the trap's last line", tail, err)
	}
}

func TestStopKillsWhatIgnoresTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	child := filepath.Join(dir, "child.pid")
	// The background sleep is in the script's process group: Kill must
	// take it too.
	p := start(t, Spec{}, `trap '' TERM; sleep 30 & echo $! > `+child+`; echo ready; while :; do sleep 0.1; done`)
	logged(t, p, "ready")
	childPID := readPID(t, child)
	const grace = 300 * time.Millisecond
	begin := time.Now()
	if p.Stop(syscall.SIGTERM, grace) {
		t.Fatalf("Stop reported a graceful exit of a script that ignores TERM")
	}
	if took := time.Since(begin); took < grace {
		t.Fatalf("Stop killed after %v, before the grace period of %v", took, grace)
	}
	if p.Running() {
		t.Fatalf("still running after Stop")
	}
	waitFor(t, "the script's child to die with its group", func() bool { return !Alive(childPID) })
}

func TestSignalGroupReachesWorkers(t *testing.T) {
	t.Parallel()
	// The leader ignores TERM and waits for its worker, which does not:
	// only a group signal ends it within the grace period.
	script := func(child string) string {
		return `sleep 30 & echo $! > ` + child + `; trap '' TERM; wait`
	}
	for _, group := range []bool{true, false} {
		child := filepath.Join(t.TempDir(), "child.pid")
		p := start(t, Spec{SignalGroup: group}, script(child))
		readPID(t, child)
		if got := p.Stop(syscall.SIGTERM, time.Second); got != group {
			t.Fatalf("SignalGroup %v: Stop graceful = %v, want %v", group, got, group)
		}
	}
}

// TestWorkersGoWithTheirLeader: an attached leader that exits leaves no
// worker running in its group, without anyone calling Stop.
func TestWorkersGoWithTheirLeader(t *testing.T) {
	t.Parallel()
	child := filepath.Join(t.TempDir(), "child.pid")
	p := start(t, Spec{}, `sleep 30 & echo $! > `+child+`; sleep 0.2`)
	worker := readPID(t, child)
	if err := p.Wait(); err != nil {
		t.Fatalf("the leader exits on its own: %v", err)
	}
	waitFor(t, "the worker to die with its leader", func() bool { return !Alive(worker) })
	if !p.Stop(syscall.SIGTERM, time.Second) {
		t.Fatalf("Stop of an exited process reports graceful")
	}
}

func TestLogAppendsRunsWithBanners(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "echo.log")
	for _, word := range []string{"first", "second"} {
		p, err := Start(Spec{Name: "echo", Argv: []string{"echo", word}, Log: log, Banner: true})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("echo %s: %v", word, err)
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if strings.Count(got, "\n==== ") != 2 || !strings.Contains(got, ": echo first\nfirst\n") || !strings.HasSuffix(got, ": echo second\nsecond\n") {
		t.Fatalf("log of two runs with banners:\n%s", got)
	}
	if tail, _ := Tail(log, 2); !strings.HasPrefix(tail, "==== ") || !strings.HasSuffix(tail, "\nsecond") {
		t.Fatalf("Tail(2) = %q, want the last banner and line", tail)
	}
}

func TestWaitReportsTheExit(t *testing.T) {
	t.Parallel()
	p := start(t, Spec{}, "exit 3")
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Done not closed after the script exited")
	}
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Wait() = %v, want exit status 3", err)
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Start(Spec{Name: "ghost", Argv: []string{filepath.Join(dir, "no-such-binary")}, Log: filepath.Join(dir, "ghost.log")})
	if err == nil || !strings.HasPrefix(err.Error(), "starting ghost: ") {
		t.Fatalf("Start of a missing binary: %v, want starting ghost: ...", err)
	}
	_, err = Start(Spec{Name: "sleep", Argv: []string{"sleep", "1"}, Log: filepath.Join(dir, "no-such-dir", "sleep.log")})
	if err == nil || !strings.HasPrefix(err.Error(), "opening sleep log: ") {
		t.Fatalf("Start with an unwritable log: %v, want opening sleep log: ...", err)
	}
}

// sessionOf reads a process's session id from /proc/<pid>/stat.
func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	sid, _ := strconv.Atoi(fields[3]) // state ppid pgrp session
	return sid
}

func TestDetachedIsFoundAgainAndTerminated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sleep.pid")
	p, err := Start(Spec{Name: "sleep", Argv: []string{"sleep", "30"}, Log: filepath.Join(dir, "sleep.log"), Detach: true, PIDFile: pidFile})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Kill)
	if sid := sessionOf(t, p.Pid()); sid != p.Pid() {
		t.Fatalf("detached process is in session %d, want its own (%d)", sid, p.Pid())
	}
	pid, ok := Lookup(pidFile, "/usr/bin/sleep")
	if !ok || pid != p.Pid() {
		t.Fatalf("Lookup = %d, %v; want %d from the pid file", pid, ok, p.Pid())
	}
	if _, ok := Lookup(pidFile, "etcd"); ok {
		t.Fatalf("Lookup matched a sleep to the program etcd: a recycled pid would pass as ours")
	}
	if err := Terminate(pid, 5*time.Second); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if Alive(pid) {
		t.Fatalf("alive after Terminate")
	}
	if _, ok := Lookup(pidFile, ""); ok {
		t.Fatalf("Lookup found a terminated process")
	}
}

func TestTerminateKillsWhatIgnoresTERM(t *testing.T) {
	t.Parallel()
	p := start(t, Spec{Detach: true}, `trap '' TERM; echo ready; while :; do sleep 0.1; done`)
	logged(t, p, "ready")
	const grace = 300 * time.Millisecond
	begin := time.Now()
	if err := Terminate(p.Pid(), grace); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if took := time.Since(begin); took < grace {
		t.Fatalf("Terminate returned after %v, before the grace of %v for a process ignoring TERM", took, grace)
	}
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait() = %v, want death by SIGKILL", err)
	}
}

func TestLookupRejectsBadPIDFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{"garbage": "not a pid", "zero": "0", "negative": "-1"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if pid, ok := Lookup(path, ""); ok {
			t.Fatalf("Lookup of a pid file holding %q = %d, true", content, pid)
		}
	}
	if _, ok := Lookup(filepath.Join(dir, "missing"), ""); ok {
		t.Fatalf("Lookup of a missing pid file succeeded")
	}
}
