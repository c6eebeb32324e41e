// Package lbcontroller declares the AWS Load Balancer Controller on EKS the
// way its users declare it: an IAM role for its service account (IRSA,
// trusted by the cluster's OIDC provider for that one service account), the
// controller's IAM policy, and the Helm release of the
// aws-load-balancer-controller chart from eks-charts, pinned, with the
// cluster's name, region and VPC. It also gives the annotations that make
// a Service of type LoadBalancer an NLB with IP targets, TLS on the NLB
// (an ACM certificate) and PROXY protocol v2 to the pods (NLBAnnotations).
package lbcontroller

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	helmv3 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/irsa"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:lbcontroller:Controller"

// The chart, pinned: a chart release pins the controller's image (v2.13.0
// for chart 1.13.0), so an `up` months later installs the same controller.
const (
	ChartRepo    = "https://aws.github.io/eks-charts"
	ChartName    = "aws-load-balancer-controller"
	ChartVersion = "1.13.0"
)

// Namespace and ServiceAccount are where the controller runs and the
// service account its IAM role trusts (the chart's own defaults).
const (
	Namespace      = "kube-system"
	ServiceAccount = "aws-load-balancer-controller"
)

// RoleARNAnnotation is the service-account annotation EKS's pod identity
// webhook reads to inject the role's web-identity token.
const RoleARNAnnotation = "eks.amazonaws.com/role-arn"

// Args configure the controller.
type Args struct {
	// ClusterName is the EKS cluster's name: the controller tags what it
	// creates with it and only touches what carries it.
	ClusterName string
	// Region and VpcID are given rather than discovered from the instance
	// metadata, which the controller's pods may not reach (IMDSv2 hop limit).
	Region string
	VpcID  pulumi.StringInput
	// OIDCProviderARN and OIDCIssuer are the cluster's IAM OIDC provider
	// and its issuer URL (cluster.Cluster's outputs).
	OIDCProviderARN pulumi.StringInput
	OIDCIssuer      pulumi.StringInput
	// ChartVersion defaults to ChartVersion.
	ChartVersion string
	// Replicas defaults to 2: the controller is leader-elected, the second
	// pod takes over at once when a node drains.
	Replicas int
	// NodeSelector places the controller (the system node group).
	NodeSelector map[string]string
	// Tags go on the IAM role and policy.
	Tags map[string]string
}

