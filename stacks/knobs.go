package stacks

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/edge"
	"github.com/scaleplane/scaleplane/components/microservice"
)

// Knob is one configuration key of the project: its Pulumi type, default
// and description (Pulumi.yaml's config block is generated from Knobs) and
// how it is parsed into the Env.
type Knob struct {
	// Key is the key without the project prefix ("gatewayMinReplicas").
	Key string
	// Type is the Pulumi config type: string, integer or boolean.
	Type        string
	Default     string
	Description string
	// Secret keeps the value out of error messages. (Pulumi.yaml cannot
	// say `secret: true` for a key with a default: the CLI then refuses
	// the plaintext default.)
	Secret bool
	set    func(e *Env, raw string) error
}

// Workloads are the Deployments whose size and resources are knobs.
var Workloads = []string{"edge", "gateway", "users", "worker"}

// Knobs lists every configuration key, in the order Pulumi.yaml shows them.
var Knobs = buildKnobs()

func buildKnobs() []Knob {
	ks := []Knob{
		enumKnob("environment", "local", "Which environment this stack is; drives defaults such as replication and zone spread.",
			[]string{"local", "dev", "staging", "prod"}, func(e *Env, v string) { e.Environment = v }),
		enumKnob("flavour", string(FlavourInCluster), "Where the data tier runs: in-cluster (local, dev) or aws (EKS, ElastiCache, RDS, MSK).",
			[]string{string(FlavourInCluster), string(FlavourAWS)}, func(e *Env, v string) { e.Flavour = Flavour(v) }),
		stringKnob("namespace", "scaleplane", "Namespace of the application workloads (restricted Pod Security).",
			func(e *Env, v string) error { e.Namespace = v; return nil }),
		stringKnob("imageRegistry", "scaleplane.local", "Registry prefix of the service images (scaleplane.local: images built and loaded by `scaleplane images build`).",
			func(e *Env, v string) error { e.ImageRegistry = strings.TrimSuffix(v, "/"); return nil }),
		stringKnob("imageTag", "dev", "Tag of the service images; never latest.",
			func(e *Env, v string) error {
				if v == "" || v == "latest" {
					return fmt.Errorf("must be a tag other than latest")
				}
				e.ImageTag = v
				return nil
			}),
		stringKnob("otlpEndpoint", "", "Where services send traces; empty means the in-cluster collector otel-collector.<namespace>:4317.",
			func(e *Env, v string) error { e.OTLPEndpoint = v; return nil }),
		boolKnob("zoneSpreadRequired", "false", "Make the spread of pods across zones a hard scheduling rule (prod).",
			func(e *Env, v bool) { e.ZoneSpreadRequired = v }),
		intKnob("hpaCpuTargetPercent", 70, 1, 100, "HPA target average CPU utilization, percent of the request.",
			func(e *Env, v int) { e.Autoscaling.CPUTargetPercent = v }),
		intKnob("hpaMemoryTargetPercent", 80, 1, 100, "HPA target average memory utilization, percent of the request.",
			func(e *Env, v int) { e.Autoscaling.MemoryTargetPercent = v }),
		intKnob("hpaScaleUpWindowSeconds", 0, 0, 3600, "HPA scale-up stabilization window.",
			func(e *Env, v int) { e.Autoscaling.ScaleUpWindowSeconds = v }),
		intKnob("hpaScaleDownWindowSeconds", 300, 0, 3600, "HPA scale-down stabilization window: how long load must stay low before pods are removed.",
			func(e *Env, v int) { e.Autoscaling.ScaleDownWindowSeconds = v }),
		intKnob("preStopSeconds", 5, 0, 60, "preStop sleep, so endpoints and load balancers stop routing before SIGTERM.",
			func(e *Env, v int) { e.Shutdown.PreStopSeconds = v }),
		intKnob("drainSeconds", 20, 1, 300, "How long a service drains in-flight work after SIGTERM.",
			func(e *Env, v int) { e.Shutdown.DrainSeconds = v }),
		enumKnob("edgeKind", string(edge.KindNginx), "The edge proxy.",
			kindNames(), func(e *Env, v string) { e.Edge.Kind = edge.Kind(v) }),
		stringKnob("edgeImage", "scaleplane.local/edge-nginx:dev", "Image of the edge proxy (must contain the chosen proxy).",
			func(e *Env, v string) error { e.Edge.Image = v; return nil }),
		quantityKnob("edgeBodyLimit", "1Mi", "Largest request body the edge accepts (413 above).",
			func(e *Env, q resource.Quantity) { e.Edge.BodyLimitBytes = q.Value() }),
		intKnob("edgeRateLimitPerSecond", 100, 1, 1_000_000, "Requests per second per client address at the edge (429 above).",
			func(e *Env, v int) { e.Edge.RateLimitPerSecond = v }),
		intKnob("edgeRateBurst", 200, 0, 1_000_000, "Burst above the edge rate before 429.",
			func(e *Env, v int) { e.Edge.RateBurst = v }),
		stringKnob("trustedProxyCidrs", "", "Comma-separated networks of the edge pods, the only peers whose X-Forwarded-For the gateway believes (its TRUSTED_PROXY_CIDRS); "+
			"empty means the VPC's block (vpcCidr) on aws and nobody in-cluster, where the stack names its cluster's pod network (10.244.0.0/16 on the embedded cluster).",
			func(e *Env, v string) error {
				cidrs, err := parseCIDRs(v)
				if err != nil {
					return err
				}
				e.TrustedProxyCIDRs = cidrs
				return nil
			}),
	}
	for _, w := range Workloads {
		ks = append(ks, workloadKnobs(w)...)
	}
	ks = append(ks, platformKnobs()...)
	ks = append(ks, dataKnobs()...)
	ks = append(ks, tlsKnobs()...)
	return ks
}

