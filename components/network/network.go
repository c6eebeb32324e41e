// Package network declares the AWS network a cluster and its data tier live
// in: one VPC across (usually three) availability zones, a public and a
// private subnet in each, NAT for the private ones (one per zone, so losing
// a zone never cuts the others off the internet, or a single one to save
// money outside prod), VPC flow logs, and a default security group that
// admits nothing. Workloads and data stores go in the private subnets only;
// the public ones hold load balancers and NAT gateways.
package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:network:Network"

// NATMode says how many NAT gateways the private subnets share.
type NATMode string

// The NAT modes.
const (
	// NATPerZone gives each zone its own NAT gateway (prod): a zone outage
	// or a NAT failure only affects that zone.
	NATPerZone NATMode = "per-zone"
	// NATSingle shares one NAT gateway (staging): a third of the cost, and
	// cross-zone traffic to it, accepted outside prod.
	NATSingle NATMode = "single"
)

// Args configure the network.
type Args struct {
	// CIDR is the VPC's block, a /16 to /20: three quarters become the
	// private subnets, the last quarter holds the small public ones.
	CIDR string
	// Zones are the availability zones, in order (two at least, three for prod).
	Zones []string
	NAT   NATMode
	// FlowLogRetentionDays keeps flow logs in CloudWatch this long.
	FlowLogRetentionDays int
	// ClusterName tags the subnets so the EKS load balancer controller and
	// Karpenter/Cluster Autoscaler find them.
	ClusterName string
	// Tags go on every resource.
	Tags map[string]string
}

// Network is the declared network.
type Network struct {
	pulumi.ResourceState

	// VpcID is the VPC's id.
	VpcID pulumi.StringOutput `pulumi:"vpcId"`
	// CIDR is the VPC's block (for security group rules).
	CIDR pulumi.StringOutput `pulumi:"cidr"`
	// PrivateSubnetIDs are the workload and data subnets, one per zone, in Zones order.
	PrivateSubnetIDs pulumi.StringArrayOutput `pulumi:"privateSubnetIds"`
	// PublicSubnetIDs are the load balancer subnets, one per zone.
	PublicSubnetIDs pulumi.StringArrayOutput `pulumi:"publicSubnetIds"`
	// NATGatewayCount is how many NAT gateways were declared.
	NATGatewayCount pulumi.IntOutput `pulumi:"natGatewayCount"`
}

var (
	zoneName    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d[a-z]$`)
	clusterName = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,99}$`)
)

// Validate reports every problem of the arguments.
func (a *Args) Validate() error {
	var errs []error
	prefix, err := netip.ParsePrefix(a.CIDR)
	switch {
	case err != nil || !prefix.Addr().Is4() || prefix.Masked() != prefix:
		errs = append(errs, fmt.Errorf("cidr %q: must be an IPv4 network such as 10.0.0.0/16", a.CIDR))
	case prefix.Bits() < 16 || prefix.Bits() > 20:
		errs = append(errs, fmt.Errorf("cidr %q: the prefix must be /16 to /20 (AWS allows /16 at most; /20 leaves /26 public subnets)", a.CIDR))
	}
	if len(a.Zones) < 2 || len(a.Zones) > 3 {
		errs = append(errs, fmt.Errorf("zones %v: give 2 or 3 availability zones", a.Zones))
	}
	seen := map[string]bool{}
	for _, z := range a.Zones {
		if !zoneName.MatchString(z) || seen[z] {
			errs = append(errs, fmt.Errorf("zone %q: must be a distinct availability zone name such as us-east-1a", z))
		}
		seen[z] = true
	}
	if a.NAT != NATPerZone && a.NAT != NATSingle {
		errs = append(errs, fmt.Errorf("nat %q: must be %s or %s", a.NAT, NATPerZone, NATSingle))
	}
	switch a.FlowLogRetentionDays {
	case 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653:
	default:
		errs = append(errs, fmt.Errorf("flowLogRetentionDays %d: must be a CloudWatch retention (1, 3, 5, 7, 14, 30, 60, 90, 180, 365...)", a.FlowLogRetentionDays))
	}
	if !clusterName.MatchString(a.ClusterName) {
		errs = append(errs, fmt.Errorf("clusterName %q: must start with a letter and hold letters, digits and dashes", a.ClusterName))
	}
	return errors.Join(errs...)
}

// SubnetCIDRs splits the VPC block: private subnet i is the i-th quarter,
// public subnet i the i-th sixteenth of the last quarter. Private subnets
// are large because every pod takes a VPC address (the AWS VPC CNI).
func SubnetCIDRs(vpc string, zones int) (private, public []string, err error) {
	p, err := netip.ParsePrefix(vpc)
	if err != nil {
		return nil, nil, err
	}
	quarter := func(base netip.Prefix, extraBits, i int) netip.Prefix {
		bits := base.Bits() + extraBits
		a := base.Addr().As4()
		n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		n += uint32(i) << (32 - bits)
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), bits)
	}
	last := quarter(p, 2, 3)
	for i := range zones {
		private = append(private, quarter(p, 2, i).String())
		public = append(public, quarter(last, 4, i).String())
	}
	return private, public, nil
}

