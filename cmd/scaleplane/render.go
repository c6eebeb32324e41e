package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

func runRender(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("render", "--stack NAME [--out DIR] [--project-dir DIR]", stderr)
	stack := fs.String("stack", "local", "stack to render (a stacks/Pulumi.<name>.yaml)")
	out := fs.String("out", "", "output directory (default out/<stack>)")
	root := fs.String("project-dir", ".", "directory holding Pulumi.yaml and stacks/")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join("out", *stack)
	}
	start := time.Now()
	fmt.Fprintf(stderr, "rendering stack %s under mocks...\n", *stack)
	g, env, err := renderStack(*root, *stack)
	if err != nil {
		return err
	}
	files, err := render.Write(g, dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	fmt.Fprintf(stderr, "stack %s (%s, %s): %d resources, %d Kubernetes objects in %s\n",
		*stack, env.Environment, env.Flavour, len(g.Resources), len(g.Kubernetes()), time.Since(start).Round(time.Millisecond))
	for _, c := range g.Summary() {
		fmt.Fprintf(stderr, "  %4d  %s\n", c.Count, c.Type)
	}
	fmt.Fprintf(stderr, "manifests: %s (one file per object in %s)\ngraph:     %s\n", files.Manifests, files.Objects, files.Graph)
	if len(files.Pictures) > 0 {
		fmt.Fprintf(stderr, "picture:   %s\n", strings.Join(files.Pictures, ", "))
	} else {
		fmt.Fprintf(stderr, "picture:   %s (install graphviz for SVG and PNG)\n", files.DOT)
	}
	fmt.Fprintln(stdout, dir)
	return nil
}

func runGraph(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("graph", "--stack NAME [--format tree|json|dot] [--project-dir DIR]", stderr)
	stack := fs.String("stack", "local", "stack to render (a stacks/Pulumi.<name>.yaml)")
	format := fs.String("format", "tree", "output format: tree, json or dot")
	root := fs.String("project-dir", ".", "directory holding Pulumi.yaml and stacks/")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch *format {
	case "tree", "json", "dot":
	default:
		return usageError{fmt.Errorf("--format %q: must be tree, json or dot", *format)}
	}
	g, _, err := renderStack(*root, *stack)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	case "dot":
		_, err := io.WriteString(stdout, g.DOT())
		return err
	default:
		printTree(stdout, g)
		return nil
	}
}

// renderStack turns an unknown stack or bad config into a usage error.
func renderStack(root, stack string) (*render.Graph, *stacks.Env, error) {
	g, env, err := render.Stack(root, stack)
	var cfgErr *stacks.ConfigError
	if errors.Is(err, stacks.ErrUnknownStack) || errors.As(err, &cfgErr) {
		return nil, nil, usageError{err}
	}
	return g, env, err
}

func printTree(w io.Writer, g *render.Graph) {
	children := map[string][]render.Resource{}
	known := map[string]bool{}
	for _, r := range g.Resources {
		children[r.Parent] = append(children[r.Parent], r)
		known[r.URN] = true
	}
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, r := range children[parent] {
			fmt.Fprintf(w, "%s%s  %s\n", strings.Repeat("  ", depth), r.Type, r.Name)
			walk(r.URN, depth+1)
		}
	}
	for _, r := range g.Resources {
		if !known[r.Parent] {
			fmt.Fprintf(w, "%s  %s\n", r.Type, r.Name)
			walk(r.URN, 1)
		}
	}
}
