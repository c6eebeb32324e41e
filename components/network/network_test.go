package network

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type declared struct {
	typ, name string
	inputs    map[string]any
}

type recorder struct {
	mu  sync.Mutex
	all []declared
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, declared{args.TypeToken, args.Name, args.Inputs.Mappable()})
	return args.Name + "-id", args.Inputs, nil
}

func (r *recorder) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (r *recorder) ofType(typ string) []declared {
	var out []declared
	for _, d := range r.all {
		if d.typ == typ {
			out = append(out, d)
		}
	}
	return out
}

func args(nat NATMode) *Args {
	return &Args{CIDR: "10.20.0.0/16", Zones: []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}, NAT: nat,
		FlowLogRetentionDays: 90, ClusterName: "scaleplane-prod", Tags: map[string]string{"env": "prod"}}
}

func declare(t *testing.T, a *Args) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewNetwork(ctx, "net", a)
		return err
	}, pulumi.WithMocks("scaleplane", "test", r))
	return r, err
}

func TestNATPerZoneInProdAndOneInStaging(t *testing.T) {
	for mode, want := range map[NATMode]int{NATPerZone: 3, NATSingle: 1} {
		r, err := declare(t, args(mode))
		require.NoError(t, err, "declare %s network", mode)
		assert.Len(t, r.ofType("aws:ec2/natGateway:NatGateway"), want, "%s NAT gateways", mode)
		assert.Len(t, r.ofType("aws:ec2/eip:Eip"), want, "%s NAT addresses", mode)
		natIDs := map[any]bool{}
		for _, rt := range r.ofType("aws:ec2/routeTable:RouteTable") {
			routes, _ := rt.inputs["routes"].([]any)
			require.Len(t, routes, 1, "%s: one default route per table", rt.name)
			if nat := routes[0].(map[string]any)["natGatewayId"]; nat != nil {
				natIDs[nat] = true
			}
		}
		assert.Len(t, natIDs, want, "%s: private route tables use %d distinct NAT gateways", mode, want)
	}
}

func TestSubnetsArePrivateByDefaultAndTagged(t *testing.T) {
	r, err := declare(t, args(NATPerZone))
	require.NoError(t, err, "declare")
	subnets := r.ofType("aws:ec2/subnet:Subnet")
	require.Len(t, subnets, 6, "a public and a private subnet per zone")
	vpc := netip.MustParsePrefix("10.20.0.0/16")
	var prefixes []netip.Prefix
	tiers := map[string]int{}
	for _, s := range subnets {
		assert.Equal(t, false, s.inputs["mapPublicIpOnLaunch"], "%s gives no public addresses", s.name)
		tags := s.inputs["tags"].(map[string]any)
		tiers[tags["scaleplane.dev/tier"].(string)]++
		assert.Equal(t, "shared", tags["kubernetes.io/cluster/scaleplane-prod"], "%s tagged for the cluster", s.name)
		p := netip.MustParsePrefix(s.inputs["cidrBlock"].(string))
		assert.True(t, vpc.Contains(p.Addr()) && p.Bits() > vpc.Bits(), "%s inside the VPC", s.name)
		for _, q := range prefixes {
			assert.False(t, p.Overlaps(q), "%s overlaps %s", p, q)
		}
		prefixes = append(prefixes, p)
	}
	assert.Equal(t, map[string]int{"public": 3, "private": 3}, tiers, "three of each tier")
	flow := r.ofType("aws:ec2/flowLog:FlowLog")
	require.Len(t, flow, 1, "one VPC flow log")
	assert.Equal(t, "ALL", flow[0].inputs["trafficType"], "accepted and rejected flows")
	sg := r.ofType("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
	require.Len(t, sg, 1, "default security group managed")
	assert.Nil(t, sg[0].inputs["ingress"], "default group admits nothing")
}

func TestSubnetCIDRs(t *testing.T) {
	priv, pub, err := SubnetCIDRs("10.0.0.0/16", 3)
	require.NoError(t, err, "split")
	assert.Equal(t, []string{"10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"}, priv, "private quarters")
	assert.Equal(t, []string{"10.0.192.0/22", "10.0.196.0/22", "10.0.200.0/22"}, pub, "public sixteenths of the last quarter")
}

func TestInvalidArgsDeclareNothing(t *testing.T) {
	for name, mutate := range map[string]func(*Args){
		"public cidr too large": func(a *Args) { a.CIDR = "10.0.0.0/8" },
		"one zone":              func(a *Args) { a.Zones = a.Zones[:1] },
		"duplicate zone":        func(a *Args) { a.Zones[1] = a.Zones[0] },
		"unknown nat":           func(a *Args) { a.NAT = "none" },
		"odd retention":         func(a *Args) { a.FlowLogRetentionDays = 10 },
	} {
		a := args(NATSingle)
		mutate(a)
		r, err := declare(t, a)
		assert.Error(t, err, "%s is refused", name)
		assert.Empty(t, r.all, "%s: nothing declared", name)
	}
}
