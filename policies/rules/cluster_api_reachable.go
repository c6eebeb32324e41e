package rules

import (
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/conf"
	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// kubernetesAPIPort is the port the EKS private endpoint answers on.
const kubernetesAPIPort = 443

// ClusterAPIReachable requires an EKS API endpoint that the deployer can reach and the internet cannot.
var ClusterAPIReachable = register(&Rule{
	ID:          "cluster-api-reachable",
	Name:        "Cluster API reachable by the deployer",
	Category:    Security,
	Level:       Mandatory,
	Description: "Every EKS cluster either has endpointPublicAccess with a non-empty publicAccessCidrs list of valid CIDRs none of which is 0.0.0.0/0 or ::/0 (unset publicAccessCidrs is AWS's 0.0.0.0/0), or has endpointPrivateAccess and a declared private runner network: an ingress security group rule on 443 from a CIDR other than 0.0.0.0/0, declared beside the cluster (same parent). A cluster that no one could reach, or that the whole internet can, fails.",
	Remediation: "Set clusterPublicAccessCidrs in the stack file to the networks `pulumi up` runs from, or clusterApiPrivateRunnerCidrs to a runner network inside the VPC (the cluster component admits it on 443); never 0.0.0.0/0.",
	Rationale:   "Issue #27: 'The EKS API endpoint is private-only (publicAccessCidrs unset), and nothing says from where pulumi up -s prod could reach it ... A rule fails a stack that no one could deploy.' The opposite mistake, an API open to 0.0.0.0/0, is found by every scanner within hours and leaves the cluster one leaked credential away; both are refused.",
	CheckStack: func(rs []Resource, t Thresholds) []Violation {
		var out []Violation
		for _, cl := range object.ByType(rs, object.AWSEKSCluster) {
			vpc := object.MapOf(cl.Props["vpcConfig"])
			pub, priv := vpc["endpointPublicAccess"], vpc["endpointPrivateAccess"]
			if object.IsUnknown(pub) || object.IsUnknown(priv) {
				continue
			}
			// AWS's defaults: public on, private off.
			public := pub == nil || object.IsTrue(pub)
			private := object.IsTrue(priv)
			var publicProblem string
			if public {
				publicProblem = publicAccessProblem(vpc["publicAccessCidrs"])
				if publicProblem == "" {
					continue
				}
			}
			if private {
				if runnerNetworkDeclared(rs, cl) {
					if publicProblem != "" {
						out = append(out, Violation{URN: cl.URN, Message: msgf("%s %s: %s", cl.Type, cl.Name, publicProblem)})
					}
					continue
				}
			}
			msg := msgf("%s %s: endpointPublicAccess %v, endpointPrivateAccess %v", cl.Type, cl.Name, public, private)
			switch {
			case publicProblem != "":
				msg += ": " + publicProblem
			case !public && private:
				msg += ": the API is private and no runner network is declared (no ingress rule on 443 beside the cluster): no one could deploy"
			default:
				msg += ": neither endpoint is on: no one could reach the API"
			}
			out = append(out, Violation{URN: cl.URN, Message: msg})
		}
		return out
	},
})

// publicAccessProblem says what is wrong with a public endpoint's CIDRs, "" if nothing.
func publicAccessProblem(v any) string {
	if object.IsUnknown(v) {
		return ""
	}
	list := object.ListOf(v)
	if len(list) == 0 {
		return "publicAccessCidrs is unset or empty, which AWS reads as 0.0.0.0/0: the whole internet reaches the API"
	}
	var cidrs []string
	for _, c := range list {
		s := object.Str(c)
		if s == Unknown {
			return ""
		}
		cidrs = append(cidrs, s)
	}
	for _, s := range cidrs {
		switch {
		case !conf.ValidCIDR(s):
			return msgf("publicAccessCidrs %v: %q is not a CIDR", cidrs, s)
		case conf.WholeInternet(s):
			return msgf("publicAccessCidrs %v includes %s: the whole internet reaches the API", cidrs, s)
		}
	}
	return ""
}

// runnerNetworkDeclared reports whether an ingress security group rule
// on the API port from a network narrower than the internet is declared
// beside the cluster (the cluster component declares it under the same
// parent; its security group id is the cluster's output, unknown before
// the cluster exists, so the parent is what ties them).
func runnerNetworkDeclared(rs []Resource, cl Resource) bool {
	for _, r := range object.ByType(rs, object.AWSSecurityGroupRule) {
		if r.Parent != cl.Parent || object.Str(r.Props["type"]) != "ingress" {
			continue
		}
		from, ok1 := object.Int(r.Props["fromPort"])
		to, ok2 := object.Int(r.Props["toPort"])
		if !ok1 || !ok2 || from > kubernetesAPIPort || to < kubernetesAPIPort {
			continue
		}
		if p := strings.ToLower(object.Str(r.Props["protocol"])); p != "tcp" && p != "6" && p != "-1" && p != "all" {
			continue
		}
		for _, c := range object.ListOf(r.Props["cidrBlocks"]) {
			if s := object.Str(c); conf.ValidCIDR(s) && !conf.WholeInternet(s) {
				return true
			}
		}
	}
	return false
}
