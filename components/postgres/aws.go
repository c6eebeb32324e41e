package postgres

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/rds"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ParameterFamily is the RDS parameter group family of DefaultEngineVersion.
const ParameterFamily = "postgres16"

// newAWS declares the RDS primary (encrypted with its own KMS key, private,
// backed up, Multi-AZ and deletion-protected when asked), its read
// replicas, the credentials in Secrets Manager and an RDS Proxy for the
// read-write path. The read-only path is a PgBouncer over the replicas.
func newAWS(ctx *pulumi.Context, name string, a Args, pw passwords, parent pulumi.ResourceOption) (backend, backend, error) {
	id := a.AWS.NamePrefix + "-" + name
	key, err := kms.NewKey(ctx, name+"-kms-key", &kms.KeyArgs{
		Description:          pulumi.String("scaleplane " + id + ": RDS storage and credentials"),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "kms key", err)
	}
	sg, err := ec2.NewSecurityGroup(ctx, name+"-security-group", &ec2.SecurityGroupArgs{
		Description: pulumi.String("scaleplane " + id + ": Postgres from the cluster nodes and the proxy only"),
		VpcId:       a.AWS.VpcID,
		Ingress: ec2.SecurityGroupIngressArray{
			ec2.SecurityGroupIngressArgs{
				Description: pulumi.String("Postgres from the EKS nodes (PgBouncer, the proxy's clients)"),
				Protocol:    pulumi.String("tcp"), FromPort: pulumi.Int(Port), ToPort: pulumi.Int(Port),
				SecurityGroups: pulumi.StringArray{a.AWS.AllowedSecurityGroupID},
			},
			ec2.SecurityGroupIngressArgs{
				Description: pulumi.String("Postgres from the RDS Proxy, which shares this group"),
				Protocol:    pulumi.String("tcp"), FromPort: pulumi.Int(Port), ToPort: pulumi.Int(Port),
				Self: pulumi.Bool(true),
			},
		},
		Egress: ec2.SecurityGroupEgressArray{ec2.SecurityGroupEgressArgs{
			Description: pulumi.String("The proxy reaches the databases in this group"),
			Protocol:    pulumi.String("tcp"), FromPort: pulumi.Int(Port), ToPort: pulumi.Int(Port),
			Self: pulumi.Bool(true),
		}},
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "security group", err)
	}
	subnets, err := rds.NewSubnetGroup(ctx, name+"-subnet-group", &rds.SubnetGroupArgs{
		Description: pulumi.String("scaleplane " + id + ": private subnets"),
		SubnetIds:   a.AWS.SubnetIDs,
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "subnet group", err)
	}
	params, err := rds.NewParameterGroup(ctx, name+"-parameter-group", &rds.ParameterGroupArgs{
		Family:      pulumi.String(ParameterFamily),
		Description: pulumi.String("scaleplane " + id + ": TLS only, same timeouts as in-cluster"),
		Parameters: rds.ParameterGroupParameterArray{
			rds.ParameterGroupParameterArgs{Name: pulumi.String("rds.force_ssl"), Value: pulumi.String("1")},
			rds.ParameterGroupParameterArgs{Name: pulumi.String("password_encryption"), Value: pulumi.String("scram-sha-256")},
			rds.ParameterGroupParameterArgs{Name: pulumi.String("hot_standby_feedback"), Value: pulumi.String("1")},
			rds.ParameterGroupParameterArgs{Name: pulumi.String("statement_timeout"), Value: pulumi.String("30000")},
			rds.ParameterGroupParameterArgs{Name: pulumi.String("idle_in_transaction_session_timeout"), Value: pulumi.String("60000")},
			rds.ParameterGroupParameterArgs{Name: pulumi.String("log_min_duration_statement"), Value: pulumi.String("500")},
		},
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "parameter group", err)
	}
	prod := a.AWS.DeletionProtection
	primary, err := rds.NewInstance(ctx, name+"-primary", &rds.InstanceArgs{
		Identifier:                  pulumi.String(id),
		Engine:                      pulumi.String("postgres"),
		EngineVersion:               pulumi.String(a.AWS.EngineVersion),
		InstanceClass:               pulumi.String(a.AWS.InstanceClass),
		AllocatedStorage:            pulumi.Int(a.AWS.AllocatedStorageGiB),
		MaxAllocatedStorage:         pulumi.Int(5 * a.AWS.AllocatedStorageGiB),
		StorageType:                 pulumi.String("gp3"),
		StorageEncrypted:            pulumi.Bool(true),
		KmsKeyId:                    key.Arn,
		DbName:                      pulumi.String(a.Database),
		Username:                    pulumi.String(a.User),
		Password:                    pw.app,
		Port:                        pulumi.Int(Port),
		MultiAz:                     pulumi.Bool(a.AWS.MultiAZ),
		PubliclyAccessible:          pulumi.Bool(false),
		DbSubnetGroupName:           subnets.Name,
		VpcSecurityGroupIds:         pulumi.StringArray{sg.ID()},
		ParameterGroupName:          params.Name,
		BackupRetentionPeriod:       pulumi.Int(a.AWS.BackupRetentionDays),
		DeletionProtection:          pulumi.Bool(prod),
		SkipFinalSnapshot:           pulumi.Bool(!prod),
		FinalSnapshotIdentifier:     pulumi.String(id + "-final"),
		CopyTagsToSnapshot:          pulumi.Bool(true),
		AutoMinorVersionUpgrade:     pulumi.Bool(true),
		PerformanceInsightsEnabled:  pulumi.Bool(true),
		PerformanceInsightsKmsKeyId: key.Arn,
		ApplyImmediately:            pulumi.Bool(false),
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "primary instance", err)
	}
	var replicaAddrs []pulumi.StringOutput
	for i := range a.Replicas {
		r, err := rds.NewInstance(ctx, fmt.Sprintf("%s-replica-%d", name, i), &rds.InstanceArgs{
			Identifier:          pulumi.Sprintf("%s-replica-%d", id, i),
			ReplicateSourceDb:   primary.Identifier,
			InstanceClass:       pulumi.String(a.AWS.InstanceClass),
			StorageEncrypted:    pulumi.Bool(true),
			KmsKeyId:            key.Arn,
			PubliclyAccessible:  pulumi.Bool(false),
			VpcSecurityGroupIds: pulumi.StringArray{sg.ID()},
			ParameterGroupName:  params.Name,
			// A replica is rebuilt from the primary, not restored.
			SkipFinalSnapshot:           pulumi.Bool(true),
			AutoMinorVersionUpgrade:     pulumi.Bool(true),
			PerformanceInsightsEnabled:  pulumi.Bool(true),
			PerformanceInsightsKmsKeyId: key.Arn,
			ApplyImmediately:            pulumi.Bool(false),
		}, parent)
		if err != nil {
			return backend{}, backend{}, wrap(name, fmt.Sprintf("replica %d", i), err)
		}
		replicaAddrs = append(replicaAddrs, r.Address)
	}

	secret, err := secretsmanager.NewSecret(ctx, name+"-credentials", &secretsmanager.SecretArgs{
		Description: pulumi.String("scaleplane " + id + ": the application's credentials, read by the RDS Proxy"),
		KmsKeyId:    key.Arn,
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "credentials secret", err)
	}
	if _, err := secretsmanager.NewSecretVersion(ctx, name+"-credentials-version", &secretsmanager.SecretVersionArgs{
		SecretId: secret.ID(),
		SecretString: pw.app.ApplyT(func(p string) (string, error) {
			b, err := json.Marshal(map[string]string{"username": a.User, "password": p})
			return string(b), err
		}).(pulumi.StringOutput),
	}, parent); err != nil {
		return backend{}, backend{}, wrap(name, "credentials secret version", err)
	}
	role, err := iam.NewRole(ctx, name+"-proxy-role", &iam.RoleArgs{
		Description: pulumi.String("scaleplane " + id + ": RDS Proxy reads the credentials"),
		AssumeRolePolicy: pulumi.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` +
			`"Principal":{"Service":"rds.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "proxy role", err)
	}
	if _, err := iam.NewRolePolicy(ctx, name+"-proxy-policy", &iam.RolePolicyArgs{
		Role: role.ID(),
		Policy: pulumi.All(secret.Arn, key.Arn).ApplyT(func(v []any) (string, error) {
			b, err := json.Marshal(map[string]any{
				"Version": "2012-10-17",
				"Statement": []map[string]any{
					{"Effect": "Allow", "Action": []string{"secretsmanager:GetSecretValue"}, "Resource": v[0]},
					{"Effect": "Allow", "Action": []string{"kms:Decrypt"}, "Resource": v[1]},
				},
			})
			return string(b), err
		}).(pulumi.StringOutput),
	}, parent); err != nil {
		return backend{}, backend{}, wrap(name, "proxy policy", err)
	}
	proxy, err := rds.NewProxy(ctx, name+"-proxy", &rds.ProxyArgs{
		Name:         pulumi.String(id),
		EngineFamily: pulumi.String("POSTGRESQL"),
		RequireTls:   pulumi.Bool(true),
		RoleArn:      role.Arn,
		Auths: rds.ProxyAuthArray{rds.ProxyAuthArgs{
			AuthScheme:             pulumi.String("SECRETS"),
			SecretArn:              secret.Arn,
			IamAuth:                pulumi.String("DISABLED"),
			ClientPasswordAuthType: pulumi.String("POSTGRES_SCRAM_SHA_256"),
		}},
		VpcSubnetIds:        a.AWS.SubnetIDs,
		VpcSecurityGroupIds: pulumi.StringArray{sg.ID()},
		IdleClientTimeout:   pulumi.Int(1800),
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "proxy", err)
	}
	tg, err := rds.NewProxyDefaultTargetGroup(ctx, name+"-proxy-target-group", &rds.ProxyDefaultTargetGroupArgs{
		DbProxyName: proxy.Name,
		ConnectionPoolConfig: &rds.ProxyDefaultTargetGroupConnectionPoolConfigArgs{
			// The proxy may use most of max_connections, leaving room for admins.
			MaxConnectionsPercent:     pulumi.Int(90),
			MaxIdleConnectionsPercent: pulumi.Int(50),
			ConnectionBorrowTimeout:   pulumi.Int(30),
		},
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "proxy target group", err)
	}
	if _, err := rds.NewProxyTarget(ctx, name+"-proxy-target", &rds.ProxyTargetArgs{
		DbProxyName:          proxy.Name,
		TargetGroupName:      tg.Name,
		DbInstanceIdentifier: primary.Identifier,
	}, parent); err != nil {
		return backend{}, backend{}, wrap(name, "proxy target", err)
	}
	rw := backend{
		endpoint:  pulumi.Sprintf("%s:%d", proxy.Endpoint, Port),
		pooled:    true,
		clientTLS: true,
	}
	roHosts := primary.Address
	if len(replicaAddrs) > 0 {
		var ins []any
		for _, r := range replicaAddrs {
			ins = append(ins, r)
		}
		roHosts = pulumi.All(ins...).ApplyT(func(v []any) string {
			var hs []string
			for _, h := range v {
				hs = append(hs, h.(string))
			}
			// PgBouncer balances new server connections over a host list.
			return strings.Join(hs, ",")
		}).(pulumi.StringOutput)
	}
	ro := backend{host: roHosts, port: Port, serverTLS: true}
	return rw, ro, nil
}
