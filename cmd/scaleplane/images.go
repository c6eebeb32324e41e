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
)

func runImages(args []string, stdout, stderr io.Writer) error {
	sub, rest := subcommand(args)
	fs := newFlags("images", "build [--stack NAME] [--only a,b] [--out FILE] [--project-dir DIR]", stderr)
	stack := fs.String("stack", "local", "stack whose imageRegistry and imageTag name the images")
	only := fs.String("only", "", "comma-separated services to build (default: every main package under apps/)")
	out := fs.String("out", "", "also keep the image archive here (for `kind load image-archive FILE`)")
	root := fs.String("project-dir", ".", "directory holding apps/ and stacks/")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if sub != "build" {
		if sub == "" {
			return usageError{fmt.Errorf("missing subcommand: build")}
		}
		return usageError{fmt.Errorf("unknown subcommand %q: want build", sub)}
	}
	ctx, cancel := signalContext()
	defer cancel()
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	// Load into the embedded cluster when it runs; with another cluster
	// (KUBECONFIG) only the archive is written, for that cluster's loader.
	c, err := cluster.New(cluster.Options{})
	if err != nil {
		return err
	}
	socket, tarball := "", *out
	external := os.Getenv("KUBECONFIG") != ""
	if !external && c.Running(ctx) {
		socket = c.ContainerdSocket
	} else if tarball == "" {
		tarball = "images.tar"
	}
	start := time.Now()
	o, err := imageplan.Load(*root, *stack, names)
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
