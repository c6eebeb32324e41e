package lbcontroller

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type declared struct {
	typ, name string
	inputs    map[string]any
	deps      []string
}

type recorder struct {
	mu  sync.Mutex
	all []declared
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, declared{args.TypeToken, args.Name, args.Inputs.Mappable(), args.RegisterRPC.GetDependencies()})
	out := args.Inputs.Copy()
	if args.TypeToken == "aws:iam/role:Role" || args.TypeToken == "aws:iam/policy:Policy" {
		out["arn"] = resource.NewStringProperty("arn:aws:iam::123456789012:role/" + args.Name)
	}
	return args.Name + "-id", out, nil
}

func (r *recorder) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (r *recorder) one(t *testing.T, typ string) declared {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []declared
	for _, d := range r.all {
		if d.typ == typ {
			out = append(out, d)
		}
	}
	require.Len(t, out, 1, "one %s", typ)
	return out[0]
}

const issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"

func args() *Args {
	return &Args{
		ClusterName: "scaleplane-prod", Region: "eu-west-1", VpcID: pulumi.String("vpc-1"),
		OIDCProviderARN: pulumi.String("arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"),
		OIDCIssuer:      pulumi.String(issuer),
		NodeSelector:    map[string]string{"scaleplane.dev/pool": "system"},
	}
}

func declare(t *testing.T, a *Args) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewController(ctx, "aws-lb-controller", a)
		return err
	}, pulumi.WithMocks("scaleplane", "test", r))
	return r, err
}

func TestRoleTrustsOnlyTheControllersServiceAccount(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare")
	role := r.one(t, "aws:iam/role:Role")
	assert.Equal(t, "aws-lb-controller-role", role.name, "named <name>-role")
	var trust struct {
		Statement []struct {
			Principal map[string]string
			Condition map[string]map[string]string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(role.inputs["assumeRolePolicy"].(string)), &trust), "trust policy is JSON")
	require.Len(t, trust.Statement, 1, "one statement")
	st := trust.Statement[0]
	assert.Contains(t, st.Principal["Federated"], "oidc-provider", "trusted by the cluster's OIDC provider")
	host := "oidc.eks.eu-west-1.amazonaws.com/id/ABC"
	assert.Equal(t, "system:serviceaccount:kube-system:aws-load-balancer-controller", st.Condition["StringEquals"][host+":sub"], "only this service account")
	assert.Equal(t, "sts.amazonaws.com", st.Condition["StringEquals"][host+":aud"], "audience STS")
}

