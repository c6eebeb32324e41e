package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClusterImagesAndEngineUsageErrorsExitTwo(t *testing.T) {
	for name, args := range map[string][]string{
		"cluster without subcommand": {"cluster"},
		"cluster unknown subcommand": {"cluster", "start"},
		"images without subcommand":  {"images"},
		"images unknown subcommand":  {"images", "pull"},
		"up unknown stack":           {"up", "--stack", "qa", "--project-dir", "../.."},
		"preview stray argument":     {"preview", "local"},
		"destroy unknown flag":       {"destroy", "--force"},
	} {
		code, _, stderr := runCmd(args...)
		assert.Equal(t, exitUsage, code, "%s exits 2 (stderr: %s)", name, stderr)
		assert.NotEmpty(t, stderr, "%s explains itself on stderr", name)
	}
}

// TestEngineContextOutlivesTheFirstInterrupt: the Pulumi CLI's context is
// not cancelled by a first Ctrl-C (the CLI receives it itself and finishes
// its steps), is by a second, and is by a single SIGTERM. Real signals to
// this process: engineContext catches them while it is registered.
func TestEngineContextOutlivesTheFirstInterrupt(t *testing.T) {
	const delivery = 300 * time.Millisecond
	ctx, stop := engineContext()
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT), "first interrupt")
	time.Sleep(delivery)
	assert.NoError(t, ctx.Err(), "the first interrupt leaves the CLI to stop itself")
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT), "second interrupt")
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the second interrupt did not cancel the CLI's context")
	}

	ctx, stop = engineContext()
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM), "terminate")
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not cancel the CLI's context")
	}
}
