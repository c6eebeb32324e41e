package stacks_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/stacks"
)

var update = flag.Bool("update", false, "rewrite Pulumi.yaml's config block from stacks.Knobs")

const projectFile = "../Pulumi.yaml"

// TestPulumiYAMLDeclaresEveryKnob keeps Pulumi.yaml's typed config block
// equal to the knobs the program reads (go test ./stacks -update rewrites it).
func TestPulumiYAMLDeclaresEveryKnob(t *testing.T) {
	raw, err := os.ReadFile(projectFile)
	require.NoError(t, err, "read Pulumi.yaml")
	head, _, found := strings.Cut(string(raw), "config:\n")
	require.True(t, found, "Pulumi.yaml has no config: block")
	want := head + stacks.ProjectConfigYAML()
	if *update {
		require.NoError(t, os.WriteFile(projectFile, []byte(want), 0o644), "rewrite Pulumi.yaml")
		return
	}
	require.Equal(t, want, string(raw), "Pulumi.yaml's config block differs from stacks.Knobs; run go test ./stacks -run TestPulumiYAML -update")
}
