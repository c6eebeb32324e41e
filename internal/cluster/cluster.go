// Package cluster runs a one-node Kubernetes on this machine with real
// pods: etcd, the API server, controller-manager and scheduler as host
// processes, containerd (Debian's package) with its own root, state and
// socket, a kubelet on cgroupfs, kube-proxy in iptables mode, and CoreDNS and
// metrics-server as pods from images scaleplane builds (no registry is
// needed anywhere). The binaries come from the versioned tool cache.
//
// Everything it writes lives under the state directory (certificates,
// kubeconfigs, etcd data, images, kubelet root, logs) and the run directory
// (sockets, pid files, runtime state); `Down` stops every process it started
// and removes the pods' mounts, network namespaces and iptables rules.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/preflight"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// Network layout of the node. The pod range is one bridge on the node; the
// service range holds the API server's and DNS's cluster IPs.
const (
	PodCIDR       = "10.244.0.0/24"
	ClusterCIDR   = "10.244.0.0/16"
	ServiceCIDR   = "10.96.0.0/16"
	APIServiceIP  = "10.96.0.1"
	DNSServiceIP  = "10.96.0.10"
	ClusterDomain = "cluster.local"
	// NodeName is the one node's name (a fixed name, so certificates and
	// state survive a change of host name).
	NodeName = "scaleplane"
	// BridgeName is the CNI bridge the pods attach to.
	BridgeName = "scaleplane0"
)

// Ports the node's components listen on. The API server's is the usual
// 6443; the others are Kubernetes' defaults, which is what a user debugging
// the node expects.
const (
	APIServerPort          = 6443
	EtcdClientPort         = 2379
	EtcdPeerPort           = 2380
	KubeletPort            = 10250
	KubeletHealthzPort     = 10248
	KubeProxyHealthzPort   = 10256
	KubeProxyMetricsPort   = 10249
	ControllerManagerPort  = 10257
	SchedulerPort          = 10259
	defaultRunDir          = "/run/scaleplane"
	kubeconfigAdmin        = "admin.kubeconfig"
	stateDirName           = "cluster"
	containerdSocketName   = "containerd.sock"
	sandboxImage           = "scaleplane.local/pause:" + toolchain.PauseVersion
	cniConfName            = "10-scaleplane.conflist"
	kubeProxyStopGrace     = 5 * time.Second
	controlPlaneStopGrace  = 10 * time.Second
	kubeletStopGrace       = 10 * time.Second
	containerdStopGrace    = 10 * time.Second
	addonRolloutTimeout    = 4 * time.Minute
	nodeReadyTimeout       = 3 * time.Minute
	dnsAnswerTimeout       = 2 * time.Minute
	apiServerStartTimeout  = 3 * time.Minute
	metricsAvailableTimout = 4 * time.Minute
)

// Options configures a Cluster; the zero value is the default local node.
type Options struct {
	// StateDir holds everything that persists between up and down;
	// default <tool cache>/cluster.
	StateDir string
	// RunDir holds sockets, pid files and containerd's runtime state;
	// default /run/scaleplane (short paths: a unix socket path must fit
	// in 108 bytes).
	RunDir string
	// NodeIP is the address the API server advertises and the kubelet
	// registers; default the first global IPv4 address of the machine.
	NodeIP string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Cluster is the embedded one-node cluster: its paths and binaries.
type Cluster struct {
	StateDir, RunDir, LogDir, PKIDir string
	// Kubeconfig is the admin kubeconfig (cluster-admin), written by Up.
	Kubeconfig string
	// ContainerdSocket is the node's containerd, where images are imported.
	ContainerdSocket string
	NodeIP           string
	log              io.Writer
	bins             map[string]string
}

// New resolves the options (without starting or building anything).
func New(o Options) (*Cluster, error) {
	if o.StateDir == "" {
		root, err := toolchain.Root()
		if err != nil {
			return nil, err
		}
		o.StateDir = filepath.Join(root, stateDirName)
	}
	if o.RunDir == "" {
		o.RunDir = defaultRunDir
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	c := &Cluster{
		StateDir:         o.StateDir,
		RunDir:           o.RunDir,
		LogDir:           filepath.Join(o.StateDir, "logs"),
		PKIDir:           filepath.Join(o.StateDir, "pki"),
		Kubeconfig:       filepath.Join(o.StateDir, kubeconfigAdmin),
		ContainerdSocket: filepath.Join(o.RunDir, containerdSocketName),
		NodeIP:           o.NodeIP,
		log:              o.Log,
		bins:             map[string]string{},
	}
	return c, nil
}

// DefaultKubeconfig is where the embedded cluster's admin kubeconfig lives
// (whether or not the cluster is running).
func DefaultKubeconfig() (string, error) {
	c, err := New(Options{})
	if err != nil {
		return "", err
	}
	return c.Kubeconfig, nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "cluster: "+format+"\n", args...)
}

func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.StateDir}, parts...)...)
}

