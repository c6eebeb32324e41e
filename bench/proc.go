package bench

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/supervise"
)

// stopGrace bounds a server's graceful stop before it is killed.
const stopGrace = 10 * time.Second

// logTailLines is how much of a server's log a failed start shows.
const logTailLines = 40

// Server is a server process under test, in its own process group so its
// CPU time and memory can be summed over every process it forks.
type Server struct {
	Name string
	proc *supervise.Process
}

// StartServer runs argv pinned to core (taskset), with env added to this
// process's environment and output in logDir/<name>.log, and waits until
// healthURL answers 200.
func StartServer(name string, core int, env []string, logDir, healthURL string, argv ...string) (*Server, error) {
	logPath := filepath.Join(logDir, name+".log")
	proc, err := supervise.Start(supervise.Spec{
		Name: name,
		Argv: append([]string{"taskset", "-c", strconv.Itoa(core)}, argv...),
		Env:  append(os.Environ(), env...),
		Log:  logPath,
		// A Node.js cluster's primary does not pass SIGTERM on to its
		// workers.
		SignalGroup: true,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{Name: name, proc: proc}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(healthURL); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-proc.Done():
			tail, _ := supervise.Tail(logPath, logTailLines)
			return nil, fmt.Errorf("%s exited before it was healthy at %s (%v):\n%s", name, healthURL, proc.Wait(), tail)
		case <-time.After(200 * time.Millisecond):
		}
	}
	s.Stop()
	tail, _ := supervise.Tail(logPath, logTailLines)
	return nil, fmt.Errorf("%s not healthy at %s within 60s:\n%s", name, healthURL, tail)
}

// Pgid is the server's process group.
func (s *Server) Pgid() int { return s.proc.Pid() }

// PeakRSS sums VmHWM (peak resident memory) over the group's processes.
func (s *Server) PeakRSS() int64 {
	var total int64
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		fields, err := statFields(string(raw))
		if err != nil || fields[2] != strconv.Itoa(s.Pgid()) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(path), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}

// Stop sends SIGTERM to the group, then SIGKILL after 10 s. Stopping a
// server that has exited does nothing (its group ended with it), so a
// server stopped early may be stopped again by a deferred call.
func (s *Server) Stop() {
	s.proc.Stop(syscall.SIGTERM, stopGrace)
}
