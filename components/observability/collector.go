package observability

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/microservice"
)

// CollectorTypeToken is the Pulumi type of the collector component.
const CollectorTypeToken = "scaleplane:observability:Collector"

// CollectorName is the collector's Service name: services find it at
// otel-collector.<namespace>.svc.cluster.local:4317.
const CollectorName = "otel-collector"

// The collector's ports: the OTLP defaults, so SDKs need no port setting,
// and the collector's customary health, metrics and self-telemetry ports.
const (
	OTLPGRPCPort           = 4317
	OTLPHTTPPort           = 4318
	CollectorHealthPort    = 13133
	CollectorMetricsPort   = 8889
	CollectorTelemetryPort = 8888
)

// MemoryLimiterShare is the part of the container's memory limit the
// memory_limiter may use before it refuses data (limit_mib): below the
// GOMEMLIMIT (90 %), so the collector sheds load before the Go heap target
// is reached and long before the OOM killer acts.
const MemoryLimiterShare = 0.8

// SpikeShare is the part of limit_mib kept for spikes between two checks:
// above limit_mib - spike_limit_mib the limiter starts refusing data.
const SpikeShare = 0.25

// CollectorConfig is what the collector's config file says.
type CollectorConfig struct {
	// Bind is the listen address: 0.0.0.0 in a pod, loopback in tests.
	Bind          string
	OTLPGRPCPort  int
	OTLPHTTPPort  int
	HealthPort    int
	MetricsPort   int
	TelemetryPort int
	// TracesEndpoint is Jaeger's OTLP gRPC host:port.
	TracesEndpoint string
	// MemoryLimitMiB and SpikeLimitMiB configure memory_limiter.
	MemoryLimitMiB int64
	SpikeLimitMiB  int64
	// BatchSize is how many spans or points a batch holds before it is sent;
	// BatchTimeout sends a smaller one when traffic is low.
	BatchSize    int
	BatchTimeout time.Duration
}

// DefaultCollectorConfig sizes the memory limiter from the container's
// memory limit and points traces at tracesEndpoint.
func DefaultCollectorConfig(tracesEndpoint string, memoryLimit resource.Quantity) CollectorConfig {
	limit := int64(float64(mib(memoryLimit)) * MemoryLimiterShare)
	return CollectorConfig{
		Bind:           "0.0.0.0",
		OTLPGRPCPort:   OTLPGRPCPort,
		OTLPHTTPPort:   OTLPHTTPPort,
		HealthPort:     CollectorHealthPort,
		MetricsPort:    CollectorMetricsPort,
		TelemetryPort:  CollectorTelemetryPort,
		TracesEndpoint: tracesEndpoint,
		MemoryLimitMiB: limit,
		SpikeLimitMiB:  int64(float64(limit) * SpikeShare),
		BatchSize:      8192,
		BatchTimeout:   5 * time.Second,
	}
}

// Validate reports every problem of the config.
func (c CollectorConfig) Validate() error {
	var errs []error
	for name, p := range map[string]int{"otlpGrpcPort": c.OTLPGRPCPort, "otlpHttpPort": c.OTLPHTTPPort,
		"healthPort": c.HealthPort, "metricsPort": c.MetricsPort, "telemetryPort": c.TelemetryPort} {
		if p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("collector %s %d: must be in 1..65535", name, p))
		}
	}
	if _, _, err := net.SplitHostPort(c.TracesEndpoint); err != nil {
		errs = append(errs, fmt.Errorf("collector tracesEndpoint %q: must be host:port (Jaeger's OTLP gRPC)", c.TracesEndpoint))
	}
	if c.MemoryLimitMiB < 16 {
		errs = append(errs, fmt.Errorf("collector memoryLimitMiB %d: must be at least 16 (raise the memory limit)", c.MemoryLimitMiB))
	}
	if c.SpikeLimitMiB <= 0 || c.SpikeLimitMiB >= c.MemoryLimitMiB {
		errs = append(errs, fmt.Errorf("collector spikeLimitMiB %d: must be in 1..memoryLimitMiB-1 (%d)", c.SpikeLimitMiB, c.MemoryLimitMiB-1))
	}
	if c.BatchSize <= 0 || c.BatchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("collector batch %d/%s: size and timeout must be positive", c.BatchSize, c.BatchTimeout))
	}
	return errors.Join(errs...)
}

