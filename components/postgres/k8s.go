package postgres

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// postgresUID runs the database pods: the postgres account of both the
// official image and the Debian one `scaleplane images build` makes (which
// pins it to 999 for this reason, internal/images postgresAccount). initdb
// and the server refuse a uid without a passwd entry, and one uid for both
// images keeps a volume usable by either.
const postgresUID = 999

// poolerUID runs PgBouncer; it needs no home, only its mounted files.
const poolerUID = 65532

// newIngressPolicy admits the given peers on one port.
func newIngressPolicy(ctx *pulumi.Context, resName, objName, ns string, l, selector map[string]string, port int, from []map[string]string, parent pulumi.ResourceOption) error {
	var peers networkingv1.NetworkPolicyPeerArray
	for _, m := range from {
		peers = append(peers, networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(m)}})
	}
	_, err := networkingv1.NewNetworkPolicy(ctx, resName, &networkingv1.NetworkPolicyArgs{
		Metadata: kube.Meta(objName, ns, l),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
				From:  peers,
				Ports: networkingv1.NetworkPolicyPortArray{networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(port), Protocol: pulumi.String("TCP")}},
			}},
		},
	}, parent)
	return err
}

func secretEnv(name, secret, key string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), ValueFrom: &corev1.EnvVarSourceArgs{
		SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: pulumi.String(secret), Key: pulumi.String(key)},
	}}
}

func wrap(name, what string, err error) error {
	return fmt.Errorf("postgres %s: %s: %w", name, what, err)
}
