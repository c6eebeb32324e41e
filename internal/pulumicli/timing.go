package pulumicli

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
)

// timedCommand is the Pulumi CLI as the Automation API runs it, with the
// wall time of each run kept by subcommand, so a summary can tell the
// engine's update from the bookkeeping runs around it.
type timedCommand struct {
	auto.PulumiCommand
	mu   sync.Mutex
	runs map[string]time.Duration
}

// Run runs the CLI and records how long the subcommand (its first
// argument) took.
func (c *timedCommand) Run(ctx context.Context, workdir string, stdin io.Reader, stdout, stderr []io.Writer, env []string, args ...string) (string, string, int, error) {
	start := time.Now()
	out, errOut, code, err := c.PulumiCommand.Run(ctx, workdir, stdin, stdout, stderr, env, args...)
	if len(args) > 0 {
		c.mu.Lock()
		if c.runs == nil {
			c.runs = map[string]time.Duration{}
		}
		c.runs[args[0]] = time.Since(start)
		c.mu.Unlock()
	}
	return out, errOut, code, err
}

// took is how long the last run of a subcommand lasted; 0 if it did not run.
func (c *timedCommand) took(subcommand string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[subcommand]
}
