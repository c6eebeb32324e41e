// Package namespace declares a namespace that enforces the restricted Pod
// Security Standard and denies all ingress unless a workload's own
// NetworkPolicy admits its callers.
package namespace

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:namespace:Namespace"

// PodSecurityLevel is enforced, audited and warned on every namespace.
const PodSecurityLevel = "restricted"

// Args configure a namespace.
type Args struct {
	// Name is the namespace's metadata.name.
	Name string
	// Environment labels the namespace (local, dev, staging, prod).
	Environment string
}

// Namespace is the declared namespace.
type Namespace struct {
	pulumi.ResourceState

	// Name is the namespace's name, known once it exists, so children that
	// use it wait for it.
	Name pulumi.StringOutput `pulumi:"name"`
}

// NewNamespace declares the namespace and its default-deny ingress policy.
func NewNamespace(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Namespace, error) {
	// 63 is Kubernetes' own limit for a namespace's name.
	if err := kube.CheckName(argsName(args), 63); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	n := &Namespace{}
	if err := ctx.RegisterComponentResource(TypeToken, name, n, opts...); err != nil {
		return nil, fmt.Errorf("namespace %s: register: %w", name, err)
	}
	child, err := children.Options(n, opts)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: options: %w", name, err)
	}
	ns, err := corev1.NewNamespace(ctx, name+"-namespace", &corev1.NamespaceArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(args.Name),
			Labels: pulumi.StringMap{
				"pod-security.kubernetes.io/enforce": pulumi.String(PodSecurityLevel),
				"pod-security.kubernetes.io/audit":   pulumi.String(PodSecurityLevel),
				"pod-security.kubernetes.io/warn":    pulumi.String(PodSecurityLevel),
				"app.kubernetes.io/part-of":          pulumi.String(kube.PartOf),
				"scaleplane.dev/environment":         pulumi.String(args.Environment),
			},
		},
	}, child)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: namespace: %w", name, err)
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-default-deny", &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String("default-deny-ingress"),
			Namespace: ns.Metadata.Name().Elem(),
		},
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: &metav1.LabelSelectorArgs{},
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
		},
	}, child); err != nil {
		return nil, fmt.Errorf("namespace %s: default-deny policy: %w", name, err)
	}
	n.Name = ns.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(n, pulumi.Map{"name": n.Name}); err != nil {
		return nil, fmt.Errorf("namespace %s: outputs: %w", name, err)
	}
	return n, nil
}

func argsName(a *Args) string {
	if a == nil {
		return ""
	}
	return a.Name
}
