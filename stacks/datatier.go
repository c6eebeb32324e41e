package stacks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/kafka"
	"github.com/scaleplane/scaleplane/components/kafka/topics"
	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/components/postgres"
	"github.com/scaleplane/scaleplane/components/redis"
	"github.com/scaleplane/scaleplane/topology"
)

// DataSettings are the data tier's knobs.
type DataSettings struct {
	RedisShards           int
	RedisReplicasPerShard int
	RedisResources        microservice.Resources
	RedisStorage          resource.Quantity
	// RedisImage is the in-cluster Redis image (local: the Debian-based one
	// `scaleplane images build` makes and loads).
	RedisImage string
	// RedisPassword and PostgresPassword are the credentials (set them with
	// `pulumi config set --secret`); empty means derived (local, dev) or
	// generated (aws) — see docs/data-tier.md.
	RedisPassword     string
	PostgresPassword  string
	PostgresReplicas  int
	PostgresResources microservice.Resources
	PostgresStorage   resource.Quantity
	PgBouncerReplicas microservice.Replicas
	PgBouncerPoolSize int
	// PostgresImage and PgBouncerImage are the in-cluster database and
	// pooler images (local: the Debian-based ones `scaleplane images
	// build` makes and loads).
	PostgresImage  string
	PgBouncerImage string
	KafkaNodes     int
	// KafkaImage is the in-cluster Kafka image (local: Debian's JRE and the
	// Maven Central jars, made by `scaleplane images build`).
	KafkaImage          string
	KafkaResources      microservice.Resources
	KafkaStorage        resource.Quantity
	AWSRedisNodeType    string
	AWSPostgresClass    string
	AWSKafkaInstance    string
	PostgresMultiAZ     bool
	DeletionProtection  bool
	BackupRetentionDays int
}

