package postgres_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/postgres"
)

// basebackupStopBound is how soon the waiting script must exit on SIGTERM:
// one turn of its 2 s wait, with room for a loaded machine.
const basebackupStopBound = 10 * time.Second

// TestBasebackupWaitEndsOnSIGTERMAsPID1 runs the rendered base-backup
// script as PID 1 of a new PID namespace, as an init container runs it,
// waiting for a primary that never answers, and requires SIGTERM to end it
// within a turn of its wait: PID 1 ignores a signal it has no handler for,
// which held a deleted replica's pod for its whole grace period.
func TestBasebackupWaitEndsOnSIGTERMAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a new PID namespace (unshare --pid) needs root; CI runs as root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not on PATH")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, postgres.BasebackupScriptName)
	require.NoError(t, os.WriteFile(script, []byte(postgres.RenderBasebackupScript("primary.invalid", 5432, postgres.Conf{ReplicationUser: "replicator"})), 0o755), "write the script")
	cmd := exec.Command("unshare", "--pid", "--fork", "sh", script)
	// No pg_isready on PATH: the wait never ends by itself.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGDATA=" + filepath.Join(dir, "pgdata")}
	logPath := filepath.Join(dir, "basebackup.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err, "the script's log")
	defer func() { _ = logFile.Close() }()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	output := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	require.NoError(t, cmd.Start(), "start the script in its own PID namespace")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// The script is unshare's child: PID 1 inside, an ordinary pid here.
	var shPID int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "task", strconv.Itoa(cmd.Process.Pid), "children"))
		if err != nil {
			return false
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			return false
		}
		shPID, err = strconv.Atoi(fields[0])
		return err == nil && strings.Contains(output(), "waiting for the primary")
	}, basebackupStopBound, 100*time.Millisecond, "the script waits for the primary\n%s", output())

	require.NoError(t, syscall.Kill(shPID, syscall.SIGTERM), "SIGTERM the script")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "the script ends with a failure status, not cleanly")
		require.Contains(t, output(), "basebackup.sh: stopped", "the script's own trap ended it")
	case <-time.After(basebackupStopBound):
		t.Fatalf("the script, PID 1 of its namespace, ignored SIGTERM for %v\n%s", basebackupStopBound, output())
	}
}
