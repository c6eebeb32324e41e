package toolchain

import (
	"context"
	"path/filepath"
)

// KubeScoreVersion is the pinned kube-score release the benchmark times
// beside the policy pack, on the same rendered manifests.
const KubeScoreVersion = "v1.20.0"

// KubeScore returns the cached `kube-score` binary, built from the Go module
// proxy the first time. It is not warmed with the cluster's tools: only
// `make bench` and the comparison in docs/policies.md use it.
func KubeScore(ctx context.Context) (string, error) {
	dir, err := Ensure(ctx, "kube-score", KubeScoreVersion, func(dir string) error {
		return goModuleBuild{
			module:   "scaleplane.local/toolchain/kube-score",
			requires: []string{"github.com/zegl/kube-score " + KubeScoreVersion},
			mains:    map[string]string{"kube-score": "github.com/zegl/kube-score/cmd/kube-score"},
			ldflags:  "-s -w",
		}.build(ctx, dir)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kube-score"), nil
}
