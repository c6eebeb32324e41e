package toolchain

import (
	"context"
	"path/filepath"
)

// CoreDNSVersion is the pinned CoreDNS release the embedded cluster runs as
// its DNS pod (from an image scaleplane builds, no registry needed).
const CoreDNSVersion = "v1.15.0"

// MetricsServerVersion is the pinned metrics-server release that feeds the
// embedded cluster's HPAs from the kubelet's /metrics/resource.
const MetricsServerVersion = "v0.9.0"

// PauseVersion versions our own pause binary: the sandbox container every
// pod holds its namespaces with. No registry is reachable, so containerd's
// sandbox_image is an image scaleplane builds from this binary.
const PauseVersion = "1"

// CoreDNS returns the cache directory holding the static `coredns` binary,
// built from the Go module proxy the first time.
func CoreDNS(ctx context.Context) (string, error) {
	return Ensure(ctx, "coredns", CoreDNSVersion, func(dir string) error {
		return goModuleBuild{
			module:   "scaleplane.local/toolchain/coredns",
			requires: []string{"github.com/coredns/coredns " + CoreDNSVersion},
			mains:    map[string]string{"coredns": "github.com/coredns/coredns"},
			ldflags:  "-s -w",
		}.build(ctx, dir)
	})
}

// MetricsServerDir returns where metrics-server is cached and whether it
// is there already, so tests under -short can skip instead of building.
func MetricsServerDir() (dir string, cached bool, err error) {
	dir, err = Dir("metrics-server", MetricsServerVersion)
	if err != nil {
		return "", false, err
	}
	return dir, regularFile(filepath.Join(dir, "metrics-server")), nil
}

// MetricsServer returns the cache directory holding the static
// `metrics-server` binary, built from the Go module proxy the first time.
func MetricsServer(ctx context.Context) (string, error) {
	return Ensure(ctx, "metrics-server", MetricsServerVersion, func(dir string) error {
		return goModuleBuild{
			module:   "scaleplane.local/toolchain/metricsserver",
			requires: []string{"sigs.k8s.io/metrics-server " + MetricsServerVersion},
			mains:    map[string]string{"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"},
			ldflags:  "-s -w",
		}.build(ctx, dir)
	})
}

// pauseMain is the whole pause program: hold the pod's namespaces until
// told to stop, and reap orphans as PID 1 of a shared PID namespace would.
const pauseMain = `// Command pause holds a pod sandbox's namespaces until SIGTERM or SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
`

// Pause returns the cache directory holding our static `pause` binary.
func Pause(ctx context.Context) (string, error) {
	return Ensure(ctx, "pause", PauseVersion, func(dir string) error {
		return goModuleBuild{
			module:  "scaleplane.local/toolchain/pause",
			files:   map[string][]byte{"main.go": []byte(pauseMain)},
			mains:   map[string]string{"pause": "."},
			ldflags: "-s -w",
		}.build(ctx, dir)
	})
}

// warmClusterTools builds the embedded cluster's and the real engine's
// tools: the Kubernetes binaries, etcd, the pause binary, CoreDNS,
// metrics-server, the Pulumi CLI and its kubernetes provider (about 25
// minutes on 2 cores the first time, nothing after).
func warmClusterTools(ctx context.Context, logf func(format string, args ...any)) error {
	for _, t := range []struct {
		name, version string
		ensure        func(context.Context) (string, error)
	}{
		{"etcd", EtcdVersion, Etcd},
		{"kubernetes", KubernetesVersion, Kubernetes},
		{"pause", PauseVersion, Pause},
		{"coredns", CoreDNSVersion, CoreDNS},
		{"metrics-server", MetricsServerVersion, MetricsServer},
		{"pulumi", PulumiVersion, PulumiCLI},
		{"pulumi-resource-kubernetes", KubernetesProviderVersion, KubernetesProvider},
	} {
		dir, err := t.ensure(ctx)
		if err != nil {
			return err
		}
		logf("%s %s: %s", t.name, t.version, dir)
	}
	return nil
}
