// Package render runs the real stack program under the Pulumi SDK's mocks,
// with no cloud and no cluster, and records every resource exactly as the
// providers would receive it: the Kubernetes manifests, a JSON resource
// graph for the policies and tests, and a picture of the topology.
package render

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/stacks"
)

// SecretPlaceholder replaces every secret value in what render writes, so
// no credential lands in a rendered file.
const SecretPlaceholder = "[secret]"

// Resource is one declared resource.
type Resource struct {
	URN    string `json:"urn"`
	Type   string `json:"type"`
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
	// Custom is false for components, true for provider resources.
	Custom bool `json:"custom"`
	// Provider is the explicit provider reference ("urn::id") a custom
	// resource is declared with, empty for the default provider.
	Provider string         `json:"provider,omitempty"`
	Inputs   map[string]any `json:"inputs"`
	// DependsOn are the URNs the resource was declared to wait for (its
	// dependsOn option), so tests can prove an ordering such as a
	// workload waiting for its image's repository.
	DependsOn []string `json:"dependsOn,omitempty"`
}

// Graph is everything a stack declares, in declaration order.
type Graph struct {
	Stack     string     `json:"stack"`
	Resources []Resource `json:"resources"`
}

// Stack renders the named stack from the stack file under root: it parses
// and validates the config first (one clear error, nothing declared), then
// runs stacks.Program under mocks.
func Stack(root, stack string) (*Graph, *stacks.Env, error) {
	values, err := stacks.ReadStackConfig(root, stack)
	if err != nil {
		return nil, nil, err
	}
	return Values(stack, values)
}

// Values renders a stack from raw config values (keys without the project
// prefix), as tests and mutated variants need.
func Values(stack string, values map[string]string) (*Graph, *stacks.Env, error) {
	env, err := stacks.Parse(stack, values)
	if err != nil {
		return nil, nil, err
	}
	cfg := map[string]string{}
	for k, v := range values {
		cfg[stacks.Project+":"+k] = v
	}
	m := &Mocks{stack: stack}
	err = pulumi.RunErr(stacks.Program,
		pulumi.WithMocks(stacks.Project, stack, m),
		func(ri *pulumi.RunInfo) { ri.Config = cfg })
	if err != nil {
		return nil, nil, fmt.Errorf("stack %s: %w", stack, err)
	}
	return &Graph{Stack: stack, Resources: m.Resources()}, env, nil
}

// Mocks records what the program registers and echoes inputs back as
// outputs, with the few computed outputs later steps read.
type Mocks struct {
	stack     string
	mu        sync.Mutex
	resources []Resource
}

// NewResource implements pulumi.MockResourceMonitor.
func (m *Mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	parent, deps := "", []string(nil)
	if args.RegisterRPC != nil {
		parent = args.RegisterRPC.GetParent()
		deps = args.RegisterRPC.GetDependencies()
	}
	r := Resource{
		Type:      args.TypeToken,
		Name:      args.Name,
		Parent:    parent,
		Custom:    args.Custom,
		Provider:  args.Provider,
		Inputs:    Plain(args.Inputs),
		DependsOn: deps,
	}
	r.URN = m.urn(r)
	m.mu.Lock()
	m.resources = append(m.resources, r)
	m.mu.Unlock()
	return args.Name + "-id", computedOutputs(args), nil
}

