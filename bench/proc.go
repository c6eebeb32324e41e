package bench

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a server process under test, in its own process group so its
// CPU time and memory can be summed over every process it forks.
type Server struct {
	Name string
	cmd  *exec.Cmd
	log  string
	// stop makes Stop idempotent: a server stopped early is still stopped
	// again by a deferred call, and its process group's id may by then
	// belong to another group.
	stop sync.Once
}

// StartServer runs argv pinned to core (taskset), with env added to this
// process's environment and output in logDir/<name>.log, and waits until
// healthURL answers 200.
func StartServer(name string, core int, env []string, logDir, healthURL string, argv ...string) (*Server, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	args := append([]string{"-c", strconv.Itoa(core)}, argv...)
	cmd := exec.Command("taskset", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Server{Name: name, cmd: cmd, log: logPath}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(healthURL); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.Stop()
	tail, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s not healthy at %s within 60s:\n%s", name, healthURL, tail)
}

// Pgid is the server's process group.
func (s *Server) Pgid() int { return s.cmd.Process.Pid }

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

// Stop sends SIGTERM to the group, then SIGKILL after 10 s; it does so
// once, however often it is called.
func (s *Server) Stop() {
	s.stop.Do(s.terminate)
}

func (s *Server) terminate() {
	_ = syscall.Kill(-s.Pgid(), syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.Pgid(), syscall.SIGKILL)
		<-done
	}
}