func workloadKnobs(w string) []Knob {
	get := func(e *Env) *Workload {
		if e.Workloads == nil {
			e.Workloads = map[string]*Workload{}
		}
		if e.Workloads[w] == nil {
			e.Workloads[w] = &Workload{}
		}
		return e.Workloads[w]
	}
	q := func(field, def, desc string, set func(*microservice.Resources, resource.Quantity)) Knob {
		return quantityKnob(w+field, def, desc, func(e *Env, v resource.Quantity) { set(&get(e).Resources, v) })
	}
	return []Knob{
		intKnob(w+"MinReplicas", 2, 1, 1000, "Fewest "+w+" pods (HPA minReplicas).", func(e *Env, v int) { get(e).Replicas.Min = v }),
		intKnob(w+"MaxReplicas", 6, 1, 1000, "Most "+w+" pods (HPA maxReplicas).", func(e *Env, v int) { get(e).Replicas.Max = v }),
		q("CpuRequest", "100m", "CPU request of a "+w+" pod.", func(r *microservice.Resources, v resource.Quantity) { r.CPURequest = v }),
		q("CpuLimit", "1", "CPU limit of a "+w+" pod (0 for none; GOMAXPROCS follows it).", func(r *microservice.Resources, v resource.Quantity) { r.CPULimit = v }),
		q("MemoryRequest", "128Mi", "Memory request of a "+w+" pod.", func(r *microservice.Resources, v resource.Quantity) { r.MemoryRequest = v }),
		q("MemoryLimit", "256Mi", "Memory limit of a "+w+" pod (GOMEMLIMIT is 90 % of it).", func(r *microservice.Resources, v resource.Quantity) { r.MemoryLimit = v }),
	}
}

func kindNames() []string {
	var out []string
	for _, k := range edge.Kinds {
		out = append(out, string(k))
	}
	return out
}

func stringKnob(key, def, desc string, set func(*Env, string) error) Knob {
	return Knob{Key: key, Type: "string", Default: def, Description: desc, set: set}
}

// secretKnob is a string knob whose value never appears in an error.
func secretKnob(key, desc string, set func(*Env, string) error) Knob {
	k := stringKnob(key, "", desc, set)
	k.Secret = true
	return k
}

func enumKnob(key, def, desc string, allowed []string, set func(*Env, string)) Knob {
	return Knob{Key: key, Type: "string", Default: def, Description: desc + " One of: " + strings.Join(allowed, ", ") + ".",
		set: func(e *Env, v string) error {
			if !slices.Contains(allowed, v) {
				return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
			}
			set(e, v)
			return nil
		}}
}

func intKnob(key string, def, lo, hi int, desc string, set func(*Env, int)) Knob {
	return Knob{Key: key, Type: "integer", Default: strconv.Itoa(def), Description: desc,
		set: func(e *Env, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("must be an integer in %d..%d", lo, hi)
			}
			set(e, n)
			return nil
		}}
}

func boolKnob(key, def, desc string, set func(*Env, bool)) Knob {
	return Knob{Key: key, Type: "boolean", Default: def, Description: desc,
		set: func(e *Env, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("must be true or false")
			}
			set(e, b)
			return nil
		}}
}

func quantityKnob(key, def, desc string, set func(*Env, resource.Quantity)) Knob {
	return Knob{Key: key, Type: "string", Default: def, Description: desc,
		set: func(e *Env, v string) error {
			q, err := resource.ParseQuantity(strings.TrimSpace(v))
			if err != nil || q.Sign() < 0 {
				return fmt.Errorf("must be a Kubernetes quantity such as 250m, 1, 128Mi or 1Gi")
			}
			set(e, q)
			return nil
		}}
}

// parseCIDRs reads a comma-separated list of networks in canonical form. A
// network with host bits set (10.244.1.0/16) is refused rather than
// masked: it is a typo of one of two networks, and which one decides whom
// the gateway believes.
func parseCIDRs(v string) ([]string, error) {
	var out []string
	for _, item := range splitList(v) {
		p, err := netip.ParsePrefix(item)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q is not a network: must be comma-separated CIDRs such as 10.244.0.0/16 or fd00::/8", item)
		case p.Addr().Is4In6():
			return nil, fmt.Errorf("%q is an IPv4 network written as IPv6: write it as IPv4", item)
		case p != p.Masked():
			return nil, fmt.Errorf("%q has host bits set: write the network, e.g. %s", item, p.Masked())
		}
		out = append(out, p.String())
	}
	return out, nil
}