// dataKnobs are the data tier's knobs, appended to Knobs.
func dataKnobs() []Knob {
	d := func(e *Env) *DataSettings { return &e.Data }
	res := func(prefix, cpu, mem string, get func(*DataSettings) *microservice.Resources) []Knob {
		return []Knob{
			quantityKnob(prefix+"CpuRequest", cpu, "CPU request of a "+prefix+" pod.", func(e *Env, q resource.Quantity) { get(d(e)).CPURequest = q }),
			quantityKnob(prefix+"MemoryLimit", mem, "Memory request and limit of a "+prefix+" pod (equal: a database is not evicted for bursting).",
				func(e *Env, q resource.Quantity) { get(d(e)).MemoryRequest = q; get(d(e)).MemoryLimit = q }),
		}
	}
	ks := []Knob{
		intKnob("redisShards", redis.DefaultShards, 3, 100, "Redis Cluster masters (hash-slot owners); ElastiCache node groups on aws.",
			func(e *Env, v int) { d(e).RedisShards = v }),
		intKnob("redisReplicasPerShard", redis.DefaultReplicasPerShard, 1, 5, "Replicas of each Redis master, promoted when it fails.",
			func(e *Env, v int) { d(e).RedisReplicasPerShard = v }),
		quantityKnob("redisStorage", "1Gi", "Volume of each in-cluster Redis pod (append-only file).", func(e *Env, q resource.Quantity) { d(e).RedisStorage = q }),
		stringKnob("redisImage", redis.DefaultImage, "In-cluster Redis image (needs redis-server, redis-cli and sh); never latest. Under imageRegistry, `scaleplane images build` makes it from Debian's packages.",
			func(e *Env, v string) error {
				if !microservice.ImageTagged(v) {
					return errors.New("must carry an explicit tag or digest other than latest")
				}
				d(e).RedisImage = v
				return nil
			}),
		secretKnob("redisPassword", "Redis AUTH password (pulumi config set --secret; 16-128 characters, no @ \" / or spaces); empty: derived from the stack in-cluster, generated once on aws and kept in the state.",
			func(e *Env, v string) error { d(e).RedisPassword = v; return checkPassword(v) }),
		imageKnob("postgresImage", postgres.DefaultImage, "In-cluster PostgreSQL 15 image (needs sh, mktemp, flock and PostgreSQL's programs on PATH: the pods run the component's own start script, not an image entrypoint; runs as uid 999, which needs a passwd entry); never latest. Under imageRegistry, `scaleplane images build` makes it from Debian's postgresql-15.",
			func(e *Env, v string) { d(e).PostgresImage = v }),
		imageKnob("pgbouncerImage", postgres.DefaultPgBouncerImage, "PgBouncer image of the in-cluster poolers (needs pgbouncer on PATH); never latest. Under imageRegistry, `scaleplane images build` makes it from Debian's pgbouncer.",
			func(e *Env, v string) { d(e).PgBouncerImage = v }),
		intKnob("postgresReplicas", 1, 0, 5, "Postgres streaming read replicas (RDS read replicas on aws).", func(e *Env, v int) { d(e).PostgresReplicas = v }),
		quantityKnob("postgresStorage", "10Gi", "Volume of each in-cluster Postgres pod.", func(e *Env, q resource.Quantity) { d(e).PostgresStorage = q }),
		secretKnob("postgresPassword", "Password of the application's Postgres role (pulumi config set --secret; 16-128 characters, no @ \" / or spaces); empty: derived in-cluster, generated once on aws and kept in the state.",
			func(e *Env, v string) error { d(e).PostgresPassword = v; return checkPassword(v) }),
		intKnob("pgbouncerMinReplicas", 2, 1, 100, "Fewest PgBouncer pods of each pooler (HPA minReplicas).", func(e *Env, v int) { d(e).PgBouncerReplicas.Min = v }),
		intKnob("pgbouncerMaxReplicas", 4, 1, 100, "Most PgBouncer pods of each pooler; Postgres max_connections is computed from it.",
			func(e *Env, v int) { d(e).PgBouncerReplicas.Max = v }),
		intKnob("pgbouncerPoolSize", postgres.DefaultPoolSize, 1, 500, "Server connections per PgBouncer pod (default_pool_size = max_db_connections).",
			func(e *Env, v int) { d(e).PgBouncerPoolSize = v }),
		intKnob("kafkaNodes", kafka.DefaultNodes, 1, 9, "Kafka brokers (combined KRaft controller+broker in-cluster; 1 only for local, with replication 1).",
			func(e *Env, v int) { d(e).KafkaNodes = v }),
		stringKnob("kafkaImage", kafka.DefaultImage, "In-cluster Kafka image (needs sh, java and /opt/kafka/bin/kafka-storage.sh and kafka-server-start.sh); never latest. Under imageRegistry, `scaleplane images build` makes it from Debian's JRE and the Maven Central jars.",
			func(e *Env, v string) error {
				if !microservice.ImageTagged(v) {
					return errors.New("must carry an explicit tag or digest other than latest")
				}
				d(e).KafkaImage = v
				return nil
			}),
		quantityKnob("kafkaStorage", "10Gi", "Volume of each in-cluster Kafka pod.", func(e *Env, q resource.Quantity) { d(e).KafkaStorage = q }),
		stringKnob("awsRedisNodeType", redis.DefaultNodeType, "ElastiCache node type (aws).", func(e *Env, v string) error { d(e).AWSRedisNodeType = v; return nil }),
		stringKnob("awsPostgresInstanceClass", postgres.DefaultInstanceClass, "RDS instance class of the primary and replicas (aws).",
			func(e *Env, v string) error { d(e).AWSPostgresClass = v; return nil }),
		stringKnob("awsKafkaInstanceType", kafka.DefaultInstanceType, "MSK broker instance type (aws).", func(e *Env, v string) error { d(e).AWSKafkaInstance = v; return nil }),
		boolKnob("postgresMultiAz", "false", "Keep a synchronous RDS standby in another zone (prod).", func(e *Env, v bool) { d(e).PostgresMultiAZ = v }),
		boolKnob("dataDeletionProtection", "false", "Refuse deleting the RDS primary; take a final snapshot (prod).", func(e *Env, v bool) { d(e).DeletionProtection = v }),
		intKnob("postgresBackupRetentionDays", 7, 1, 35, "Days of RDS automated backups (aws).", func(e *Env, v int) { d(e).BackupRetentionDays = v }),
	}
	ks = append(ks, res("redis", "100m", "256Mi", func(s *DataSettings) *microservice.Resources { return &s.RedisResources })...)
	ks = append(ks, res("postgres", "250m", "512Mi", func(s *DataSettings) *microservice.Resources { return &s.PostgresResources })...)
	ks = append(ks, res("kafka", "250m", "1Gi", func(s *DataSettings) *microservice.Resources { return &s.KafkaResources })...)
	return ks
}

// imageKnob is a string knob holding an image reference, refused without
// an explicit tag or digest, or tagged latest: a pod must run the same
// image on every node and after every restart.
func imageKnob(key, def, doc string, set func(*Env, string)) Knob {
	return stringKnob(key, def, doc, func(e *Env, v string) error {
		if !microservice.ImageTagged(v) {
			return errors.New("must carry an explicit tag or digest other than latest")
		}
		set(e, v)
		return nil
	})
}

