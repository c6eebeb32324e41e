package kafka

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/msk"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// newAWS declares an MSK cluster across the zones: TLS between clients and
// brokers and inside the cluster, encrypted at rest with its own KMS key,
// the shared durability settings as its configuration, enhanced monitoring
// and Prometheus exporters, reachable only from the allowed security group.
func newAWS(ctx *pulumi.Context, name string, a Args, parent pulumi.ResourceOption) (pulumi.StringOutput, pulumi.Resource, error) {
	key, err := kms.NewKey(ctx, name+"-kms-key", &kms.KeyArgs{
		Description:          pulumi.String("scaleplane " + name + ": MSK encryption at rest"),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "kms key", err)
	}
	sg, err := ec2.NewSecurityGroup(ctx, name+"-security-group", &ec2.SecurityGroupArgs{
		Description: pulumi.String("scaleplane " + name + ": Kafka TLS from the cluster nodes only"),
		VpcId:       a.AWS.VpcID,
		Ingress: ec2.SecurityGroupIngressArray{ec2.SecurityGroupIngressArgs{
			Description: pulumi.String("Kafka TLS from the EKS nodes"),
			Protocol:    pulumi.String("tcp"), FromPort: pulumi.Int(TLSPort), ToPort: pulumi.Int(TLSPort),
			SecurityGroups: pulumi.StringArray{a.AWS.AllowedSecurityGroupID},
		}},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "security group", err)
	}
	cfg, err := msk.NewConfiguration(ctx, name+"-configuration", &msk.ConfigurationArgs{
		Description:      pulumi.String("scaleplane " + name + ": the same durability settings as in-cluster"),
		KafkaVersions:    pulumi.ToStringArray([]string{a.AWS.KafkaVersion}),
		ServerProperties: pulumi.String(RenderSettings(a.Settings())),
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "configuration", err)
	}
	cluster, err := msk.NewCluster(ctx, name+"-cluster", &msk.ClusterArgs{
		KafkaVersion:        pulumi.String(a.AWS.KafkaVersion),
		NumberOfBrokerNodes: pulumi.Int(a.Nodes),
		BrokerNodeGroupInfo: &msk.ClusterBrokerNodeGroupInfoArgs{
			InstanceType:   pulumi.String(a.AWS.InstanceType),
			ClientSubnets:  a.AWS.SubnetIDs,
			SecurityGroups: pulumi.StringArray{sg.ID()},
			StorageInfo: &msk.ClusterBrokerNodeGroupInfoStorageInfoArgs{
				EbsStorageInfo: &msk.ClusterBrokerNodeGroupInfoStorageInfoEbsStorageInfoArgs{VolumeSize: pulumi.Int(a.AWS.VolumeGiB)},
			},
		},
		EncryptionInfo: &msk.ClusterEncryptionInfoArgs{
			EncryptionAtRestKmsKeyArn: key.Arn,
			EncryptionInTransit: &msk.ClusterEncryptionInfoEncryptionInTransitArgs{
				ClientBroker: pulumi.String("TLS"),
				InCluster:    pulumi.Bool(true),
			},
		},
		ConfigurationInfo: &msk.ClusterConfigurationInfoArgs{Arn: cfg.Arn, Revision: cfg.LatestRevision},
		// Per-topic, per-broker metrics: consumer lag and under-replicated
		// partitions are what an operator watches.
		EnhancedMonitoring: pulumi.String("PER_TOPIC_PER_BROKER"),
		OpenMonitoring: &msk.ClusterOpenMonitoringArgs{Prometheus: &msk.ClusterOpenMonitoringPrometheusArgs{
			JmxExporter:  &msk.ClusterOpenMonitoringPrometheusJmxExporterArgs{EnabledInBroker: pulumi.Bool(true)},
			NodeExporter: &msk.ClusterOpenMonitoringPrometheusNodeExporterArgs{EnabledInBroker: pulumi.Bool(true)},
		}},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, nil, wrap(name, "cluster", err)
	}
	return cluster.BootstrapBrokersTls, cluster, nil
}
