package rules

import (
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// AWSDataEncryption requires encryption at rest and in transit for AWS data stores.
var AWSDataEncryption = register(&Rule{
	ID:          "aws-data-encryption",
	Name:        "AWS data stores encrypted",
	Category:    DataTier,
	Level:       Mandatory,
	Description: "ElastiCache replication groups enable encryption at rest and in transit; RDS instances encrypt storage (replicas inherit it); RDS Proxies require TLS; MSK clusters keep client-broker TLS and in-cluster encryption.",
	Remediation: "Use the data components' aws flavour, which sets atRestEncryptionEnabled, transitEncryptionEnabled, storageEncrypted, requireTls and TLS-only MSK; do not override them.",
	Rationale:   "The managed data tier holds the users' data and sessions and is reached over the VPC by every pod the autoscaler adds; encryption keeps a leaked snapshot or a sniffed link from exposing them.",
	CheckResource: func(r Resource, t Thresholds) []string {
		p := r.Props
		var out []string
		need := func(key, what string) {
			if v := p[key]; !object.IsTrue(v) && !object.IsUnknown(v) {
				out = append(out, msgf("%s %s: %s is not enabled (%s)", r.Type, r.Name, what, key))
			}
		}
		switch r.Type {
		case object.AWSReplicationGroup:
			need("atRestEncryptionEnabled", "encryption at rest")
			need("transitEncryptionEnabled", "encryption in transit")
		case object.AWSDBInstance:
			if object.Str(p["replicateSourceDb"]) == "" {
				need("storageEncrypted", "encryption at rest")
			}
		case object.AWSDBProxy:
			need("requireTls", "TLS")
		case object.AWSMSKCluster:
			transit := object.Get(p, "encryptionInfo", "encryptionInTransit")
			if cb := object.Str(object.Get(transit, "clientBroker")); cb != "" && cb != "TLS" && cb != Unknown {
				out = append(out, msgf("%s %s: clientBroker encryption is %s, want TLS", r.Type, r.Name, cb))
			}
			if v := object.Get(transit, "inCluster"); v != nil && !object.IsTrue(v) && !object.IsUnknown(v) {
				out = append(out, msgf("%s %s: encryption between brokers is off (inCluster)", r.Type, r.Name))
			}
		}
		return out
	},
})

// AWSDataPrivate forbids public endpoints on AWS data stores.
var AWSDataPrivate = register(&Rule{
	ID:          "aws-data-private",
	Name:        "AWS data stores not public",
	Category:    DataTier,
	Level:       Mandatory,
	Description: "No RDS instance is publiclyAccessible and no MSK cluster turns on public access (ElastiCache and RDS Proxy are VPC-only by construction).",
	Remediation: "Keep the data tier in the private subnets; reach it from the cluster, or through a bastion or SSM session for humans.",
	Rationale:   "Only the edge is meant to face the internet; the services behind it reach the data tier through the VPC. A public database endpoint skips the edge's rate limit and every NetworkPolicy.",
	CheckResource: func(r Resource, t Thresholds) []string {
		switch r.Type {
		case object.AWSDBInstance, object.AWSDBClusterInstance:
			if object.IsTrue(r.Props["publiclyAccessible"]) {
				return []string{msgf("%s %s is publiclyAccessible", r.Type, r.Name)}
			}
		case object.AWSMSKCluster:
			if v := object.Str(object.Get(r.Props, "brokerNodeGroupInfo", "connectivityInfo", "publicAccess", "type")); v != "" && v != "DISABLED" && v != Unknown {
				return []string{msgf("%s %s has public access %s", r.Type, r.Name, v)}
			}
		}
		return nil
	},
})
