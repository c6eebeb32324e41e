package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podStopTimeout bounds the CRI calls that stop each pod sandbox.
const podStopTimeout = 30 * time.Second

// Down stops the node so that nothing of it keeps running: the kubelet
// first (so it restarts nothing), then every pod through containerd's CRI
// (which also releases the pods' network namespaces and addresses), then
// containerd, kube-proxy (and its iptables rules) and the control plane.
// Leftover mounts under the state and run directories are detached and
// the bridge is deleted. With purge, the state directory (certificates,
// etcd data, images, the Pulumi state of stacks deployed here) goes too.
func (c *Cluster) Down(ctx context.Context, purge bool) error {
	c.resolveCached()
	var errs []error
	if err := c.stop("kubelet", c.bins["kubelet"], kubeletStopGrace); err != nil {
		errs = append(errs, err)
	}
	if _, ok := c.running("containerd", c.bins["containerd"]); ok {
		n, err := c.removePods(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		c.logf("%-24s %d pod sandboxes stopped and removed", "pods", n)
	}
	for _, name := range c.stopOrder() {
		if name == "kubelet" {
			continue
		}
		if err := c.stop(name, c.bins[name], graceOf(name)); err != nil {
			errs = append(errs, err)
		}
	}
	if n := killStrayShims(c.ContainerdSocket); n > 0 {
		c.logf("%-24s killed %d leftover shims", "containerd", n)
	}
	if _, err := os.Stat(c.bins["kube-proxy"]); err != nil {
		// never built, so never ran: no rules to clean
	} else if _, err := run(ctx, c.bins["kube-proxy"], "--cleanup", "--config="+c.path("kube-proxy.yaml")); err != nil {
		// --cleanup reports a failure when there was nothing to clean on
		// some iptables backends; what matters is that no KUBE- chain
		// remains, which the integration suite checks.
		c.logf("%-24s cleanup: %v", "kube-proxy", firstLine(err.Error()))
	}
	cleanKubeletRules(ctx)
	if n, err := unmountUnder(c.RunDir, c.StateDir); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		c.logf("%-24s detached %d leftover mounts", "mounts", n)
	}
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err == nil {
		if _, err := run(ctx, "ip", "link", "delete", BridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(c.RunDir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", c.RunDir, err))
	}
	if purge {
		if err := os.RemoveAll(c.StateDir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", c.StateDir, err))
		} else {
			c.logf("%-24s removed %s", "state", c.StateDir)
		}
	}
	return errors.Join(errs...)
}

// kubeletChains are the iptables chains the kubelet itself creates (a
// canary to detect flushed tables, a hint for kube-proxy's backend choice,
// and a filter that blocks remote traffic to 127.0.0.0/8); kube-proxy's
// --cleanup leaves them.
var kubeletChains = []string{"KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"}

// cleanKubeletRules removes the kubelet's chains and the jumps to them from
// both iptables families. Each command may fail harmlessly because the
// chain is not in that table.
func cleanKubeletRules(ctx context.Context) {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(ipt); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			for _, hook := range []string{"INPUT", "OUTPUT"} {
				_, _ = run(ctx, ipt, "-w", "-t", table, "-D", hook, "-j", "KUBE-FIREWALL")
			}
			for _, chain := range kubeletChains {
				_, _ = run(ctx, ipt, "-w", "-t", table, "-F", chain)
				_, _ = run(ctx, ipt, "-w", "-t", table, "-X", chain)
			}
		}
	}
}

// removePods stops and removes every pod sandbox through the CRI, as the
// kubelet would, so CNI releases each pod's address and iptables rules.
func (c *Cluster) removePods(ctx context.Context) (int, error) {
	conn, err := grpc.NewClient("unix://"+c.ContainerdSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("connecting to containerd's CRI: %w", err)
	}
	defer func() { _ = conn.Close() }()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	lctx, cancel := context.WithTimeout(ctx, podStopTimeout)
	defer cancel()
	resp, err := rs.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range resp.Items {
		sctx, cancel := context.WithTimeout(ctx, podStopTimeout)
		if _, err := rs.StopPodSandbox(sctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
		} else if _, err := rs.RemovePodSandbox(sctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
		}
		cancel()
	}
	return len(resp.Items), errors.Join(errs...)
}

