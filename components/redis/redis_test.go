package redis

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testPassword = pulumi.String("s3cret-for-tests")

// mocks records what a component registers; outputs echo the inputs plus
// the computed ones a real provider would return.
type mocks struct {
	mu  sync.Mutex
	res []pulumi.MockResourceArgs
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.res = append(m.res, args)
	m.mu.Unlock()
	out := args.Inputs.Copy()
	switch args.TypeToken {
	case "aws:elasticache/replicationGroup:ReplicationGroup":
		out["configurationEndpointAddress"] = resource.NewStringProperty("clustercfg." + args.Name + ".cache.amazonaws.com")
	case "aws:kms/key:Key":
		out["arn"] = resource.NewStringProperty("arn:aws:kms:eu-west-1:123456789012:key/" + args.Name)
	}
	return args.Name + "-id", out, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (m *mocks) byType(typ string) []pulumi.MockResourceArgs {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pulumi.MockResourceArgs
	for _, r := range m.res {
		if r.TypeToken == typ {
			out = append(out, r)
		}
	}
	return out
}

// declare runs NewRedis under mocks and returns what was registered and the addrs output.
func declare(t *testing.T, a Args) (*mocks, string) {
	t.Helper()
	m := &mocks{}
	addrs := make(chan string, 1)
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		r, err := NewRedis(ctx, "redis", &a)
		if err != nil {
			return err
		}
		r.Addrs.ApplyT(func(s string) string { addrs <- s; return s })
		return nil
	}, pulumi.WithMocks("scaleplane", "test", m))
	require.NoError(t, err, "declare redis")
	return m, <-addrs
}

func TestInClusterDeclaresAFormedClusterBehindTheRestrictedProfile(t *testing.T) {
	a := testArgs()
	a.Password = testPassword
	a.AllowFrom = []string{"gateway"}
	m, addrs := declare(t, a)
	assert.Equal(t, "redis.ns.svc.cluster.local:6379", addrs, "services seed from the client Service")

	sts := m.byType("kubernetes:apps/v1:StatefulSet")
	require.Len(t, sts, 1, "one StatefulSet")
	spec := sts[0].Inputs["spec"].ObjectValue()
	assert.Equal(t, 6.0, spec["replicas"].NumberValue(), "3 shards x (1 master + 1 replica)")
	pod := spec["template"].ObjectValue()["spec"].ObjectValue()
	assert.True(t, pod["securityContext"].ObjectValue()["runAsNonRoot"].BoolValue(), "pods run as non-root")
	c := pod["containers"].ArrayValue()[0].ObjectValue()
	sc := c["securityContext"].ObjectValue()
	assert.True(t, sc["readOnlyRootFilesystem"].BoolValue(), "read-only root filesystem")
	assert.False(t, sc["allowPrivilegeEscalation"].BoolValue(), "no privilege escalation")
	assert.Equal(t, "ALL", sc["capabilities"].ObjectValue()["drop"].ArrayValue()[0].StringValue(), "every capability dropped")
	assert.Equal(t, "RuntimeDefault", sc["seccompProfile"].ObjectValue()["type"].StringValue(), "seccomp RuntimeDefault")
	for _, p := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		assert.True(t, c[resource.PropertyKey(p)].IsObject(), "container has a %s", p)
	}
	assert.True(t, pod["affinity"].ObjectValue()["podAntiAffinity"].IsObject(), "pods avoid sharing a node")
	var command []string
	for _, v := range c["command"].ArrayValue() {
		command = append(command, v.StringValue())
	}
	require.Len(t, command, 4, "sh -c, the line, $0")
	assert.Contains(t, command[2], "sh "+configDir+"/"+RejoinScriptName+" ", "the rejoin script starts beside the server")
	assert.Contains(t, command[2], "redis-5.redis-headless.ns.svc.cluster.local:6379", "the rejoin meets every node by its stable name")
	assert.True(t, strings.HasSuffix(command[2], `& exec redis-server "$@"`), "the shell becomes redis-server, with the args below")
	assert.NotContains(t, strings.Join(command, " "), "s3cret", "the password is never in the command")
	args := c["args"].ArrayValue()
	var argv []string
	for _, v := range args {
		argv = append(argv, v.StringValue())
	}
	assert.Contains(t, argv, "$(REDIS_PASSWORD)", "the password comes from the Secret by env expansion")
	assert.NotContains(t, strings.Join(argv, " "), "s3cret", "the password is never in the pod spec")

	secrets := m.byType("kubernetes:core/v1:Secret")
	require.Len(t, secrets, 1, "one Secret")
	assert.Equal(t, "redis-auth", secrets[0].Inputs["metadata"].ObjectValue()["name"].StringValue(), "services read redis-auth")
	assert.True(t, secrets[0].Inputs["stringData"].ContainsSecrets(), "the password is a Pulumi secret")

	assert.Len(t, m.byType("kubernetes:policy/v1:PodDisruptionBudget"), 1, "a PDB")
	assert.Len(t, m.byType("kubernetes:networking.k8s.io/v1:NetworkPolicy"), 1, "a NetworkPolicy")
	jobs := m.byType("kubernetes:batch/v1:Job")
	require.Len(t, jobs, 1, "one cluster-init Job")
	jc := jobs[0].Inputs["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()
	cmd := jc["command"].ArrayValue()
	assert.Len(t, cmd, 2+6, "the Job names every node")
	assert.Equal(t, "redis-5.redis-headless.ns.svc.cluster.local:6379", cmd[len(cmd)-1].StringValue(), "nodes by their stable DNS names")
	for _, r := range m.res {
		if r.Custom && strings.HasPrefix(r.TypeToken, "kubernetes:") {
			assert.True(t, strings.HasPrefix(r.Name, "redis-"), "%s is named after the component", r.Name)
			assert.NotEmpty(t, r.Inputs["metadata"].ObjectValue()["name"].StringValue(), "%s has an explicit metadata.name", r.Name)
		}
	}
}

