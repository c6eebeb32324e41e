// Package microservice declares one scalable service on Kubernetes: its
// Deployment, Services, ServiceAccount, HorizontalPodAutoscaler,
// PodDisruptionBudget, NetworkPolicy and optional ConfigMap, with every
// scaling rule of the articles in ../shared/seeds applied by default.
package microservice

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// The sizing types are the shared Kubernetes vocabulary's
// (components/internal/kube), named here too so stacks, which may not
// import an internal package, can write them.
type (
	// Resources are a container's requests and limits.
	Resources = kube.Resources
	// Replicas bounds the HorizontalPodAutoscaler.
	Replicas = kube.Replicas
	// Autoscaling holds the HPA targets and behaviour.
	Autoscaling = kube.Autoscaling
	// Shutdown describes the graceful stop: preStop sleep, then drain.
	Shutdown = kube.Shutdown
)

// Port is a named container port, exposed by the Services with the same
// name unless ContainerOnly.
type Port struct {
	Name string
	// Port is the container's port (the Service's targetPort).
	Port int
	// ServicePort is the port the Services expose it on; 0 means Port.
	// The edge maps 443 and 80 to its unprivileged 8443 and 8080.
	ServicePort int
	// ContainerOnly keeps the port out of every Service: only the kubelet
	// (probes) and, for the MetricsPort, Prometheus reach it. The edge's
	// status port is one, so it is never behind the load balancer.
	ContainerOnly bool
	// Protocol is an application protocol hint ("http" or "grpc"), used for
	// the Service's appProtocol.
	Protocol string
}

// SecretVolume mounts some keys of a Secret read-only, each under the
// file name the program expects (HAProxy wants a TLS Secret's tls.crt
// and tls.key as edge.pem and edge.pem.key).
type SecretVolume struct {
	// Secret is the Secret's name, in the service's namespace.
	Secret string
	// MountPath is the directory the files appear in.
	MountPath string
	// Items maps a key of the Secret to its file name in MountPath.
	Items map[string]string
}

// Probe says how Kubernetes checks the container. Exactly one of HTTPPath
// or GRPC is used; Port names one of Args.Ports.
type Probe struct {
	Port     string
	HTTPPath string
	GRPC     bool
}

// Args configure one microservice. Fields without a zero-value meaning are
// checked by Validate before any resource is declared.
type Args struct {
	// Namespace receives every object.
	Namespace string
	// Image is the full image reference; untagged or ":latest" images are refused.
	Image string
	// ImagePullPolicy defaults to IfNotPresent so locally loaded images work.
	ImagePullPolicy string
	// Command and Args override the image's entrypoint when set.
	Command []string
	Args    []string
	// Component is the app.kubernetes.io/component label ("gateway", "edge", ...).
	Component string
	// Version is the app.kubernetes.io/version label.
	Version string
	Ports   []Port
	// Env is the plain environment; values may be outputs of other
	// resources (a managed database's endpoint). Secrets come through SecretEnv.
	Env map[string]pulumi.StringInput
	// SecretEnv maps an environment variable to a key of a Secret
	// ("secret-name/key"), so no credential is ever in the pod spec.
	SecretEnv map[string]string
	Resources Resources
	Replicas  Replicas
	Autoscaling
	Shutdown
	Liveness  Probe
	Readiness Probe
	// ZoneSpreadRequired makes the zone spread a hard rule (DoNotSchedule);
	// otherwise it is a preference, which single-zone clusters need.
	ZoneSpreadRequired bool
	// GoRuntime adds GOMEMLIMIT and GOMAXPROCS derived from the resources:
	// Go's answer to Node's --max-old-space-size and one process per core.
	GoRuntime bool
	// GoGC is the GOGC set with GoRuntime; empty keeps the runtime's
	// default (the collector: its memory_limiter counts garbage too).
	GoGC string
	// MetricsPort names the port Prometheus scrapes at /metrics; empty
	// means the service exposes no metrics.
	MetricsPort string
	// OTLPEndpoint is where traces go (the collector); empty disables the OTEL_* environment.
	OTLPEndpoint string
	// Headless adds "<name>-headless", a Service without a cluster IP, so
	// gRPC clients and HAProxy see every pod instead of one connection's.
	Headless bool
	// ServiceType is ClusterIP by default; the edge uses LoadBalancer.
	ServiceType string
	// ExternalTrafficPolicy is the Service's: "Local" keeps the client's
	// address through kube-proxy (no SNAT to another node); only for
	// LoadBalancer and NodePort Services. Empty leaves Kubernetes' default (Cluster).
	ExternalTrafficPolicy string
	// ServiceAnnotations go on the main Service only (a cloud load
	// balancer's settings: NLB type, PROXY protocol, certificate).
	ServiceAnnotations pulumi.StringMapInput
	// SecretVolumes are mounted read-only in the container.
	SecretVolumes []SecretVolume
	// AllowFrom lists the app.kubernetes.io/name of the workloads allowed to
	// call this one; AllowFromAnywhere opens the ports to every source (the edge).
	AllowFrom         []string
	AllowFromAnywhere bool
	// ConfigFiles become a ConfigMap mounted read-only at ConfigMountPath;
	// a checksum of them in the pod template rolls the pods on change.
	ConfigFiles     map[string]string
	ConfigMountPath string
}

