package certmanager

import (
	"fmt"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// Rule is one RBAC rule: API groups, resources, optional resource names, verbs.
type Rule struct {
	Groups, Resources, Names, Verbs []string
}

// Grant is a role for one of cert-manager's service accounts: cluster-wide
// (ClusterRole) or in cert-manager's namespace (Role).
type Grant struct {
	// Role is the role's and its binding's object name.
	Role string
	// Namespaced makes it a Role in Args.Namespace.
	Namespaced bool
	Rules      []Rule
}

func r(groups, resources, verbs []string, names ...string) Rule {
	return Rule{Groups: groups, Resources: resources, Verbs: verbs, Names: names}
}

var (
	core       = []string{""}
	cm         = []string{"cert-manager.io"}
	acme       = []string{"acme.cert-manager.io"}
	watch      = []string{"get", "list", "watch"}
	updPatch   = []string{"update", "patch"}
	evRecorder = r(core, []string{"events"}, []string{"create", "patch"})
)

// Grants are the roles of each service account, written after what
// upstream's chart grants (deploy/charts/cert-manager/templates/*rbac.yaml
// of Version) minus what this deployment never uses: leader election
// (every process runs with --leader-elect=false, one pod each), the
// Gateway API and OpenShift route solvers (neither API exists on the
// clusters scaleplane targets; the controller starts its Gateway shim only
// with --enable-gateway-api) and the aggregated view/edit roles for
// humans. The controller keeps cluster-wide Secret access: a Certificate in
// any namespace writes its Secret there.
func Grants() map[string][]Grant {
	return map[string][]Grant{
		"controller": {
			{Role: "cert-manager-controller-issuers", Rules: []Rule{
				r(cm, []string{"issuers", "issuers/status"}, updPatch),
				r(cm, []string{"issuers"}, watch),
				r(core, []string{"secrets"}, []string{"get", "list", "watch", "create", "update", "delete"}),
				evRecorder,
			}},
			{Role: "cert-manager-controller-clusterissuers", Rules: []Rule{
				r(cm, []string{"clusterissuers", "clusterissuers/status"}, updPatch),
				r(cm, []string{"clusterissuers"}, watch),
				r(core, []string{"secrets"}, []string{"get", "list", "watch", "create", "update", "delete"}),
				evRecorder,
			}},
			{Role: "cert-manager-controller-certificates", Rules: []Rule{
				r(cm, []string{"certificates", "certificates/status", "certificaterequests", "certificaterequests/status"}, updPatch),
				r(cm, []string{"certificates", "certificaterequests", "clusterissuers", "issuers"}, watch),
				r(cm, []string{"certificates/finalizers", "certificaterequests/finalizers"}, []string{"update"}),
				r(acme, []string{"orders"}, []string{"create", "delete", "get", "list", "watch"}),
				r(core, []string{"secrets"}, []string{"get", "list", "watch", "create", "update", "delete", "patch"}),
				evRecorder,
			}},
			{Role: "cert-manager-controller-orders", Rules: []Rule{
				r(acme, []string{"orders", "orders/status"}, updPatch),
				r(acme, []string{"orders", "challenges"}, watch),
				r(cm, []string{"clusterissuers", "issuers"}, watch),
				r(acme, []string{"challenges"}, []string{"create", "delete"}),
				r(acme, []string{"orders/finalizers"}, []string{"update"}),
				r(cm, []string{"clusterissuers/finalizers", "issuers/finalizers"}, []string{"update"}),
				r(core, []string{"secrets"}, watch),
				evRecorder,
			}},
			{Role: "cert-manager-controller-challenges", Rules: []Rule{
				r(acme, []string{"challenges", "challenges/status"}, updPatch),
				r(acme, []string{"challenges"}, watch),
				r(cm, []string{"issuers", "clusterissuers"}, watch),
				r(core, []string{"secrets"}, watch),
				evRecorder,
				// HTTP-01 solver pods and Services, and the Ingress that routes to them.
				r(core, []string{"pods", "services"}, []string{"get", "list", "watch", "create", "delete"}),
				r([]string{"networking.k8s.io"}, []string{"ingresses"}, []string{"get", "list", "watch", "create", "delete", "update"}),
				r(acme, []string{"challenges/finalizers"}, []string{"update"}),
			}},
			{Role: "cert-manager-controller-ingress-shim", Rules: []Rule{
				r(cm, []string{"certificates", "certificaterequests"}, []string{"create", "update", "delete"}),
				r(cm, []string{"certificates", "certificaterequests", "issuers", "clusterissuers"}, watch),
				r([]string{"networking.k8s.io"}, []string{"ingresses"}, watch),
				r([]string{"networking.k8s.io"}, []string{"ingresses/finalizers"}, []string{"update"}),
				evRecorder,
			}},
			{Role: "cert-manager-controller-approve", Rules: []Rule{
				r(cm, []string{"signers"}, []string{"approve"}, "issuers.cert-manager.io/*", "clusterissuers.cert-manager.io/*"),
			}},
			{Role: "cert-manager-controller-certificatesigningrequests", Rules: []Rule{
				r([]string{"certificates.k8s.io"}, []string{"certificatesigningrequests"}, []string{"get", "list", "watch", "update"}),
				r([]string{"certificates.k8s.io"}, []string{"certificatesigningrequests/status"}, updPatch),
				r([]string{"certificates.k8s.io"}, []string{"signers"}, []string{"sign"}, "issuers.cert-manager.io/*", "clusterissuers.cert-manager.io/*"),
				r([]string{"authorization.k8s.io"}, []string{"subjectaccessreviews"}, []string{"create"}),
			}},
		},
		"webhook": {
			// Its dynamic serving CA: only the one Secret, plus create (a
			// create cannot be limited by name).
			{Role: "cert-manager-webhook:dynamic-serving", Namespaced: true, Rules: []Rule{
				r(core, []string{"secrets"}, []string{"get", "list", "watch", "update"}, WebhookCASecret),
				r(core, []string{"secrets"}, []string{"create"}),
			}},
			// It authorizes the caller of a request (who may approve a CertificateRequest).
			{Role: "cert-manager-webhook:subjectaccessreviews", Rules: []Rule{
				r([]string{"authorization.k8s.io"}, []string{"subjectaccessreviews"}, []string{"create"}),
			}},
		},
		"cainjector": {
			{Role: "cert-manager-cainjector", Rules: []Rule{
				r(cm, []string{"certificates"}, watch),
				r(core, []string{"secrets"}, watch),
				r(core, []string{"events"}, []string{"get", "create", "update", "patch"}),
				r([]string{"admissionregistration.k8s.io"}, []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}, []string{"get", "list", "watch", "update", "patch"}),
				r([]string{"apiregistration.k8s.io"}, []string{"apiservices"}, []string{"get", "list", "watch", "update", "patch"}),
				r([]string{"apiextensions.k8s.io"}, []string{"customresourcedefinitions"}, []string{"get", "list", "watch", "update", "patch"}),
			}},
		},
		"apicheck": {
			// A server-side dry-run create of an Issuer is authorized like a create.
			{Role: "cert-manager-apicheck", Namespaced: true, Rules: []Rule{
				r(cm, []string{"issuers"}, []string{"create"}),
			}},
		},
	}
}