// Preflight checks what the node needs from the machine and says what to
// do about each missing piece, before anything is started. The packages
// come from internal/preflight's one list (what `make up` installs).
func Preflight() error {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "not root: the kubelet and containerd manage cgroups, mounts and network namespaces (run as root, or use an existing cluster with --kubeconfig / KUBECONFIG)")
	}
	missing, err := preflight.MissingPackages(context.Background(), preflight.PackagesFor(preflight.Up))
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(missing) > 0 {
		problems = append(problems, "missing Debian packages (make up installs them as root): "+preflight.AptLine(missing))
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		problems = append(problems, "no /sys/fs/cgroup: the kubelet needs cgroups (v1 or v2) mounted")
	}
	if len(problems) > 0 {
		return fmt.Errorf("this machine cannot run the embedded cluster:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// cniBinDir is where Debian's containernetworking-plugins installs.
const cniBinDir = "/usr/lib/cni"

// detectNodeIP returns the first global unicast IPv4 address of an
// interface that is up: the API server must advertise an address pods can
// reach (not loopback).
func detectNodeIP() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, BridgeName) {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "", errors.New("no non-loopback IPv4 address on this machine: the API server needs one to advertise to pods (set the node IP explicitly)")
}

// ensureBinaries builds or finds every binary the node runs.
func (c *Cluster) ensureBinaries(ctx context.Context) error {
	k8s, err := toolchain.Kubernetes(ctx)
	if err != nil {
		return err
	}
	for _, b := range toolchain.KubernetesBinaries {
		c.bins[b] = filepath.Join(k8s, b)
	}
	etcd, err := toolchain.Etcd(ctx)
	if err != nil {
		return err
	}
	c.bins["etcd"] = filepath.Join(etcd, "etcd")
	if c.bins[provisionerName], err = buildProvisioner(ctx); err != nil {
		return err
	}
	for _, b := range []string{"containerd", "ctr", "iptables"} {
		p, err := exec.LookPath(b)
		if err != nil {
			p = filepath.Join("/usr/sbin", b)
		}
		c.bins[b] = p
	}
	return nil
}

// Kubectl returns the cached kubectl (building the Kubernetes binaries if
// needed).
func Kubectl(ctx context.Context) (string, error) {
	return toolchain.KubernetesBin(ctx, "kubectl")
}

// kubectl runs kubectl against the cluster as admin.
func (c *Cluster) kubectl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, c.bins["kubectl"], append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// Up starts every component not yet running, in dependency order, and
// returns when the node is Ready, DNS answers and the metrics API serves.
// Running it again on a healthy cluster changes nothing.
func (c *Cluster) Up(ctx context.Context) error {
	begin := time.Now()
	if err := Preflight(); err != nil {
		return err
	}
	if c.NodeIP == "" {
		ip, err := detectNodeIP()
		if err != nil {
			return err
		}
		c.NodeIP = ip
	}
	for _, d := range []string{c.StateDir, c.RunDir, c.LogDir, c.PKIDir, c.path("etcd"), c.path("kubelet"), c.path("pod-logs"), c.path("cni", "net.d"), c.path("addons")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	c.logf("building or finding the binaries (first run builds Kubernetes from source: several minutes)")
	if err := c.ensureBinaries(ctx); err != nil {
		return err
	}
	if err := c.checkPorts(); err != nil {
		return err
	}
	if err := c.writePKI(); err != nil {
		return fmt.Errorf("writing certificates: %w", err)
	}
	if err := c.writeConfigs(); err != nil {
		return err
	}
	if err := setSysctls(); err != nil {
		return err
	}
	if err := ensureBridge(ctx); err != nil {
		return err
	}
	for _, comp := range c.components() {
		if err := c.start(ctx, comp); err != nil {
			return err
		}
		if comp.name == "containerd" {
			if err := c.importSystemImages(ctx); err != nil {
				return err
			}
		}
	}
	if err := c.waitNodeReady(ctx); err != nil {
		return err
	}
	if err := c.applyAddons(ctx); err != nil {
		return err
	}
	c.logf("ready in %s; kubeconfig: %s", time.Since(begin).Round(time.Second), c.Kubeconfig)
	return nil
}

// checkPorts refuses to start when a port the node needs is held by a
// process that is not this cluster's.
func (c *Cluster) checkPorts() error {
	owners := []struct {
		comp  string
		ports []int
	}{
		{"etcd", []int{EtcdClientPort, EtcdPeerPort}},
		{"kube-apiserver", []int{APIServerPort}},
		{"kube-controller-manager", []int{ControllerManagerPort}},
		{"kube-scheduler", []int{SchedulerPort}},
		{"kubelet", []int{KubeletPort, KubeletHealthzPort}},
		{"kube-proxy", []int{KubeProxyHealthzPort, KubeProxyMetricsPort}},
	}
	var taken []string
	for _, o := range owners {
		if _, ok := c.running(o.comp, c.bins[o.comp]); ok {
			continue
		}
		for _, p := range o.ports {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				taken = append(taken, fmt.Sprintf("%d (needed by %s)", p, o.comp))
				continue
			}
			_ = l.Close()
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("ports taken by another process: %s; find it with `ss -ltnp`, stop it or another cluster, or use that cluster with --kubeconfig", strings.Join(taken, ", "))
	}
	return nil
}

// setSysctls turns on what pod networking needs: forwarding between the
// bridge and the host, and bridged traffic through iptables so Service
// replies from a pod on the same bridge are un-NATed.
func setSysctls() error {
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		_, _ = run(context.Background(), "modprobe", "br_netfilter")
	}
	for path, want := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                 "1",
		"/proc/sys/net/bridge/bridge-nf-call-iptables":  "1",
		"/proc/sys/net/bridge/bridge-nf-call-ip6tables": "1",
	} {
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == want {
			continue
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			return fmt.Errorf("setting %s=%s (pod networking needs it): %w", path, want, err)
		}
	}
	return nil
}