// NewNetwork validates args and declares the VPC, its subnets, gateways,
// route tables, flow logs and the locked default security group.
func NewNetwork(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Network, error) {
	if args == nil {
		return nil, fmt.Errorf("network %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	n := &Network{}
	if err := ctx.RegisterComponentResource(TypeToken, name, n, opts...); err != nil {
		return nil, fmt.Errorf("network %s: register: %w", name, err)
	}
	child, err := children.Options(n, opts)
	if err != nil {
		return nil, fmt.Errorf("network %s: options: %w", name, err)
	}
	tags := func(extra map[string]string) pulumi.StringMap {
		t := maps.Clone(args.Tags)
		if t == nil {
			t = map[string]string{}
		}
		maps.Copy(t, extra)
		return pulumi.ToStringMap(t)
	}
	privateCIDRs, publicCIDRs, _ := SubnetCIDRs(args.CIDR, len(args.Zones))

	vpc, err := ec2.NewVpc(ctx, name+"-vpc", &ec2.VpcArgs{
		CidrBlock: pulumi.String(args.CIDR),
		// Both are needed for EKS (node registration, private endpoint DNS).
		EnableDnsHostnames: pulumi.Bool(true),
		EnableDnsSupport:   pulumi.Bool(true),
		Tags:               tags(map[string]string{"Name": name}),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("network %s: vpc: %w", name, err)
	}
	if _, err := ec2.NewDefaultSecurityGroup(ctx, name+"-default-sg", &ec2.DefaultSecurityGroupArgs{
		// No ingress and no egress rules: nothing may use the default group by accident.
		VpcId: vpc.ID(),
		Tags:  tags(map[string]string{"Name": name + "-default-deny"}),
	}, child); err != nil {
		return nil, fmt.Errorf("network %s: default security group: %w", name, err)
	}
	igw, err := ec2.NewInternetGateway(ctx, name+"-igw", &ec2.InternetGatewayArgs{
		VpcId: vpc.ID(), Tags: tags(map[string]string{"Name": name}),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("network %s: internet gateway: %w", name, err)
	}
	publicRT, err := ec2.NewRouteTable(ctx, name+"-public-rt", &ec2.RouteTableArgs{
		VpcId: vpc.ID(),
		Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{
			CidrBlock: pulumi.String("0.0.0.0/0"), GatewayId: igw.ID(),
		}},
		Tags: tags(map[string]string{"Name": name + "-public"}),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("network %s: public route table: %w", name, err)
	}

	var public, private pulumi.StringArray
	var nats []*ec2.NatGateway
	for i, zone := range args.Zones {
		suffix := zone[len(zone)-1:]
		pub, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-public-%s", name, suffix), &ec2.SubnetArgs{
			VpcId: vpc.ID(), CidrBlock: pulumi.String(publicCIDRs[i]), AvailabilityZone: pulumi.String(zone),
			// Nothing launched here gets a public address by default: only
			// load balancers and NAT gateways (with their own EIPs) live here.
			MapPublicIpOnLaunch: pulumi.Bool(false),
			Tags: tags(map[string]string{
				"Name":                   fmt.Sprintf("%s-public-%s", name, zone),
				"scaleplane.dev/tier":    "public",
				"kubernetes.io/role/elb": "1",
				"kubernetes.io/cluster/" + args.ClusterName: "shared",
			}),
		}, child)
		if err != nil {
			return nil, fmt.Errorf("network %s: public subnet %s: %w", name, zone, err)
		}
		public = append(public, pub.ID().ToStringOutput())
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-public-%s", name, suffix), &ec2.RouteTableAssociationArgs{
			SubnetId: pub.ID(), RouteTableId: publicRT.ID(),
		}, child); err != nil {
			return nil, fmt.Errorf("network %s: public route %s: %w", name, zone, err)
		}
		if args.NAT == NATPerZone || i == 0 {
			eip, err := ec2.NewEip(ctx, fmt.Sprintf("%s-nat-%s", name, suffix), &ec2.EipArgs{
				Domain: pulumi.String("vpc"), Tags: tags(map[string]string{"Name": fmt.Sprintf("%s-nat-%s", name, zone)}),
			}, child)
			if err != nil {
				return nil, fmt.Errorf("network %s: nat address %s: %w", name, zone, err)
			}
			nat, err := ec2.NewNatGateway(ctx, fmt.Sprintf("%s-nat-%s", name, suffix), &ec2.NatGatewayArgs{
				AllocationId: eip.ID(), SubnetId: pub.ID(),
				Tags: tags(map[string]string{"Name": fmt.Sprintf("%s-nat-%s", name, zone)}),
			}, child, pulumi.DependsOn([]pulumi.Resource{igw}))
			if err != nil {
				return nil, fmt.Errorf("network %s: nat gateway %s: %w", name, zone, err)
			}
			nats = append(nats, nat)
		}
	}
	for i, zone := range args.Zones {
		suffix := zone[len(zone)-1:]
		priv, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-private-%s", name, suffix), &ec2.SubnetArgs{
			VpcId: vpc.ID(), CidrBlock: pulumi.String(privateCIDRs[i]), AvailabilityZone: pulumi.String(zone),
			MapPublicIpOnLaunch: pulumi.Bool(false),
			Tags: tags(map[string]string{
				"Name":                            fmt.Sprintf("%s-private-%s", name, zone),
				"scaleplane.dev/tier":             "private",
				"kubernetes.io/role/internal-elb": "1",
				"kubernetes.io/cluster/" + args.ClusterName: "shared",
				"karpenter.sh/discovery":                    args.ClusterName,
			}),
		}, child)
		if err != nil {
			return nil, fmt.Errorf("network %s: private subnet %s: %w", name, zone, err)
		}
		private = append(private, priv.ID().ToStringOutput())
		nat := nats[0]
		if args.NAT == NATPerZone {
			nat = nats[i]
		}
		rt, err := ec2.NewRouteTable(ctx, fmt.Sprintf("%s-private-%s", name, suffix), &ec2.RouteTableArgs{
			VpcId: vpc.ID(),
			Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{
				CidrBlock: pulumi.String("0.0.0.0/0"), NatGatewayId: nat.ID(),
			}},
			Tags: tags(map[string]string{"Name": fmt.Sprintf("%s-private-%s", name, zone)}),
		}, child)
		if err != nil {
			return nil, fmt.Errorf("network %s: private route table %s: %w", name, zone, err)
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-private-%s", name, suffix), &ec2.RouteTableAssociationArgs{
			SubnetId: priv.ID(), RouteTableId: rt.ID(),
		}, child); err != nil {
			return nil, fmt.Errorf("network %s: private route %s: %w", name, zone, err)
		}
	}

	if err := flowLogs(ctx, name, args, vpc, tags, child); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}

	n.VpcID = vpc.ID().ToStringOutput()
	n.CIDR = vpc.CidrBlock
	n.PrivateSubnetIDs = private.ToStringArrayOutput()
	n.PublicSubnetIDs = public.ToStringArrayOutput()
	n.NATGatewayCount = pulumi.Int(len(nats)).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(n, pulumi.Map{
		"vpcId": n.VpcID, "cidr": n.CIDR, "privateSubnetIds": n.PrivateSubnetIDs,
		"publicSubnetIds": n.PublicSubnetIDs, "natGatewayCount": n.NATGatewayCount,
	}); err != nil {
		return nil, fmt.Errorf("network %s: outputs: %w", name, err)
	}
	return n, nil
}

