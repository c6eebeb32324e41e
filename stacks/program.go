package stacks

import (
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/edge"
	"github.com/scaleplane/scaleplane/components/lbcontroller"
	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/components/namespace"
	"github.com/scaleplane/scaleplane/topology"
)

// Program is the stack program: it loads and validates the config before
// declaring anything, then composes the components for the environment.
func Program(ctx *pulumi.Context) error {
	env, err := Load(ctx)
	if err != nil {
		return err
	}
	return Compose(ctx, env)
}

// Compose declares a validated Env's resources. Program calls it after
// Load; it is exported for tests that build an Env in Go.
func Compose(ctx *pulumi.Context, env *Env) error {
	// The AWS foundation (staging, prod) first: every in-cluster object
	// below goes through its cluster's Kubernetes provider.
	fnd, err := ComposeFoundation(ctx, env)
	if err != nil {
		return err
	}
	ns, err := namespace.NewNamespace(ctx, env.Namespace, &namespace.Args{Name: env.Namespace, Environment: env.Environment}, fnd.KubernetesProvider())
	if err != nil {
		return err
	}
	after := pulumi.Composite(pulumi.DependsOn([]pulumi.Resource{ns}), fnd.KubernetesProvider())
	// Workloads wait for their images' repositories (AWS; the topics Job
	// of the data tier pulls the stack's topics image).
	pulls := pulumi.Composite(after, fnd.Images())
	data, err := composeData(ctx, env, fnd, pulls)
	if err != nil {
		return err
	}

	services := []struct {
		name string
		args *microservice.Args
	}{
		{"gateway", env.service("gateway", "gateway", microservice.Args{
			Ports: []microservice.Port{
				{Name: "http", Port: topology.GatewayHTTPPort, Protocol: "http"},
				{Name: "admin", Port: topology.AdminHTTPPort, Protocol: "http"},
			},
			Liveness:  microservice.Probe{Port: "admin", HTTPPath: "/healthz"},
			Readiness: microservice.Probe{Port: "admin", HTTPPath: "/readyz"},
			// The edge (HAProxy) balances across every gateway pod itself.
			Headless:  true,
			AllowFrom: []string{"edge"},
			Env: pulumi.StringMap{
				"HTTP_ADDR":     pulumi.String(topology.ListenAddr(topology.GatewayHTTPPort)),
				"ADMIN_ADDR":    pulumi.String(topology.ListenAddr(topology.AdminHTTPPort)),
				"KAFKA_BROKERS": data.KafkaBrokers,
				"KAFKA_TLS":     pulumi.String(strconv.FormatBool(data.KafkaTLS)),
				"KAFKA_TOPIC":   pulumi.String(topology.RegistrationsTopic),
				"REDIS_ADDRS":   data.RedisAddrs,
				"REDIS_TLS":     pulumi.String(strconv.FormatBool(data.RedisTLS)),
				// dns:/// with the headless Service: gRPC balances calls over
				// every users pod, not one pinned connection.
				"USERS_ADDR": pulumi.Sprintf("dns:///users-headless.%s.svc.cluster.local:%d", env.Namespace, topology.UsersGRPCPort),
				// X-Forwarded-For is believed from the edge's network only:
				// the client's address keys the rate limit, logs and spans.
				"TRUSTED_PROXY_CIDRS": env.TrustedProxies(fnd),
			},
			SecretEnv: map[string]string{"REDIS_PASSWORD": data.RedisPasswordRef},
		})},
		{"users", env.service("users", "api", microservice.Args{
			Ports: []microservice.Port{
				{Name: "grpc", Port: topology.UsersGRPCPort, Protocol: "grpc"},
				{Name: "admin", Port: topology.AdminHTTPPort, Protocol: "http"},
			},
			// The gRPC health service reports real readiness (database reachable).
			Liveness:  microservice.Probe{Port: "admin", HTTPPath: "/healthz"},
			Readiness: microservice.Probe{Port: "grpc", GRPC: true},
			Headless:  true,
			AllowFrom: []string{"gateway"},
			Env: pulumi.StringMap{
				"GRPC_ADDR":  pulumi.String(topology.ListenAddr(topology.UsersGRPCPort)),
				"ADMIN_ADDR": pulumi.String(topology.ListenAddr(topology.AdminHTTPPort)),
			},
			SecretEnv: map[string]string{"DATABASE_URL_RW": data.PostgresRWRef, "DATABASE_URL_RO": data.PostgresRORef},
		})},
		{"worker", env.service("worker", "worker", microservice.Args{
			Ports:     []microservice.Port{{Name: "admin", Port: topology.AdminHTTPPort, Protocol: "http"}},
			Liveness:  microservice.Probe{Port: "admin", HTTPPath: "/healthz"},
			Readiness: microservice.Probe{Port: "admin", HTTPPath: "/readyz"},
			Env: pulumi.StringMap{
				"ADMIN_ADDR":      pulumi.String(topology.ListenAddr(topology.AdminHTTPPort)),
				"KAFKA_BROKERS":   data.KafkaBrokers,
				"KAFKA_TOPIC":     pulumi.String(topology.RegistrationsTopic),
				"KAFKA_DLQ_TOPIC": pulumi.String(topology.RegistrationsDLQTopic),
				"KAFKA_GROUP":     pulumi.String(topology.WorkerGroup),
				"KAFKA_TLS":       pulumi.String(strconv.FormatBool(data.KafkaTLS)),
				"REDIS_ADDRS":     data.RedisAddrs,
				"REDIS_TLS":       pulumi.String(strconv.FormatBool(data.RedisTLS)),
			},
			SecretEnv: map[string]string{"REDIS_PASSWORD": data.RedisPasswordRef, "DATABASE_URL_RW": data.PostgresRWRef},
		})},
	}
	for _, s := range services {
		if _, err := microservice.NewMicroservice(ctx, s.name, s.args, pulls); err != nil {
			return err
		}
	}

	// The edge's certificate: cert-manager's in-cluster (the edge mounts
	// EdgeTLSSecret), ACM's on AWS, where the NLB terminates TLS with it and
	// sends the client's address in PROXY protocol v2 headers, as the
	// edge's args expect.
	tls, err := ComposeTLS(ctx, env, fnd, after)
	if err != nil {
		return err
	}
	edgeArgs := env.EdgeArgs()
	if env.Flavour == FlavourAWS {
		ann, err := lbcontroller.NLBAnnotations(tls.Certificate.CertificateARN, []int{edge.ServiceHTTPSPort}, true)
		if err != nil {
			return fmt.Errorf("the edge's load balancer: %w", err)
		}
		edgeArgs.ServiceAnnotations = ann
	}
	e, err := edge.NewEdge(ctx, "edge", edgeArgs, pulls)
	if err != nil {
		return err
	}
	if _, err := ComposeObservability(ctx, env, fnd, pulls); err != nil {
		return err
	}
	ctx.Export("namespace", ns.Name)
	ctx.Export("edgeService", e.ServiceName)
	ctx.Export("edgeEndpoint", e.Endpoint)
	return nil
}

