package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

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
