package cluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// writePKI creates (once) the cluster CA, the front-proxy CA for the
// aggregation layer (metrics.k8s.io), the service-account key and one
// certificate per identity, then the kubeconfigs that carry them.
func (c *Cluster) writePKI() error {
	ca, err := loadOrCreateCA(c.PKIDir, "ca", "scaleplane-ca")
	if err != nil {
		return err
	}
	fp, err := loadOrCreateCA(c.PKIDir, "front-proxy-ca", "scaleplane-front-proxy-ca")
	if err != nil {
		return err
	}
	if err := loadOrCreateSAKey(c.PKIDir); err != nil {
		return err
	}
	node := net.ParseIP(c.NodeIP)
	loop := net.ParseIP("127.0.0.1")
	leaves := []leaf{
		{file: "apiserver", cn: "kube-apiserver", server: true,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + ClusterDomain},
			ips: []net.IP{loop, node, net.ParseIP(APIServiceIP)}},
		// system:masters: the API server calls kubelets (logs, exec,
		// metrics proxy) as a superuser, as kubeadm's does.
		{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true},
		{file: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}, client: true},
		{file: "controller-manager", cn: "system:kube-controller-manager", client: true},
		{file: "scheduler", cn: "system:kube-scheduler", client: true},
		{file: "kube-proxy", cn: "system:kube-proxy", client: true},
		{file: provisionerName, cn: provisionerUser, client: true},
		// The Node authorizer grants a kubelet exactly its own node's objects.
		{file: "kubelet-client", cn: "system:node:" + NodeName, orgs: []string{"system:nodes"}, client: true},
		// metrics-server verifies this against the cluster CA.
		{file: "kubelet-server", cn: NodeName, server: true, dns: []string{NodeName, "localhost"}, ips: []net.IP{loop, node}},
	}
	for _, l := range leaves {
		if err := ca.issue(c.PKIDir, l); err != nil {
			return err
		}
	}
	if err := fp.issue(c.PKIDir, leaf{file: "front-proxy-client", cn: "front-proxy-client", client: true}); err != nil {
		return err
	}
	for file, cert := range map[string]string{
		kubeconfigAdmin:                 "admin",
		"controller-manager.kubeconfig": "controller-manager",
		"scheduler.kubeconfig":          "scheduler",
		"kube-proxy.kubeconfig":         "kube-proxy",
		"kubelet.kubeconfig":            "kubelet-client",
	} {
		if err := c.writeKubeconfig(filepath.Join(c.StateDir, file), cert); err != nil {
			return err
		}
	}
	return nil
}

// writeKubeconfig writes a self-contained kubeconfig (certificates
// embedded) for the identity in pki/<cert>.crt|key.
func (c *Cluster) writeKubeconfig(path, cert string) error {
	b64 := func(name string) (string, error) {
		data, err := os.ReadFile(filepath.Join(c.PKIDir, name))
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(data), nil
	}
	ca, err := b64("ca.crt")
	if err != nil {
		return err
	}
	crt, err := b64(cert + ".crt")
	if err != nil {
		return err
	}
	key, err := b64(cert + ".key")
	if err != nil {
		return err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: scaleplane
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: scaleplane
  context:
    cluster: scaleplane
    user: %s
current-context: scaleplane
`, APIServerPort, ca, cert, crt, key, cert)
	return writeIfChanged(path, kc, 0o600)
}

// writeIfChanged avoids touching files a running component watches.
func writeIfChanged(path, content string, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeConfigs writes containerd's, the CNI's, the kubelet's and
// kube-proxy's configuration files.
func (c *Cluster) writeConfigs() error {
	files := map[string]string{
		c.path("containerd.toml"):               c.containerdConfig(),
		c.path("cni", "net.d", cniConfName):     cniConfig(c.RunDir),
		c.path("kubelet.yaml"):                  c.kubeletConfig(),
		c.path("kube-proxy.yaml"):               c.kubeProxyConfig(),
		c.path("addons", "coredns.yaml"):        corednsManifest(),
		c.path("addons", "metrics-server.yaml"): metricsServerManifest(),
		c.path("addons", "storage.yaml"):        storageManifest(),
	}
	for p, content := range files {
		if err := writeIfChanged(p, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// containerdConfig keeps containerd apart from any system containerd (own
// root, state, socket) and sets the two things pods need on these machines:
// restrict_oom_score_adj (the sandbox lacks CAP_SYS_RESOURCE; without it
// every pod sandbox fails with "can't get final child's PID from pipe") and
// a sandbox image we import ourselves (no registry is reachable).
func (c *Cluster) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, c.path("containerd"), filepath.Join(c.RunDir, "containerd"), c.ContainerdSocket, c.ContainerdSocket+".ttrpc",
		sandboxImage, cniBinDir, c.path("cni", "net.d"))
}

// cniConfig is one bridge with NAT to the outside, host-local addresses
// from the node's pod range and hairpin mode, so a pod can reach itself
// through a Service.
func cniConfig(runDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "scaleplane",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, BridgeName, PodCIDR, filepath.Join(runDir, "cni-ipam"))
}

// kubeletConfig: cgroupfs (no systemd here), cgroup v1 accepted, webhook
// authentication and authorization so only the API server (and
// metrics-server through its RBAC) reads the kubelet, no read-only port,
// and pod logs under the state directory. Image garbage collection is off
// (high threshold 100): this node has no registry, so an image the kubelet
// removes cannot be pulled back — it removed the pause image once when the
// shared disk ran full, and no pod could start until the next images build.
func (c *Cluster) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %q
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
readOnlyPort: 0
port: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
enforceNodeAllocatable: []
clusterDNS: [%q]
clusterDomain: %s
tlsCertFile: %q
tlsPrivateKeyFile: %q
podLogsDir: %q
serializeImagePulls: false
maxPods: 110
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 200Mi
  nodefs.available: 3%%
  imagefs.available: 3%%
  nodefs.inodesFree: 3%%
resolvConf: /etc/resolv.conf
shutdownGracePeriod: 0s
`, filepath.Join(c.PKIDir, "ca.crt"), c.ContainerdSocket, KubeletPort, KubeletHealthzPort, DNSServiceIP, ClusterDomain,
		filepath.Join(c.PKIDir, "kubelet-server.crt"), filepath.Join(c.PKIDir, "kubelet-server.key"), c.path("pod-logs"))
}