// killStrayShims kills containerd-shim processes of our containerd (its
// socket is on their command line) that outlived it, with their children.
func killStrayShims(socket string) int {
	n := 0
	for _, pid := range procsMatching(func(cmdline string) bool {
		return strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, socket)
	}) {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the shim leads its own process group
		_ = syscall.Kill(pid, syscall.SIGKILL)
		n++
	}
	return n
}

// procsMatching returns the pids whose command line (NULs as spaces)
// satisfies match.
func procsMatching(match func(cmdline string) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		if match(strings.ReplaceAll(string(data), "\x00", " ")) {
			out = append(out, pid)
		}
	}
	return out
}

// unmountUnder lazily detaches every mount point below the given
// directories (pods' volumes, overlay root filesystems, shm), deepest first.
func unmountUnder(dirs ...string) (int, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		for _, d := range dirs {
			if d != "" && strings.HasPrefix(mp, filepath.Clean(d)+"/") {
				points = append(points, mp)
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return len(points), errors.Join(errs...)
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ComponentStatus is one process of the node as Status sees it.
type ComponentStatus struct {
	Name    string
	PID     int
	Running bool
}

// Status is the node's state: which processes run and whether the API
// server answers and the node is Ready.
type Status struct {
	Components []ComponentStatus
	APIReady   bool
	NodeReady  bool
	Kubeconfig string
}

// Status reports the node's processes and readiness without changing
// anything (and without building binaries: a component whose binary is not
// built yet is simply not running).
func (c *Cluster) Status(ctx context.Context) Status {
	st := Status{Kubeconfig: c.Kubeconfig}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy", provisionerName} {
		pid, ok := c.running(name, "")
		st.Components = append(st.Components, ComponentStatus{Name: name, PID: pid, Running: ok})
	}
	st.APIReady = c.Running(ctx)
	if st.APIReady {
		if kubectl, err := kubectlIfBuilt(); err == nil {
			c.bins["kubectl"] = kubectl
			out, err := c.kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			st.NodeReady = err == nil && strings.TrimSpace(out) == "True"
		}
	}
	return st
}

// Healthy reports whether every process runs and the node is Ready.
func (s Status) Healthy() bool {
	for _, c := range s.Components {
		if !c.Running {
			return false
		}
	}
	return s.APIReady && s.NodeReady
}

// Stopped reports whether no process of the node runs.
func (s Status) Stopped() bool {
	for _, c := range s.Components {
		if c.Running {
			return false
		}
	}
	return true
}

// resolveCached points the binaries at their cache paths without building
// anything: stopping a node must not start a five-minute build.
func (c *Cluster) resolveCached() {
	if dir, err := toolchain.Dir("kubernetes", toolchain.KubernetesVersion); err == nil {
		for _, b := range toolchain.KubernetesBinaries {
			c.bins[b] = filepath.Join(dir, b)
		}
	}
	if dir, err := toolchain.Dir("etcd", toolchain.EtcdVersion); err == nil {
		c.bins["etcd"] = filepath.Join(dir, "etcd")
	}
	if dir, err := toolchain.Dir(provisionerName, toolchain.StdlibMainVersion(provisionerSource)); err == nil {
		c.bins[provisionerName] = filepath.Join(dir, provisionerName)
	}
	for _, b := range []string{"containerd", "ctr"} {
		if p, err := exec.LookPath(b); err == nil {
			c.bins[b] = p
		}
	}
}

// kubectlIfBuilt returns the cached kubectl without building it.
func kubectlIfBuilt() (string, error) {
	dir, err := toolchain.Dir("kubernetes", toolchain.KubernetesVersion)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
