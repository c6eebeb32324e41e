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
	// RedisTLS and KafkaTLS say whether clients must speak TLS: the managed
	// stores encrypt in transit (ElastiCache's transit encryption, MSK's
	// TLS-only client listener), in-cluster ones are reached in plain text
	// within the namespace's NetworkPolicies.
	RedisTLS bool
	KafkaTLS bool
}

// The data tier is declared by composeData (datatier.go): in-cluster
// components for local and dev, AWS-managed ones for staging and prod.
