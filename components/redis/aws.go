package redis

import (
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elasticache"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ParameterFamily is the ElastiCache parameter group family of DefaultEngineVersion.
const ParameterFamily = "redis7"

// newAWS declares an ElastiCache replication group in cluster mode:
// encrypted at rest (its own KMS key) and in transit, AUTH-protected,
// Multi-AZ with automatic failover, reachable only from the allowed
// security group through a private subnet group.
func newAWS(ctx *pulumi.Context, name string, a Args, password pulumi.StringOutput, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	key, err := kms.NewKey(ctx, name+"-kms-key", &kms.KeyArgs{
		Description:          pulumi.String("scaleplane " + name + ": ElastiCache encryption at rest"),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "kms key", err)
	}
	sg, err := ec2.NewSecurityGroup(ctx, name+"-security-group", &ec2.SecurityGroupArgs{
		Description: pulumi.String("scaleplane " + name + ": Redis from the cluster nodes only"),
		VpcId:       a.AWS.VpcID,
		Ingress: ec2.SecurityGroupIngressArray{ec2.SecurityGroupIngressArgs{
			Description:    pulumi.String("Redis from the EKS nodes"),
			Protocol:       pulumi.String("tcp"),
			FromPort:       pulumi.Int(Port),
			ToPort:         pulumi.Int(Port),
			SecurityGroups: pulumi.StringArray{a.AWS.AllowedSecurityGroupID},
		}},
		// No egress rule: the cache never opens connections itself.
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "security group", err)
	}
	subnets, err := elasticache.NewSubnetGroup(ctx, name+"-subnet-group", &elasticache.SubnetGroupArgs{
		Description: pulumi.String("scaleplane " + name + ": private subnets"),
		SubnetIds:   a.AWS.SubnetIDs,
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "subnet group", err)
	}
	params, err := elasticache.NewParameterGroup(ctx, name+"-parameter-group", &elasticache.ParameterGroupArgs{
		Family:      pulumi.String(ParameterFamily),
		Description: pulumi.String("scaleplane " + name + ": cluster mode, same eviction policy as in-cluster"),
		Parameters: elasticache.ParameterGroupParameterArray{
			elasticache.ParameterGroupParameterArgs{Name: pulumi.String("cluster-enabled"), Value: pulumi.String("yes")},
			elasticache.ParameterGroupParameterArgs{Name: pulumi.String("maxmemory-policy"), Value: pulumi.String(a.EvictionPolicy)},
			elasticache.ParameterGroupParameterArgs{Name: pulumi.String("cluster-allow-reads-when-down"), Value: pulumi.String("no")},
		},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "parameter group", err)
	}
	rg, err := elasticache.NewReplicationGroup(ctx, name+"-replication-group", &elasticache.ReplicationGroupArgs{
		Description:              pulumi.String("scaleplane " + name + ": Redis Cluster, " + strconv.Itoa(a.Shards) + " shards"),
		Engine:                   pulumi.String("redis"),
		EngineVersion:            pulumi.String(a.AWS.EngineVersion),
		NodeType:                 pulumi.String(a.AWS.NodeType),
		Port:                     pulumi.Int(Port),
		ClusterMode:              pulumi.String("enabled"),
		NumNodeGroups:            pulumi.Int(a.Shards),
		ReplicasPerNodeGroup:     pulumi.Int(a.ReplicasPerShard),
		AutomaticFailoverEnabled: pulumi.Bool(true),
		MultiAzEnabled:           pulumi.Bool(true),
		AtRestEncryptionEnabled:  pulumi.Bool(true),
		KmsKeyId:                 key.Arn,
		TransitEncryptionEnabled: pulumi.Bool(true),
		AuthToken:                password,
		ParameterGroupName:       params.Name,
		SubnetGroupName:          subnets.Name,
		SecurityGroupIds:         pulumi.StringArray{sg.ID()},
		SnapshotRetentionLimit:   pulumi.Int(a.AWS.SnapshotRetentionDays),
		AutoMinorVersionUpgrade:  pulumi.Bool(true),
		// Changes wait for the maintenance window instead of restarting nodes mid-day.
		ApplyImmediately: pulumi.Bool(false),
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, "replication group", err)
	}
	return pulumi.Sprintf("%s:%d", rg.ConfigurationEndpointAddress, Port), nil
}
