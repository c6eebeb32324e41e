// Command gateway serves the public REST API; see apps/README.md for its
// environment.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/scaleplane/scaleplane/apps/gateway/gateway"
	"github.com/scaleplane/scaleplane/apps/kit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := kit.SignalContext()
	defer stop()
	cfg, err := gateway.ConfigFromEnv(kit.NewEnv(nil))
	if err != nil {
		return err
	}
	tel, err := kit.NewTelemetry(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	g, err := gateway.New(ctx, cfg, tel)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
		return err
	}
	return g.Run(ctx)
}
