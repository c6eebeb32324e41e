package kafka

import (
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

func testArgs() Args {
	return Args{
		Flavour:     FlavourInCluster,
		Namespace:   "ns",
		TopicsImage: "scaleplane.local/topics:dev",
		Topics: []topics.Topic{
			{Name: "registrations", Partitions: 6, ReplicationFactor: 3, RetentionMs: 604800000},
			{Name: "registrations.dlq", Partitions: 1, ReplicationFactor: 3},
		},
		AllowFrom: []string{"gateway", "worker"},
		Resources: kube.Resources{
			CPURequest: k8sresource.MustParse("250m"), MemoryRequest: k8sresource.MustParse("1Gi"), MemoryLimit: k8sresource.MustParse("1Gi"),
		},
		Storage: k8sresource.MustParse("10Gi"),
	}
}

func TestRenderPropertiesSetsTheDurabilityRules(t *testing.T) {
	a := testArgs()
	props := RenderProperties(Node{Name: "kafka", Namespace: "ns", Nodes: 3}, a.Settings())
	for _, want := range []string{
		"default.replication.factor=3", "min.insync.replicas=2", "unclean.leader.election.enable=false",
		"auto.create.topics.enable=false", "process.roles=broker,controller",
		"controller.quorum.voters=0@kafka-0.kafka-headless.ns.svc.cluster.local:9093,1@kafka-1.kafka-headless.ns.svc.cluster.local:9093,2@kafka-2.kafka-headless.ns.svc.cluster.local:9093",
	} {
		assert.Contains(t, props, want+"\n", "server.properties must contain %q", want)
	}
	one := testArgs()
	one.Nodes = 1
	assert.Equal(t, 1, one.ReplicationFactor(), "one local node holds one copy")
	assert.Equal(t, 1, one.MinInSyncReplicas(), "and acknowledges alone")
	assert.Contains(t, RenderStartScript(Node{Name: "kafka", Namespace: "ns", Nodes: 3}), "--ignore-formatted", "restarts keep the formatted storage")
	assert.Equal(t, "apache/kafka:"+toolchain.KafkaVersion, DefaultImage, "the image runs the release the tests prove")
	assert.Equal(t, ClusterID("ns", "kafka"), ClusterID("ns", "kafka"), "the cluster id is stable across runs")
	assert.Len(t, ClusterID("ns", "kafka"), 22, "a cluster id is 16 bytes in unpadded base64")
}

func TestValidateNamesTheProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"two nodes":       {func(a *Args) { a.Nodes = 2 }, "nodes 2"},
		"rf above nodes":  {func(a *Args) { a.Nodes = 1 }, `topic "registrations": replicationFactor 3: more than the 1 brokers`},
		"no partitions":   {func(a *Args) { a.Topics[1].Partitions = 0 }, "partitions 0"},
		"latest job":      {func(a *Args) { a.TopicsImage = "topics:latest" }, "topicsImage"},
		"aws four nodes":  {func(a *Args) { a.Flavour = FlavourAWS; a.Nodes = 4 }, "nodes 4: MSK"},
		"duplicate topic": {func(a *Args) { a.Topics[1].Name = "registrations" }, "declared twice"},
	} {
		t.Run(name, func(t *testing.T) {
			a := testArgs()
			tc.mutate(&a)
			err := a.Validate("kafka")
			if assert.Error(t, err, "args must be refused") {
				assert.Contains(t, err.Error(), tc.want, "the error names the problem")
			}
		})
	}
}

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
	case "aws:msk/cluster:Cluster":
		out["bootstrapBrokersTls"] = resource.NewStringProperty("b-1.msk:9094,b-2.msk:9094,b-3.msk:9094")
	case "aws:msk/configuration:Configuration":
		out["arn"] = resource.NewStringProperty("arn:aws:kafka:configuration/" + args.Name)
		out["latestRevision"] = resource.NewNumberProperty(1)
	case "aws:kms/key:Key":
		out["arn"] = resource.NewStringProperty("arn:aws:kms:key/" + args.Name)
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