// credential is a knob's password, or, when unset, one derived from the
// stack in-cluster (stable across `pulumi up`, so pods and Secrets agree;
// local and dev only hold test data) or, on aws, a random.RandomPassword
// resource: generated once, kept in the state as a secret, so a second
// `pulumi up` does not rotate the ElastiCache auth token or the RDS master
// password under running services.
func (e *Env) credential(ctx *pulumi.Context, set, purpose string) (pulumi.StringInput, error) {
	if set != "" {
		return pulumi.ToSecret(pulumi.String(set)).(pulumi.StringOutput), nil
	}
	if e.Flavour == FlavourInCluster {
		h := sha256.Sum256([]byte("scaleplane/" + e.Stack + "/" + e.Namespace + "/" + purpose))
		return pulumi.ToSecret(pulumi.String(hex.EncodeToString(h[:16]))).(pulumi.StringOutput), nil
	}
	// Letters and digits only: ElastiCache refuses '@', '"' and '/' in an
	// auth token, and the password also goes into postgres:// URLs.
	pw, err := random.NewRandomPassword(ctx, purpose+"-password", &random.RandomPasswordArgs{
		Length:  pulumi.Int(generatedPasswordLength),
		Special: pulumi.Bool(false),
	})
	if err != nil {
		return nil, fmt.Errorf("%s password: %w", purpose, err)
	}
	return pw.Result, nil
}

// checkPassword refuses a password ElastiCache would refuse as an auth token
// (so a stack does not fail halfway through an AWS deployment) and a short
// one; empty means "generate one".
func checkPassword(v string) error {
	if v == "" {
		return nil
	}
	if n := len(v); n < 16 || n > 128 {
		return fmt.Errorf("%d characters, want 16 to 128", n)
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r > '~' || r == '@' || r == '"' || r == '/' }); i >= 0 {
		return fmt.Errorf("character %d is a space, a control or non-ASCII character, '@', '\"' or '/'", i+1)
	}
	return nil
}

// generatedPasswordLength is within ElastiCache's 16-128 characters for an
// auth token; 32 letters and digits carry about 190 bits.
const generatedPasswordLength = 32

// Topics are the Kafka topics the services declare: the gateway writes
// registrations, the worker reads it (so it has at least as many
// partitions as the worker can have pods) and writes the dead letters.
func (e *Env) Topics() []topics.Topic {
	rf := min(3, e.Data.KafkaNodes)
	const week = 7 * 24 * 3600 * 1000
	return []topics.Topic{
		{Name: topology.RegistrationsTopic, Partitions: max(6, e.Workloads["worker"].Replicas.Max), ReplicationFactor: rf, RetentionMs: week},
		{Name: topology.RegistrationsDLQTopic, Partitions: 3, ReplicationFactor: rf, RetentionMs: 2 * week},
	}
}

