package toolchain

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// KubernetesVersion is the pinned Kubernetes release whose server binaries
// the embedded cluster runs. Bumping it makes a new cache directory.
const KubernetesVersion = "v1.34.2"

// kubernetesStagingVersion is the k8s.io/<staging module> version that goes
// with KubernetesVersion: k8s.io/kubernetes requires its staging modules at
// v0.0.0 and replaces them with ./staging, which a dependent module ignores,
// so the wrapper pins each one itself.
const kubernetesStagingVersion = "v0.34.2"

// kubernetesStaging lists k8s.io/kubernetes's staging modules.
var kubernetesStaging = []string{
	"api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime",
	"client-go", "cloud-provider", "cluster-bootstrap", "code-generator",
	"component-base", "component-helpers", "controller-manager", "cri-api",
	"cri-client", "csi-translation-lib", "dynamic-resource-allocation",
	"endpointslice", "externaljwt", "kms", "kube-aggregator",
	"kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl",
	"kubelet", "metrics", "mount-utils", "pod-security-admission",
	"sample-apiserver", "sample-cli-plugin", "sample-controller",
}

// KubernetesBinaries are the server binaries built into the Kubernetes cache
// directory (plus kubectl, for users and for debugging the node).
var KubernetesBinaries = []string{
	"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl",
}

// EtcdVersion is the pinned etcd release the embedded cluster stores its
// state in.
const EtcdVersion = "v3.6.5"

// Kubernetes returns the cache directory holding KubernetesBinaries, building
// them from the Go module proxy the first time (about 5 minutes on 2 cores).
func Kubernetes(ctx context.Context) (string, error) {
	return Ensure(ctx, "kubernetes", KubernetesVersion, func(dir string) error {
		return kubernetesBuild().build(ctx, dir)
	})
}

func kubernetesBuild() goModuleBuild {
	b := goModuleBuild{
		module:   "scaleplane.local/toolchain/kubernetes",
		requires: []string{"k8s.io/kubernetes " + KubernetesVersion},
		mains:    map[string]string{},
	}
	for _, m := range kubernetesStaging {
		b.replaces = append(b.replaces, fmt.Sprintf("k8s.io/%s => k8s.io/%s %s", m, m, kubernetesStagingVersion))
	}
	for _, bin := range KubernetesBinaries {
		b.mains[bin] = "k8s.io/kubernetes/cmd/" + bin
	}
	// Without these the binaries report v0.0.0-master, and kubelet refuses
	// an API server it believes is older than itself.
	v := strings.TrimPrefix(KubernetesVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	var ld []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			"-X "+pkg+".gitVersion="+KubernetesVersion,
			"-X "+pkg+".gitMajor="+parts[0],
			"-X "+pkg+".gitMinor="+parts[1],
			"-X "+pkg+".gitTreeState=clean",
			"-X "+pkg+".buildDate=2025-11-11T00:00:00Z",
		)
	}
	b.ldflags = "-s -w " + strings.Join(ld, " ")
	return b
}

// KubernetesBin returns the path of one of KubernetesBinaries in the cache,
// building them if needed.
func KubernetesBin(ctx context.Context, name string) (string, error) {
	dir, err := Kubernetes(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// Etcd returns the cache directory holding the etcd binary, building it from
// the Go module proxy the first time (about 20 seconds).
func Etcd(ctx context.Context) (string, error) {
	return Ensure(ctx, "etcd", EtcdVersion, func(dir string) error {
		return goModuleBuild{
			module:   "scaleplane.local/toolchain/etcd",
			requires: []string{"go.etcd.io/etcd/server/v3 " + EtcdVersion},
			mains:    map[string]string{"etcd": "go.etcd.io/etcd/server/v3"},
			ldflags:  "-s -w",
		}.build(ctx, dir)
	})
}