// RenderCollectorConfig renders the collector's config.yaml: OTLP gRPC and
// HTTP in; memory_limiter first (refuse before running out of memory, so
// SDKs retry elsewhere) then batch; traces out to Jaeger over OTLP, metrics
// out on a Prometheus endpoint.
func RenderCollectorConfig(c CollectorConfig) string {
	hp := func(port int) string { return net.JoinHostPort(c.Bind, strconv.Itoa(port)) }
	processors := []string{"memory_limiter", "batch"}
	cfg := map[string]any{
		"extensions": map[string]any{
			// healthcheckv2 in its v1-compatible mode: GET / on the health
			// port is 200 once every pipeline runs.
			"healthcheckv2": map[string]any{"endpoint": hp(c.HealthPort), "path": "/"},
		},
		"receivers": map[string]any{
			"otlp": map[string]any{"protocols": map[string]any{
				"grpc": map[string]any{"endpoint": hp(c.OTLPGRPCPort)},
				"http": map[string]any{"endpoint": hp(c.OTLPHTTPPort)},
			}},
		},
		"processors": map[string]any{
			"memory_limiter": map[string]any{
				"check_interval":  "1s",
				"limit_mib":       c.MemoryLimitMiB,
				"spike_limit_mib": c.SpikeLimitMiB,
			},
			"batch": map[string]any{
				"send_batch_size":     c.BatchSize,
				"send_batch_max_size": 2 * c.BatchSize,
				"timeout":             c.BatchTimeout.String(),
			},
		},
		"exporters": map[string]any{
			"otlp/jaeger": map[string]any{
				"endpoint": c.TracesEndpoint,
				// In-cluster hop; the NetworkPolicy admits only the collector.
				"tls":              map[string]any{"insecure": true},
				"sending_queue":    map[string]any{"enabled": true, "queue_size": 5000},
				"retry_on_failure": map[string]any{"enabled": true, "max_elapsed_time": "120s"},
			},
			"prometheus": map[string]any{
				"endpoint":                         hp(c.MetricsPort),
				"resource_to_telemetry_conversion": map[string]any{"enabled": true},
			},
		},
		"service": map[string]any{
			"extensions": []string{"healthcheckv2"},
			"pipelines": map[string]any{
				"traces":  map[string]any{"receivers": []string{"otlp"}, "processors": processors, "exporters": []string{"otlp/jaeger"}},
				"metrics": map[string]any{"receivers": []string{"otlp"}, "processors": processors, "exporters": []string{"prometheus"}},
			},
			"telemetry": map[string]any{
				"metrics": map[string]any{"readers": []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{
					"prometheus": map[string]any{"host": c.Bind, "port": c.TelemetryPort},
				}}}}},
				// The collector's own spans (slow exports, refused batches)
				// go straight to Jaeger, not through its own pipeline, so
				// tracing it can never feed back into it.
				"traces": map[string]any{"processors": []any{map[string]any{"batch": map[string]any{"exporter": map[string]any{
					"otlp": map[string]any{"protocol": "grpc", "endpoint": "http://" + c.TracesEndpoint, "insecure": true},
				}}}}},
			},
		},
	}
	return mustYAML(cfg)
}

// mustYAML marshals a tree of maps, slices and scalars (sorted keys, so
// the output is stable); such a tree always marshals.
func mustYAML(v any) string {
	out, err := yaml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("observability: rendering YAML: %v", err))
	}
	return string(out)
}

