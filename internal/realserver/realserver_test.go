package realserver

import (
	"net"
	"strings"
	"testing"
)

func TestFreePortIsFreshAndBindable(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
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

func TestStartFailureShowsServerLog(t *testing.T) {
	t.Parallel()
	r, err := StartRedis("this-is-not-a-redis-directive yes\n")
	if err == nil {
		_ = r.Close()
		t.Fatalf("StartRedis accepted a config redis-server rejects")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "realserver: StartRedis: ") || !strings.Contains(msg, "this-is-not-a-redis-directive") || !strings.Contains(msg, "--- last") {
		t.Fatalf("a server that fails to start must say so with its log tail; got:\n%s", msg)
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
