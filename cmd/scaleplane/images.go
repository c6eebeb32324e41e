package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/cluster"
	"github.com/scaleplane/scaleplane/internal/imageplan"
	"github.com/scaleplane/scaleplane/internal/images"
	"github.com/scaleplane/scaleplane/internal/progress"
	"github.com/scaleplane/scaleplane/stacks"
)

func runImages(args []string, stdout, stderr io.Writer) error {
	sub, rest := subcommand(args)
	fs := newFlags("images", "build [--stack NAME] [--only a,b] [--out FILE] [--project-dir DIR]\n       scaleplane images push --stack NAME [--archive FILE] [--project-dir DIR]", stderr)
	stack := fs.String("stack", "local", "stack whose imageRegistry and imageTag name the images")
	only := fs.String("only", "", "build: comma-separated services to build (default: every main package under apps/)")
	out := fs.String("out", "", "build: also keep the image archive here (for `kind load image-archive FILE` or `images push`)")
	archive := fs.String("archive", "images.tar", "push: the image archive `images build --out FILE` wrote")
	root := fs.String("project-dir", ".", "directory holding apps/ and stacks/")
	if err := parse(fs, rest); err != nil {
		return err
	}
	switch sub {
	case "build":
		return buildImages(*stack, *only, *out, *root, stdout, stderr)
	case "push":
		return pushImages(*stack, *archive, *root, stdout, stderr)
	case "":
		return usageError{fmt.Errorf("missing subcommand: build or push")}
	default:
		return usageError{fmt.Errorf("unknown subcommand %q: want build or push", sub)}
	}
}

func buildImages(stack, only, out, root string, stdout, stderr io.Writer) error {
	ctx, cancel := signalContext()
	defer cancel()
	var names []string
	if only != "" {
		names = strings.Split(only, ",")
	}
	// Load into the embedded cluster when it runs; with another cluster
	// (KUBECONFIG) only the archive is written, for that cluster's loader.
	c, err := cluster.New(cluster.Options{})
	if err != nil {
		return err
	}
	socket, tarball := "", out
	external := os.Getenv("KUBECONFIG") != ""
	if !external && c.Running(ctx) {
		socket = c.ContainerdSocket
	} else if tarball == "" {
		tarball = "images.tar"
	}
	start := time.Now()
	o, err := imageplan.Load(root, stack, names)
	if err != nil {
		return err
	}
	o.Tarball, o.Socket, o.Log = tarball, socket, stderr
	built, err := images.Build(ctx, o)
	if err != nil {
		return err
	}
	for _, s := range built {
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", s.Ref, s.DigestRef, s.Digest)
	}
	fmt.Fprintf(stderr, "%d images in %s\n", len(built), time.Since(start).Round(time.Second))
	if o.Socket == "" {
		fmt.Fprintf(stderr, "not loaded into a cluster (the embedded one is not running%s): load %s with `kind load image-archive %s` or your cluster's equivalent\n",
			map[bool]string{true: "; KUBECONFIG is set", false: ""}[external], o.Tarball, o.Tarball)
	}
	return nil
}

// pushImages pushes the stack's images (the references `images build`
// makes for it) from the archive to the stack's registry, and prints each
// as reference@digest on stdout.
func pushImages(stack, archive, root string, stdout, stderr io.Writer) error {
	ctx, cancel := signalContext()
	defer cancel()
	values, err := stacks.ReadStackConfig(root, stack)
	if err != nil {
		return err
	}
	env, err := stacks.Parse(stack, values)
	if err != nil {
		return err
	}
	refs, err := imageplan.Refs(root, env)
	if err != nil {
		return err
	}
	start := time.Now()
	pushed, err := images.Push(progress.WithWriter(ctx, stderr), images.PushOptions{
		Archive: archive, Refs: refs, Registry: env.ImageRegistry, Log: stderr,
	})
	for _, p := range pushed {
		fmt.Fprintln(stdout, p.DigestRef)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d images in %s's registry %s in %s\n", len(pushed), stack, env.ImageRegistry, time.Since(start).Round(time.Second))
	return nil
}
