package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRenderWritesManifestsGraphAndPicture(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runCmd("render", "--stack", "prod", "--out", dir, "--project-dir", "../..")
	require.Equal(t, 0, code, "render prod succeeds: %s", stderr)
	assert.Equal(t, dir+"\n", stdout, "stdout names the output directory")
	assert.Contains(t, stderr, "kubernetes:apps/v1:Deployment", "the summary counts resources per kind")
	for _, f := range []string{"manifests.yaml", "graph.json", "topology.dot", "objects/deployment-scaleplane-gateway.yaml"} {
		info, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, "render writes %s", f)
		assert.Positive(t, info.Size(), "%s is not empty", f)
	}
	manifests, err := os.ReadFile(filepath.Join(dir, "manifests.yaml"))
	require.NoError(t, err, "read manifests")
	assert.Equal(t, strings.Count(string(manifests), "\n---\n")+1, strings.Count(string(manifests), "\nkind: "),
		"one document per object")
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for name, args := range map[string][]string{
		"no command":      nil,
		"unknown command": {"deploy"},
		"unknown flag":    {"render", "--bogus"},
		"unknown stack":   {"render", "--stack", "qa", "--project-dir", "../.."},
		"stray argument":  {"graph", "prod"},
		"bad format":      {"graph", "--format", "xml", "--project-dir", "../.."},
	} {
		code, _, stderr := runCmd(args...)
		assert.Equal(t, exitUsage, code, "%s exits 2 (stderr: %s)", name, stderr)
		assert.NotEmpty(t, stderr, "%s explains itself on stderr", name)
	}
}

func TestHelpOnEverySubcommand(t *testing.T) {
	for v := range verbs {
		code, _, stderr := runCmd(v, "--help")
		assert.Equal(t, 0, code, "%s --help exits 0", v)
		assert.Contains(t, stderr, "Usage: scaleplane "+v, "%s --help prints its usage", v)
	}
}

func TestGraphFormats(t *testing.T) {
	code, out, stderr := runCmd("graph", "--stack", "local", "--project-dir", "../..")
	require.Equal(t, 0, code, "graph tree: %s", stderr)
	assert.Contains(t, out, "scaleplane:microservice:Microservice  gateway", "the tree shows components")
	code, out, _ = runCmd("graph", "--stack", "local", "--format", "dot", "--project-dir", "../..")
	require.Equal(t, 0, code, "graph dot")
	assert.True(t, strings.HasPrefix(out, "digraph"), "dot output is a digraph")
	code, out, _ = runCmd("graph", "--stack", "local", "--format", "json", "--project-dir", "../..")
	require.Equal(t, 0, code, "graph json")
	assert.Contains(t, out, `"urn": "urn:pulumi:local::scaleplane::`, "json carries URNs")
}

func TestImagesPushNeedsTheArchiveBuildWrote(t *testing.T) {
	code, stdout, stderr := runCmd("images", "push", "--stack", "prod", "--archive", filepath.Join(t.TempDir(), "none.tar"), "--project-dir", "../..")
	assert.Equal(t, 1, code, "a missing archive is a failure, not a usage error (stderr: %s)", stderr)
	assert.Empty(t, stdout, "nothing pushed")
	assert.Contains(t, stderr, "images build --stack NAME --out", "the error says how to make the archive")
	code, _, stderr = runCmd("images", "pull")
	assert.Equal(t, exitUsage, code, "an unknown subcommand is a usage error")
	assert.Contains(t, stderr, "want build or push", "naming the subcommands")
}
