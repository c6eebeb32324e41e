package cluster

import (
	"encoding/json"
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
	provider  string
}

type recorder struct {
	mu  sync.Mutex
	all []declared
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, declared{args.TypeToken, args.Name, args.Inputs.Mappable(), args.Provider})
	out := args.Inputs.Copy()
	if args.TypeToken == "aws:eks/cluster:Cluster" {
		out["identities"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(resource.PropertyMap{
			"oidcs": resource.NewArrayProperty([]resource.PropertyValue{resource.NewObjectProperty(resource.PropertyMap{
				"issuer": resource.NewStringProperty("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"),
			})}),
		})})
	}
	return args.Name + "-id", out, nil
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

func args() *Args {
	return &Args{
		ClusterName: "scaleplane-prod", Region: "eu-west-1",
		SubnetIDs:        pulumi.ToStringArray([]string{"subnet-a", "subnet-b", "subnet-c"}),
		LogRetentionDays: 90, PublicEndpoint: true, PublicAccessCIDRs: []string{"203.0.113.0/24"},
		System:  NodeGroup{InstanceTypes: []string{"m7i.large"}, CapacityType: OnDemand, Min: 3, Desired: 3, Max: 6, DiskGiB: 50},
		Workers: NodeGroup{InstanceTypes: []string{"m7i.xlarge", "m6i.xlarge", "m7a.xlarge"}, CapacityType: Spot, Min: 3, Desired: 3, Max: 30, DiskGiB: 50},
	}
}

func declare(t *testing.T, a *Args) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		c, err := NewCluster(ctx, "eks", a)
		if err != nil {
			return err
		}
		_, err = NewAutoscaler(ctx, "cluster-autoscaler", &AutoscalerArgs{ClusterName: a.ClusterName, Region: a.Region, RoleARN: c.AutoscalerRoleARN},
			pulumi.Provider(c.Provider))
		return err
	}, pulumi.WithMocks("scaleplane", "test", r))
	return r, err
}

func TestClusterIsPrivateLoggedAndEncrypted(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare the cluster")
	cl := r.ofType("aws:eks/cluster:Cluster")
	require.Len(t, cl, 1, "one EKS cluster")
	in := cl[0].inputs
	assert.Equal(t, KubernetesVersion, in["version"], "pinned version")
	vpc := in["vpcConfig"].(map[string]any)
	assert.Equal(t, true, vpc["endpointPrivateAccess"], "private endpoint on")
	assert.Equal(t, true, vpc["endpointPublicAccess"], "public endpoint on when asked")
	assert.Equal(t, []any{"203.0.113.0/24"}, vpc["publicAccessCidrs"], "public endpoint limited to the listed networks")
	assert.Equal(t, []any{"subnet-a", "subnet-b", "subnet-c"}, vpc["subnetIds"], "control plane in the private subnets")
	assert.Len(t, in["enabledClusterLogTypes"], len(LogTypes), "every control-plane log")
	enc := in["encryptionConfig"].(map[string]any)
	assert.Equal(t, []any{"secrets"}, enc["resources"], "Secrets are envelope-encrypted")
	key := r.ofType("aws:kms/key:Key")
	require.Len(t, key, 1, "a key of its own")
	assert.Equal(t, true, key[0].inputs["enableKeyRotation"], "key rotation")
}

func TestNodeGroupsArePrivateAndSpotOnlyForWorkers(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare")
	groups := map[string]map[string]any{}
	for _, g := range r.ofType("aws:eks/nodeGroup:NodeGroup") {
		groups[g.inputs["nodeGroupName"].(string)] = g.inputs
	}
	require.Len(t, groups, 2, "system and workers")
	assert.Equal(t, OnDemand, groups["system"]["capacityType"], "system pool on-demand")
	assert.Equal(t, Spot, groups["workers"]["capacityType"], "workers may be spot")
	for name, g := range groups {
		assert.Equal(t, []any{"subnet-a", "subnet-b", "subnet-c"}, g["subnetIds"], "%s nodes in the private subnets", name)
	}
}

