// Package images builds OCI images without Docker or a registry: a static
// binary in one layer, run as a non-root user, no shell, written as an image
// tarball with go-containerregistry and loaded into a containerd with `ctr`.
//
// Images are reproducible: file times and the creation time are fixed, so
// the same binary gives the same digest and a second deploy sees no change.
//
// Errors say each thing once: no error of this package (nor of
// internal/toolchain) names its package. The innermost error says what
// failed and, where there is one, the remedy; each layer above adds only
// what the error it wraps does not already say (the image reference, the
// cached tool and version being built, the command run), and the command
// adds its verb once, outermost:
//
//	scaleplane images: scaleplane.local/edge-nginx:dev: building debian-base bookworm-2 into DIR: debootstrap not found (apt-get install debootstrap)
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// NonRootUID is the user (and group) every image runs as: the "nonroot" id
// of distroless images, which the restricted Pod Security profile accepts.
const NonRootUID = 65532

// ContainerdNamespace is the containerd namespace the CRI plugin (and so the
// kubelet) looks for images in.
const ContainerdNamespace = "k8s.io"

// epoch is the fixed time of every file and of the image itself, so builds
// are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Spec describes an image made of one static binary.
type Spec struct {
	// Binary is the path of the static binary on this machine.
	Binary string
	// Path is where the binary lives in the image, e.g. /app/gateway.
	Path string
	// Args are the default arguments after the entrypoint.
	Args []string
	// Env are KEY=VALUE entries of the image config.
	Env []string
	// User overrides the numeric "uid:gid" (default NonRootUID); the pause
	// image keeps non-root too.
	User string
	// Ports are documentation-only exposed ports, "8080/tcp".
	Ports []string
}

// FromBinary builds an image whose only content is spec.Binary (plus /tmp,
// so programs that expect it find it when the root filesystem is
// writable). The config sets OS and architecture, without which containerd's
// import filters the image out, the entrypoint and the non-root user.
func FromBinary(spec Spec) (v1.Image, error) {
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading binary: %w", err)
	}
	if spec.Path == "" {
		spec.Path = "/" + path.Base(spec.Binary)
	}
	layerTar, err := binaryLayer(spec.Path, bin)
	if err != nil {
		return nil, err
	}
	img, cf, err := appendLayer(empty.Image, layerTar)
	if err != nil {
		return nil, err
	}
	cf.OS = "linux"
	cf.Architecture = "amd64"
	cf.Created = v1.Time{Time: epoch}
	user := spec.User
	if user == "" {
		user = fmt.Sprintf("%d:%d", NonRootUID, NonRootUID)
	}
	cf.Config.User = user
	cf.Config.Entrypoint = []string{spec.Path}
	cf.Config.Cmd = spec.Args
	cf.Config.Env = append([]string{"PATH=/", "HOME=/tmp"}, spec.Env...)
	cf.Config.WorkingDir = "/"
	if len(spec.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting image config: %w", err)
	}
	return img, nil
}

// appendLayer adds an uncompressed layer tar to base and returns the image
// with a copy of its config for the caller to edit and set.
func appendLayer(base v1.Image, layerTar []byte) (v1.Image, *v1.ConfigFile, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("making layer: %w", err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, nil, fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image config: %w", err)
	}
	return img, cf.DeepCopy(), nil
}

// binaryLayer is the uncompressed tar of one layer: the binary's parent
// directories, the binary (0555, root-owned so the non-root user cannot
// replace it) and a world-writable sticky /tmp.
func binaryLayer(binPath string, bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(path.Dir(binPath), "/")
	var parents []string
	for d := dir; d != "" && d != "."; d = path.Dir(d) {
		parents = append([]string{d + "/"}, parents...)
	}
	hdrs := []*tar.Header{{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}}
	for _, p := range parents {
		if p == "tmp/" {
			continue
		}
		hdrs = append(hdrs, &tar.Header{Name: p, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	h := &tar.Header{Name: strings.TrimPrefix(binPath, "/"), Typeflag: tar.TypeReg, Mode: 0o555, Size: int64(len(bin)), ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DigestTag returns the content-addressed tag of img in repo:
// <repo>:sha-<first 16 hex digits of the image digest>, so a deploy can pin
// exactly the bits it built.
func DigestTag(repo string, img v1.Image) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("image digest: %w", err)
	}
	return repo + ":sha-" + d.Hex[:16], nil
}

// Tagged is an image with every reference it should be known by.
type Tagged struct {
	Image v1.Image
	Refs  []string
}

// WriteTarball writes images into one docker-archive tarball (the format
// `ctr images import` and `kind load image-archive` read).
func WriteTarball(file string, imgs []Tagged) error {
	refs := map[name.Reference]v1.Image{}
	for _, t := range imgs {
		for _, r := range t.Refs {
			tag, err := name.NewTag(r, name.WeakValidation)
			if err != nil {
				return fmt.Errorf("bad image reference %q: %w", r, err)
			}
			refs[tag] = t.Image
		}
	}
	if err := tarball.MultiRefWriteToFile(file, refs); err != nil {
		return fmt.Errorf("writing image archive %s: %w", file, err)
	}
	return nil
}

// Import loads a tarball into the containerd listening on socket, in the
// namespace the kubelet uses. ctr ships with Debian's containerd package.
func Import(ctx context.Context, socket, file string) error {
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		return fmt.Errorf("ctr not found (apt-get install containerd): %w", err)
	}
	cmd := exec.CommandContext(ctx, ctr, "--address", socket, "-n", ContainerdNamespace, "images", "import", file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// Present reports which of refs the containerd on socket holds.
func Present(ctx context.Context, socket string, refs []string) (map[string]bool, error) {
	cmd := exec.CommandContext(ctx, "ctr", "--address", socket, "-n", ContainerdNamespace, "images", "ls", "-q")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing images on %s: %w", socket, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	res := map[string]bool{}
	for _, r := range refs {
		res[r] = have[r] || have[normalize(r)]
	}
	return res, nil
}

// normalize gives the fully qualified form containerd stores for a short
// reference (docker.io/library/... for names without a registry).
func normalize(ref string) string {
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return ref
	}
	return tag.Name()
}