// Controller is the declared controller.
type Controller struct {
	pulumi.ResourceState

	// RoleARN is the IAM role the controller's service account assumes.
	RoleARN pulumi.StringOutput `pulumi:"roleArn"`
	// ReleaseName is the Helm release's name in Namespace.
	ReleaseName pulumi.StringOutput `pulumi:"releaseName"`
}

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,99}$`)
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	semverRE = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
)

// Validate reports every problem of the arguments.
func (a *Args) Validate() error {
	var errs []error
	if !nameRE.MatchString(a.ClusterName) {
		errs = append(errs, fmt.Errorf("clusterName %q: must be an EKS cluster name (a letter, then letters, digits, dashes)", a.ClusterName))
	}
	if !regionRE.MatchString(a.Region) {
		errs = append(errs, fmt.Errorf("region %q: must be an AWS region such as us-east-1", a.Region))
	}
	if a.VpcID == nil {
		errs = append(errs, errors.New("vpcId: required (the controller registers pod IPs of this VPC)"))
	}
	if a.OIDCProviderARN == nil || a.OIDCIssuer == nil {
		errs = append(errs, errors.New("oidcProviderArn and oidcIssuer: required (the cluster's IAM OIDC provider, for IRSA)"))
	}
	if a.ChartVersion != "" && !semverRE.MatchString(a.ChartVersion) {
		errs = append(errs, fmt.Errorf("chartVersion %q: must be an exact chart version such as %s, never a range", a.ChartVersion, ChartVersion))
	}
	if a.Replicas < 0 {
		errs = append(errs, fmt.Errorf("replicas %d: must be positive (0 takes 2)", a.Replicas))
	}
	return errors.Join(errs...)
}

// NewController validates args and declares the IAM role (IRSA), its
// policy and the Helm release.
func NewController(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Controller, error) {
	if args == nil {
		return nil, fmt.Errorf("lbcontroller %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("lbcontroller %s: %w", name, err)
	}
	version, replicas := args.ChartVersion, args.Replicas
	if version == "" {
		version = ChartVersion
	}
	if replicas == 0 {
		replicas = 2
	}
	c := &Controller{}
	if err := ctx.RegisterComponentResource(TypeToken, name, c, opts...); err != nil {
		return nil, fmt.Errorf("lbcontroller %s: register: %w", name, err)
	}
	child, err := children.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("lbcontroller %s: options: %w", name, err)
	}
	fail := func(what string, err error) (*Controller, error) {
		return nil, fmt.Errorf("lbcontroller %s: %s: %w", name, what, err)
	}
	tags := pulumi.ToStringMap(args.Tags)
	role, err := iam.NewRole(ctx, name+"-role", &iam.RoleArgs{
		AssumeRolePolicy: irsa.TrustPolicy(args.OIDCProviderARN, args.OIDCIssuer, Namespace, ServiceAccount),
		Description:      pulumi.Sprintf("AWS Load Balancer Controller of EKS cluster %s (IRSA)", args.ClusterName),
		Tags:             tags,
	}, child)
	if err != nil {
		return fail("role", err)
	}
	policy, err := iam.NewPolicy(ctx, name+"-policy", &iam.PolicyArgs{
		Description: pulumi.Sprintf("AWS Load Balancer Controller of EKS cluster %s: NLBs with IP targets", args.ClusterName),
		Policy:      pulumi.String(IAMPolicy()),
		Tags:        tags,
	}, child)
	if err != nil {
		return fail("policy", err)
	}
	attach, err := iam.NewRolePolicyAttachment(ctx, name+"-policy", &iam.RolePolicyAttachmentArgs{
		Role: role.Name, PolicyArn: policy.Arn,
	}, child)
	if err != nil {
		return fail("policy attachment", err)
	}
	nodeSelector := pulumi.StringMap{}
	for k, v := range args.NodeSelector {
		nodeSelector[k] = pulumi.String(v)
	}
	values := pulumi.Map{
		"clusterName":  pulumi.String(args.ClusterName),
		"region":       pulumi.String(args.Region),
		"vpcId":        args.VpcID,
		"replicaCount": pulumi.Int(replicas),
		"serviceAccount": pulumi.Map{
			"create":      pulumi.Bool(true),
			"name":        pulumi.String(ServiceAccount),
			"annotations": pulumi.StringMap{RoleARNAnnotation: role.Arn},
		},
		// Only Services that ask for it (aws-load-balancer-type: external)
		// get an NLB from the controller; the others keep the in-tree
		// behaviour instead of being silently converted.
		"enableServiceMutatorWebhook": pulumi.Bool(false),
		"nodeSelector":                nodeSelector,
	}
	// Created after the policy is attached: a controller that starts
	// without its permissions fails its first reconcile of every Service.
	rel, err := helmv3.NewRelease(ctx, name+"-chart", &helmv3.ReleaseArgs{
		Name:           pulumi.String(ChartName),
		Chart:          pulumi.String(ChartName),
		Version:        pulumi.String(version),
		RepositoryOpts: &helmv3.RepositoryOptsArgs{Repo: pulumi.String(ChartRepo)},
		Namespace:      pulumi.String(Namespace),
		Values:         values,
		Atomic:         pulumi.Bool(true),
	}, child, pulumi.DependsOn([]pulumi.Resource{attach}))
	if err != nil {
		return fail("helm release", err)
	}
	c.RoleARN = role.Arn
	c.ReleaseName = rel.Name.Elem().ToStringOutput()
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"roleArn": c.RoleARN, "releaseName": c.ReleaseName}); err != nil {
		return fail("outputs", err)
	}
	return c, nil
}

// Annotation keys the controller reads on a Service.
const (
	annotationPrefix = "service.beta.kubernetes.io/aws-load-balancer-"
	// SSLNegotiationPolicy allows TLS 1.3 and 1.2 only: ELB's current
	// recommended policy, Mozilla "intermediate"-like ciphers.
	SSLNegotiationPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
)

// NLBAnnotations are the annotations of the edge's LoadBalancer Service
// that make the controller provision an internet-facing NLB with IP
// targets (traffic goes to the pods, not through a node port), cross-zone
// balancing, TCP to the targets and, when proxyProtocol is on, PROXY
// protocol v2 on every target group so the edge sees the client's address.
//
// With certificateARN set, the NLB terminates TLS on tlsPorts (port
// numbers of the Service) with that ACM certificate and
// SSLNegotiationPolicy, and forwards plain TCP. The edge must then accept
// PROXY v2 on every port (the "*" applies to all target groups) and must
// treat the listener behind tlsPorts as TLS terminated upstream (plain
// HTTP to the pod, the request's scheme https). With certificateARN nil
// the NLB passes TLS through untouched and tlsPorts must be empty.
func NLBAnnotations(certificateARN pulumi.StringInput, tlsPorts []int, proxyProtocol bool) (pulumi.StringMap, error) {
	for _, p := range tlsPorts {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("nlb annotations: tls port %d: must be in 1..65535", p)
		}
	}
	if certificateARN != nil && len(tlsPorts) == 0 {
		return nil, errors.New("nlb annotations: tlsPorts: at least one port when a certificate is given (443 for https)")
	}
	if certificateARN == nil && len(tlsPorts) > 0 {
		return nil, fmt.Errorf("nlb annotations: tlsPorts %v: need a certificate ARN to terminate TLS on the NLB", tlsPorts)
	}
	m := pulumi.StringMap{
		annotationPrefix + "type":             pulumi.String("external"),
		annotationPrefix + "nlb-target-type":  pulumi.String("ip"),
		annotationPrefix + "scheme":           pulumi.String("internet-facing"),
		annotationPrefix + "backend-protocol": pulumi.String("tcp"),
		// Without cross-zone balancing a zone with fewer edge pods takes
		// the same share of connections as the others.
		annotationPrefix + "attributes": pulumi.String("load_balancing.cross_zone.enabled=true"),
	}
	if proxyProtocol {
		m[annotationPrefix+"proxy-protocol"] = pulumi.String("*")
	}
	if certificateARN != nil {
		ports := slices.Sorted(slices.Values(tlsPorts))
		s := make([]string, len(ports))
		for i, p := range ports {
			s[i] = strconv.Itoa(p)
		}
		m[annotationPrefix+"ssl-cert"] = certificateARN
		m[annotationPrefix+"ssl-ports"] = pulumi.String(strings.Join(s, ","))
		m[annotationPrefix+"ssl-negotiation-policy"] = pulumi.String(SSLNegotiationPolicy)
	}
	return m, nil
}
