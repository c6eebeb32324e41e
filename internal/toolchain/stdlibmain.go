package toolchain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// StdlibMain builds a one-file main package of our own that imports only
// the standard library (kept as source in the repository and embedded by
// its user) into the cache, keyed by the source's hash so an edit rebuilds
// it, and returns the binary's path. No module is downloaded.
func StdlibMain(ctx context.Context, name string, src []byte) (string, error) {
	dir, err := Ensure(ctx, name, StdlibMainVersion(src), func(dir string) error {
		return goModuleBuild{
			module:  "scaleplane.local/toolchain/" + name,
			files:   map[string][]byte{"main.go": src},
			mains:   map[string]string{name: "."},
			ldflags: "-s -w",
		}.build(ctx, dir)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// StdlibMainVersion is the cache version of a StdlibMain source: its hash,
// so a caller can find the binary without building it.
func StdlibMainVersion(src []byte) string {
	sum := sha256.Sum256(src)
	return "src-" + hex.EncodeToString(sum[:6])
}