func TestAutoscalerRoleTrustsOnlyItsServiceAccount(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare")
	var trust string
	for _, role := range r.ofType("aws:iam/role:Role") {
		if role.name == "eks-autoscaler" {
			trust = role.inputs["assumeRolePolicy"].(string)
		}
	}
	require.NotEmpty(t, trust, "autoscaler role declared")
	var doc struct {
		Statement []struct {
			Action    string
			Condition map[string]map[string]string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(trust), &doc), "trust policy is JSON")
	require.Len(t, doc.Statement, 1, "one statement")
	assert.Equal(t, "sts:AssumeRoleWithWebIdentity", doc.Statement[0].Action, "web identity")
	assert.Equal(t, "system:serviceaccount:kube-system:cluster-autoscaler",
		doc.Statement[0].Condition["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub"], "bound to one service account")
	dep := r.ofType("kubernetes:apps/v1:Deployment")
	require.Len(t, dep, 1, "the autoscaler Deployment")
	assert.Contains(t, dep[0].provider, "eks-kubernetes", "declared through the cluster's own Kubernetes provider")
}

func TestInvalidClusterArgsDeclareNothing(t *testing.T) {
	for name, mutate := range map[string]func(*Args){
		"public endpoint open to all": func(a *Args) { a.PublicEndpoint, a.PublicAccessCIDRs = true, []string{"0.0.0.0/0"} },
		"spot with one instance type": func(a *Args) { a.Workers.InstanceTypes = a.Workers.InstanceTypes[:1] },
		"spot system pool":            func(a *Args) { a.System.CapacityType, a.System.InstanceTypes = Spot, []string{"a", "b"} },
		"desired above max":           func(a *Args) { a.Workers.Desired = 100 },
		"bad region":                  func(a *Args) { a.Region = "mars" },
		"no one can reach the API":    func(a *Args) { a.PublicEndpoint, a.PublicAccessCIDRs = false, nil },
		"runner network is the world": func(a *Args) { a.PrivateRunnerCIDRs = []string{"0.0.0.0/0"} },
	} {
		a := args()
		mutate(a)
		r, err := declare(t, a)
		assert.Error(t, err, "%s is refused", name)
		assert.Empty(t, r.all, "%s: nothing declared", name)
	}
}

func TestVolumesWorkOutOfTheBox(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare")
	addons := r.ofType("aws:eks/addon:Addon")
	require.Len(t, addons, 1, "the EBS CSI driver add-on")
	assert.Equal(t, "aws-ebs-csi-driver", addons[0].inputs["addonName"], "EBS CSI")
	var trust string
	for _, role := range r.ofType("aws:iam/role:Role") {
		if role.name == "eks-ebs-csi" {
			trust = role.inputs["assumeRolePolicy"].(string)
		}
	}
	assert.Contains(t, trust, "system:serviceaccount:kube-system:"+EBSCSIServiceAccount, "the driver's IAM role trusts only its controller's service account")
	sc := r.ofType("kubernetes:storage.k8s.io/v1:StorageClass")
	require.Len(t, sc, 1, "one StorageClass")
	assert.Equal(t, "true", sc[0].inputs["parameters"].(map[string]any)["encrypted"], "volumes are encrypted")
	assert.Equal(t, "WaitForFirstConsumer", sc[0].inputs["volumeBindingMode"], "volumes follow the pod's zone")
	assert.Contains(t, sc[0].provider, "eks-kubernetes", "declared in this cluster")
}

func TestPrivateRunnerNetworkReachesThePrivateEndpoint(t *testing.T) {
	a := args()
	a.PublicEndpoint, a.PublicAccessCIDRs, a.PrivateRunnerCIDRs = false, nil, []string{"10.20.0.0/24"}
	r, err := declare(t, a)
	require.NoError(t, err, "declare")
	vpc := r.ofType("aws:eks/cluster:Cluster")[0].inputs["vpcConfig"].(map[string]any)
	assert.Equal(t, false, vpc["endpointPublicAccess"], "public endpoint off")
	assert.Equal(t, true, vpc["endpointPrivateAccess"], "private endpoint on")
	rules := r.ofType("aws:ec2/securityGroupRule:SecurityGroupRule")
	require.Len(t, rules, 1, "one rule per runner network")
	in := rules[0].inputs
	assert.Equal(t, "ingress", in["type"], "ingress")
	assert.EqualValues(t, 443, in["fromPort"], "the API port")
	assert.EqualValues(t, 443, in["toPort"], "the API port only")
	assert.Equal(t, []any{"10.20.0.0/24"}, in["cidrBlocks"], "from the runner network")
}
