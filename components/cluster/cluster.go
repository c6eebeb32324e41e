// Package cluster declares an EKS cluster for the platform: a pinned
// Kubernetes version, a private API endpoint (public only if asked, from
// listed networks), every control-plane log type, Secrets encrypted with a
// KMS key of its own, managed node groups in the private subnets (on-demand
// for the system pool, spot allowed for the workers), the OIDC provider for
// IAM roles for service accounts, the Cluster Autoscaler's IAM role, the EBS
// CSI driver with an encrypted gp3 default StorageClass, and a
// Kubernetes provider built from the cluster's kubeconfig that every
// in-cluster component of staging and prod is declared with.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/eks"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	storagev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/storage/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/irsa"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:cluster:Cluster"

// KubernetesVersion is the pinned EKS version; the same minor as the
// embedded local cluster and the Cluster Autoscaler image.
const KubernetesVersion = "1.34"

// LogTypes are every control-plane log EKS can ship; audit and
// authenticator are the ones an incident review needs.
var LogTypes = []string{"api", "audit", "authenticator", "controllerManager", "scheduler"}

// Capacity types of a node group.
const (
	OnDemand = "ON_DEMAND"
	Spot     = "SPOT"
)

// NodeGroup sizes one managed node group. The Cluster Autoscaler moves the
// size between Min and Max; Desired is only the first size.
type NodeGroup struct {
	InstanceTypes []string
	CapacityType  string
	Min, Max      int
	Desired       int
	DiskGiB       int
}

// Args configure the cluster.
type Args struct {
	// ClusterName is the EKS cluster's name (and the tag the subnets carry).
	ClusterName string
	// Region is where the cluster runs (for the kubeconfig's token command).
	Region string
	// Version defaults to KubernetesVersion.
	Version string
	// SubnetIDs are the private subnets: the control plane's network
	// interfaces and every node go there.
	SubnetIDs pulumi.StringArrayInput
	// PublicEndpoint also exposes the API on the internet, from
	// PublicAccessCIDRs only; the private endpoint is always on.
	PublicEndpoint    bool
	PublicAccessCIDRs []string
	// PrivateRunnerCIDRs are networks inside the VPC (or peered with it)
	// where a deploy runner lives: the cluster security group admits them
	// on 443, so the private endpoint answers them.
	PrivateRunnerCIDRs []string
	// LogRetentionDays keeps the control-plane logs this long.
	LogRetentionDays int
	System           NodeGroup
	Workers          NodeGroup
	Tags             map[string]string
}