// newIdentity declares a ServiceAccount (with an API token: every
// cert-manager process talks to the API server) and binds its grants.
func newIdentity(ctx *pulumi.Context, name, who, namespace string, labels map[string]string, opts ...pulumi.ResourceOption) (*corev1.ServiceAccount, error) {
	saName := "cert-manager-" + who
	sa, err := corev1.NewServiceAccount(ctx, name+"-"+who+"-serviceaccount", &corev1.ServiceAccountArgs{
		Metadata:                     kube.Meta(saName, namespace, labels),
		AutomountServiceAccountToken: pulumi.Bool(true),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s service account: %w", who, err)
	}
	subjects := rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(namespace)}}
	for _, g := range Grants()[who] {
		var rules rbacv1.PolicyRuleArray
		for _, ru := range g.Rules {
			pr := rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray(ru.Groups), Resources: pulumi.ToStringArray(ru.Resources), Verbs: pulumi.ToStringArray(ru.Verbs)}
			if len(ru.Names) > 0 {
				pr.ResourceNames = pulumi.ToStringArray(ru.Names)
			}
			rules = append(rules, pr)
		}
		// Pulumi names after the role, without the colons of upstream's names.
		role := name + "-" + strings.TrimPrefix(strings.ReplaceAll(g.Role, ":", "-"), "cert-manager-")
		ref := &rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Name: pulumi.String(g.Role)}
		if g.Namespaced {
			ref.Kind = pulumi.String("Role")
			if _, err := rbacv1.NewRole(ctx, role, &rbacv1.RoleArgs{Metadata: kube.Meta(g.Role, namespace, labels), Rules: rules}, opts...); err != nil {
				return nil, fmt.Errorf("%s role %s: %w", who, g.Role, err)
			}
			if _, err := rbacv1.NewRoleBinding(ctx, role+"-binding", &rbacv1.RoleBindingArgs{Metadata: kube.Meta(g.Role, namespace, labels), RoleRef: ref, Subjects: subjects}, opts...); err != nil {
				return nil, fmt.Errorf("%s role binding %s: %w", who, g.Role, err)
			}
			continue
		}
		ref.Kind = pulumi.String("ClusterRole")
		if _, err := rbacv1.NewClusterRole(ctx, role, &rbacv1.ClusterRoleArgs{Metadata: kube.Meta(g.Role, "", labels), Rules: rules}, opts...); err != nil {
			return nil, fmt.Errorf("%s cluster role %s: %w", who, g.Role, err)
		}
		if _, err := rbacv1.NewClusterRoleBinding(ctx, role+"-binding", &rbacv1.ClusterRoleBindingArgs{Metadata: kube.Meta(g.Role, "", labels), RoleRef: ref, Subjects: subjects}, opts...); err != nil {
			return nil, fmt.Errorf("%s cluster role binding %s: %w", who, g.Role, err)
		}
	}
	return sa, nil
}
