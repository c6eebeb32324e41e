package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux this project runs on.
const clockTicks = 100

// GroupCPU sums user+system CPU time of every live process in the process
// group pgid (a server's master and its workers).
func GroupCPU(pgid int) (time.Duration, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var ticks int64
	found := false
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the process exited between Glob and ReadFile
		}
		fields, err := statFields(string(raw))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		// Fields after the command: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
		if pg, _ := strconv.Atoi(fields[2]); pg != pgid {
			continue
		}
		found = true
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		s, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + s
	}
	if !found {
		return 0, fmt.Errorf("no process in group %d", pgid)
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// SelfCPU is this process's user+system CPU time (for servers run in-process).
func SelfCPU() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	fields, err := statFields(string(raw))
	if err != nil {
		return 0, err
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// statFields returns the fields after "pid (comm)"; comm may hold spaces.
func statFields(stat string) ([]string, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("unexpected stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("short stat line %q", stat)
	}
	return f, nil
}
