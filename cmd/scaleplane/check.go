package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/analyzer"
	"github.com/scaleplane/scaleplane/policies/rules"
	"github.com/scaleplane/scaleplane/stacks"
)

// errMandatory makes check exit 1 after printing the violations.
var errMandatory = errors.New("mandatory policy violations")

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "--stack NAME [--pack BINARY] [--project-dir DIR]", stderr)
	stack := fs.String("stack", "local", "stack to check (a stacks/Pulumi.<name>.yaml)")
	pack := fs.String("pack", "", "a compiled policy pack to use instead of building ./policies")
	root := fs.String("project-dir", ".", "directory holding Pulumi.yaml and stacks/")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	values, err := stacks.ReadStackConfig(*root, *stack)
	if err != nil {
		if errors.Is(err, stacks.ErrUnknownStack) {
			return usageError{err}
		}
		return err
	}
	g, env, err := renderStack(*root, *stack)
	if err != nil {
		return err
	}
	rendered := time.Since(start)

	binary := *pack
	if binary == "" {
		modRoot, err := analyzer.ModuleRoot(*root)
		if err != nil {
			return fmt.Errorf("find the policy pack's sources: %w", err)
		}
		if binary, err = analyzer.BuildCached(ctx, modRoot); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "policy pack: %s (built from %s)\n", binary, filepath.Join(modRoot, analyzer.PackDir))
	}
	built := time.Since(start)
	ds, err := analyzer.Check(ctx, binary, g, env, values)
	if err != nil {
		return fmt.Errorf("check stack %s: %w", *stack, err)
	}
	mandatory := printDiagnostics(stdout, ds)
	fmt.Fprintf(stderr, "stack %s (%s): %d resources, %d rules, %d violations (%d mandatory) in %s (render %s, pack build %s, analysis %s)\n",
		*stack, env.Environment, len(g.Resources), len(rules.All()), len(ds), mandatory, time.Since(start).Round(time.Millisecond),
		rendered.Round(time.Millisecond), (built - rendered).Round(time.Millisecond), (time.Since(start) - built).Round(time.Millisecond))
	if mandatory > 0 {
		return fmt.Errorf("stack %s: %d %w", *stack, mandatory, errMandatory)
	}
	return nil
}

// printDiagnostics groups violations by rule, mandatory rules first, and
// returns how many are mandatory.
func printDiagnostics(w io.Writer, ds []analyzer.Diagnostic) int {
	if len(ds) == 0 {
		fmt.Fprintln(w, "no policy violations")
		return 0
	}
	byRule := map[string][]analyzer.Diagnostic{}
	var ids []string
	mandatory := 0
	for _, d := range ds {
		if _, ok := byRule[d.Policy]; !ok {
			ids = append(ids, d.Policy)
		}
		byRule[d.Policy] = append(byRule[d.Policy], d)
		if d.Mandatory {
			mandatory++
		}
	}
	slices.SortStableFunc(ids, func(a, b string) int {
		ma, mb := byRule[a][0].Mandatory, byRule[b][0].Mandatory
		switch {
		case ma && !mb:
			return -1
		case mb && !ma:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, id := range ids {
		first := byRule[id][0]
		level := "advisory"
		if first.Mandatory {
			level = "mandatory"
		}
		fmt.Fprintf(w, "%s [%s] %d violation(s)\n  %s\n", id, level, len(byRule[id]), first.Description)
		for _, d := range byRule[id] {
			fmt.Fprintf(w, "  - %s\n    %s\n", d.URN, d.Problem)
		}
		fmt.Fprintf(w, "  remediation: %s\n\n", first.Remediation)
	}
	return mandatory
}