var (
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretRef = regexp.MustCompile(`^[a-z0-9][-a-z0-9.]*/[-._a-zA-Z0-9]+$`)
	// secretName is a Secret's metadata.name (a DNS subdomain).
	secretName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

// Validate reports the first problem in the arguments, naming the field,
// the value and what is allowed.
func (a *Args) Validate(name string) error {
	var errs []error
	check := func(ok bool, format string, v ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, v...))
		}
	}
	errs = append(errs, kube.CheckName(name, 50), kube.CheckLabel("namespace", a.Namespace), kube.CheckImage("image", a.Image))
	check(a.Replicas.Min >= 1, "replicas.min %d: must be at least 1", a.Replicas.Min)
	check(a.Replicas.Max >= a.Replicas.Min, "replicas.max %d: must be at least replicas.min (%d)", a.Replicas.Max, a.Replicas.Min)
	check(a.CPUTargetPercent > 0 && a.CPUTargetPercent <= 100, "autoscaling.cpuTargetPercent %d: must be in 1..100", a.CPUTargetPercent)
	check(a.MemoryTargetPercent > 0 && a.MemoryTargetPercent <= 100, "autoscaling.memoryTargetPercent %d: must be in 1..100", a.MemoryTargetPercent)
	check(a.ScaleDownWindowSeconds >= 0 && a.ScaleDownWindowSeconds <= 3600, "autoscaling.scaleDownWindowSeconds %d: must be in 0..3600", a.ScaleDownWindowSeconds)
	check(a.ScaleUpWindowSeconds >= 0 && a.ScaleUpWindowSeconds <= 3600, "autoscaling.scaleUpWindowSeconds %d: must be in 0..3600", a.ScaleUpWindowSeconds)
	check(a.PreStopSeconds >= 0, "shutdown.preStopSeconds %d: must not be negative", a.PreStopSeconds)
	check(a.DrainSeconds > 0, "shutdown.drainSeconds %d: must be positive", a.DrainSeconds)
	errs = append(errs, a.Resources.Validate())
	check(len(a.Ports) > 0, "ports: at least one port is needed for probes and the Service")
	ports := map[string]bool{}
	inService := 0
	for _, p := range a.Ports {
		check(len(p.Name) <= 15 && kube.DNSLabel(p.Name), "port name %q: must be a DNS label of at most 15 characters", p.Name)
		check(p.Port > 0 && p.Port < 65536, "port %s=%d: must be in 1..65535", p.Name, p.Port)
		check(p.ServicePort >= 0 && p.ServicePort < 65536, "port %s servicePort %d: must be in 1..65535, or 0 for the container port", p.Name, p.ServicePort)
		check(!p.ContainerOnly || p.ServicePort == 0, "port %s: servicePort %d on a containerOnly port, which no Service exposes", p.Name, p.ServicePort)
		ports[p.Name] = true
		if !p.ContainerOnly {
			inService++
		}
	}
	check(len(a.Ports) == 0 || inService > 0, "ports: every port is containerOnly; at least one must be in the Service")
	for _, pr := range []struct {
		role string
		p    Probe
	}{{"liveness", a.Liveness}, {"readiness", a.Readiness}} {
		check(ports[pr.p.Port], "%s probe port %q: must name one of the ports", pr.role, pr.p.Port)
		check(pr.p.GRPC != (pr.p.HTTPPath != ""), "%s probe: set exactly one of httpPath or grpc", pr.role)
	}
	if a.MetricsPort != "" {
		check(ports[a.MetricsPort], "metricsPort %q: must name one of the ports", a.MetricsPort)
	}
	for k := range a.Env {
		check(envName.MatchString(k), "env %q: not a valid variable name", k)
	}
	for k, ref := range a.SecretEnv {
		check(envName.MatchString(k), "secretEnv %q: not a valid variable name", k)
		check(secretRef.MatchString(ref), "secretEnv %s=%q: must be \"secret-name/key\"", k, ref)
	}
	switch a.ServiceType {
	case "", "ClusterIP", "LoadBalancer", "NodePort":
	default:
		errs = append(errs, fmt.Errorf("serviceType %q: must be ClusterIP, LoadBalancer or NodePort", a.ServiceType))
	}
	switch a.ExternalTrafficPolicy {
	case "":
	case "Local", "Cluster":
		check(a.ServiceType == "LoadBalancer" || a.ServiceType == "NodePort",
			"externalTrafficPolicy %q: only for LoadBalancer or NodePort Services, not %q", a.ExternalTrafficPolicy, a.ServiceType)
	default:
		errs = append(errs, fmt.Errorf("externalTrafficPolicy %q: must be Local or Cluster", a.ExternalTrafficPolicy))
	}
	for i, v := range a.SecretVolumes {
		check(kube.DNSLabel(v.Secret) || secretName.MatchString(v.Secret), "secretVolumes[%d].secret %q: must be a Secret name", i, v.Secret)
		check(strings.HasPrefix(v.MountPath, "/"), "secretVolumes[%d].mountPath %q: must be an absolute path", i, v.MountPath)
		check(len(v.Items) > 0, "secretVolumes[%d].items: at least one key to mount", i)
		for k, f := range v.Items {
			check(k != "" && f != "" && !strings.Contains(f, "/"), "secretVolumes[%d].items %q=%q: need a key and a plain file name", i, k, f)
		}
	}
	switch a.ImagePullPolicy {
	case "", "IfNotPresent", "Always", "Never":
	default:
		errs = append(errs, fmt.Errorf("imagePullPolicy %q: must be IfNotPresent, Always or Never", a.ImagePullPolicy))
	}
	if len(a.ConfigFiles) > 0 {
		check(a.ConfigMountPath != "", "configMountPath: required when configFiles are given")
	}
	return errors.Join(errs...)
}

