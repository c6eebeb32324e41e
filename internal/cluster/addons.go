package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/images"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// Images of the node's own pods, built from the cached binaries.
var (
	CoreDNSImage       = "scaleplane.local/coredns:" + toolchain.CoreDNSVersion
	MetricsServerImage = "scaleplane.local/metrics-server:" + toolchain.MetricsServerVersion
)

// corednsPort is where CoreDNS listens inside its pod: above 1024, so it
// runs as non-root with no capability; the Service maps 53 to it.
const corednsPort = 5353

// importSystemImages builds (from cached binaries) and imports the pause,
// CoreDNS and metrics-server images unless containerd already has them.
func (c *Cluster) importSystemImages(ctx context.Context) error {
	want := []string{sandboxImage, CoreDNSImage, MetricsServerImage}
	have, err := images.Present(ctx, c.ContainerdSocket, want)
	if err != nil {
		return err
	}
	missing := false
	for _, r := range want {
		missing = missing || !have[r]
	}
	if !missing {
		return nil
	}
	pause, err := toolchain.Pause(ctx)
	if err != nil {
		return err
	}
	coredns, err := toolchain.CoreDNS(ctx)
	if err != nil {
		return err
	}
	ms, err := toolchain.MetricsServer(ctx)
	if err != nil {
		return err
	}
	var tagged []images.Tagged
	for _, s := range []struct {
		ref  string
		spec images.Spec
	}{
		{sandboxImage, images.Spec{Binary: filepath.Join(pause, "pause"), Path: "/pause"}},
		{CoreDNSImage, images.Spec{Binary: filepath.Join(coredns, "coredns"), Path: "/coredns"}},
		{MetricsServerImage, images.Spec{Binary: filepath.Join(ms, "metrics-server"), Path: "/metrics-server"}},
	} {
		img, err := images.FromBinary(s.spec)
		if err != nil {
			return err
		}
		tagged = append(tagged, images.Tagged{Image: img, Refs: []string{s.ref}})
	}
	file := filepath.Join(c.RunDir, "system-images.tar")
	if err := images.WriteTarball(file, tagged); err != nil {
		return err
	}
	defer func() { _ = os.Remove(file) }()
	if err := images.Import(ctx, c.ContainerdSocket, file); err != nil {
		return err
	}
	c.logf("%-24s imported pause, coredns, metrics-server", "images")
	return nil
}

// applyAddons deploys CoreDNS and metrics-server and waits until DNS
// answers from the host and the metrics API serves.
func (c *Cluster) applyAddons(ctx context.Context) error {
	for _, f := range []string{"coredns.yaml", "metrics-server.yaml", "storage.yaml"} {
		if _, err := c.kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-f", c.path("addons", f)); err != nil {
			return fmt.Errorf("applying %s: %w", f, err)
		}
	}
	for _, d := range []string{"coredns", "metrics-server"} {
		if _, err := c.kubectl(ctx, "-n", "kube-system", "rollout", "status", "deployment/"+d, "--timeout", addonRolloutTimeout.String()); err != nil {
			return fmt.Errorf("waiting for %s: %w", d, err)
		}
		c.logf("%-24s available", d)
	}
	if err := waitDNS(ctx, dnsAnswerTimeout); err != nil {
		return err
	}
	c.logf("%-24s answers kubernetes.default", "dns "+DNSServiceIP)
	deadline := time.Now().Add(metricsAvailableTimout)
	for {
		out, err := c.kubectl(ctx, "get", "apiservice", "v1beta1.metrics.k8s.io", "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
		if err == nil && strings.TrimSpace(out) == "True" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("metrics API (v1beta1.metrics.k8s.io) not Available after %s: %s", metricsAvailableTimout, strings.TrimSpace(out))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	c.logf("%-24s available", "metrics.k8s.io")
	return nil
}

// waitDNS resolves the API server's Service name through the cluster DNS
// Service IP, from the host (through kube-proxy's rules), until it answers.
func waitDNS(ctx context.Context, timeout time.Duration) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		return d.DialContext(ctx, network, net.JoinHostPort(DNSServiceIP, "53"))
	}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		addrs, err := r.LookupHost(qctx, "kubernetes.default.svc."+ClusterDomain)
		cancel()
		if err == nil && len(addrs) > 0 && addrs[0] == APIServiceIP {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("answered %v, want %s", addrs, APIServiceIP)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("cluster DNS %s does not answer kubernetes.default after %s: %v", DNSServiceIP, timeout, last)
}