// Cluster is the declared EKS cluster.
type Cluster struct {
	pulumi.ResourceState

	// Name is the EKS cluster name.
	Name pulumi.StringOutput `pulumi:"name"`
	// Endpoint is the API server URL.
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
	// OIDCIssuer is the service-account token issuer URL.
	OIDCIssuer pulumi.StringOutput `pulumi:"oidcIssuer"`
	// OIDCProviderARN is the IAM OIDC provider roles for service accounts trust.
	OIDCProviderARN pulumi.StringOutput `pulumi:"oidcProviderArn"`
	// NodeSecurityGroupID is the cluster security group EKS puts on every
	// managed node: data stores admit the cluster by this group alone.
	NodeSecurityGroupID pulumi.StringOutput `pulumi:"nodeSecurityGroupId"`
	// AutoscalerRoleARN is the Cluster Autoscaler's IAM role (IRSA).
	AutoscalerRoleARN pulumi.StringOutput `pulumi:"autoscalerRoleArn"`
	// Kubeconfig reaches the cluster with `aws eks get-token`.
	Kubeconfig pulumi.StringOutput `pulumi:"kubeconfig"`
	// Provider is the Kubernetes provider of this cluster; pass it with
	// pulumi.Provider to every in-cluster component.
	Provider *kubernetes.Provider
}

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,99}$`)
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	cidrRE   = regexp.MustCompile(`^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$`)
)

// Validate reports every problem of the arguments.
func (a *Args) Validate() error {
	var errs []error
	if !nameRE.MatchString(a.ClusterName) {
		errs = append(errs, fmt.Errorf("clusterName %q: must start with a letter and hold letters, digits and dashes", a.ClusterName))
	}
	if !regionRE.MatchString(a.Region) {
		errs = append(errs, fmt.Errorf("region %q: must be an AWS region such as us-east-1", a.Region))
	}
	if a.SubnetIDs == nil {
		errs = append(errs, fmt.Errorf("subnetIds: the private subnets are required"))
	}
	if a.PublicEndpoint {
		if len(a.PublicAccessCIDRs) == 0 || slices.Contains(a.PublicAccessCIDRs, "0.0.0.0/0") {
			errs = append(errs, fmt.Errorf("publicAccessCidrs %v: a public endpoint must be limited to listed networks, never 0.0.0.0/0", a.PublicAccessCIDRs))
		}
		for _, c := range a.PublicAccessCIDRs {
			if !cidrRE.MatchString(c) {
				errs = append(errs, fmt.Errorf("publicAccessCidr %q: must be an IPv4 CIDR", c))
			}
		}
	}
	for _, c := range a.PrivateRunnerCIDRs {
		if !cidrRE.MatchString(c) || c == "0.0.0.0/0" {
			errs = append(errs, fmt.Errorf("privateRunnerCidr %q: must be an IPv4 CIDR narrower than 0.0.0.0/0", c))
		}
	}
	if !a.PublicEndpoint && len(a.PrivateRunnerCIDRs) == 0 {
		errs = append(errs, fmt.Errorf("publicEndpoint false and no privateRunnerCidrs: no one could reach the API to deploy; list the deployers' networks or a runner network"))
	}
	if a.LogRetentionDays <= 0 {
		errs = append(errs, fmt.Errorf("logRetentionDays %d: must be positive", a.LogRetentionDays))
	}
	for role, g := range map[string]NodeGroup{"system": a.System, "workers": a.Workers} {
		errs = append(errs, g.validate(role))
	}
	if a.System.CapacityType != OnDemand {
		errs = append(errs, fmt.Errorf("system.capacityType %q: the system pool runs on-demand (spot reclaims would take CoreDNS and metrics-server with them)", a.System.CapacityType))
	}
	return errors.Join(errs...)
}

func (g NodeGroup) validate(role string) error {
	var errs []error
	if len(g.InstanceTypes) == 0 {
		errs = append(errs, fmt.Errorf("%s.instanceTypes: at least one", role))
	}
	if g.CapacityType != OnDemand && g.CapacityType != Spot {
		errs = append(errs, fmt.Errorf("%s.capacityType %q: must be %s or %s", role, g.CapacityType, OnDemand, Spot))
	}
	if g.CapacityType == Spot && len(g.InstanceTypes) < 2 {
		errs = append(errs, fmt.Errorf("%s.instanceTypes %v: spot needs several instance types so one reclaimed pool does not empty the group", role, g.InstanceTypes))
	}
	if g.Min < 1 || g.Max < g.Min || g.Desired < g.Min || g.Desired > g.Max {
		errs = append(errs, fmt.Errorf("%s size min %d, desired %d, max %d: need 1 <= min <= desired <= max", role, g.Min, g.Desired, g.Max))
	}
	if g.DiskGiB < 20 {
		errs = append(errs, fmt.Errorf("%s.diskGiB %d: at least 20", role, g.DiskGiB))
	}
	return errors.Join(errs...)
}

// EBSCSIServiceAccount is the EBS CSI controller's service account in
// kube-system, which its IAM role trusts.
const EBSCSIServiceAccount = "ebs-csi-controller-sa"

// DefaultStorageClass is the cluster's default StorageClass (encrypted gp3).
const DefaultStorageClass = "gp3"

// AutoscalerServiceAccount is the namespace/name of the Cluster
// Autoscaler's service account, which its IAM role trusts.
const (
	AutoscalerNamespace      = "kube-system"
	AutoscalerServiceAccount = "cluster-autoscaler"
)

func assumeRole(service string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect": "Allow", "Action": "sts:AssumeRole",
			"Principal": map[string]any{"Service": service},
		}},
	})
	return string(b)
}

// NewCluster validates args and declares the KMS key, IAM roles, log
// group, EKS cluster, node groups, OIDC provider, autoscaler role and the
// Kubernetes provider.
func NewCluster(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Cluster, error) {
	if args == nil {
		return nil, fmt.Errorf("cluster %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	version := args.Version
	if version == "" {
		version = KubernetesVersion
	}
	c := &Cluster{}
	if err := ctx.RegisterComponentResource(TypeToken, name, c, opts...); err != nil {
		return nil, fmt.Errorf("cluster %s: register: %w", name, err)
	}
	child, err := children.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: options: %w", name, err)
	}
	tags := pulumi.ToStringMap(args.Tags)
	fail := func(what string, err error) (*Cluster, error) {
		return nil, fmt.Errorf("cluster %s: %s: %w", name, what, err)
	}

	key, err := kms.NewKey(ctx, name+"-secrets", &kms.KeyArgs{
		Description:          pulumi.Sprintf("Envelope encryption of the Kubernetes Secrets of EKS cluster %s", args.ClusterName),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
		Tags:                 tags,
	}, child)
	if err != nil {
		return fail("secrets key", err)
	}
	if _, err := kms.NewAlias(ctx, name+"-secrets", &kms.AliasArgs{
		Name: pulumi.Sprintf("alias/%s-eks-secrets", args.ClusterName), TargetKeyId: key.KeyId,
	}, child); err != nil {
		return fail("secrets key alias", err)
	}
	clusterRole, err := iam.NewRole(ctx, name+"-cluster", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(assumeRole("eks.amazonaws.com")), Tags: tags,
	}, child)
	if err != nil {
		return fail("cluster role", err)
	}
	var attachments []pulumi.Resource
	for _, p := range []string{"AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"} {
		a, err := iam.NewRolePolicyAttachment(ctx, name+"-cluster-"+strings.ToLower(p), &iam.RolePolicyAttachmentArgs{
			Role: clusterRole.Name, PolicyArn: pulumi.String("arn:aws:iam::aws:policy/" + p),
		}, child)
		if err != nil {
			return fail("cluster role policy", err)
		}
		attachments = append(attachments, a)
	}
	// Created before the cluster, so EKS writes into a group with a retention
	// instead of creating one that keeps logs forever.
	logs, err := cloudwatch.NewLogGroup(ctx, name+"-control-plane", &cloudwatch.LogGroupArgs{
		Name:            pulumi.Sprintf("/aws/eks/%s/cluster", args.ClusterName),
		RetentionInDays: pulumi.Int(args.LogRetentionDays),
		Tags:            tags,
	}, child)
	if err != nil {
		return fail("control-plane log group", err)
	}
	vpcConfig := &eks.ClusterVpcConfigArgs{
		SubnetIds:             args.SubnetIDs,
		EndpointPrivateAccess: pulumi.Bool(true),
		EndpointPublicAccess:  pulumi.Bool(args.PublicEndpoint),
	}
	if args.PublicEndpoint {
		vpcConfig.PublicAccessCidrs = pulumi.ToStringArray(args.PublicAccessCIDRs)
	}
	cl, err := eks.NewCluster(ctx, name+"-eks", &eks.ClusterArgs{
		Name:                   pulumi.String(args.ClusterName),
		Version:                pulumi.String(version),
		RoleArn:                clusterRole.Arn,
		VpcConfig:              vpcConfig,
		EnabledClusterLogTypes: pulumi.ToStringArray(LogTypes),
		EncryptionConfig: &eks.ClusterEncryptionConfigArgs{
			Provider:  &eks.ClusterEncryptionConfigProviderArgs{KeyArn: key.Arn},
			Resources: pulumi.ToStringArray([]string{"secrets"}),
		},
		AccessConfig: &eks.ClusterAccessConfigArgs{
			AuthenticationMode:                      pulumi.String("API"),
			BootstrapClusterCreatorAdminPermissions: pulumi.Bool(true),
		},
		Tags: tags,
	}, child, pulumi.DependsOn(append(attachments, logs)))
	if err != nil {
		return fail("eks cluster", err)
	}

	// The private endpoint's network interfaces carry the cluster security
	// group: a runner network reaches the API only once that group admits it.
	clusterSG := cl.VpcConfig.ClusterSecurityGroupId().Elem()
	for i, cidr := range args.PrivateRunnerCIDRs {
		if _, err := ec2.NewSecurityGroupRule(ctx, fmt.Sprintf("%s-api-runner-%d", name, i), &ec2.SecurityGroupRuleArgs{
			Type: pulumi.String("ingress"), SecurityGroupId: clusterSG,
			Protocol: pulumi.String("tcp"), FromPort: pulumi.Int(443), ToPort: pulumi.Int(443),
			CidrBlocks:  pulumi.ToStringArray([]string{cidr}),
			Description: pulumi.Sprintf("Kubernetes API from the deploy runner network %s", cidr),
		}, child); err != nil {
			return fail("api runner rule", err)
		}
	}

	nodeRole, err := iam.NewRole(ctx, name+"-nodes", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(assumeRole("ec2.amazonaws.com")), Tags: tags,
	}, child)
	if err != nil {
		return fail("node role", err)
	}
	var nodeAttachments []pulumi.Resource
	for _, p := range []string{"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore"} {
		a, err := iam.NewRolePolicyAttachment(ctx, name+"-nodes-"+strings.ToLower(strings.ReplaceAll(p, "_", "-")), &iam.RolePolicyAttachmentArgs{
			Role: nodeRole.Name, PolicyArn: pulumi.String("arn:aws:iam::aws:policy/" + p),
		}, child)
		if err != nil {
			return fail("node role policy", err)
		}
		nodeAttachments = append(nodeAttachments, a)
	}
	var nodeGroups []pulumi.Resource
	for _, pool := range []struct {
		role string
		g    NodeGroup
	}{{"system", args.System}, {"workers", args.Workers}} {
		labels := map[string]string{"scaleplane.dev/pool": pool.role}
		ngTags := maps.Clone(args.Tags)
		if ngTags == nil {
			ngTags = map[string]string{}
		}
		ngTags["scaleplane.dev/pool"] = pool.role
		ng, err := eks.NewNodeGroup(ctx, name+"-"+pool.role, &eks.NodeGroupArgs{
			ClusterName:   cl.Name,
			NodeGroupName: pulumi.String(pool.role),
			NodeRoleArn:   nodeRole.Arn,
			SubnetIds:     args.SubnetIDs,
			Version:       pulumi.String(version),
			AmiType:       pulumi.String("AL2023_x86_64_STANDARD"),
			CapacityType:  pulumi.String(pool.g.CapacityType),
			InstanceTypes: pulumi.ToStringArray(pool.g.InstanceTypes),
			DiskSize:      pulumi.Int(pool.g.DiskGiB),
			ScalingConfig: &eks.NodeGroupScalingConfigArgs{
				MinSize: pulumi.Int(pool.g.Min), MaxSize: pulumi.Int(pool.g.Max), DesiredSize: pulumi.Int(pool.g.Desired),
			},
			// A third of the nodes at a time during upgrades; PDBs keep each
			// service's capacity while its pods move.
			UpdateConfig: &eks.NodeGroupUpdateConfigArgs{MaxUnavailablePercentage: pulumi.Int(33)},
			Labels:       pulumi.ToStringMap(labels),
			Tags:         pulumi.ToStringMap(ngTags),
		}, child, pulumi.DependsOn(nodeAttachments),
			// The Cluster Autoscaler owns the current size; a later `up` must not reset it.
			pulumi.IgnoreChanges([]string{"scalingConfig.desiredSize"}))
		if err != nil {
			return fail(pool.role+" node group", err)
		}
		nodeGroups = append(nodeGroups, ng)
	}

	// Bounds-checked: the SDK's Index panics on an empty list, which a
	// preview (or a mock) of a not-yet-created cluster can return.
	issuer := cl.Identities.ApplyT(func(ids []eks.ClusterIdentity) string {
		if len(ids) == 0 || len(ids[0].Oidcs) == 0 || ids[0].Oidcs[0].Issuer == nil {
			return ""
		}
		return *ids[0].Oidcs[0].Issuer
	}).(pulumi.StringOutput)
	oidc, err := iam.NewOpenIdConnectProvider(ctx, name+"-oidc", &iam.OpenIdConnectProviderArgs{
		Url:           issuer,
		ClientIdLists: pulumi.ToStringArray([]string{"sts.amazonaws.com"}),
		Tags:          tags,
	}, child)
	if err != nil {
		return fail("oidc provider", err)
	}
	autoscalerRole, err := iam.NewRole(ctx, name+"-autoscaler", &iam.RoleArgs{
		AssumeRolePolicy: IRSATrustPolicy(oidc.Arn, issuer, AutoscalerNamespace, AutoscalerServiceAccount),
		Tags:             tags,
	}, child)
	if err != nil {
		return fail("autoscaler role", err)
	}
	if _, err := iam.NewRolePolicy(ctx, name+"-autoscaler", &iam.RolePolicyArgs{
		Role: autoscalerRole.ID(), Policy: pulumi.String(AutoscalerPolicy(args.ClusterName)),
	}, child); err != nil {
		return fail("autoscaler policy", err)
	}

	// Volumes: EKS ships no EBS driver; without it every PersistentVolumeClaim
	// (Prometheus, Jaeger's Badger) stays Pending.
	ebsRole, err := iam.NewRole(ctx, name+"-ebs-csi", &iam.RoleArgs{
		AssumeRolePolicy: IRSATrustPolicy(oidc.Arn, issuer, "kube-system", EBSCSIServiceAccount),
		Tags:             tags,
	}, child)
	if err != nil {
		return fail("ebs csi role", err)
	}
	ebsPolicy, err := iam.NewRolePolicyAttachment(ctx, name+"-ebs-csi", &iam.RolePolicyAttachmentArgs{
		Role: ebsRole.Name, PolicyArn: pulumi.String("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"),
	}, child)
	if err != nil {
		return fail("ebs csi policy", err)
	}
	ebs, err := eks.NewAddon(ctx, name+"-ebs-csi", &eks.AddonArgs{
		ClusterName: cl.Name, AddonName: pulumi.String("aws-ebs-csi-driver"),
		ServiceAccountRoleArn:    ebsRole.Arn,
		ResolveConflictsOnCreate: pulumi.String("OVERWRITE"),
		ResolveConflictsOnUpdate: pulumi.String("OVERWRITE"),
		Tags:                     tags,
	}, child, pulumi.DependsOn(append(nodeGroups, ebsPolicy)))
	if err != nil {
		return fail("ebs csi addon", err)
	}

	ca := cl.CertificateAuthority.Data().Elem()
	kubeconfig := Kubeconfig(args.ClusterName, args.Region, cl.Endpoint, ca)
	provider, err := kubernetes.NewProvider(ctx, name+"-kubernetes", &kubernetes.ProviderArgs{
		Kubeconfig: kubeconfig,
		// Fail instead of guessing when the cluster is not reachable yet.
		EnableServerSideApply: pulumi.Bool(true),
	}, child)
	if err != nil {
		return fail("kubernetes provider", err)
	}

	// The default class: encrypted gp3, bound where the pod lands (its zone).
	if _, err := storagev1.NewStorageClass(ctx, name+"-gp3", &storagev1.StorageClassArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        pulumi.String(DefaultStorageClass),
			Annotations: pulumi.StringMap{"storageclass.kubernetes.io/is-default-class": pulumi.String("true")},
		},
		Provisioner:          pulumi.String("ebs.csi.aws.com"),
		Parameters:           pulumi.StringMap{"type": pulumi.String("gp3"), "encrypted": pulumi.String("true")},
		VolumeBindingMode:    pulumi.String("WaitForFirstConsumer"),
		AllowVolumeExpansion: pulumi.Bool(true),
		ReclaimPolicy:        pulumi.String("Delete"),
	}, child, pulumi.Provider(provider), pulumi.DependsOn([]pulumi.Resource{ebs})); err != nil {
		return fail("storage class", err)
	}

	c.Name = cl.Name
	c.Endpoint = cl.Endpoint
	c.OIDCIssuer = issuer
	c.OIDCProviderARN = oidc.Arn
	c.NodeSecurityGroupID = clusterSG
	c.AutoscalerRoleARN = autoscalerRole.Arn
	c.Kubeconfig = kubeconfig
	c.Provider = provider
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"name": c.Name, "endpoint": c.Endpoint, "oidcIssuer": c.OIDCIssuer, "oidcProviderArn": c.OIDCProviderARN,
		"nodeSecurityGroupId": c.NodeSecurityGroupID, "autoscalerRoleArn": c.AutoscalerRoleARN, "kubeconfig": c.Kubeconfig,
	}); err != nil {
		return fail("outputs", err)
	}
	return c, nil
}

// Kubeconfig is a kubeconfig for the cluster that gets its token from
// `aws eks get-token`, so it holds no credential itself.
func Kubeconfig(cluster, region string, endpoint, ca pulumi.StringInput) pulumi.StringOutput {
	return pulumi.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: %[1]s
    cluster:
      server: %[3]s
      certificate-authority-data: %[4]s
contexts:
  - name: %[1]s
    context:
      cluster: %[1]s
      user: %[1]s
current-context: %[1]s
users:
  - name: %[1]s
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: aws
        args: [--region, %[2]s, eks, get-token, --cluster-name, %[1]s, --output, json]
        interactiveMode: Never
`, cluster, region, endpoint, ca)
}

// IRSATrustPolicy lets exactly one service account assume a role through
// the cluster's OIDC provider (audience sts.amazonaws.com); see irsa.TrustPolicy.
func IRSATrustPolicy(providerARN, issuer pulumi.StringInput, namespace, serviceAccount string) pulumi.StringOutput {
	return irsa.TrustPolicy(providerARN, issuer, namespace, serviceAccount)
}

// AutoscalerPolicy lets the Cluster Autoscaler read every group but resize
// or shrink only the node groups of its own cluster (EKS tags managed node
// groups' Auto Scaling groups with k8s.io/cluster-autoscaler/<cluster>).
func AutoscalerPolicy(cluster string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Effect": "Allow",
				"Action": []string{
					"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
					"autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
					"autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
					"ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
					"eks:DescribeNodegroup",
				},
				"Resource": "*",
			},
			map[string]any{
				"Effect":    "Allow",
				"Action":    []string{"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"},
				"Resource":  "*",
				"Condition": map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/k8s.io/cluster-autoscaler/" + cluster: "owned"}},
			},
		},
	})
	return string(b)
}
