package toolchain

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEnsureBuildsOnceUnderConcurrency(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	var builds atomic.Int32
	build := func(dir string) error {
		builds.Add(1)
		time.Sleep(300 * time.Millisecond) // long enough for the others to queue on the lock
		return os.WriteFile(filepath.Join(dir, "bin"), []byte("x"), 0o644)
	}
	const racers = 4
	dirs := make([]string, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { dirs[i], errs[i] = Ensure(context.Background(), "demo", "1.0", build) })
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: Ensure failed: %v", i, errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Fatalf("racer %d got dir %q, racer 0 got %q: all must share one cache dir", i, dirs[i], dirs[0])
		}
	}
	if n := builds.Load(); n != 1 {
		t.Fatalf("build ran %d times for %d concurrent Ensure calls, want exactly 1", n, racers)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "bin")); err != nil {
		t.Fatalf("built file missing from the cache dir: %v", err)
	}
	if filepath.Base(dirs[0]) != "demo-1.0" {
		t.Fatalf("cache dir %q, want it named <tool>-<version> = demo-1.0", dirs[0])
	}
}

func TestEnsureFailedBuildLeavesNothing(t *testing.T) {
	root := t.TempDir()
	t.Setenv(CacheEnv, root)
	boom := errors.New("boom")
	_, err := Ensure(context.Background(), "demo", "2.0", func(dir string) error {
		_ = os.WriteFile(filepath.Join(dir, "half"), nil, 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Ensure error = %v, want it to wrap the build error", err)
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() {
			t.Fatalf("failed build left directory %q in the cache; the next Ensure would trust it", e.Name())
		}
	}
	// A later build succeeds: the failure was not cached.
	dir, err := Ensure(context.Background(), "demo", "2.0", func(string) error { return nil })
	if err != nil || filepath.Base(dir) != "demo-2.0" {
		t.Fatalf("retry after failed build: dir=%q err=%v, want demo-2.0 and no error", dir, err)
	}
}

func TestEnsureRejectsEscapingNames(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	for _, name := range []string{"", "../x", ".hidden", "a/b"} {
		if _, err := Ensure(context.Background(), name, "1", func(string) error { return nil }); err == nil {
			t.Fatalf("Ensure accepted tool name %q; it must stay inside the cache root", name)
		}
	}
}

func TestEnsureHonoursContextWhileWaiting(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	dir, _ := Dir("demo", "3.0")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	unlock, err := lock(context.Background(), dir+".lock")
	if err != nil {
		t.Fatalf("taking the lock: %v", err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Ensure(ctx, "demo", "3.0", func(string) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure while another holds the lock: err = %v, want context.DeadlineExceeded", err)
	}
}

// TestKafka fetches (or finds) the real Kafka distribution. CI runs it first
// to warm the cache: go test ./internal/toolchain -run '^TestKafka$'.
func TestKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: fetches the Kafka jars from Maven Central on a cold cache")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	k, err := Kafka(ctx)
	if err != nil {
		t.Fatalf("Kafka(): %v", err)
	}
	t.Logf("kafka %s at %s in %v", k.Version, k.Dir, time.Since(start).Round(time.Millisecond))
	for _, jar := range []string{"kafka_2.13-" + KafkaVersion + ".jar", "kafka-server-" + KafkaVersion + ".jar", "log4j-slf4j-impl-" + log4jVersion + ".jar"} {
		if _, err := os.Stat(filepath.Join(k.LibDir, jar)); err != nil {
			t.Fatalf("Kafka dist lacks %s, needed to run the server with logs: %v", jar, err)
		}
	}
}
