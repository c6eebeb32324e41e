package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/lbcontroller"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/policies/rules"
	"github.com/scaleplane/scaleplane/stacks"
)

// exampleCertificateARN stands for the ACM certificate's ARN, an output
// the mocks do not produce.
const exampleCertificateARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f2c9a5e-1111-2222-3333-444455556666"

// awsEdgeRules are the rules that judge the edge's Service and config together.
var awsEdgeRules = []string{"edge-tls", "edge-proxy-protocol", "edge-internal-paths", "gateway-trusted-proxies"}

// TestAWSEdgeWiring proves the edge rules against the aws stacks' edge as
// it is meant to be wired: the rendered HAProxy config (TLS terminated
// upstream, PROXY v2 from the VPC) behind a Service carrying exactly what
// lbcontroller.NLBAnnotations returns. The wired edge passes every edge
// rule, and each break of one side fails the rule that owns it. The
// stacks do not pass the annotations to the edge Service yet (the ACM
// certificate's ARN arrives with the certificate component), so the
// shipped prod graph still fails edge-tls and edge-proxy-protocol; this
// test covers the NLB path until they do.
func TestAWSEdgeWiring(t *testing.T) {
	ann, err := lbcontroller.NLBAnnotations(pulumi.String(exampleCertificateARN), []int{443}, true)
	if err != nil {
		t.Fatalf("NLB annotations: %v", err)
	}
	wired := map[string]any{}
	for k, v := range ann {
		s, ok := v.(pulumi.String)
		if !ok {
			t.Fatalf("annotation %s is %T, not a plain string the test can read", k, v)
		}
		wired[k] = string(s)
	}
	const prefix = "service.beta.kubernetes.io/aws-load-balancer-"
	for _, tc := range []struct {
		name   string
		break_ func(g *render.Graph) error
		// want are the rules the break fails; every other edge rule must pass.
		want []string
	}{
		{"wired", nil, nil},
		{"tls-1-0-policy", annotate(func(a map[string]any) { a[prefix+"ssl-negotiation-policy"] = "ELBSecurityPolicy-2016-08" }), []string{"edge-tls"}},
		{"no-certificate", annotate(func(a map[string]any) { delete(a, prefix+"ssl-cert") }), []string{"edge-tls"}},
		{"tls-on-80-only", annotate(func(a map[string]any) { a[prefix+"ssl-ports"] = "80" }), []string{"edge-tls"}},
		{"no-proxy-annotation", annotate(func(a map[string]any) { delete(a, prefix+"proxy-protocol") }), []string{"edge-proxy-protocol"}},
		{"no-accept-proxy", editConfigMust("edge", "bind :8443 accept-proxy", "bind :8443"), []string{"edge-proxy-protocol"}},
		{"proxy-from-anyone", editConfigREMust("edge", `reject unless \{ src [^}]*\}`, "reject unless { src 0.0.0.0/0 }"), []string{"edge-proxy-protocol"}},
		// The status port on the NLB breaks three things at once: it serves
		// /metrics, it is plain HTTP that does not redirect, and it does not
		// accept the PROXY headers the NLB sends on every port.
		{"status-port-on-nlb", mutations["edge-status-port-public"], []string{"edge-internal-paths", "edge-tls", "edge-proxy-protocol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values, err := stacks.ReadStackConfig(moduleRoot, "prod")
			if err != nil {
				t.Fatalf("read stack prod: %v", err)
			}
			g, env, err := render.Values("prod", values)
			if err != nil {
				t.Fatalf("render prod: %v", err)
			}
			if err := annotate(func(a map[string]any) {
				for k, v := range wired {
					a[k] = v
				}
			})(g); err != nil {
				t.Fatalf("wire the NLB annotations: %v", err)
			}
			if tc.break_ != nil {
				if err := tc.break_(g); err != nil {
					t.Fatalf("break %s: %v", tc.name, err)
				}
			}
			rs := make([]rules.Resource, 0, len(g.Resources))
			for _, r := range g.Resources {
				rs = append(rs, rules.Resource{URN: r.URN, Type: r.Type, Name: r.Name, Parent: r.Parent, Props: r.Inputs})
			}
			th := rules.DefaultThresholds(env.Environment)
			for _, id := range awsEdgeRules {
				vs := rules.ByID(id).Check(rs, th)
				wanted := slices.Contains(tc.want, id)
				switch {
				case wanted && len(vs) == 0:
					t.Errorf("%s: want a %s violation, got none", tc.name, id)
				case !wanted && len(vs) > 0:
					t.Errorf("%s: want no %s violation, got %d: %s", tc.name, id, len(vs), messages(vs))
				}
			}
		})
	}
}

// annotate edits the edge Service's annotations.
func annotate(f func(map[string]any)) mutation {
	return set("Service", "edge", func(o map[string]any) {
		meta := o["metadata"].(map[string]any)
		a, _ := meta["annotations"].(map[string]any)
		if a == nil {
			a = map[string]any{}
		}
		f(a)
		meta["annotations"] = a
	})
}

func messages(vs []rules.Violation) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Message)
	}
	return strings.Join(out, "; ")
}
