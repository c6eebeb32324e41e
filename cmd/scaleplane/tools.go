package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/scaleplane/scaleplane/internal/toolchain"
)

func runTools(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tools", "", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root, err := toolchain.Root()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ensuring the cached tools under %s...\n", root)
	return toolchain.Warm(ctx, func(format string, a ...any) {
		fmt.Fprintf(stdout, format+"\n", a...)
	})
}