func TestPolicyCoversNLBsAndIsScopedByTheClusterTag(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare")
	pol := r.one(t, "aws:iam/policy:Policy")
	var doc struct {
		Statement []struct {
			Action    []string
			Condition map[string]map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(pol.inputs["policy"].(string)), &doc), "policy is JSON")
	actions := map[string]bool{}
	for _, s := range doc.Statement {
		for _, a := range s.Action {
			actions[a] = true
			if a == "elasticloadbalancing:DeleteLoadBalancer" {
				assert.Contains(t, s.Condition["Null"], "aws:ResourceTag/elbv2.k8s.aws/cluster", "deleting only what the controller created")
			}
		}
	}
	for _, a := range []string{"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:CreateListener",
		"elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeleteLoadBalancer", "ec2:CreateSecurityGroup", "acm:DescribeCertificate"} {
		assert.True(t, actions[a], "the NLB needs %s", a)
	}
	for _, a := range []string{"wafv2:AssociateWebACL", "shield:CreateProtection", "cognito-idp:DescribeUserPoolClient"} {
		assert.False(t, actions[a], "trimmed: %s is ALB-only", a)
	}
	r.one(t, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
}

func TestHelmReleaseIsPinnedAndWiredToTheRole(t *testing.T) {
	r, err := declare(t, args())
	require.NoError(t, err, "declare")
	rel := r.one(t, "kubernetes:helm.sh/v3:Release")
	in := rel.inputs
	assert.Equal(t, ChartName, in["chart"], "the controller's chart")
	assert.Equal(t, ChartVersion, in["version"], "pinned chart version")
	assert.Equal(t, ChartRepo, in["repositoryOpts"].(map[string]any)["repo"], "from eks-charts")
	assert.Equal(t, Namespace, in["namespace"], "in kube-system")
	v := in["values"].(map[string]any)
	assert.Equal(t, "scaleplane-prod", v["clusterName"], "clusterName value")
	assert.Equal(t, "eu-west-1", v["region"], "region value")
	assert.Equal(t, "vpc-1", v["vpcId"], "vpcId value")
	sa := v["serviceAccount"].(map[string]any)
	assert.Equal(t, ServiceAccount, sa["name"], "the service account the role trusts")
	assert.Equal(t, "arn:aws:iam::123456789012:role/aws-lb-controller-role", sa["annotations"].(map[string]any)[RoleARNAnnotation], "IRSA annotation carries the role")
	assert.Equal(t, map[string]any{"scaleplane.dev/pool": "system"}, v["nodeSelector"], "on the system pool")
	attach := r.one(t, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
	assert.Contains(t, rel.deps, "urn:pulumi:test::scaleplane::scaleplane:lbcontroller:Controller$aws:iam/rolePolicyAttachment:RolePolicyAttachment::"+attach.name,
		"the controller starts after its permissions are attached")
}

func TestBadArgsAreRefused(t *testing.T) {
	for name, mutate := range map[string]func(*Args){
		"cluster name":  func(a *Args) { a.ClusterName = "-x" },
		"region":        func(a *Args) { a.Region = "Europe" },
		"no vpc":        func(a *Args) { a.VpcID = nil },
		"no oidc":       func(a *Args) { a.OIDCIssuer = nil },
		"chart range":   func(a *Args) { a.ChartVersion = "^1.13" },
		"negative pods": func(a *Args) { a.Replicas = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			a := args()
			mutate(a)
			_, err := declare(t, a)
			assert.Error(t, err, "refused: %s", name)
		})
	}
}

func TestNLBAnnotationsTerminateTLSAndKeepTheClientAddress(t *testing.T) {
	m, err := NLBAnnotations(pulumi.String("arn:aws:acm:eu-west-1:123456789012:certificate/abc"), []int{443}, true)
	require.NoError(t, err, "annotations")
	got := map[string]string{}
	for k, v := range m {
		s, ok := v.(pulumi.String)
		require.True(t, ok, "%s: a plain string here (the certificate ARN given was one)", k)
		got[k] = string(s)
	}
	p := "service.beta.kubernetes.io/aws-load-balancer-"
	want := map[string]string{
		p + "type": "external", p + "nlb-target-type": "ip", p + "scheme": "internet-facing",
		p + "proxy-protocol": "*", p + "ssl-cert": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
		p + "ssl-ports": "443", p + "ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
		p + "backend-protocol": "tcp", p + "attributes": "load_balancing.cross_zone.enabled=true",
	}
	assert.Equal(t, want, got, "the NLB annotations")

	plain, err := NLBAnnotations(nil, nil, false)
	require.NoError(t, err, "TLS passed through")
	assert.NotContains(t, plain, p+"proxy-protocol", "no PROXY protocol unless asked")
	assert.NotContains(t, plain, p+"ssl-cert", "no certificate, no TLS listener")

	_, err = NLBAnnotations(pulumi.String("arn"), nil, true)
	assert.ErrorContains(t, err, "tlsPorts", "a certificate needs ports")
	_, err = NLBAnnotations(nil, []int{443}, true)
	assert.ErrorContains(t, err, "certificate", "ports need a certificate")
	_, err = NLBAnnotations(pulumi.String("arn"), []int{70000}, true)
	assert.ErrorContains(t, err, "70000", "port range")
}
