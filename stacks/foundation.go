package stacks

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/cluster"
	"github.com/scaleplane/scaleplane/components/lbcontroller"
	"github.com/scaleplane/scaleplane/components/network"
	"github.com/scaleplane/scaleplane/components/registry"
)

// FoundationSettings are the AWS foundation's knobs (flavour aws only).
type FoundationSettings struct {
	Region string
	// Zones empty means the region's a, b and c zones.
	Zones   []string
	VPCCIDR string
	// NAT is a network.NATMode or Auto (one per zone in prod, one elsewhere).
	NAT string
	// ClusterName empty means scaleplane-<stack>.
	ClusterName string
	// PublicAccessCIDRs open the API endpoint to these networks (the
	// deployers'); PrivateRunnerCIDRs are networks inside the VPC (or
	// peered with it) from which a runner reaches the private endpoint.
	// An aws stack needs at least one of the two.
	PublicAccessCIDRs   []string
	PrivateRunnerCIDRs  []string
	SystemInstanceTypes []string
	SystemMin           int
	SystemMax           int
	WorkerInstanceTypes []string
	// WorkerCapacity is cluster.Spot or cluster.OnDemand.
	WorkerCapacity   string
	WorkerMin        int
	WorkerMax        int
	LogRetentionDays int
}

// foundationKnobs are the knobs of FoundationSettings, appended to Knobs.
func foundationKnobs() []Knob {
	f := func(e *Env) *FoundationSettings { return &e.Foundation }
	list := func(key, def, desc string, set func(*FoundationSettings, []string)) Knob {
		return stringKnob(key, def, desc, func(e *Env, v string) error { set(f(e), splitList(v)); return nil })
	}
	return []Knob{
		stringKnob("awsRegion", "us-east-1", "AWS region of the foundation (flavour aws).",
			func(e *Env, v string) error { f(e).Region = v; return nil }),
		list("awsZones", "", "Comma-separated availability zones; empty takes the region's a, b and c.",
			func(s *FoundationSettings, v []string) { s.Zones = v }),
		stringKnob("vpcCidr", "10.0.0.0/16", "The VPC's IPv4 block (/16 to /20): three quarters private subnets (pods take VPC addresses), a quarter public.",
			func(e *Env, v string) error { f(e).VPCCIDR = v; return nil }),
		enumKnob("natGateways", Auto, "NAT for the private subnets: per-zone, single, or auto (per-zone in prod, single elsewhere).",
			[]string{Auto, string(network.NATPerZone), string(network.NATSingle)}, func(e *Env, v string) { f(e).NAT = v }),
		stringKnob("clusterName", "", "EKS cluster name; empty takes scaleplane-<stack>.",
			func(e *Env, v string) error { f(e).ClusterName = v; return nil }),
		list("clusterPublicAccessCidrs", "", "Comma-separated networks (the deployers') that may reach the EKS API endpoint from the internet; never 0.0.0.0/0. An aws stack needs this or clusterApiPrivateRunnerCidrs.",
			func(s *FoundationSettings, v []string) { s.PublicAccessCIDRs = v }),
		list("clusterApiPrivateRunnerCidrs", "", "Comma-separated networks inside the VPC (or peered with it) where a deploy runner reaches the private EKS API endpoint on 443; empty declares none.",
			func(s *FoundationSettings, v []string) { s.PrivateRunnerCIDRs = v }),
		list("systemNodeInstanceTypes", "m7i.large", "Instance types of the on-demand system node group.",
			func(s *FoundationSettings, v []string) { s.SystemInstanceTypes = v }),
		intKnob("systemNodeMinSize", 3, 1, 100, "Fewest system nodes (one per zone).", func(e *Env, v int) { f(e).SystemMin = v }),
		intKnob("systemNodeMaxSize", 6, 1, 100, "Most system nodes.", func(e *Env, v int) { f(e).SystemMax = v }),
		list("workerNodeInstanceTypes", "m7i.xlarge,m6i.xlarge,m7a.xlarge,m6a.xlarge", "Instance types of the worker node group (several, so spot capacity is found).",
			func(s *FoundationSettings, v []string) { s.WorkerInstanceTypes = v }),
		enumKnob("workerNodeCapacity", "spot", "Capacity type of the worker node group: the services are stateless, drain gracefully and have PDBs, so spot is allowed.",
			[]string{"spot", "on-demand"}, func(e *Env, v string) {
				f(e).WorkerCapacity = map[string]string{"spot": cluster.Spot, "on-demand": cluster.OnDemand}[v]
			}),
		intKnob("workerNodeMinSize", 3, 1, 1000, "Fewest worker nodes.", func(e *Env, v int) { f(e).WorkerMin = v }),
		intKnob("workerNodeMaxSize", 30, 1, 1000, "Most worker nodes: the Cluster Autoscaler's ceiling when the HPAs scale out.", func(e *Env, v int) { f(e).WorkerMax = v }),
		intKnob("awsLogRetentionDays", 90, 1, 3653, "Retention of the VPC flow logs and the EKS control-plane logs (a CloudWatch retention value).",
			func(e *Env, v int) { f(e).LogRetentionDays = v }),
	}
}