// CollectorArgs configure the collector Deployment.
type CollectorArgs struct {
	// Namespace is the application namespace the services send from.
	Namespace string
	// Image defaults to CollectorImage.
	Image string
	// TracesEndpoint is Jaeger's OTLP gRPC host:port.
	TracesEndpoint string
	// AllowFrom lists the app.kubernetes.io/name of the workloads that send
	// telemetry; the NetworkPolicy admits only them (and Prometheus).
	AllowFrom          []string
	Replicas           microservice.Replicas
	Resources          microservice.Resources
	Autoscaling        microservice.Autoscaling
	Shutdown           microservice.Shutdown
	ZoneSpreadRequired bool
}

// Collector is the deployed OpenTelemetry Collector.
type Collector struct {
	pulumi.ResourceState

	// Endpoint is the OTLP gRPC URL services export to.
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
	// ServiceName is the collector's Service name.
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
}

// NewCollector validates args and declares the collector as a Microservice
// (Deployment, HPA, PDB, NetworkPolicy, Service, ConfigMap): it is a Go
// program like the services and scales the same way.
func NewCollector(ctx *pulumi.Context, name string, args *CollectorArgs, opts ...pulumi.ResourceOption) (*Collector, error) {
	if args == nil {
		return nil, fmt.Errorf("collector %s: args are required", name)
	}
	image := args.Image
	if image == "" {
		image = CollectorImage
	}
	conf := DefaultCollectorConfig(args.TracesEndpoint, args.Resources.MemoryLimit)
	if err := errors.Join(checkWorkload(name, args.Namespace, image), conf.Validate()); err != nil {
		return nil, fmt.Errorf("collector %s: %w", name, err)
	}
	ms := &microservice.Args{
		Namespace: args.Namespace,
		Image:     image,
		Args:      []string{"--config=/etc/otelcol/config.yaml"},
		Component: Component,
		Version:   imageTag(image),
		Ports: []microservice.Port{
			{Name: "otlp-grpc", Port: OTLPGRPCPort, Protocol: "grpc"},
			{Name: "otlp-http", Port: OTLPHTTPPort, Protocol: "http"},
			{Name: "health", Port: CollectorHealthPort, Protocol: "http"},
			{Name: "metrics", Port: CollectorMetricsPort, Protocol: "http"},
		},
		Resources:          args.Resources,
		Replicas:           args.Replicas,
		Autoscaling:        args.Autoscaling,
		Shutdown:           args.Shutdown,
		Liveness:           microservice.Probe{Port: "health", HTTPPath: "/"},
		Readiness:          microservice.Probe{Port: "health", HTTPPath: "/"},
		ZoneSpreadRequired: args.ZoneSpreadRequired,
		GoRuntime:          true,
		// Where the collector's own spans go (the telemetry section of its
		// config says the same): Jaeger directly.
		OTLPEndpoint:    "http://" + args.TracesEndpoint,
		MetricsPort:     "metrics",
		AllowFrom:       args.AllowFrom,
		ConfigFiles:     map[string]string{"config.yaml": RenderCollectorConfig(conf)},
		ConfigMountPath: "/etc/otelcol",
	}
	c := &Collector{}
	if err := ctx.RegisterComponentResource(CollectorTypeToken, name, c, opts...); err != nil {
		return nil, fmt.Errorf("collector %s: register: %w", name, err)
	}
	child, err := children.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("collector %s: options: %w", name, err)
	}
	m, err := microservice.NewMicroservice(ctx, name, ms, child)
	if err != nil {
		return nil, fmt.Errorf("collector %s: %w", name, err)
	}
	c.ServiceName = m.ServiceName
	c.Endpoint = pulumi.Sprintf("http://%s.%s.svc.cluster.local:%d", m.ServiceName, args.Namespace, OTLPGRPCPort)
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"endpoint": c.Endpoint, "serviceName": c.ServiceName}); err != nil {
		return nil, fmt.Errorf("collector %s: outputs: %w", name, err)
	}
	return c, nil
}

// imageTag is the tag of an image reference, for the version label.
func imageTag(ref string) string {
	for i := len(ref) - 1; i >= 0 && ref[i] != '/'; i-- {
		if ref[i] == ':' {
			return ref[i+1:]
		}
	}
	return ""
}
