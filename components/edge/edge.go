package edge

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/microservice"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:edge:Edge"

// Pod-side constants: the port the proxy listens on inside the pod, where
// its config is mounted and the writable runtime directory.
const (
	ListenPort = 8080
	ConfigDir  = "/etc/edge"
	RuntimeDir = "/tmp"
)

// Args configure the edge tier. Config's ListenPort and RuntimeDir are
// set by the component; the rest comes from the stack.
type Args struct {
	Kind      Kind
	Namespace string
	Image     string
	Version   string
	Config    Config
	Resources microservice.Resources
	Replicas  microservice.Replicas
	microservice.Autoscaling
	microservice.Shutdown
	ZoneSpreadRequired bool
	// ServiceType is LoadBalancer by default: the edge is the way in.
	ServiceType string
}

// Edge is the deployed load-balancer tier.
type Edge struct {
	pulumi.ResourceState

	// ServiceName is the LoadBalancer Service.
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// Endpoint is the in-cluster address of the edge.
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
	// ConfigText is the rendered proxy config, for humans and policies.
	ConfigText pulumi.StringOutput `pulumi:"configText"`
}

// Render returns the config file name and content the pods run with.
func (a *Args) Render() (file, text string, err error) {
	c := a.Config
	c.ListenPort = ListenPort
	c.RuntimeDir = RuntimeDir
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

// NewEdge renders the proxy config and declares it as a microservice
// (Deployment, ConfigMap, LoadBalancer Service, HPA, PDB, NetworkPolicy)
// parented to the edge component.
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
	ms := &microservice.Args{
		Namespace:          args.Namespace,
		Image:              args.Image,
		Component:          "edge",
		Version:            args.Version,
		Ports:              []microservice.Port{{Name: "http", Port: ListenPort, Protocol: "http"}},
		Resources:          args.Resources,
		Replicas:           args.Replicas,
		Autoscaling:        args.Autoscaling,
		Shutdown:           args.Shutdown,
		Liveness:           microservice.Probe{Port: "http", HTTPPath: "/healthz"},
		Readiness:          microservice.Probe{Port: "http", HTTPPath: "/healthz"},
		ZoneSpreadRequired: args.ZoneSpreadRequired,
		ServiceType:        svcType,
		AllowFromAnywhere:  true,
		ConfigFiles:        map[string]string{file: text},
		ConfigMountPath:    ConfigDir,
	}
	switch args.Kind {
	case KindNginx:
		ms.Command = []string{"nginx", "-c", ConfigDir + "/" + file, "-g", "daemon off;"}
	case KindHAProxy:
		// -db keeps HAProxy in the foreground; /metrics comes from its Prometheus exporter.
		ms.Command = []string{"haproxy", "-db", "-f", ConfigDir + "/" + file}
		ms.MetricsPort = "http"
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