// validatePlatform checks the observability and foundation knobs that
// depend on each other or on the environment; Env.Validate calls it.
func (e *Env) validatePlatform() []error {
	errs := e.validateObservability()
	if e.Flavour != FlavourAWS {
		return errs
	}
	if e.Environment != "local" && e.Environment != "dev" {
		// (aws for local or dev is refused once, in Validate.)
		errs = append(errs, e.validateAWSAccess()...)
	}
	f := e.Foundation
	if f.SystemMax < f.SystemMin {
		errs = append(errs, &ConfigError{Key: "systemNodeMaxSize", Value: fmt.Sprint(f.SystemMax), Allowed: fmt.Sprintf("must be at least systemNodeMinSize (%d)", f.SystemMin)})
	}
	if f.WorkerMax < f.WorkerMin {
		errs = append(errs, &ConfigError{Key: "workerNodeMaxSize", Value: fmt.Sprint(f.WorkerMax), Allowed: fmt.Sprintf("must be at least workerNodeMinSize (%d)", f.WorkerMin)})
	}
	if e.Environment == "prod" && e.NATMode() != network.NATPerZone {
		errs = append(errs, &ConfigError{Key: "natGateways", Value: f.NAT, Allowed: "prod needs a NAT gateway per zone (auto or per-zone)"})
	}
	if e.Environment == "prod" && len(e.Zones()) < 3 {
		errs = append(errs, &ConfigError{Key: "awsZones", Value: strings.Join(f.Zones, ","), Allowed: "prod spans three availability zones"})
	}
	return errs
}

// Zones resolves awsZones.
func (e *Env) Zones() []string {
	if len(e.Foundation.Zones) > 0 {
		return e.Foundation.Zones
	}
	return []string{e.Foundation.Region + "a", e.Foundation.Region + "b", e.Foundation.Region + "c"}
}

// NATMode resolves natGateways auto.
func (e *Env) NATMode() network.NATMode {
	if e.Foundation.NAT == "" || e.Foundation.NAT == Auto {
		if e.Environment == "prod" {
			return network.NATPerZone
		}
		return network.NATSingle
	}
	return network.NATMode(e.Foundation.NAT)
}

// ClusterName resolves clusterName.
func (e *Env) ClusterName() string {
	if e.Foundation.ClusterName != "" {
		return e.Foundation.ClusterName
	}
	return "scaleplane-" + e.Stack
}

// Foundation is what the AWS foundation gives the rest of the stack: where
// workloads and data stores go, who may reach the data tier, and the
// Kubernetes provider of the cluster. For the in-cluster flavour it is
// empty and KubernetesProvider leaves the ambient kubeconfig in charge.
type Foundation struct {
	// AWS reports whether the foundation was declared (flavour aws).
	AWS bool
	// VpcID and VpcCIDR locate the VPC.
	VpcID   pulumi.StringOutput
	VpcCIDR pulumi.StringOutput
	// PrivateSubnetIDs are where every workload and data store goes (one per zone).
	PrivateSubnetIDs pulumi.StringArrayOutput
	// PublicSubnetIDs hold only load balancers and NAT gateways.
	PublicSubnetIDs pulumi.StringArrayOutput
	// NodeSecurityGroupID is on every node: data stores' security groups
	// admit this group and nothing else.
	NodeSecurityGroupID pulumi.StringOutput
	// Provider is the EKS cluster's Kubernetes provider; nil in-cluster.
	Provider *kubernetes.Provider
	Network  *network.Network
	Cluster  *cluster.Cluster
	// Registry holds the stack's image repositories; nil in-cluster.
	Registry *registry.Registry
}

// Images is the option of every workload that pulls the stack's images:
// on AWS it waits for the registry's repositories (the registry component
// and so each of its repositories); in-cluster it adds nothing.
func (f *Foundation) Images() pulumi.ResourceOption {
	if f == nil || f.Registry == nil {
		return pulumi.Composite()
	}
	return pulumi.DependsOn([]pulumi.Resource{f.Registry})
}

