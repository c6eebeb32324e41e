// Package stacks turns a stack's configuration into one typed, validated
// Env and composes the components from it. Program is the one stack
// function: main.go, the scaleplane command and every test call it.
package stacks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/scaleplane/scaleplane/components/edge"
	"github.com/scaleplane/scaleplane/components/microservice"
)

// Project is the Pulumi project name and the config namespace of every knob.
const Project = "scaleplane"

// Flavour says where the data tier and the cluster come from.
type Flavour string

// The flavours.
const (
	FlavourInCluster Flavour = "in-cluster"
	FlavourAWS       Flavour = "aws"
)

// Workload is the size and resources of one Deployment.
type Workload struct {
	Replicas  microservice.Replicas
	Resources microservice.Resources
}

// EdgeSettings are the edge tier's knobs.
type EdgeSettings struct {
	Kind               edge.Kind
	Image              string
	BodyLimitBytes     int64
	RateLimitPerSecond int
	RateBurst          int
}

// Env is a stack's whole configuration, typed and validated.
type Env struct {
	// Stack is the Pulumi stack name (local, dev, staging, prod or a user's own).
	Stack              string
	Environment        string
	Flavour            Flavour
	Namespace          string
	ImageRegistry      string
	ImageTag           string
	OTLPEndpoint       string
	ZoneSpreadRequired bool
	Autoscaling        microservice.Autoscaling
	Shutdown           microservice.Shutdown
	Edge               EdgeSettings
	// TrustedProxyCIDRs are the edge pods' networks, whose X-Forwarded-For
	// the gateway believes; empty resolves per flavour (TrustedProxies).
	TrustedProxyCIDRs []string
	// Workloads maps each of Workloads to its size and resources.
	Workloads map[string]*Workload
	// Observability and Foundation are the settings of the observability
	// stack and of the AWS foundation (stacks/observability.go, foundation.go).
	Observability ObservabilitySettings
	Foundation    FoundationSettings
	// Data holds the data tier's settings (stacks/datatier.go).
	Data DataSettings
	// TLS holds the edge certificate's settings (stacks/tls.go).
	TLS TLSSettings
}

// ConfigError names the key, the value and what is allowed.
type ConfigError struct {
	Key     string
	Value   string
	Allowed string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config %s:%s = %q: %s", Project, e.Key, e.Value, e.Allowed)
}

// Parse builds an Env from raw values keyed without the project prefix;
// a missing key takes its knob's default. Unknown keys are errors, so a
// typo does not silently fall back to a default.
func Parse(stack string, values map[string]string) (*Env, error) {
	known := map[string]bool{}
	e := &Env{Stack: stack}
	var errs []error
	for _, k := range Knobs {
		known[k.Key] = true
		raw, ok := values[k.Key]
		if !ok {
			raw = k.Default
		}
		if err := k.set(e, raw); err != nil {
			shown := raw
			if k.Secret {
				shown = "[secret]"
			}
			errs = append(errs, &ConfigError{Key: k.Key, Value: shown, Allowed: err.Error()})
		}
	}
	for key, v := range values {
		if !known[key] {
			errs = append(errs, &ConfigError{Key: key, Value: v, Allowed: "unknown key; see Pulumi.yaml for the keys scaleplane reads"})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Validate checks the rules that span several knobs.
func (e *Env) Validate() error {
	var errs []error
	for _, w := range Workloads {
		wl := e.Workloads[w]
		if wl.Replicas.Max < wl.Replicas.Min {
			errs = append(errs, &ConfigError{Key: w + "MaxReplicas", Value: fmt.Sprint(wl.Replicas.Max),
				Allowed: fmt.Sprintf("must be at least %sMinReplicas (%d)", w, wl.Replicas.Min)})
		}
		r := wl.Resources
		if r.CPURequest.Sign() <= 0 {
			errs = append(errs, &ConfigError{Key: w + "CpuRequest", Value: r.CPURequest.String(), Allowed: "must be positive"})
		}
		if r.MemoryRequest.Sign() <= 0 {
			errs = append(errs, &ConfigError{Key: w + "MemoryRequest", Value: r.MemoryRequest.String(), Allowed: "must be positive"})
		}
		if !r.CPULimit.IsZero() && r.CPULimit.Cmp(r.CPURequest) < 0 {
			errs = append(errs, &ConfigError{Key: w + "CpuLimit", Value: r.CPULimit.String(),
				Allowed: fmt.Sprintf("must be 0 (no limit) or at least %sCpuRequest (%s)", w, r.CPURequest.String())})
		}
		if r.MemoryLimit.Cmp(r.MemoryRequest) < 0 {
			errs = append(errs, &ConfigError{Key: w + "MemoryLimit", Value: r.MemoryLimit.String(),
				Allowed: fmt.Sprintf("must be at least %sMemoryRequest (%s)", w, r.MemoryRequest.String())})
		}
	}
	if !microservice.ImageTagged(e.Edge.Image) {
		errs = append(errs, &ConfigError{Key: "edgeImage", Value: e.Edge.Image, Allowed: "must carry an explicit tag or digest other than latest"})
	}
	errs = append(errs, e.validatePlatform()...)
	errs = append(errs, e.validateTLS()...)
	if e.Data.KafkaNodes == 1 && e.Environment != "local" {
		// Replication 1 loses acknowledged registrations with a disk; the
		// policy pack allows it in local alone.
		errs = append(errs, &ConfigError{Key: "kafkaNodes", Value: "1", Allowed: "1 only in the local environment; 3 or more elsewhere"})
	}
	if e.Flavour == FlavourAWS && (e.Environment == "local" || e.Environment == "dev") {
		errs = append(errs, &ConfigError{Key: "flavour", Value: string(e.Flavour), Allowed: "local and dev run in-cluster; aws is for staging and prod"})
	}
	return errors.Join(errs...)
}

// Load reads every knob from the Pulumi config of ctx (config.Try, never
// the panicking Require) and parses it into an Env.
func Load(ctx *pulumi.Context) (*Env, error) {
	values := map[string]string{}
	for _, k := range Knobs {
		v, err := config.Try(ctx, k.Key)
		if err != nil {
			if errors.Is(err, config.ErrMissingVar) {
				continue
			}
			return nil, fmt.Errorf("config %s:%s: %w", Project, k.Key, err)
		}
		values[k.Key] = v
	}
	return Parse(ctx.Stack(), values)
}

// Image is the reference of a service image in this stack.
func (e *Env) Image(service string) string {
	return fmt.Sprintf("%s/%s:%s", e.ImageRegistry, service, e.ImageTag)
}

// CollectorEndpoint is where the services send OTLP traces.
func (e *Env) CollectorEndpoint() string {
	if e.OTLPEndpoint != "" {
		return e.OTLPEndpoint
	}
	return fmt.Sprintf("http://otel-collector.%s.svc.cluster.local:4317", e.Namespace)
}

// TrustedProxies is the gateway's TRUSTED_PROXY_CIDRS: the trustedProxyCidrs
// knob when set; else on aws the VPC's block, as created, since the VPC CNI
// gives the edge pods addresses from it (and the gateway's NetworkPolicy
// admits only the edge pods, so no other VPC peer can reach it); else ""
// (trust nobody: an in-cluster stack's pod network is the cluster's, which
// only the stack file can name).
func (e *Env) TrustedProxies(fnd *Foundation) pulumi.StringInput {
	if len(e.TrustedProxyCIDRs) > 0 {
		return pulumi.String(strings.Join(e.TrustedProxyCIDRs, ","))
	}
	if fnd != nil && fnd.AWS {
		return fnd.VpcCIDR
	}
	return pulumi.String("")
}