func declare(t *testing.T, a Args) (*mocks, string) {
	t.Helper()
	m := &mocks{}
	got := make(chan string, 1)
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		k, err := NewKafka(ctx, "kafka", &a)
		if err != nil {
			return err
		}
		k.Brokers.ApplyT(func(s string) string { got <- s; return s })
		return nil
	}, pulumi.WithMocks("scaleplane", "test", m))
	require.NoError(t, err, "declare kafka")
	return m, <-got
}

func TestInClusterDeclaresAQuorumAndTheTopicsJob(t *testing.T) {
	m, brokers := declare(t, testArgs())
	assert.Equal(t, 3, len(strings.Split(brokers, ",")), "every node is a bootstrap address")
	sts := m.byType("kubernetes:apps/v1:StatefulSet")
	require.Len(t, sts, 1, "one StatefulSet")
	spec := sts[0].Inputs["spec"].ObjectValue()
	assert.Equal(t, 3.0, spec["replicas"].NumberValue(), "three combined nodes")
	c := spec["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()
	sc := c["securityContext"].ObjectValue()
	assert.True(t, sc["readOnlyRootFilesystem"].BoolValue(), "read-only root")
	assert.True(t, sc["runAsNonRoot"].BoolValue(), "non-root")
	assert.Len(t, m.byType("kubernetes:policy/v1:PodDisruptionBudget"), 1, "a PDB")
	jobs := m.byType("kubernetes:batch/v1:Job")
	require.Len(t, jobs, 1, "one topics Job")
	var topicsJSON string
	for _, cm := range m.byType("kubernetes:core/v1:ConfigMap") {
		if v, ok := cm.Inputs["data"].ObjectValue()[TopicsFile]; ok {
			topicsJSON = v.StringValue()
		}
	}
	declared, err := topics.Parse([]byte(topicsJSON))
	require.NoError(t, err, "topics.json parses")
	assert.Equal(t, testArgs().Topics, declared, "topics.json holds the declared topics")
}

func TestAWSIsEncryptedAcrossThreeZones(t *testing.T) {
	a := testArgs()
	a.Flavour = FlavourAWS
	a.AWS = AWSArgs{VpcID: pulumi.String("vpc-1"), SubnetIDs: pulumi.ToStringArray([]string{"a", "b", "c"}), AllowedSecurityGroupID: pulumi.String("sg-nodes")}
	m, brokers := declare(t, a)
	assert.Equal(t, "b-1.msk:9094,b-2.msk:9094,b-3.msk:9094", brokers, "services bootstrap over TLS")
	cl := m.byType("aws:msk/cluster:Cluster")
	require.Len(t, cl, 1, "one MSK cluster")
	enc := cl[0].Inputs["encryptionInfo"].ObjectValue()
	transit := enc["encryptionInTransit"].ObjectValue()
	assert.Equal(t, "TLS", transit["clientBroker"].StringValue(), "client-broker TLS only")
	assert.True(t, transit["inCluster"].BoolValue(), "in-cluster encryption")
	assert.True(t, enc["encryptionAtRestKmsKeyArn"].IsString(), "a KMS key at rest")
	assert.Equal(t, 3.0, cl[0].Inputs["numberOfBrokerNodes"].NumberValue(), "three brokers")
	assert.Equal(t, "PER_TOPIC_PER_BROKER", cl[0].Inputs["enhancedMonitoring"].StringValue(), "enhanced monitoring")
	cfg := m.byType("aws:msk/configuration:Configuration")
	require.Len(t, cfg, 1, "one configuration")
	assert.Contains(t, cfg[0].Inputs["serverProperties"].StringValue(), "min.insync.replicas=2", "MSK gets the same settings")
	assert.Len(t, m.byType("kubernetes:batch/v1:Job"), 1, "the same topics Job runs against MSK")
	assert.Empty(t, m.byType("kubernetes:apps/v1:StatefulSet"), "no in-cluster Kafka in aws")
}