// flowLogs records every accepted and rejected flow of the VPC into a
// CloudWatch log group, through a role only the flow-logs service may assume.
func flowLogs(ctx *pulumi.Context, name string, args *Args, vpc *ec2.Vpc, tags func(map[string]string) pulumi.StringMap, child pulumi.ResourceOption) error {
	group, err := cloudwatch.NewLogGroup(ctx, name+"-flow-logs", &cloudwatch.LogGroupArgs{
		Name:            pulumi.Sprintf("/scaleplane/%s/vpc-flow-logs", name),
		RetentionInDays: pulumi.Int(args.FlowLogRetentionDays),
		Tags:            tags(nil),
	}, child)
	if err != nil {
		return fmt.Errorf("flow log group: %w", err)
	}
	trust, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect": "Allow", "Action": "sts:AssumeRole",
			"Principal": map[string]any{"Service": "vpc-flow-logs.amazonaws.com"},
		}},
	})
	role, err := iam.NewRole(ctx, name+"-flow-logs", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(string(trust)), Tags: tags(nil),
	}, child)
	if err != nil {
		return fmt.Errorf("flow log role: %w", err)
	}
	policy := group.Arn.ApplyT(func(arn string) (string, error) {
		b, err := json.Marshal(map[string]any{
			"Version": "2012-10-17",
			"Statement": []any{map[string]any{
				"Effect":   "Allow",
				"Action":   []string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
				"Resource": []string{arn, arn + ":*"},
			}},
		})
		return string(b), err
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(ctx, name+"-flow-logs", &iam.RolePolicyArgs{Role: role.ID(), Policy: policy}, child); err != nil {
		return fmt.Errorf("flow log policy: %w", err)
	}
	if _, err := ec2.NewFlowLog(ctx, name+"-flow-logs", &ec2.FlowLogArgs{
		VpcId: vpc.ID(), TrafficType: pulumi.String("ALL"),
		LogDestinationType: pulumi.String("cloud-watch-logs"), LogDestination: group.Arn,
		IamRoleArn: role.Arn, MaxAggregationInterval: pulumi.Int(60),
		Tags: tags(map[string]string{"Name": name}),
	}, child); err != nil {
		return fmt.Errorf("flow log: %w", err)
	}
	return nil
}
