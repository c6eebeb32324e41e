package stacks

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// DataEndpoints is how the services reach the data tier: the same fields
// whichever flavour serves it, so services are wired the same way
// everywhere. Secret references are "secret-name/key".
type DataEndpoints struct {
	KafkaBrokers     pulumi.StringInput
	RedisAddrs       pulumi.StringInput
	RedisPasswordRef string
	PostgresRWRef    string
	PostgresRORef    string
}

// dataEndpoints is the seam where the data-tier components plug in. Until
// they land, both flavours point at the in-cluster names those components
// will declare (Services kafka, redis, postgres-rw/-ro through PgBouncer),
// and the Secrets they will own.
func dataEndpoints(env *Env) DataEndpoints {
	svc := func(name string, port int) pulumi.StringInput {
		return pulumi.Sprintf("%s.%s.svc.cluster.local:%d", name, env.Namespace, port)
	}
	return DataEndpoints{
		KafkaBrokers:     svc("kafka", 9092),
		RedisAddrs:       svc("redis", 6379),
		RedisPasswordRef: "redis-auth/password",
		PostgresRWRef:    "postgres-app/url-rw",
		PostgresRORef:    "postgres-app/url-ro",
	}
}