func TestAWSIsEncryptedMultiAZAndPrivate(t *testing.T) {
	a := testArgs()
	a.Flavour = FlavourAWS
	a.Password = testPassword
	a.AWS = AWSArgs{
		VpcID:                  pulumi.String("vpc-1"),
		SubnetIDs:              pulumi.ToStringArray([]string{"subnet-a", "subnet-b", "subnet-c"}),
		AllowedSecurityGroupID: pulumi.String("sg-nodes"),
	}
	m, addrs := declare(t, a)
	assert.Equal(t, "clustercfg.redis-replication-group.cache.amazonaws.com:6379", addrs, "services seed from the configuration endpoint")
	rgs := m.byType("aws:elasticache/replicationGroup:ReplicationGroup")
	require.Len(t, rgs, 1, "one replication group")
	in := rgs[0].Inputs
	for _, k := range []string{"atRestEncryptionEnabled", "transitEncryptionEnabled", "automaticFailoverEnabled", "multiAzEnabled"} {
		assert.True(t, in[resource.PropertyKey(k)].BoolValue(), "%s must be on", k)
	}
	assert.Equal(t, "enabled", in["clusterMode"].StringValue(), "cluster mode")
	assert.Equal(t, 3.0, in["numNodeGroups"].NumberValue(), "three shards")
	assert.True(t, in["authToken"].ContainsSecrets(), "the auth token is a secret")
	sgs := m.byType("aws:ec2/securityGroup:SecurityGroup")
	require.Len(t, sgs, 1, "one security group")
	ing := sgs[0].Inputs["ingress"].ArrayValue()
	require.Len(t, ing, 1, "one ingress rule")
	rule := ing[0].ObjectValue()
	assert.False(t, rule["cidrBlocks"].IsArray() && len(rule["cidrBlocks"].ArrayValue()) > 0, "no CIDR is admitted, only the node group")
	assert.Equal(t, "sg-nodes", rule["securityGroups"].ArrayValue()[0].StringValue(), "only the nodes' security group")
	assert.Len(t, m.byType("kubernetes:core/v1:Secret"), 1, "services read redis-auth in aws too")
	assert.Empty(t, m.byType("kubernetes:apps/v1:StatefulSet"), "no in-cluster Redis in aws")
	assert.True(t, slices.ContainsFunc(m.byType("aws:kms/key:Key"), func(r pulumi.MockResourceArgs) bool {
		return r.Inputs["enableKeyRotation"].BoolValue()
	}), "the at-rest key rotates")
}