// computedOutputs adds the outputs a provider computes that the program
// reads back (an EKS cluster's endpoint, CA and OIDC issuer, which the
// kubeconfig and the IRSA trust policies are built from), with recognisable
// placeholder values; every other resource echoes its inputs.
func computedOutputs(args pulumi.MockResourceArgs) resource.PropertyMap {
	out := args.Inputs.Copy()
	if args.TypeToken == "aws:eks/cluster:Cluster" {
		name := args.Name
		out["endpoint"] = resource.NewStringProperty("https://" + name + ".eks.mock")
		out["certificateAuthority"] = resource.NewObjectProperty(resource.PropertyMap{"data": resource.NewStringProperty("bW9jay1jYQ==")})
		out["identities"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(resource.PropertyMap{
			"oidcs": resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(resource.PropertyMap{
				"issuer": resource.NewStringProperty("https://oidc.eks.mock/id/" + name),
			})}),
		})})
		vpc := resource.PropertyMap{}
		if v, ok := out["vpcConfig"]; ok && v.IsObject() {
			vpc = v.ObjectValue().Copy()
		}
		vpc["clusterSecurityGroupId"] = resource.NewStringProperty(name + "-cluster-sg")
		out["vpcConfig"] = resource.NewObjectProperty(vpc)
	}
	if args.TypeToken == "aws:iam/role:Role" {
		// IRSA annotations carry the role's ARN.
		out["arn"] = resource.NewStringProperty("arn:aws:iam::000000000000:role/" + args.Name)
	}
	if args.TypeToken == "aws:acm/certificate:Certificate" {
		// The edge's NLB annotation (ssl-cert) carries the certificate's ARN.
		out["arn"] = resource.NewStringProperty("arn:aws:acm:us-east-1:000000000000:certificate/" + args.Name)
	}
	if args.TypeToken == "aws:acm/certificateValidation:CertificateValidation" {
		out["certificateArn"] = resource.NewStringProperty("arn:aws:acm:us-east-1:000000000000:certificate/validated")
	}
	if args.TypeToken == "aws:ecr/repository:Repository" {
		out["repositoryUrl"] = resource.NewStringProperty("000000000000.dkr.ecr.mock.amazonaws.com/" + args.Inputs["name"].StringValue())
	}
	// The managed data tier's endpoints, which services' environments and
	// the read-only pooler's pgbouncer.ini are built from.
	host := func(suffix string) resource.PropertyValue {
		return resource.NewStringProperty(args.Name + "." + suffix)
	}
	switch args.TypeToken {
	case "aws:elasticache/replicationGroup:ReplicationGroup":
		out["configurationEndpointAddress"] = host("cache.mock")
	case "aws:rds/instance:Instance":
		out["address"] = host("rds.mock")
	case "aws:rds/proxy:Proxy":
		out["endpoint"] = host("proxy.rds.mock")
	case "aws:msk/cluster:Cluster":
		out["bootstrapBrokersTls"] = resource.NewStringProperty("b-1." + args.Name + ".kafka.mock:9094,b-2." + args.Name + ".kafka.mock:9094,b-3." + args.Name + ".kafka.mock:9094")
	case "aws:msk/configuration:Configuration":
		out["latestRevision"] = resource.NewNumberProperty(1)
	case "random:index/randomPassword:RandomPassword":
		// A recognisable value, never a real credential, of the length asked.
		n := 32
		if l, ok := args.Inputs["length"]; ok && l.IsNumber() {
			n = int(l.NumberValue())
		}
		out["result"] = resource.MakeSecret(resource.NewStringProperty(mockPassword(args.Name, n)))
	}
	return out
}

// mockPassword is n characters made from the resource's name.
func mockPassword(name string, n int) string {
	s := strings.Repeat("mock"+strings.ReplaceAll(name, "-", ""), n/4+1)
	return s[:n]
}

// Call implements pulumi.MockResourceMonitor; the program calls no functions yet.
func (m *Mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

// Resources returns what was registered, sorted by URN so the output is
// the same on every run whatever the registration order.
func (m *Mocks) Resources() []Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.resources)
	slices.SortStableFunc(out, func(a, b Resource) int {
		return cmp.Compare(a.URN, b.URN)
	})
	return out
}

// urn is the URN the engine (and the mock monitor) gives the resource, so
// Parent fields point at other resources of the graph.
func (m *Mocks) urn(r Resource) string {
	parentType := tokens.Type("")
	if p := resource.URN(r.Parent); p != "" && p.QualifiedType() != resource.RootStackType {
		parentType = p.QualifiedType()
	}
	return string(resource.NewURN(tokens.QName(m.stack), tokens.PackageName(stacks.Project), parentType, tokens.Type(r.Type), r.Name))
}

// Plain turns a property map into plain Go values: secrets become
// SecretPlaceholder, unknowns "[unknown]", resource references their URN.
func Plain(pm resource.PropertyMap) map[string]any {
	out := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(pm)) {
		if v := plainValue(pm[k]); v != nil {
			out[string(k)] = v
		}
	}
	return out
}

func plainValue(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return SecretPlaceholder
	case v.IsComputed():
		return "[unknown]"
	case v.IsOutput():
		o := v.OutputValue()
		if o.Secret {
			return SecretPlaceholder
		}
		if !o.Known {
			return "[unknown]"
		}
		return plainValue(o.Element)
	case v.IsResourceReference():
		return string(v.ResourceReferenceValue().URN)
	case v.IsObject():
		return Plain(v.ObjectValue())
	case v.IsArray():
		out := []any{}
		for _, e := range v.ArrayValue() {
			out = append(out, plainValue(e))
		}
		return out
	case v.IsNull():
		return nil
	default:
		return v.V
	}
}

// Kubernetes returns the Kubernetes objects of the graph. A Helm release
// (kubernetes:helm.sh/...) is not one: it is a resource of the Pulumi
// provider whose objects Helm installs, so it has no kind or name to write
// as a manifest; it stays in graph.json.
func (g *Graph) Kubernetes() []Resource {
	var out []Resource
	for _, r := range g.Resources {
		if r.Custom && strings.HasPrefix(r.Type, "kubernetes:") && !strings.HasPrefix(r.Type, "kubernetes:helm.sh/") {
			out = append(out, r)
		}
	}
	return out
}

// ByType returns the resources of one type token.
func (g *Graph) ByType(typ string) []Resource {
	var out []Resource
	for _, r := range g.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Summary counts resources per type, sorted by type.
func (g *Graph) Summary() []TypeCount {
	counts := map[string]int{}
	for _, r := range g.Resources {
		counts[r.Type]++
	}
	var out []TypeCount
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, TypeCount{Type: t, Count: counts[t]})
	}
	return out
}

// TypeCount is one line of the summary.
type TypeCount struct {
	Type  string
	Count int
}
