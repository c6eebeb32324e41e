package realserver

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
)

func TestFreePortIsFreshAndBindable(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort returned %d twice; two servers of one test would collide", p)
		}
		seen[p] = true
		if low := ephemeralLow(); p >= low {
			t.Fatalf("FreePort returned %d, inside the ephemeral range from %d that outgoing connections take ports from", p, low)
		}
		l, err := net.Listen("tcp", addr(p))
		if err != nil {
			t.Fatalf("port %d from FreePort is not bindable on loopback: %v", p, err)
		}
		_ = l.Close()
	}
}

// fatalRecorder captures the message a helper fails the test with.
type fatalRecorder struct {
	*testing.T
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartFailureShowsServerLog(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartRedis(rec, "this-is-not-a-redis-directive yes\n")
	}()
	<-done
	if !strings.Contains(rec.msg, "this-is-not-a-redis-directive") || !strings.Contains(rec.msg, "--- last") {
		t.Fatalf("a server that fails to start must fail the test with its log tail; got message:\n%s", rec.msg)
	}
}

func TestDropKeys(t *testing.T) {
	t.Parallel()
	in := "# port 1\nPort 6379\nport-extra x\nlog.dirs=/var/lib/kafka\n  dir /data\n"
	got := dropKeys(in, "port", "log.dirs", "dir")
	for _, gone := range []string{"\nPort 6379", "\nlog.dirs=", "\n  dir /data"} {
		if strings.Contains("\n"+got, gone) {
			t.Fatalf("dropKeys left %q in:\n%s", gone, got)
		}
	}
	if !strings.Contains(got, "port-extra x") || !strings.Contains(got, "# port 1") {
		t.Fatalf("dropKeys removed a line it does not own:\n%s", got)
	}
}