// kubeProxyConfig: iptables mode; conntrack limits left alone (maxPerCore
// 0) because setting nf_conntrack_max may be refused in a sandbox.
func (c *Cluster) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
conntrack:
  maxPerCore: 0
`, c.path("kube-proxy.kubeconfig"), ClusterCIDR, NodeName, KubeProxyHealthzPort, KubeProxyMetricsPort)
}

// components lists the node's processes in start order.
func (c *Cluster) components() []component {
	pki := func(f string) string { return filepath.Join(c.PKIDir, f) }
	kc := func(f string) string { return c.path(f + ".kubeconfig") }
	admin, _ := c.adminClient() // nil until the certificates exist; healthy closures run after writePKI
	adminOK := func(url string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if admin == nil {
				a, err := c.adminClient()
				if err != nil {
					return err
				}
				admin = a
			}
			return httpOK(ctx, admin, url)
		}
	}
	return []component{
		{
			name: "etcd", bin: c.bins["etcd"],
			// Plain HTTP on loopback only: etcd is reached by the API
			// server on the same machine and by nothing else.
			args: []string{
				"--name=" + NodeName, "--data-dir=" + c.path("etcd"),
				fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", EtcdClientPort),
				fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", EtcdClientPort),
				fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", EtcdPeerPort),
				fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", EtcdPeerPort),
				fmt.Sprintf("--initial-cluster=%s=http://127.0.0.1:%d", NodeName, EtcdPeerPort),
				"--quota-backend-bytes=2147483648", "--snapshot-count=10000", "--log-level=warn",
			},
			healthy: func(ctx context.Context) error {
				return httpOK(ctx, plainClient, fmt.Sprintf("http://127.0.0.1:%d/health", EtcdClientPort))
			},
		},
		{
			name: "kube-apiserver", bin: c.bins["kube-apiserver"], startTimeout: apiServerStartTimeout,
			args: []string{
				fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", EtcdClientPort),
				// All interfaces: pods reach it through the kubernetes
				// Service, whose endpoint is the advertised node address.
				"--bind-address=0.0.0.0", fmt.Sprintf("--secure-port=%d", APIServerPort),
				"--advertise-address=" + c.NodeIP,
				"--service-cluster-ip-range=" + ServiceCIDR,
				"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
				"--client-ca-file=" + pki("ca.crt"),
				"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
				"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
				"--kubelet-certificate-authority=" + pki("ca.crt"),
				"--kubelet-preferred-address-types=InternalIP,Hostname",
				"--authorization-mode=Node,RBAC",
				"--enable-admission-plugins=NodeRestriction,PodSecurity",
				"--service-account-key-file=" + pki("sa.pub"),
				"--service-account-signing-key-file=" + pki("sa.key"),
				"--service-account-issuer=https://kubernetes.default.svc." + ClusterDomain,
				"--api-audiences=https://kubernetes.default.svc." + ClusterDomain,
				// The aggregation layer, for metrics.k8s.io.
				"--requestheader-client-ca-file=" + pki("front-proxy-ca.crt"),
				"--requestheader-allowed-names=front-proxy-client",
				"--requestheader-username-headers=X-Remote-User",
				"--requestheader-group-headers=X-Remote-Group",
				"--requestheader-extra-headers-prefix=X-Remote-Extra-",
				"--proxy-client-cert-file=" + pki("front-proxy-client.crt"),
				"--proxy-client-key-file=" + pki("front-proxy-client.key"),
				"--enable-aggregator-routing=true",
				"--allow-privileged=true",
				"--profiling=false",
				"--event-ttl=30m",
			},
			healthy: adminOK(fmt.Sprintf("https://127.0.0.1:%d/readyz", APIServerPort)),
		},
		{
			name: "kube-controller-manager", bin: c.bins["kube-controller-manager"],
			args: []string{
				"--kubeconfig=" + kc("controller-manager"),
				"--authentication-kubeconfig=" + kc("controller-manager"),
				"--authorization-kubeconfig=" + kc("controller-manager"),
				"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ControllerManagerPort),
				"--cluster-signing-cert-file=" + pki("ca.crt"), "--cluster-signing-key-file=" + pki("ca.key"),
				"--root-ca-file=" + pki("ca.crt"),
				"--service-account-private-key-file=" + pki("sa.key"),
				"--use-service-account-credentials=true",
				"--service-cluster-ip-range=" + ServiceCIDR,
				"--cluster-cidr=" + ClusterCIDR,
				"--allocate-node-cidrs=false",
				"--leader-elect=false",
				"--horizontal-pod-autoscaler-sync-period=10s",
				"--profiling=false",
			},
			healthy: func(ctx context.Context) error {
				return httpOK(ctx, insecureClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", ControllerManagerPort))
			},
		},
		{
			name: "kube-scheduler", bin: c.bins["kube-scheduler"],
			args: []string{
				"--kubeconfig=" + kc("scheduler"),
				"--authentication-kubeconfig=" + kc("scheduler"),
				"--authorization-kubeconfig=" + kc("scheduler"),
				"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", SchedulerPort),
				"--leader-elect=false",
				"--profiling=false",
			},
			healthy: func(ctx context.Context) error {
				return httpOK(ctx, insecureClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", SchedulerPort))
			},
		},
		{
			name: "containerd", bin: c.bins["containerd"],
			args: []string{"--config", c.path("containerd.toml")},
			healthy: func(ctx context.Context) error {
				if _, err := os.Stat(c.ContainerdSocket); err != nil {
					return err
				}
				_, err := run(ctx, c.bins["ctr"], "--address", c.ContainerdSocket, "version")
				return err
			},
		},
		{
			name: "kubelet", bin: c.bins["kubelet"],
			args: []string{
				"--config=" + c.path("kubelet.yaml"),
				"--kubeconfig=" + kc("kubelet"),
				"--root-dir=" + c.path("kubelet"),
				"--hostname-override=" + NodeName,
				"--node-ip=" + c.NodeIP,
				"--v=1",
			},
			healthy: func(ctx context.Context) error {
				return httpOK(ctx, plainClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", KubeletHealthzPort))
			},
		},
		{
			name: "kube-proxy", bin: c.bins["kube-proxy"],
			args: []string{"--config=" + c.path("kube-proxy.yaml")},
			healthy: func(ctx context.Context) error {
				return httpOK(ctx, plainClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", KubeProxyHealthzPort))
			},
		},
		{
			// No health endpoint: it polls the API server and logs.
			name: provisionerName, bin: c.bins[provisionerName],
			args: []string{
				fmt.Sprintf("--server=https://127.0.0.1:%d", APIServerPort),
				"--ca=" + pki("ca.crt"), "--cert=" + pki(provisionerName+".crt"), "--key=" + pki(provisionerName+".key"),
				"--dir=" + c.path("volumes"),
			},
		},
	}
}

// stopOrder is the reverse of the start order, with kube-proxy's rules
// cleaned separately.
func (c *Cluster) stopOrder() []string {
	comps := c.components()
	names := make([]string, 0, len(comps))
	for i := len(comps) - 1; i >= 0; i-- {
		names = append(names, comps[i].name)
	}
	return names
}

func graceOf(name string) time.Duration {
	switch name {
	case "kube-proxy":
		return kubeProxyStopGrace
	case "kubelet":
		return kubeletStopGrace
	case "containerd":
		return containerdStopGrace
	}
	return controlPlaneStopGrace
}
