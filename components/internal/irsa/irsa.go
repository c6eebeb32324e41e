// Package irsa is the trust policy of IAM roles for service accounts
// (IRSA), shared by every component that gives a Kubernetes service
// account an AWS role: the cluster's own add-ons and the AWS Load Balancer
// Controller. It lives here because components never import each other.
package irsa

import (
	"encoding/json"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Audience is the audience EKS puts in projected service-account tokens
// meant for STS.
const Audience = "sts.amazonaws.com"

// TrustPolicy lets exactly one service account assume a role through the
// cluster's OIDC provider (audience sts.amazonaws.com). Both the sub and
// the aud conditions are set: without sub, every service account of the
// cluster could assume the role.
func TrustPolicy(providerARN, issuer pulumi.StringInput, namespace, serviceAccount string) pulumi.StringOutput {
	return pulumi.All(providerARN, issuer).ApplyT(func(v []any) (string, error) {
		return trustPolicy(v[0].(string), v[1].(string), namespace, serviceAccount)
	}).(pulumi.StringOutput)
}

func trustPolicy(providerARN, issuer, namespace, serviceAccount string) (string, error) {
	host := strings.TrimPrefix(issuer, "https://")
	b, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Action":    "sts:AssumeRoleWithWebIdentity",
			"Principal": map[string]any{"Federated": providerARN},
			"Condition": map[string]any{"StringEquals": map[string]any{
				host + ":sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
				host + ":aud": Audience,
			}},
		}},
	})
	return string(b), err
}