// restrictedPod is the securityContext every addon pod runs with, so the
// node's own pods pass the restricted profile too.
const restrictedContainer = `
        securityContext:
          runAsNonRoot: true
          runAsUser: 65532
          runAsGroup: 65532
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: ["ALL"]
          seccompProfile:
            type: RuntimeDefault`

// corednsManifest is CoreDNS serving cluster.local from the API and
// forwarding the rest to the host's resolvers.
func corednsManifest() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: ["endpoints", "services", "pods", "namespaces"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:%[1]d {
        errors
        health :8080
        ready :8181
        kubernetes %[2]s in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf
        cache 30
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: %[3]s
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: %[1]d, protocol: UDP}
        - {name: dns-tcp, containerPort: %[1]d, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 40Mi}
          limits: {memory: 128Mi}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}%[4]s
      volumes:
      - name: config
        configMap:
          name: coredns
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: %[5]s
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: %[1]d, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: %[1]d, protocol: TCP}
  - {name: metrics, port: 9153, targetPort: 9153, protocol: TCP}
`, corednsPort, ClusterDomain, CoreDNSImage, restrictedContainer, DNSServiceIP)
}

// metricsServerManifest is metrics-server reading each kubelet's
// /metrics/resource, verifying the kubelet's certificate against the
// cluster CA (the kube-root-ca.crt ConfigMap every namespace gets).
func metricsServerManifest() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: metrics-server
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:aggregated-metrics-reader
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods", "nodes"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:metrics-server
rules:
- apiGroups: [""]
  resources: ["nodes/metrics"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods", "nodes"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: metrics-server-auth-reader
  namespace: kube-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: extension-apiserver-authentication-reader
subjects:
- kind: ServiceAccount
  name: metrics-server
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: metrics-server:system:auth-delegator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
- kind: ServiceAccount
  name: metrics-server
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:metrics-server
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:metrics-server
subjects:
- kind: ServiceAccount
  name: metrics-server
  namespace: kube-system
---
apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
  labels: {k8s-app: metrics-server}
spec:
  selector: {k8s-app: metrics-server}
  ports:
  - {name: https, port: 443, targetPort: https, protocol: TCP}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: metrics-server
  namespace: kube-system
  labels: {k8s-app: metrics-server}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: metrics-server}
  template:
    metadata:
      labels: {k8s-app: metrics-server}
    spec:
      serviceAccountName: metrics-server
      priorityClassName: system-cluster-critical
      containers:
      - name: metrics-server
        image: %[1]s
        imagePullPolicy: Never
        args:
        - --cert-dir=/tmp
        - --secure-port=10250
        - --kubelet-preferred-address-types=InternalIP
        - --kubelet-use-node-status-port
        - --kubelet-certificate-authority=/ca/ca.crt
        - --metric-resolution=15s
        ports:
        - {name: https, containerPort: 10250, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {memory: 256Mi}
        readinessProbe:
          httpGet: {path: /readyz, port: https, scheme: HTTPS}
          periodSeconds: 10
        livenessProbe:
          httpGet: {path: /livez, port: https, scheme: HTTPS}
          periodSeconds: 10
        volumeMounts:
        - {name: tmp, mountPath: /tmp}
        - {name: ca, mountPath: /ca, readOnly: true}%[2]s
      volumes:
      - name: tmp
        emptyDir: {}
      - name: ca
        configMap:
          name: kube-root-ca.crt
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
  labels: {k8s-app: metrics-server}
spec:
  service:
    name: metrics-server
    namespace: kube-system
  group: metrics.k8s.io
  version: v1beta1
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
`, MetricsServerImage, restrictedContainer)
}
