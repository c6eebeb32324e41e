package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestUsageErrorsExitTwoAndSayWhy(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"deploy"}, `unknown verb "deploy"`},
		{[]string{"check"}, "want one job (up, test or bench)"},
		{[]string{"check", "prod"}, "want one job (up, test or bench)"},
		{[]string{"test", "extra"}, "takes no arguments"},
		{[]string{"up", "-nope"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("setup %q exited %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("setup %q should say %q, said:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}

// TestUpPrintsEachPhaseEvenWhenOneFails cancels the context, so the first
// phase fails at once: the summary still lists it and says failed.
func TestUpPrintsEachPhaseEvenWhenOneFails(t *testing.T) {
	t.Setenv("SCALEPLANE_CACHE", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"up", "-bin", t.TempDir() + "/scaleplane"}, &stdout, &stderr); code != exitFailure {
		t.Errorf("up with a cancelled context exited %d, want %d\n%s", code, exitFailure, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{"== make up: preflight and packages", "make up (stack local): failed in", "preflight and packages"} {
		if !strings.Contains(out, want) {
			t.Errorf("make up's output should hold %q, got:\n%s", want, out)
		}
	}
}
