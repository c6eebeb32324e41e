package realserver

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestNginxProxiesToBackend(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s", r.URL.Path)
	}))
	defer backend.Close()

	n := newServer(t, NewNginx)
	// As an edge renderer would, taking the port and temp paths; the pod's
	// pid, user and daemon lines are the harness's to replace.
	conf := fmt.Sprintf(`user nginx;
pid /run/nginx.pid;
worker_processes 1;
events { worker_connections 64; }
http {
%s
  access_log off;
  upstream app { server %s; }
  server {
    listen 127.0.0.1:%d;
    location /healthz { return 200 "ok"; }
    location / { proxy_pass http://app; add_header X-Edge nginx; }
  }
}
`, n.TempPaths(), strings.TrimPrefix(backend.URL, "http://"), n.Port())
	ok(t, n.Start(conf))
	code, body, hdr := get(t, "http://"+n.Addr()+"/orders/1")
	if code != 200 || body != "backend saw /orders/1" || hdr.Get("X-Edge") != "nginx" {
		t.Fatalf("GET through nginx: %d %q X-Edge=%q, want 200 from the backend with X-Edge: nginx", code, body, hdr.Get("X-Edge"))
	}

	if err := newServer(t, NewNginx).Check("events {}\nhttp { server { listen 127.0.0.1:1; bogus_directive on; } }\n"); err == nil ||
		!strings.Contains(err.Error(), "bogus_directive") {
		t.Fatalf("nginx -t on an invalid config: err = %v, want nginx's message naming bogus_directive", err)
	}
}

func TestHAProxyBalances(t *testing.T) {
	t.Parallel()
	var backends []string
	for i := range 2 {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "b%d", i) }))
		defer b.Close()
		backends = append(backends, strings.TrimPrefix(b.URL, "http://"))
	}
	h := newServer(t, NewHAProxy)
	conf := fmt.Sprintf(`global
  daemon
  maxconn 100
defaults
  mode http
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend web
  bind 127.0.0.1:%d
  default_backend app
backend app
  balance roundrobin
  server a %s
  server b %s
`, h.Port(), backends[0], backends[1])
	ok(t, h.Start(conf))
	seen := map[string]bool{}
	for range 4 {
		_, body, _ := get(t, "http://"+h.Addr()+"/")
		seen[body] = true
	}
	if !seen["b0"] || !seen["b1"] {
		t.Fatalf("round robin through haproxy reached %v, want both b0 and b1", seen)
	}

	if err := newServer(t, NewHAProxy).Check("frontend x\n  bind 127.0.0.1:1\n  no_such_keyword\n"); err == nil {
		t.Fatalf("haproxy -c accepted an invalid config")
	}
}
