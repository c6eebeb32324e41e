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

// The data tier is declared by composeData (datatier.go): in-cluster
// components for local and dev, AWS-managed ones for staging and prod.