// EdgePublicPrefix is the one route the edge serves: the gateway's public
// API (apps/gateway); every other path is 404 at the edge.
const EdgePublicPrefix = "/v1/"

// EdgeArgs are the edge's arguments for the stack. In-cluster stacks
// terminate TLS at the edge with EdgeTLSSecret, and the LoadBalancer
// Service keeps the client's address with externalTrafficPolicy Local.
// AWS stacks let the NLB terminate TLS with the ACM certificate and carry
// the client's address in PROXY protocol v2 headers, believed only from
// the VPC (the NLB's addresses); the AWS side adds the matching
// annotations through ServiceAnnotations.
func (env *Env) EdgeArgs() *edge.Args {
	gw := env.Workloads["gateway"]
	edgeWL := env.Workloads["edge"]
	a := &edge.Args{
		Kind:      env.Edge.Kind,
		Namespace: env.Namespace,
		Image:     env.Edge.Image,
		Version:   env.ImageTag,
		Config: edge.Config{
			BodyLimitBytes:     env.Edge.BodyLimitBytes,
			RateLimitPerSecond: env.Edge.RateLimitPerSecond,
			RateBurst:          env.Edge.RateBurst,
			Backends: []edge.Backend{{
				Name:       "gateway",
				PathPrefix: EdgePublicPrefix,
				Servers:    []string{fmt.Sprintf("gateway.%s.svc.cluster.local:%d", env.Namespace, topology.GatewayHTTPPort)},
				Discovery: &edge.Discovery{
					FQDN:  fmt.Sprintf("gateway-headless.%s.svc.cluster.local", env.Namespace),
					Port:  topology.GatewayHTTPPort,
					Slots: gw.Replicas.Max,
				},
				HealthPath: "/readyz",
			}},
		},
		Resources:          edgeWL.Resources,
		Replicas:           edgeWL.Replicas,
		Autoscaling:        env.Autoscaling,
		Shutdown:           env.Shutdown,
		ZoneSpreadRequired: env.ZoneSpreadRequired,
	}
	if env.Flavour == FlavourAWS {
		a.TLSTerminatedUpstream = true
		a.Config.ProxyProtocol = edge.ProxyProtocol{Enabled: true, TrustedCIDRs: []string{env.Foundation.VPCCIDR}}
	} else {
		a.TLSSecretName = EdgeTLSSecret
		a.ExternalTrafficPolicy = "Local"
	}
	return a
}

// service fills the parts every bundled Go service shares from the Env.
func (e *Env) service(name, component string, a microservice.Args) *microservice.Args {
	w := e.Workloads[name]
	a.Namespace = e.Namespace
	a.Image = e.Image(name)
	a.Component = component
	a.Version = e.ImageTag
	a.Resources = w.Resources
	a.Replicas = w.Replicas
	a.Autoscaling = e.Autoscaling
	a.Shutdown = e.Shutdown
	a.ZoneSpreadRequired = e.ZoneSpreadRequired
	a.GoRuntime = true
	a.GoGC = microservice.GoGC
	a.OTLPEndpoint = e.CollectorEndpoint()
	a.MetricsPort = a.Ports[len(a.Ports)-1].Name
	return &a
}
