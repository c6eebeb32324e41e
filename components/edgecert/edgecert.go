package edgecert

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/acm"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/route53"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:edgecert:EdgeCertificate"

// EdgeCertificate is the edge's certificate. Every output exists in both
// modes; the other mode's are empty strings.
type EdgeCertificate struct {
	pulumi.ResourceState

	// SecretName is the kubernetes.io/tls Secret (tls.crt, tls.key,
	// ca.crt) in Namespace (in-cluster).
	SecretName pulumi.StringOutput `pulumi:"secretName"`
	// Namespace is where SecretName and CASecretName live (in-cluster).
	Namespace pulumi.StringOutput `pulumi:"namespace"`
	// CASecretName is the self-signed CA's Secret, whose ca.crt clients
	// trust (in-cluster with the self-signed chain; empty otherwise).
	CASecretName pulumi.StringOutput `pulumi:"caSecretName"`
	// CertificateARN is the ACM certificate (acm). With a hosted zone it
	// is known only once validation succeeded, so a TLS listener that
	// takes it never serves a pending certificate.
	CertificateARN pulumi.StringOutput `pulumi:"certificateArn"`
	// DNSNames are the names the certificate covers.
	DNSNames pulumi.StringArrayOutput `pulumi:"dnsNames"`
	// ValidationRecords are the ACM DNS validation records as
	// "name TYPE value" (acm), for a DNS owner outside Route53.
	ValidationRecords pulumi.StringArrayOutput `pulumi:"validationRecords"`
}

// CASecretName is the name of the self-signed chain's CA Secret for a
// certificate whose Secret is secretName.
func CASecretName(secretName string) string { return secretName + "-ca" }

// NewEdgeCertificate validates args, then declares the mode's resources
// as children named "<name>-<role>". In-cluster, pass the cert-manager
// component's readiness as DependsOn (certmanager.DependsOnReady): the
// Issuers and Certificates are custom resources whose CRDs and webhook
// must be up first.
func NewEdgeCertificate(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*EdgeCertificate, error) {
	if args == nil {
		return nil, fmt.Errorf("edge certificate %s: args are required", name)
	}
	if err := args.Validate(name); err != nil {
		return nil, fmt.Errorf("edge certificate %s: %w", name, err)
	}
	c := &EdgeCertificate{}
	if err := ctx.RegisterComponentResource(TypeToken, name, c, opts...); err != nil {
		return nil, fmt.Errorf("edge certificate %s: register: %w", name, err)
	}
	child, err := children.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("edge certificate %s: options: %w", name, err)
	}
	empty := pulumi.String("").ToStringOutput()
	c.SecretName, c.Namespace, c.CASecretName, c.CertificateARN = empty, empty, empty, empty
	c.ValidationRecords = pulumi.StringArray{}.ToStringArrayOutput()
	c.DNSNames = pulumi.ToStringArray(args.DNSNames).ToStringArrayOutput()
	switch args.Mode {
	case ModeInCluster:
		err = c.inCluster(ctx, name, args, child)
	case ModeACM:
		err = c.acm(ctx, name, args, child)
	}
	if err != nil {
		return nil, fmt.Errorf("edge certificate %s: %w", name, err)
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"secretName":        c.SecretName,
		"namespace":         c.Namespace,
		"caSecretName":      c.CASecretName,
		"certificateArn":    c.CertificateARN,
		"dnsNames":          c.DNSNames,
		"validationRecords": c.ValidationRecords,
	}); err != nil {
		return nil, fmt.Errorf("edge certificate %s: outputs: %w", name, err)
	}
	return c, nil
}

// inCluster declares the Certificate (and, without a named issuer, the
// self-signed CA chain that issues it).
func (c *EdgeCertificate) inCluster(ctx *pulumi.Context, name string, a *Args, opts pulumi.ResourceOption) error {
	labels := kube.Labels(a.SecretName, "tls", "")
	issuer := map[string]any{"group": "cert-manager.io"}
	leafOpts := opts
	if a.Issuer != nil {
		issuer["kind"], issuer["name"] = a.Issuer.Kind, a.Issuer.Name
	} else {
		ca, err := newCAChain(ctx, name, a, labels, opts)
		if err != nil {
			return err
		}
		issuer["kind"], issuer["name"] = KindIssuer, CASecretName(a.SecretName)
		leafOpts = pulumi.Composite(opts, pulumi.DependsOn([]pulumi.Resource{ca}))
		c.CASecretName = pulumi.String(CASecretName(a.SecretName)).ToStringOutput()
	}
	leaf, err := newResource(ctx, name+"-certificate", "Certificate", a.SecretName, a.Namespace, labels, map[string]any{
		"secretName": a.SecretName,
		// The Secret carries the same labels, so `kubectl get -l` finds it.
		"secretTemplate": map[string]any{"labels": toAny(labels)},
		"commonName":     a.DNSNames[0],
		"dnsNames":       a.DNSNames,
		"duration":       LeafDuration.String(),
		"renewBefore":    LeafRenewBefore.String(),
		// A fresh key with every renewal: a leaked key dies with its certificate.
		"privateKey": map[string]any{"algorithm": PrivateKeyAlgo, "size": PrivateKeySize, "rotationPolicy": "Always"},
		"usages":     []string{"digital signature", "server auth"},
		"issuerRef":  issuer,
	}, leafOpts)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	// Derived from the Certificate, so whoever mounts the Secret waits for it.
	c.SecretName = leaf.URN().ApplyT(func(pulumi.URN) string { return a.SecretName }).(pulumi.StringOutput)
	c.Namespace = pulumi.String(a.Namespace).ToStringOutput()
	return nil
}