// ensureBridge creates the pods' bridge with the gateway address (the CNI
// bridge plugin adopts it) and routes the Service range onto it. Packets to
// a Service IP are rewritten by kube-proxy's rules; the route makes sure
// that one sent before those rules exist stays on this machine instead of
// following the default route out.
func ensureBridge(ctx context.Context) error {
	gw, err := gatewayCIDR()
	if err != nil {
		return err
	}
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err != nil {
		if _, err := run(ctx, "ip", "link", "add", BridgeName, "type", "bridge"); err != nil {
			return fmt.Errorf("creating the pod bridge: %w", err)
		}
	}
	out, _ := run(ctx, "ip", "-4", "addr", "show", "dev", BridgeName)
	if !strings.Contains(out, gw) {
		if _, err := run(ctx, "ip", "addr", "add", gw, "dev", BridgeName); err != nil {
			return fmt.Errorf("addressing the pod bridge: %w", err)
		}
	}
	if _, err := run(ctx, "ip", "link", "set", BridgeName, "up"); err != nil {
		return err
	}
	if _, err := run(ctx, "ip", "route", "replace", ServiceCIDR, "dev", BridgeName); err != nil {
		return fmt.Errorf("routing the Service range to the pod bridge: %w", err)
	}
	return nil
}

// gatewayCIDR is the bridge's address: the first host of PodCIDR, which is
// what the CNI bridge plugin's isGateway assigns.
func gatewayCIDR() (string, error) {
	ip, n, err := net.ParseCIDR(PodCIDR)
	if err != nil {
		return "", err
	}
	ip = ip.To4()
	gw := net.IPv4(ip[0], ip[1], ip[2], ip[3]+1)
	ones, _ := n.Mask.Size()
	return fmt.Sprintf("%s/%d", gw, ones), nil
}

// adminClient is an HTTP client authenticated as the cluster admin.
func (c *Cluster) adminClient() (*http.Client, error) {
	caPEM, err := os.ReadFile(filepath.Join(c.PKIDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.PKIDir, "admin.crt"), filepath.Join(c.PKIDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}, nil
}

// httpOK returns nil when GET url answers 200.
func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

var plainClient = &http.Client{Timeout: 3 * time.Second}

// insecureClient checks the health of components that serve a self-signed
// certificate on loopback (controller-manager, scheduler).
var insecureClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health check of our own process
}}

// waitNodeReady waits for the node object to report Ready.
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	deadline := time.Now().Add(nodeReadyTimeout)
	var last string
	for time.Now().Before(deadline) {
		out, err := c.kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && strings.TrimSpace(out) == "True" {
			c.logf("%-24s Ready", "node "+NodeName)
			return nil
		}
		last = strings.TrimSpace(out)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("node %s not Ready after %s (last: %s); see %s", NodeName, nodeReadyTimeout, last, c.logFile("kubelet"))
}

// Running reports whether the embedded cluster's API server answers.
func (c *Cluster) Running(ctx context.Context) bool {
	client, err := c.adminClient()
	if err != nil {
		return false
	}
	return httpOK(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/readyz", APIServerPort)) == nil
}
