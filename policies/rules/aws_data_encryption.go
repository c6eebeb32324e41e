package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

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