// newCAChain declares SelfSigned Issuer -> CA Certificate (isCA) -> CA
// Issuer, all in the edge's namespace (a namespaced Issuer reads its CA
// Secret there), and returns the CA Issuer the leaf is signed by.
func newCAChain(ctx *pulumi.Context, name string, a *Args, labels map[string]string, opts pulumi.ResourceOption) (pulumi.Resource, error) {
	selfSigned, err := newResource(ctx, name+"-selfsigned-issuer", "Issuer", a.SecretName+"-selfsigned", a.Namespace, labels,
		map[string]any{"selfSigned": map[string]any{}}, opts)
	if err != nil {
		return nil, fmt.Errorf("self-signed issuer: %w", err)
	}
	caSecret := CASecretName(a.SecretName)
	caCert, err := newResource(ctx, name+"-ca-certificate", "Certificate", caSecret, a.Namespace, labels, map[string]any{
		"isCA":           true,
		"commonName":     fmt.Sprintf("scaleplane %s edge CA", a.Namespace),
		"secretName":     caSecret,
		"secretTemplate": map[string]any{"labels": toAny(labels)},
		"duration":       CADuration.String(),
		"renewBefore":    CARenewBefore.String(),
		"privateKey":     map[string]any{"algorithm": PrivateKeyAlgo, "size": PrivateKeySize},
		"issuerRef":      map[string]any{"group": "cert-manager.io", "kind": KindIssuer, "name": a.SecretName + "-selfsigned"},
	}, pulumi.Composite(opts, pulumi.DependsOn([]pulumi.Resource{selfSigned})))
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	ca, err := newResource(ctx, name+"-ca-issuer", "Issuer", caSecret, a.Namespace, labels,
		map[string]any{"ca": map[string]any{"secretName": caSecret}}, pulumi.Composite(opts, pulumi.DependsOn([]pulumi.Resource{caCert})))
	if err != nil {
		return nil, fmt.Errorf("ca issuer: %w", err)
	}
	return ca, nil
}

// newResource declares a cert-manager.io/v1 object of kind with spec.
func newResource(ctx *pulumi.Context, resName, kind, objName, namespace string, labels map[string]string, spec map[string]any, opts pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	return apiextensions.NewCustomResource(ctx, resName, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(CertManagerGroupV1),
		Kind:        pulumi.String(kind),
		Metadata:    kube.Meta(objName, namespace, labels),
		OtherFields: map[string]any{"spec": spec},
	}, opts)
}

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// acm requests the certificate from ACM with DNS validation and, with a
// hosted zone, writes the validation records and waits for the validation.
func (c *EdgeCertificate) acm(ctx *pulumi.Context, name string, a *Args, opts pulumi.ResourceOption) error {
	certArgs := &acm.CertificateArgs{
		DomainName:       pulumi.String(a.DNSNames[0]),
		ValidationMethod: pulumi.String("DNS"),
		// RSA 2048, ACM's default: every TLS client and every AWS load
		// balancer listener accepts it.
		KeyAlgorithm: pulumi.String("RSA_2048"),
		Tags:         pulumi.ToStringMap(a.Tags),
	}
	if len(a.DNSNames) > 1 {
		certArgs.SubjectAlternativeNames = pulumi.ToStringArray(a.DNSNames[1:])
	}
	cert, err := acm.NewCertificate(ctx, name+"-certificate", certArgs, opts)
	if err != nil {
		return fmt.Errorf("acm certificate: %w", err)
	}
	c.ValidationRecords = cert.DomainValidationOptions.ApplyT(func(opts []acm.CertificateDomainValidationOption) []string {
		var out []string
		for _, o := range opts {
			out = append(out, fmt.Sprintf("%s %s %s", deref(o.ResourceRecordName), deref(o.ResourceRecordType), deref(o.ResourceRecordValue)))
		}
		return out
	}).(pulumi.StringArrayOutput)
	if a.HostedZoneID == "" {
		c.CertificateARN = cert.Arn
		return nil
	}
	// One record per name: ACM lists one validation option per name (a
	// name and its wildcard share a record, hence AllowOverwrite).
	var fqdns pulumi.StringArray
	for i := range a.DNSNames {
		o := cert.DomainValidationOptions.Index(pulumi.Int(i))
		rec, err := route53.NewRecord(ctx, fmt.Sprintf("%s-validation-%d", name, i), &route53.RecordArgs{
			ZoneId:         pulumi.String(a.HostedZoneID),
			Name:           o.ResourceRecordName().Elem(),
			Type:           o.ResourceRecordType().Elem(),
			Records:        pulumi.StringArray{o.ResourceRecordValue().Elem()},
			Ttl:            pulumi.Int(60),
			AllowOverwrite: pulumi.Bool(true),
		}, opts)
		if err != nil {
			return fmt.Errorf("validation record %d: %w", i, err)
		}
		fqdns = append(fqdns, rec.Fqdn)
	}
	v, err := acm.NewCertificateValidation(ctx, name+"-validation", &acm.CertificateValidationArgs{
		CertificateArn:        cert.Arn,
		ValidationRecordFqdns: fqdns,
	}, opts)
	if err != nil {
		return fmt.Errorf("certificate validation: %w", err)
	}
	c.CertificateARN = v.CertificateArn
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
