// Command burner is the integration suites' own workload: an HTTP server
// that burns CPU on request (so an HPA sees real load) and shuts down
// gracefully (readiness flips to 503 on SIGTERM, in-flight requests finish),
// so a rolling update under load can be held to zero failed requests.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	version := os.Getenv("VERSION")
	// WRITE_FILE makes the pod prove its volume is writable before it
	// serves: a pod that cannot write exits, so it never becomes ready.
	if f := os.Getenv("WRITE_FILE"); f != "" {
		if err := os.WriteFile(f, []byte(version+"\n"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "burner:", err)
			os.Exit(1)
		}
	}
	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// /work?ms=N spins one core for N milliseconds, then answers the version.
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		if ms > 1000 {
			ms = 1000
		}
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		x := 0
		for time.Now().Before(end) {
			for i := 0; i < 10000; i++ {
				x += i
			}
		}
		fmt.Fprintf(w, "%s %d\n", version, x%7)
	})
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	// The preStop hook has already let endpoints drop this pod; flip
	// readiness anyway for callers that probe, then finish what is in flight.
	draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
