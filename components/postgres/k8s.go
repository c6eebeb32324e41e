package postgres

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// postgresUID runs the database pods: the postgres account of both the
// official image and the Debian one `scaleplane images build` makes (which
// pins it to 999 for this reason, internal/images postgresAccount). initdb
// and the server refuse a uid without a passwd entry, and one uid for both
// images keeps a volume usable by either.
const postgresUID = 999

// poolerUID runs PgBouncer; it needs no home, only its mounted files.
const poolerUID = 65532

func meta(name, namespace string, l map[string]string) *metav1.ObjectMetaArgs {
	return &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String(namespace), Labels: pulumi.ToStringMap(l)}
}

// placement keeps pods of one set off a shared node where it can and
// spreads them over zones.
func placement(selector map[string]string, zoneRequired bool) (*corev1.AffinityArgs, corev1.TopologySpreadConstraintArray) {
	when := "ScheduleAnyway"
	if zoneRequired {
		when = "DoNotSchedule"
	}
	sel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)}
	return &corev1.AffinityArgs{PodAntiAffinity: &corev1.PodAntiAffinityArgs{
			PreferredDuringSchedulingIgnoredDuringExecution: corev1.WeightedPodAffinityTermArray{corev1.WeightedPodAffinityTermArgs{
				Weight:          pulumi.Int(100),
				PodAffinityTerm: corev1.PodAffinityTermArgs{TopologyKey: pulumi.String("kubernetes.io/hostname"), LabelSelector: sel},
			}},
		}}, corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
			MaxSkew: pulumi.Int(1), TopologyKey: pulumi.String("topology.kubernetes.io/zone"),
			WhenUnsatisfiable: pulumi.String(when), LabelSelector: sel,
		}}
}

func newPDB(ctx *pulumi.Context, resName, objName, ns string, l, selector map[string]string, parent pulumi.ResourceOption) error {
	_, err := policyv1.NewPodDisruptionBudget(ctx, resName, &policyv1.PodDisruptionBudgetArgs{
		Metadata: meta(objName, ns, l),
		Spec: &policyv1.PodDisruptionBudgetSpecArgs{
			// One pod at a time. For the single primary this still lets a
			// node drain proceed (a brief write outage the poolers ride
			// out with server_login_retry), instead of blocking it forever.
			MaxUnavailable: pulumi.Int(1),
			Selector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
		},
	}, parent)
	return err
}

// newIngressPolicy admits the given peers on one port.
func newIngressPolicy(ctx *pulumi.Context, resName, objName, ns string, l, selector map[string]string, port int, from []map[string]string, parent pulumi.ResourceOption) error {
	var peers networkingv1.NetworkPolicyPeerArray
	for _, m := range from {
		peers = append(peers, networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(m)}})
	}
	_, err := networkingv1.NewNetworkPolicy(ctx, resName, &networkingv1.NetworkPolicyArgs{
		Metadata: meta(objName, ns, l),
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
