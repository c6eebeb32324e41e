package preflight

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpListen is the socket state "LISTEN" in /proc/net/tcp.
const tcpListen = "0A"

// listener returns the process listening on TCP port (any address, IPv4 or
// IPv6): its pid and executable, pid 0 when nobody listens, and pid -1 when
// a socket listens but its process is not visible to this user.
func listener(port int) (int, string, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		found, err := listeningInodes(f, port)
		if err != nil && !os.IsNotExist(err) {
			return 0, "", err
		}
		for _, i := range found {
			inodes[i] = true
		}
	}
	if len(inodes) == 0 {
		return 0, "", nil
	}
	procs, err := filepath.Glob("/proc/[0-9]*/fd/*")
	if err != nil {
		return 0, "", err
	}
	for _, fd := range procs {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
			pidDir := filepath.Dir(filepath.Dir(fd))
			pid, _ := strconv.Atoi(filepath.Base(pidDir))
			exe, err := os.Readlink(filepath.Join(pidDir, "exe"))
			if err != nil {
				exe = "unknown executable"
			}
			return pid, exe, nil
		}
	}
	return -1, "", nil
}

// listeningInodes returns the inodes of the sockets in LISTEN on port in a
// /proc/net/tcp-format table.
func listeningInodes(table string, port int) ([]string, error) {
	f, err := os.Open(table)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	want := fmt.Sprintf(":%04X", port)
	var inodes []string
	s := bufio.NewScanner(f)
	s.Scan() // the header
	for s.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(s.Text())
		if len(fields) < 10 || fields[3] != tcpListen || !strings.HasSuffix(fields[1], want) {
			continue
		}
		inodes = append(inodes, fields[9])
	}
	return inodes, s.Err()
}
