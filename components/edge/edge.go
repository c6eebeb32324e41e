package edge

import (
	"errors"
	"fmt"
	"path"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/microservice"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:edge:Edge"

// Pod-side constants: the ports the proxy listens on inside the pod (all
// unprivileged: the pods run as non-root), the ports the Service exposes,
// where its config and certificate are mounted and the writable runtime directory.
const (
	// HTTPSPort is the "https" listener: TLS, or plain HTTP from a load
	// balancer that terminated TLS; the Service's port 443.
	HTTPSPort = 8443
	// HTTPPort is the "http" listener, which only redirects to https; the Service's port 80.
	HTTPPort = 8080
	// StatusPort serves /healthz (and HAProxy's /metrics); no Service exposes it.
	StatusPort = 8081
	// ServiceHTTPSPort and ServiceHTTPPort are what clients and the cloud
	// load balancer connect to.
	ServiceHTTPSPort = 443
	ServiceHTTPPort  = 80
	ConfigDir        = "/etc/edge"
	// TLSDir holds the TLS Secret's tls.crt and tls.key as TLSCertFile
	// and TLSKeyFile: HAProxy reads the key from "<crt>.key".
	TLSDir      = "/etc/edge-tls"
	TLSCertFile = TLSDir + "/edge.pem"
	TLSKeyFile  = TLSCertFile + ".key"
	RuntimeDir  = "/tmp"
)

// Args configure the edge tier. Config's ports, RuntimeDir, TLS and
// TLSTerminatedUpstream are set by the component from the fields below;
// the rest of Config (routes, PROXY protocol, limits, HSTS) comes from the stack.
type Args struct {
	Kind      Kind
	Namespace string
	Image     string
	Version   string
	Config    Config
	// TLSSecretName names a kubernetes.io/tls Secret (keys tls.crt and
	// tls.key) in Namespace, mounted read-only at TLSDir: the edge
	// terminates TLS with it. Exactly one of TLSSecretName and
	// TLSTerminatedUpstream is required.
	TLSSecretName string
	// TLSTerminatedUpstream says the cloud load balancer terminates TLS
	// (an NLB with an ACM certificate) and sends plain HTTP to the https port.
	TLSTerminatedUpstream bool
	Resources             microservice.Resources
	Replicas              microservice.Replicas
	microservice.Autoscaling
	microservice.Shutdown
	ZoneSpreadRequired bool
	// ServiceType is LoadBalancer by default: the edge is the way in.
	ServiceType string
	// ExternalTrafficPolicy is the Service's; empty means "Local", which
	// keeps the client's address through kube-proxy (no SNAT to another
	// node). "Cluster" is for a load balancer that carries the address
	// itself (PROXY protocol) and targets pods directly.
	ExternalTrafficPolicy string
	// ServiceAnnotations go on the LoadBalancer Service (the AWS Load
	// Balancer Controller's NLB settings: PROXY protocol v2, ACM
	// certificate, TLS policy). They must agree with Config.ProxyProtocol.
	ServiceAnnotations pulumi.StringMapInput
}

// Edge is the deployed load-balancer tier.
type Edge struct {
	pulumi.ResourceState

	// ServiceName is the LoadBalancer Service.
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// Endpoint is the in-cluster address of the edge's https port (443).
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
	// ConfigText is the rendered proxy config, for humans and policies.
	ConfigText pulumi.StringOutput `pulumi:"configText"`
}

// Render returns the config file name and content the pods run with.
func (a *Args) Render() (file, text string, err error) {
	c, err := a.config()
	if err != nil {
		return "", "", err
	}
	switch a.Kind {
	case KindNginx:
		text, err = RenderNginx(c)
		return "nginx.conf", text, err
	case KindHAProxy:
		text, err = RenderHAProxy(c)
		return "haproxy.cfg", text, err
	default:
		_, err = ParseKind(string(a.Kind))
		return "", "", err
	}
}

// config is Args.Config with the pod-side fields the component owns.
func (a *Args) config() (Config, error) {
	c := a.Config
	if c.TLS != nil || c.TLSTerminatedUpstream {
		return c, errors.New("config.tls and config.tlsTerminatedUpstream: set by the component; use Args.TLSSecretName or Args.TLSTerminatedUpstream")
	}
	switch {
	case a.TLSSecretName == "" && !a.TLSTerminatedUpstream:
		return c, errors.New("tls: required: set TLSSecretName (the edge terminates TLS) or TLSTerminatedUpstream (the load balancer does); plain HTTP at the edge is not allowed")
	case a.TLSSecretName != "" && a.TLSTerminatedUpstream:
		return c, fmt.Errorf("tls: TLSSecretName %q and TLSTerminatedUpstream: set exactly one", a.TLSSecretName)
	case a.TLSSecretName != "":
		c.TLS = &TLSFiles{CertFile: TLSCertFile, KeyFile: TLSKeyFile}
	default:
		c.TLSTerminatedUpstream = true
	}
	c.HTTPSPort, c.HTTPPort, c.StatusPort = HTTPSPort, HTTPPort, StatusPort
	c.RuntimeDir = RuntimeDir
	return c, nil
}

// NewEdge renders the proxy config and declares it as a microservice
// (Deployment, ConfigMap, LoadBalancer Service, HPA, PDB, NetworkPolicy)
// parented to the edge component. The Service exposes 443 (https) and 80
// (http); the status port is the probes' and Prometheus' only.
func NewEdge(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Edge, error) {
	if args == nil {
		return nil, fmt.Errorf("edge %s: args are required", name)
	}
	file, text, err := args.Render()
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", name, err)
	}
	svcType := args.ServiceType
	if svcType == "" {
		svcType = "LoadBalancer"
	}
	trafficPolicy := args.ExternalTrafficPolicy
	if trafficPolicy == "" && (svcType == "LoadBalancer" || svcType == "NodePort") {
		trafficPolicy = "Local"
	}
	httpsProtocol := "http"
	if args.TLSSecretName != "" {
		httpsProtocol = "https"
	}
	ms := &microservice.Args{
		Namespace: args.Namespace,
		Image:     args.Image,
		Component: "edge",
		Version:   args.Version,
		Ports: []microservice.Port{
			{Name: "https", Port: HTTPSPort, ServicePort: ServiceHTTPSPort, Protocol: httpsProtocol},
			{Name: "http", Port: HTTPPort, ServicePort: ServiceHTTPPort, Protocol: "http"},
			{Name: "status", Port: StatusPort, ContainerOnly: true, Protocol: "http"},
		},
		Resources:             args.Resources,
		Replicas:              args.Replicas,
		Autoscaling:           args.Autoscaling,
		Shutdown:              args.Shutdown,
		Liveness:              microservice.Probe{Port: "status", HTTPPath: "/healthz"},
		Readiness:             microservice.Probe{Port: "status", HTTPPath: "/healthz"},
		ZoneSpreadRequired:    args.ZoneSpreadRequired,
		ServiceType:           svcType,
		ExternalTrafficPolicy: trafficPolicy,
		ServiceAnnotations:    args.ServiceAnnotations,
		// The public ports; the status port admits Prometheus only (and the kubelet, from the node).
		AllowFromAnywhere: true,
		ConfigFiles:       map[string]string{file: text},
		ConfigMountPath:   ConfigDir,
	}
	if args.TLSSecretName != "" {
		ms.SecretVolumes = []microservice.SecretVolume{{
			Secret:    args.TLSSecretName,
			MountPath: TLSDir,
			Items:     map[string]string{"tls.crt": path.Base(TLSCertFile), "tls.key": path.Base(TLSKeyFile)},
		}}
	}
	switch args.Kind {
	case KindNginx:
		ms.Command = []string{"nginx", "-c", ConfigDir + "/" + file, "-g", "daemon off;"}
	case KindHAProxy:
		// -db keeps HAProxy in the foreground; /metrics comes from its Prometheus exporter, on the status port only.
		ms.Command = []string{"haproxy", "-db", "-f", ConfigDir + "/" + file}
		ms.MetricsPort = "status"
	}
	if err := ms.Validate(name); err != nil {
		return nil, fmt.Errorf("edge %s: %w", name, err)
	}

	e := &Edge{}
	if err := ctx.RegisterComponentResource(TypeToken, name, e, opts...); err != nil {
		return nil, fmt.Errorf("edge %s: register: %w", name, err)
	}
	child, err := children.Options(e, opts)
	if err != nil {
		return nil, fmt.Errorf("edge %s: options: %w", name, err)
	}
	svc, err := microservice.NewMicroservice(ctx, name, ms, child)
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", name, err)
	}
	e.ServiceName = svc.ServiceName
	e.Endpoint = svc.Endpoint
	e.ConfigText = pulumi.String(text).ToStringOutput()
	if err := ctx.RegisterResourceOutputs(e, pulumi.Map{
		"serviceName": e.ServiceName,
		"endpoint":    e.Endpoint,
		"configText":  e.ConfigText,
	}); err != nil {
		return nil, fmt.Errorf("edge %s: outputs: %w", name, err)
	}
	return e, nil
}
