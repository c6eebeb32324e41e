package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// PushOptions say which built images to push where. The caller (the
// command, from the stack) decides the references and the registry.
type PushOptions struct {
	// Archive is the docker-archive tarball `images build` wrote (--out).
	Archive string
	// Refs are the references to push, each a tag in Archive.
	Refs []string
	// Registry is the stack's registry (host and optional path prefix):
	// a reference outside it is refused, not pushed somewhere unexpected.
	Registry string
	// Auth authenticates to the registry; nil resolves it with
	// Authenticate (ECR's token for an ECR host, else docker's config or
	// anonymous).
	Auth authn.Authenticator
	// Transport is the HTTP transport (nil: go-containerregistry's default).
	Transport http.RoundTripper
	// Log receives one line per image.
	Log io.Writer
}

// Pushed is one image in the registry.
type Pushed struct {
	// Ref is the tag pushed; DigestRef the same image by digest
	// (<repository>@sha256:...), which is how it was pushed.
	Ref       string
	DigestRef string
	// Skipped is true when the registry already had the tag at this digest.
	Skipped bool
}

// Push pushes each of o.Refs from the archive to its registry by digest,
// then tags it: the manifest is written under its digest first, so a tag
// only ever names content that is complete in the registry. Blobs the
// registry holds are not uploaded again, and a tag that already names the
// same digest is left alone (a second push does nothing). A tag that names
// another digest is an error: stack registries keep tags immutable, so a
// rebuild needs a new imageTag. Every image is tried; the errors, one per
// image, are joined.
func Push(ctx context.Context, o PushOptions) ([]Pushed, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	registry := strings.TrimSuffix(o.Registry, "/")
	if registry == "" {
		return nil, errors.New("no registry: the stack's imageRegistry names it")
	}
	tags := make([]name.Tag, 0, len(o.Refs))
	for _, ref := range o.Refs {
		if !strings.HasPrefix(ref, registry+"/") {
			return nil, fmt.Errorf("refusing to push %s: not in the stack's registry %s", ref, registry)
		}
		tag, err := name.NewTag(ref, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: want registry/repository:tag: %w", ref, err)
		}
		tags = append(tags, tag)
	}
	if len(tags) == 0 {
		return nil, errors.New("nothing to push: no image references")
	}
	if _, err := os.Stat(o.Archive); err != nil {
		return nil, fmt.Errorf("image archive: %w (write it with `scaleplane images build --stack NAME --out %s`)", err, o.Archive)
	}
	auth := o.Auth
	if auth == nil {
		var err error
		if auth, err = Authenticate(ctx, tags[0].Context().Registry, nil); err != nil {
			return nil, err
		}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}

	t := progress.Start(ctx, "pushing to "+registry, len(tags))
	var out []Pushed
	var errs []error
	for i, tag := range tags {
		t.Step(i+1, tag.String())
		p, err := pushOne(o.Archive, tag, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tag, err))
			fmt.Fprintf(o.Log, "images: %s: FAILED: %v\n", tag, err)
			continue
		}
		verb := "pushed"
		if p.Skipped {
			verb = "already there"
		}
		fmt.Fprintf(o.Log, "images: %s %s (%d of %d)\n", p.DigestRef, verb, i+1, len(tags))
		out = append(out, p)
	}
	return out, t.Done(errors.Join(errs...))
}

// pushOne pushes one tag of the archive by digest, then tags it.
func pushOne(archive string, tag name.Tag, opts []remote.Option) (Pushed, error) {
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		return Pushed{}, fmt.Errorf("reading it from %s (built by `images build` for this stack?): %w", archive, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Pushed{}, fmt.Errorf("image digest: %w", err)
	}
	byDigest := tag.Context().Digest(d.String())
	p := Pushed{Ref: tag.String(), DigestRef: byDigest.String()}
	have, err := remote.Head(tag, opts...)
	switch {
	case err == nil && have.Digest == d:
		p.Skipped = true
		return p, nil
	case err == nil:
		return Pushed{}, fmt.Errorf("the registry's %s is %s, this build is %s: tags are immutable, build with a new imageTag", tag.TagStr(), have.Digest, d)
	case !isNotFound(err):
		return Pushed{}, fmt.Errorf("looking the tag up: %w", err)
	}
	if err := remote.Write(byDigest, img, opts...); err != nil {
		return Pushed{}, fmt.Errorf("pushing by digest: %w", err)
	}
	if err := remote.Tag(tag, img, opts...); err != nil {
		return Pushed{}, fmt.Errorf("tagging %s: %w", d, err)
	}
	return p, nil
}

// isNotFound reports a registry's "no such manifest" answer.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
