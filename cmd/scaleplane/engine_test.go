package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClusterImagesAndEngineUsageErrorsExitTwo(t *testing.T) {
	for name, args := range map[string][]string{
		"cluster without subcommand": {"cluster"},
		"cluster unknown subcommand": {"cluster", "start"},
		"images without subcommand":  {"images"},
		"images unknown subcommand":  {"images", "push"},
		"up unknown stack":           {"up", "--stack", "qa", "--project-dir", "../.."},
		"preview stray argument":     {"preview", "local"},
		"destroy unknown flag":       {"destroy", "--force"},
	} {
		code, _, stderr := runCmd(args...)
		assert.Equal(t, exitUsage, code, "%s exits 2 (stderr: %s)", name, stderr)
		assert.NotEmpty(t, stderr, "%s explains itself on stderr", name)
	}
}