// KubernetesProvider is the option every in-cluster component takes: the
// EKS provider on AWS, nothing (the current kubeconfig) in-cluster.
func (f *Foundation) KubernetesProvider() pulumi.ResourceOption {
	if f == nil || f.Provider == nil {
		return pulumi.Composite()
	}
	return pulumi.Provider(f.Provider)
}

// ComposeFoundation declares the AWS foundation for flavour aws (the VPC,
// the EKS cluster and its Cluster Autoscaler) and returns what the data
// tier and the in-cluster components need; in-cluster it declares nothing.
func ComposeFoundation(ctx *pulumi.Context, env *Env) (*Foundation, error) {
	if env.Flavour != FlavourAWS {
		return &Foundation{}, nil
	}
	fs := env.Foundation
	name := env.ClusterName()
	tags := map[string]string{
		"scaleplane.dev/stack":       env.Stack,
		"scaleplane.dev/environment": env.Environment,
		"managed-by":                 "pulumi",
	}
	net, err := network.NewNetwork(ctx, "network", &network.Args{
		CIDR: fs.VPCCIDR, Zones: env.Zones(), NAT: env.NATMode(),
		FlowLogRetentionDays: fs.LogRetentionDays, ClusterName: name, Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	cl, err := cluster.NewCluster(ctx, "cluster", &cluster.Args{
		ClusterName:        name,
		Region:             fs.Region,
		SubnetIDs:          net.PrivateSubnetIDs,
		PublicEndpoint:     len(fs.PublicAccessCIDRs) > 0,
		PublicAccessCIDRs:  fs.PublicAccessCIDRs,
		PrivateRunnerCIDRs: fs.PrivateRunnerCIDRs,
		LogRetentionDays:   fs.LogRetentionDays,
		System: cluster.NodeGroup{InstanceTypes: fs.SystemInstanceTypes, CapacityType: cluster.OnDemand,
			Min: fs.SystemMin, Desired: fs.SystemMin, Max: fs.SystemMax, DiskGiB: 50},
		Workers: cluster.NodeGroup{InstanceTypes: fs.WorkerInstanceTypes, CapacityType: fs.WorkerCapacity,
			Min: fs.WorkerMin, Desired: fs.WorkerMin, Max: fs.WorkerMax, DiskGiB: 50},
		Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	if _, err := cluster.NewAutoscaler(ctx, "cluster-autoscaler", &cluster.AutoscalerArgs{
		ClusterName: name, Region: fs.Region, RoleARN: cl.AutoscalerRoleARN, ZoneSpreadRequired: env.ZoneSpreadRequired,
	}, pulumi.Provider(cl.Provider)); err != nil {
		return nil, err
	}
	// The images' repositories: one per image of the stack's registry.
	// Workloads wait for them (Foundation.Images), so a first `up` does not
	// start pods whose repository does not exist yet.
	reg, err := registry.NewRegistry(ctx, "registry", &registry.Args{Repositories: env.RegistryRepositories(), Tags: tags})
	if err != nil {
		return nil, err
	}
	// The load balancer of the edge's Service: the AWS Load Balancer
	// Controller makes it an NLB (lbcontroller.NLBAnnotations).
	if _, err := lbcontroller.NewController(ctx, "aws-load-balancer-controller", &lbcontroller.Args{
		ClusterName: name, Region: fs.Region, VpcID: net.VpcID,
		OIDCProviderARN: cl.OIDCProviderARN, OIDCIssuer: cl.OIDCIssuer,
		NodeSelector: map[string]string{"scaleplane.dev/pool": "system"},
		Tags:         tags,
	}, pulumi.Provider(cl.Provider)); err != nil {
		return nil, err
	}
	ctx.Export("imageRepositories", reg.RepositoryURLs)
	ctx.Export("clusterEndpoint", cl.Endpoint)
	ctx.Export("vpcId", net.VpcID)
	ctx.Export("privateSubnetIds", net.PrivateSubnetIDs)
	ctx.Export("clusterName", cl.Name)
	ctx.Export("kubeconfig", cl.Kubeconfig)
	return &Foundation{
		AWS:                 true,
		VpcID:               net.VpcID,
		VpcCIDR:             net.CIDR,
		PrivateSubnetIDs:    net.PrivateSubnetIDs,
		PublicSubnetIDs:     net.PublicSubnetIDs,
		NodeSecurityGroupID: cl.NodeSecurityGroupID,
		Provider:            cl.Provider,
		Network:             net,
		Cluster:             cl,
		Registry:            reg,
	}, nil
}

// platformKnobs are the observability and foundation knobs, in the order
// Pulumi.yaml shows them after the workloads'.
func platformKnobs() []Knob {
	return append(observabilityKnobs(), foundationKnobs()...)
}