// ImageTagged reports whether ref pins a tag other than latest, or a
// digest: the rule Validate applies, for stacks to check their images
// before composing anything.
func ImageTagged(ref string) bool { return kube.ImageTagged(ref) }

// GoMemLimit is the GOMEMLIMIT for a memory limit: 90 % of it, in MiB, so
// the garbage collector works harder before the kernel's OOM killer acts.
func GoMemLimit(limit resource.Quantity) string {
	const mib = 1 << 20
	return fmt.Sprintf("%dMiB", int64(float64(limit.Value())*GoMemLimitRatio)/mib)
}

// GoGC is the application services' GOGC (Args.GoGC). Their live heap is a few MiB, so at the
// default of 100 the collector ran dozens of times a second under load
// (on the gateway's cached GET, assists and mark work were about a tenth
// of the CPU); 400 lets the heap grow to five times the live data before a
// cycle, still tens of MiB, and GOMEMLIMIT stays the bound that matters:
// near it the collector runs as often as needed whatever GOGC says.
// The benchmarks start the services with this value too.
const GoGC = "400"

// GoMemLimitRatio is the share of the container's memory limit given to the Go heap target.
const GoMemLimitRatio = 0.9

// GoMaxProcs is GOMAXPROCS for the given resources: the CPU limit, or the
// request when there is no limit, rounded up, at least 1.
func GoMaxProcs(r Resources) int {
	q := r.CPULimit
	if q.IsZero() {
		q = r.CPURequest
	}
	return max(1, int(math.Ceil(float64(q.MilliValue())/1000)))
}