// composeData declares Redis, Postgres and Kafka in the stack's flavour
// (in-cluster for local and dev, AWS-managed for staging and prod, inside
// the foundation's VPC) and returns how services reach them: the same
// fields either way.
func composeData(ctx *pulumi.Context, env *Env, fnd *Foundation, opts ...pulumi.ResourceOption) (DataEndpoints, error) {
	ds := env.Data
	flavour := string(env.Flavour)
	// Managed stores live in the foundation's private subnets and admit
	// only its node security group.
	var vpc pulumi.StringInput
	var subnets pulumi.StringArrayInput
	var nodes pulumi.StringInput
	if fnd != nil && fnd.AWS {
		vpc, subnets, nodes = fnd.VpcID, fnd.PrivateSubnetIDs, fnd.NodeSecurityGroupID
	}
	redisPassword, err := env.credential(ctx, ds.RedisPassword, "redis")
	if err != nil {
		return DataEndpoints{}, err
	}
	appPassword, err := env.credential(ctx, ds.PostgresPassword, "postgres-app")
	if err != nil {
		return DataEndpoints{}, err
	}
	// RDS has only the master user; the superuser and replication roles
	// exist in-cluster alone.
	var superuserPassword, replicationPassword pulumi.StringInput
	if env.Flavour == FlavourInCluster {
		superuserPassword, _ = env.credential(ctx, "", "postgres-superuser")
		replicationPassword, _ = env.credential(ctx, "", "postgres-replication")
	}
	r, err := redis.NewRedis(ctx, "redis", &redis.Args{
		Flavour:            flavour,
		Namespace:          env.Namespace,
		Shards:             ds.RedisShards,
		ReplicasPerShard:   ds.RedisReplicasPerShard,
		Password:           redisPassword,
		AllowFrom:          []string{"gateway", "worker"},
		Resources:          ds.RedisResources,
		Storage:            ds.RedisStorage,
		Image:              ds.RedisImage,
		ZoneSpreadRequired: env.ZoneSpreadRequired,
		AWS: redis.AWSArgs{
			VpcID: vpc, SubnetIDs: subnets, AllowedSecurityGroupID: nodes,
			NodeType: ds.AWSRedisNodeType, SnapshotRetentionDays: ds.BackupRetentionDays,
		},
	}, opts...)
	if err != nil {
		return DataEndpoints{}, err
	}
	pg, err := postgres.NewPostgres(ctx, "postgres", &postgres.Args{
		Flavour:             flavour,
		Namespace:           env.Namespace,
		AppPassword:         appPassword,
		SuperuserPassword:   superuserPassword,
		ReplicationPassword: replicationPassword,
		Replicas:            ds.PostgresReplicas,
		Image:               ds.PostgresImage,
		Pooler: postgres.PoolerArgs{
			Image: ds.PgBouncerImage,
			Resources: microservice.Resources{
				CPURequest: resource.MustParse("50m"), MemoryRequest: resource.MustParse("32Mi"), MemoryLimit: resource.MustParse("64Mi"),
			},
			Replicas:        ds.PgBouncerReplicas,
			Autoscaling:     env.Autoscaling,
			Shutdown:        env.Shutdown,
			DefaultPoolSize: ds.PgBouncerPoolSize,
		},
		AllowFrom:          []string{"users", "worker"},
		Resources:          ds.PostgresResources,
		Storage:            ds.PostgresStorage,
		ZoneSpreadRequired: env.ZoneSpreadRequired,
		AWS: postgres.AWSArgs{
			NamePrefix: env.ClusterName(), VpcID: vpc, SubnetIDs: subnets, AllowedSecurityGroupID: nodes,
			InstanceClass: ds.AWSPostgresClass, MultiAZ: ds.PostgresMultiAZ,
			DeletionProtection: ds.DeletionProtection, BackupRetentionDays: ds.BackupRetentionDays,
		},
	}, opts...)
	if err != nil {
		return DataEndpoints{}, err
	}
	k, err := kafka.NewKafka(ctx, "kafka", &kafka.Args{
		Flavour:            flavour,
		Namespace:          env.Namespace,
		Nodes:              ds.KafkaNodes,
		Image:              ds.KafkaImage,
		Topics:             env.Topics(),
		TopicsImage:        env.Image("topics"),
		AllowFrom:          []string{"gateway", "worker"},
		Resources:          ds.KafkaResources,
		Storage:            ds.KafkaStorage,
		ZoneSpreadRequired: env.ZoneSpreadRequired,
		AWS: kafka.AWSArgs{
			VpcID: vpc, SubnetIDs: subnets, AllowedSecurityGroupID: nodes,
			Zones: len(env.Zones()), InstanceType: ds.AWSKafkaInstance,
		},
	}, opts...)
	if err != nil {
		return DataEndpoints{}, err
	}
	ctx.Export("redisAddrs", r.Addrs)
	ctx.Export("postgresReadWrite", pg.ReadWriteEndpoint)
	ctx.Export("postgresReadOnly", pg.ReadOnlyEndpoint)
	ctx.Export("postgresMaxConnections", pg.MaxConnections)
	ctx.Export("kafkaBrokers", k.Brokers)
	// The summary says when acknowledged records live on one broker.
	ctx.Export("kafkaReplication", pulumi.Int(kafka.Args{Nodes: ds.KafkaNodes}.ReplicationFactor()))
	return DataEndpoints{
		KafkaBrokers:     k.Brokers,
		RedisAddrs:       r.Addrs,
		RedisPasswordRef: redis.SecretName("redis") + "/" + redis.PasswordKey,
		PostgresRWRef:    postgres.AppSecretName("postgres") + "/" + postgres.URLReadWriteKey,
		PostgresRORef:    postgres.AppSecretName("postgres") + "/" + postgres.URLReadOnlyKey,
		RedisTLS:         env.Flavour == FlavourAWS,
		KafkaTLS:         env.Flavour == FlavourAWS,
	}, nil
}
