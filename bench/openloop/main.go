// Command openloop is the open-loop load generator of the gateway benchmark
// (bench/, `make bench`): it sends GETs to one loopback URL at a fixed rate
// (bench.FixedRate) and prints one JSON line, bench.OpenResult, with the
// percentiles of the latencies counted from when each request was due.
//
// It runs as a process of its own, pinned to the load core as wrk is,
// rather than inside the benchmark's test process: there, the test's other
// goroutines (pipes of the servers' logs, its garbage collector) took the
// one P of that core whenever the generator's thread waited in epoll, and
// the generator then waited for it to come back (p99 up to 73 ms at half
// the gateway's peak, against 2 ms alone).
//
// Usage: openloop -url http://127.0.0.1:8080/path -rate 20000 [-conns 50] [-duration 5s]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/scaleplane/scaleplane/bench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "openloop:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("openloop", flag.ContinueOnError)
	target := fs.String("url", "", "loopback http:// URL to GET")
	rate := fs.Int("rate", 0, "requests per second")
	conns := fs.Int("conns", 50, "keep-alive connections at most")
	d := fs.Duration("duration", 5*time.Second, "how long requests are sent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	lat, failed, err := bench.FixedRate(ctx, *target, *rate, *conns, *d)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(bench.OpenResult{
		Answered: len(lat), Failed: failed,
		P50: bench.Percentile(lat, 50), P99: bench.Percentile(lat, 99), P999: bench.Percentile(lat, 99.9),
	})
}
