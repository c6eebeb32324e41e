// Command worker consumes the registrations topic; see apps/README.md for
// its environment.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/apps/worker/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := kit.SignalContext()
	defer stop()
	cfg, err := worker.ConfigFromEnv(kit.NewEnv(nil))
	if err != nil {
		return err
	}
	tel, err := kit.NewTelemetry(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	w, err := worker.New(ctx, cfg, tel)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
		return err
	}
	return w.Run(ctx)
}
