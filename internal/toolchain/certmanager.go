package toolchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// CertManagerModule is cert-manager's root module, the only one of its
// modules the Go module proxy serves (its cmd/* modules answer 404).
const CertManagerModule = "github.com/cert-manager/cert-manager"

// CertManagerVersion is the pinned cert-manager release: the binary's
// stamped version, the cache directory's and the image's tag.
const CertManagerVersion = "v1.21.2"

// certManagerGoVersion is the go directive of CertManagerVersion's go.mod,
// which the generated module must match (gobuild.go's goVersion).
const certManagerGoVersion = "1.26.0"

// certManagerWrapper is the generated module's path. It lies under
// cert-manager's so that our mains may import cert-manager's internal
// packages: the go command's internal rule is by import path, and the root
// module holds no package under cmd/scaleplane to clash with.
const certManagerWrapper = CertManagerModule + "/cmd/scaleplane"

// certManagerTool is the cache name, the binary's name and the image's.
const certManagerTool = "cert-manager"

// certManagerTag is the build tag our mains carry so that scaleplane's
// module, which does not require cert-manager, never compiles them.
const certManagerTag = "scaleplane_certmanager"

// certManagerStamp is the file in the cache directory that records which
// sources of our mains built the binary there.
const certManagerStamp = "mains.sha256"

// certManagerMains are our mains' sources (certmanager/*.go), written into
// the generated module at build time.
//
//go:embed certmanager/*.go
var certManagerMains embed.FS

// CertManagerBinary is the cached cert-manager build.
type CertManagerBinary struct {
	// Version is the cert-manager release, CertManagerVersion.
	Version string
	// Dir is the cache directory.
	Dir string
	// Path is the multi-call binary: `cert-manager controller|webhook|
	// cainjector|apicheck`.
	Path string
	// CRDDir holds the release's deploy/crds/*.yaml, copied from the same
	// module download the binary was built from, so a CRD check compares
	// against exactly the version that runs.
	CRDDir string
}

// CertManagerDir returns where cert-manager is cached and whether a build
// from the current sources of our mains is there, so tests under -short can
// skip instead of building.
func CertManagerDir() (dir string, cached bool, err error) {
	dir, err = Dir(certManagerTool, CertManagerVersion)
	if err != nil {
		return "", false, err
	}
	sum, err := certManagerMainsSum()
	if err != nil {
		return "", false, err
	}
	stamp, err := os.ReadFile(filepath.Join(dir, certManagerStamp))
	return dir, err == nil && string(stamp) == sum && regularFile(filepath.Join(dir, certManagerTool)), nil
}

// CertManager returns the cached cert-manager build, building it the first
// time (several minutes on 2 cores): one static binary (CGO off, -s -w) of
// our mains over cert-manager's packages, in a generated module that
// requires CertManagerModule at CertManagerVersion and nothing else, so
// every dependency resolves to the version upstream's go.mod pins (it has
// no replace directives to honour). A cache directory built from other
// sources of our mains is moved aside and rebuilt: the version alone does
// not say what the binary contains.
func CertManager(ctx context.Context) (CertManagerBinary, error) {
	dir, cached, err := CertManagerDir()
	if err != nil {
		return CertManagerBinary{}, err
	}
	if !cached && isDir(dir) {
		if err := retireStale(dir); err != nil {
			return CertManagerBinary{}, fmt.Errorf("replacing %s, built from other sources of our cert-manager mains: %w", dir, err)
		}
	}
	dir, err = Ensure(ctx, certManagerTool, CertManagerVersion, func(dir string) error {
		return buildCertManager(ctx, dir)
	})
	if err != nil {
		return CertManagerBinary{}, err
	}
	return CertManagerBinary{
		Version: CertManagerVersion,
		Dir:     dir,
		Path:    filepath.Join(dir, certManagerTool),
		CRDDir:  filepath.Join(dir, "crds"),
	}, nil
}

// buildCertManager fills dir: the binary, the CRDs and the stamp.
func buildCertManager(ctx context.Context, dir string) error {
	files, err := certManagerFiles()
	if err != nil {
		return err
	}
	sum, err := certManagerMainsSum()
	if err != nil {
		return err
	}
	err = goModuleBuild{
		module:    certManagerWrapper,
		goVersion: certManagerGoVersion,
		requires:  []string{CertManagerModule + " " + CertManagerVersion},
		files:     files,
		mains:     map[string]string{certManagerTool: "."},
		tags:      []string{certManagerTag},
		nice:      true,
		// upstream stamps its release into pkg/util; it also tags the
		// default ACME HTTP-01 solver image.
		ldflags: "-s -w -X " + CertManagerModule + "/pkg/util.AppVersion=" + CertManagerVersion,
		prepare: func(ctx context.Context, work string) error {
			return copyCertManagerCRDs(ctx, work, filepath.Join(dir, "crds"))
		},
	}.build(ctx, dir)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, certManagerStamp), []byte(sum), 0o644)
}

// certManagerFiles are our mains' sources, keyed by their name in the
// generated module's root.
func certManagerFiles() (map[string][]byte, error) {
	names, err := fs.Glob(certManagerMains, "certmanager/*.go")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("reading the embedded cert-manager mains: %d files, %v", len(names), err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		data, err := certManagerMains.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("reading the embedded cert-manager main %s: %w", n, err)
		}
		out[path.Base(n)] = data
	}
	return out, nil
}

// certManagerMainsSum hashes our mains' names and contents, in order.
func certManagerMainsSum() (string, error) {
	files, err := certManagerFiles()
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n", n, len(files[n]))
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyCertManagerCRDs copies deploy/crds/*.yaml of the module download the
// build in work uses into to.
func copyCertManagerCRDs(ctx context.Context, work, to string) error {
	t := progress.Start(ctx, "copying the CRDs of "+CertManagerModule+"@"+CertManagerVersion, 0)
	return t.Done(func() error {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", CertManagerModule+"@"+CertManagerVersion)
		cmd.Dir, cmd.Stdout, cmd.Stderr = work, &out, &out
		cmd.Env = goModuleBuild{}.env()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go mod download %s@%s: %w\n%s", CertManagerModule, CertManagerVersion, err, progress.Tail(out.String(), 20))
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(out.Bytes(), &info); err != nil || info.Dir == "" {
			return fmt.Errorf("go mod download %s@%s: no source directory in %q", CertManagerModule, CertManagerVersion, progress.Tail(out.String(), 5))
		}
		crds, err := filepath.Glob(filepath.Join(info.Dir, "deploy", "crds", "*.yaml"))
		if err != nil || len(crds) == 0 {
			return fmt.Errorf("%s@%s has no deploy/crds/*.yaml in %s (%v)", CertManagerModule, CertManagerVersion, info.Dir, err)
		}
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		for _, src := range crds {
			data, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(to, filepath.Base(src)), data, 0o644); err != nil {
				return err
			}
		}
		return nil
	}())
}

// retireStale renames a cache directory out of the way and removes it, so
// Ensure builds afresh. Another process doing the same is no error.
func retireStale(dir string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".stale-")
	if err != nil {
		return err
	}
	stale := filepath.Join(tmp, "old")
	if err := os.Rename(dir, stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.RemoveAll(tmp)
		return err
	}
	return os.RemoveAll(tmp)
}
