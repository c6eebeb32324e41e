package cluster

import (
	"context"
	"os/exec"
)

// KubectlPath returns a kubectl: the user's on PATH, which matches the
// clusters they already use, else the cached one (built with the Kubernetes
// binaries).
func KubectlPath(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, nil
	}
	return Kubectl(ctx)
}
