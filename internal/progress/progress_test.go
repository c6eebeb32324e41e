package progress

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the task's ticker goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPlainOutputIsOneLinePerStepAndTheTotal(t *testing.T) {
	var out syncBuffer
	ctx := WithWriter(context.Background(), &out)
	task := Start(ctx, "building kubernetes v1.34.2", 2)
	task.Step(1, "listing packages")
	task.Step(2, "compiling")
	task.Detail("%d of %d packages", 10, 20) // plain output: shown with the next periodic line only
	if err := task.Done(nil); err != nil {
		t.Fatalf("Done(nil) = %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"building kubernetes v1.34.2 · 0s",
		"building kubernetes v1.34.2: step 1 of 2, listing packages · 0s",
		"building kubernetes v1.34.2: step 2 of 2, compiling · 0s",
		"building kubernetes v1.34.2: done in 0s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("plain output:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

func TestAnInnerTaskDrawsWithItsOutersName(t *testing.T) {
	var out syncBuffer
	ctx := WithWriter(context.Background(), &out)
	outer := Start(ctx, "building etcd v3.6.5", 0)
	inner := Start(ctx, "go build", 2)
	inner.Step(2, "compiling")
	outer.Step(1, "ignored while the inner task runs")
	_ = inner.Done(nil)
	failed := errors.New("boom")
	if err := outer.Done(failed); err != failed {
		t.Errorf("Done(err) should return err unchanged, got %v", err)
	}
	s := out.String()
	if !strings.Contains(s, "building etcd v3.6.5 › go build: step 2 of 2, compiling") {
		t.Errorf("the inner task's line should carry the outer's name, got:\n%s", s)
	}
	if strings.Contains(s, "ignored while") {
		t.Errorf("an outer task must not draw while an inner one runs, got:\n%s", s)
	}
	if !strings.Contains(s, "building etcd v3.6.5: failed after 0s") {
		t.Errorf("a failed task should say so, got:\n%s", s)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		42 * time.Second:                 "42s",
		3*time.Minute + 7*time.Second:    "3m07s",
		time.Hour + 2*time.Minute + 40e9: "1h02m", // minutes are whole ones past the hour
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestGoBuildCountsPackagesAndKeepsErrors builds a tiny module twice with a
// private build cache: the first build compiles (and counts) its package,
// and a broken one fails with the compiler's message in the error.
func TestGoBuildCountsPackagesAndKeepsErrors(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
	write("go.mod", "module example.com/tiny\n\ngo 1.25\n")
	write("main.go", "package main\n\nfunc main() {}\n")
	env := append(os.Environ(), "GOCACHE="+t.TempDir(), "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0")
	var out syncBuffer
	ctx := WithWriter(context.Background(), &out)
	b := GoBuild{What: "tiny", Dir: dir, Env: env, Targets: []GoTarget{{Out: filepath.Join(dir, "tiny"), Pkg: "."}}}
	if err := b.Run(ctx); err != nil {
		t.Fatalf("building a valid module: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "tiny")); err != nil {
		t.Errorf("the binary should exist: %v", err)
	}
	if !strings.Contains(out.String(), "go build tiny: step 2 of 2, compiling") || !strings.Contains(out.String(), "go build tiny: done in") {
		t.Errorf("the build should show its steps and its end, got:\n%s", out.String())
	}

	write("main.go", "package main\n\nfunc main() { undefinedThing() }\n")
	err := b.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "undefined: undefinedThing") {
		t.Errorf("a broken build should fail with the compiler's message, got %v", err)
	}
}
