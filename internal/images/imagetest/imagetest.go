// Package imagetest runs what an image holds, for the tests of the image
// builders and of the plan: it unpacks an image's root filesystem and
// starts its programs there under chroot, as the image's own user. It
// imports testing, so only tests may import it (tests/architecture keeps
// the commands from linking it).
package imagetest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/require"
)

// StopTimeout bounds how long a server may take to exit on SIGTERM.
const StopTimeout = 10 * time.Second

// Log is an io.Writer that sends build progress to the test's log, one
// line per write.
type Log struct{ T testing.TB }

// Write logs p without its trailing newline.
func (l Log) Write(p []byte) (int, error) {
	l.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Extract unpacks img's flattened root filesystem (mutate.Extract applies
// the whiteouts) into a temporary directory, owners and modes kept, and
// returns the directory.
func Extract(t testing.TB, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o755), "the image's / is traversable by its user")
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	cmd := exec.Command("tar", "--numeric-owner", "-xpf", "-", "-C", root)
	cmd.Stdin = rc
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "extracting the image:\n%s", out)
	return root
}

// Proc is a program of an extracted image, running under chroot.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
}

// Start runs a program of the extracted image at root as user (uid:gid),
// in the host's network, until Stop or the test's end.
func Start(t testing.TB, root, user string, args ...string) *Proc {
	t.Helper()
	uidText, gidText, _ := strings.Cut(user, ":")
	uid, uidErr := strconv.ParseUint(uidText, 10, 32)
	gid, gidErr := strconv.ParseUint(gidText, 10, 32)
	require.NoError(t, errors.Join(uidErr, gidErr), "user %q is numeric uid:gid", user)
	p := &Proc{name: args[0], out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Dir = "/"
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// The chroot and the user change are the go command's, not chroot(1)'s:
	// the kernel drops a parent-death signal set before a uid change, and
	// Go sets it after, so a test binary that crashes still takes the
	// server down with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		Pdeathsig:  syscall.SIGKILL,
	}
	require.NoError(t, p.cmd.Start(), "starting %s", p.name)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // a no-op error once it has exited
		<-p.done
	})
	return p
}

// Stop sends SIGTERM and requires the program to exit within StopTimeout.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM), "stopping %s", p.name)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		t.Fatalf("%s did not stop on SIGTERM\n%s", p.name, p.out)
	}
}

// Output is what the program has written so far, stdout and stderr merged.
func (p *Proc) Output() string { return p.out.String() }

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
