package redis

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:redis:Redis"

// PasswordKey is the key of the password in the auth Secret.
const PasswordKey = "password"

// Redis is a Redis tier. Its outputs are the same in both flavours.
type Redis struct {
	pulumi.ResourceState

	// Addrs are the seed addresses ("host:port", comma-separated) a
	// cluster-aware client starts from; it learns the rest of the topology
	// from CLUSTER SLOTS.
	Addrs pulumi.StringOutput `pulumi:"addrs"`
	// PasswordSecretRef is "secret-name/key" of the password in Namespace,
	// for microservice.Args.SecretEnv.
	PasswordSecretRef pulumi.StringOutput `pulumi:"passwordSecretRef"`
	// TLS says whether clients must speak TLS (aws: in-transit encryption).
	TLS pulumi.BoolOutput `pulumi:"tls"`
	// Shards and ReplicasPerShard are the topology actually declared.
	Shards           pulumi.IntOutput `pulumi:"shards"`
	ReplicasPerShard pulumi.IntOutput `pulumi:"replicasPerShard"`
}

// SecretName is the name of the Kubernetes Secret holding the password
// of the Redis tier called name ("redis" gives "redis-auth").
func SecretName(name string) string { return name + "-auth" }

// NewRedis validates args, then declares the flavour's resources as
// children named "<name>-<role>".
func NewRedis(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Redis, error) {
	if args == nil {
		return nil, fmt.Errorf("redis %s: args are required", name)
	}
	if err := args.Validate(name); err != nil {
		return nil, fmt.Errorf("redis %s: %w", name, err)
	}
	a := args.withDefaults()
	r := &Redis{}
	if err := ctx.RegisterComponentResource(TypeToken, name, r, opts...); err != nil {
		return nil, fmt.Errorf("redis %s: register: %w", name, err)
	}
	parent, err := children.Options(r, opts)
	if err != nil {
		return nil, fmt.Errorf("redis %s: options: %w", name, err)
	}
	password := pulumi.ToSecret(a.Password).(pulumi.StringOutput)

	secret, err := newAuthSecret(ctx, name, a, password, parent)
	if err != nil {
		return nil, err
	}
	var addrs pulumi.StringOutput
	var tls bool
	switch a.Flavour {
	case FlavourInCluster:
		addrs, err = newInCluster(ctx, name, a, secret, parent)
	case FlavourAWS:
		addrs, err = newAWS(ctx, name, a, password, parent)
		tls = true
	}
	if err != nil {
		return nil, err
	}
	r.Addrs = addrs
	r.PasswordSecretRef = pulumi.String(SecretName(name) + "/" + PasswordKey).ToStringOutput()
	r.TLS = pulumi.Bool(tls).ToBoolOutput()
	r.Shards = pulumi.Int(a.Shards).ToIntOutput()
	r.ReplicasPerShard = pulumi.Int(a.ReplicasPerShard).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{
		"addrs":             r.Addrs,
		"passwordSecretRef": r.PasswordSecretRef,
		"tls":               r.TLS,
		"shards":            r.Shards,
		"replicasPerShard":  r.ReplicasPerShard,
	}); err != nil {
		return nil, fmt.Errorf("redis %s: outputs: %w", name, err)
	}
	return r, nil
}
