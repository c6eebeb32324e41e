package stacks

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/certmanager"
	"github.com/scaleplane/scaleplane/components/edgecert"
	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/components/namespace"
)

// EdgeTLSSecret is the kubernetes.io/tls Secret (tls.crt, tls.key,
// ca.crt) in the application namespace that cert-manager writes and the
// edge mounts in the in-cluster stacks.
const EdgeTLSSecret = "edge-tls"

// TLSSettings are the edge certificate's knobs.
type TLSSettings struct {
	// Domain is the name the edge answers to; empty takes the
	// environment's default (DefaultDomains), required on AWS.
	Domain string
	// Issuer names an existing cert-manager issuer ("ClusterIssuer/name"
	// or "Issuer/name"); nil builds the self-signed CA chain.
	Issuer *edgecert.IssuerRef
	// HostedZoneID is the Route53 zone that validates the ACM certificate.
	HostedZoneID string
	// CertManagerImage empty takes <imageRegistry>/cert-manager:<version>.
	CertManagerImage string
	// CertManagerNamespace is cert-manager's own namespace.
	CertManagerNamespace string
	// InstallCertManager false assumes the cluster already runs
	// cert-manager (another stack on the same cluster installed it: its
	// CRDs and webhook are cluster-wide, one installation per cluster).
	InstallCertManager bool
}

// DefaultDomains are the in-cluster environments' domains when the stack
// names none.
var DefaultDomains = map[string]string{"local": "scaleplane.local", "dev": "dev.scaleplane.example"}

// tlsKnobs are the knobs of TLSSettings, appended to Knobs.
func tlsKnobs() []Knob {
	t := func(e *Env) *TLSSettings { return &e.TLS }
	return []Knob{
		stringKnob("domain", "", "The DNS name the edge's certificate is for; empty takes scaleplane.local in local and dev.scaleplane.example in dev; required on AWS.",
			func(e *Env, v string) error { t(e).Domain = strings.ToLower(strings.TrimSpace(v)); return nil }),
		stringKnob("tlsIssuer", "", "In-cluster: an existing cert-manager issuer that signs the edge certificate (ClusterIssuer/<name> or Issuer/<name>, an ACME one say); empty builds a self-signed CA whose certificate `scaleplane up` writes out.",
			func(e *Env, v string) error {
				if v == "" {
					t(e).Issuer = nil
					return nil
				}
				kind, name, ok := strings.Cut(v, "/")
				if !ok || (kind != edgecert.KindIssuer && kind != edgecert.KindClusterIssuer) || name == "" {
					return fmt.Errorf("must be ClusterIssuer/<name> or Issuer/<name> (empty for the self-signed CA)")
				}
				t(e).Issuer = &edgecert.IssuerRef{Kind: kind, Name: name}
				return nil
			}),
		stringKnob("route53ZoneId", "", "AWS: the Route53 hosted zone that validates the ACM certificate (its records are written there); empty leaves the validation records to the DNS owner (exported as tlsValidationRecords).",
			func(e *Env, v string) error { t(e).HostedZoneID = v; return nil }),
		stringKnob("certManagerImage", "", "In-cluster: the cert-manager image (one multi-call binary); empty takes <imageRegistry>/cert-manager:"+certmanager.Version+", which `scaleplane images build` makes.",
			func(e *Env, v string) error {
				if v != "" && !microservice.ImageTagged(v) {
					return fmt.Errorf("must carry an explicit tag or digest other than latest")
				}
				t(e).CertManagerImage = v
				return nil
			}),
		stringKnob("certManagerNamespace", "cert-manager", "In-cluster: cert-manager's namespace (restricted Pod Security).",
			func(e *Env, v string) error { t(e).CertManagerNamespace = v; return nil }),
		boolKnob("certManagerInstall", "true", "In-cluster: install cert-manager; false when the cluster already runs cert-manager "+certmanager.Version+" (one installation per cluster: its CRDs and webhook are cluster-wide).",
			func(e *Env, v bool) { t(e).InstallCertManager = v }),
	}
}

// validateTLS checks the TLS knobs against the environment.
func (e *Env) validateTLS() []error {
	var errs []error
	if e.Flavour == FlavourAWS {
		// local and dev with aws are refused for the flavour already.
		if _, inCluster := DefaultDomains[e.Environment]; e.TLS.Domain == "" && !inCluster {
			errs = append(errs, &ConfigError{Key: "domain", Value: "", Allowed: "required on AWS: the ACM certificate is for it"})
		}
		if e.TLS.Issuer != nil {
			errs = append(errs, &ConfigError{Key: "tlsIssuer", Value: e.TLS.Issuer.Kind + "/" + e.TLS.Issuer.Name, Allowed: "in-cluster only; on AWS ACM issues the certificate"})
		}
	} else if e.TLS.HostedZoneID != "" {
		errs = append(errs, &ConfigError{Key: "route53ZoneId", Value: e.TLS.HostedZoneID, Allowed: "aws only (it validates the ACM certificate)"})
	}
	if e.TLS.CertManagerNamespace == e.Namespace || e.TLS.CertManagerNamespace == e.Observability.Namespace {
		errs = append(errs, &ConfigError{Key: "certManagerNamespace", Value: e.TLS.CertManagerNamespace, Allowed: "must differ from namespace and observabilityNamespace"})
	}
	return errs
}

// Domain resolves the domain knob.
func (e *Env) Domain() string {
	if e.TLS.Domain != "" {
		return e.TLS.Domain
	}
	if d, ok := DefaultDomains[e.Environment]; ok {
		return d
	}
	return e.Environment + ".scaleplane.example"
}

// CertManagerImage resolves certManagerImage: the image `images build`
// makes under the stack's registry unless the stack names another.
func (e *Env) CertManagerImage() string {
	if e.TLS.CertManagerImage != "" {
		return e.TLS.CertManagerImage
	}
	return e.ImageRegistry + "/cert-manager:" + certmanager.Version
}

// TLS is what the edge gets from the certificate.
type TLS struct {
	// Certificate is the edge's certificate: SecretName in-cluster,
	// CertificateARN on AWS.
	Certificate *edgecert.EdgeCertificate
	// CertManager is the installation (nil on AWS or when not installed here).
	CertManager *certmanager.CertManager
}

// ComposeTLS declares the edge's certificate: in-cluster, cert-manager in
// its own namespace and a Certificate writing EdgeTLSSecret in the
// application namespace once cert-manager's CRDs and webhook are up; on
// AWS, an ACM certificate for the stack's domain. after is the option that
// waits for the application namespace.
func ComposeTLS(ctx *pulumi.Context, env *Env, fnd *Foundation, after pulumi.ResourceOption) (*TLS, error) {
	out := &TLS{}
	dns := []string{env.Domain()}
	if env.Flavour == FlavourAWS {
		cert, err := edgecert.NewEdgeCertificate(ctx, "edge-certificate", &edgecert.Args{
			Mode: edgecert.ModeACM, DNSNames: dns, HostedZoneID: env.TLS.HostedZoneID,
			Tags: map[string]string{"scaleplane.dev/stack": env.Stack, "scaleplane.dev/environment": env.Environment, "managed-by": "pulumi"},
		})
		if err != nil {
			return nil, err
		}
		out.Certificate = cert
		ctx.Export("edgeCertificateArn", cert.CertificateARN)
		ctx.Export("tlsValidationRecords", cert.ValidationRecords)
		ctx.Export("tlsDnsNames", cert.DNSNames)
		return out, nil
	}
	certOpts := after
	if env.TLS.InstallCertManager {
		k8s := fnd.KubernetesProvider()
		ns, err := namespace.NewNamespace(ctx, env.TLS.CertManagerNamespace, &namespace.Args{Name: env.TLS.CertManagerNamespace, Environment: env.Environment}, k8s)
		if err != nil {
			return nil, err
		}
		cm, err := certmanager.NewCertManager(ctx, "cert-manager", &certmanager.Args{
			Namespace:          env.TLS.CertManagerNamespace,
			Image:              env.CertManagerImage(),
			WebhookReplicas:    microservice.Replicas{Min: env.replicaFloor(), Max: 2 * env.replicaFloor()},
			Autoscaling:        env.Autoscaling,
			ZoneSpreadRequired: env.ZoneSpreadRequired,
		}, k8s, pulumi.DependsOn([]pulumi.Resource{ns}))
		if err != nil {
			return nil, err
		}
		out.CertManager = cm
		// The custom resources wait for the CRDs (Established) and the
		// apicheck Job (the webhook accepted a dry-run Issuer).
		certOpts = pulumi.Composite(after, cm.DependsOnReady())
		ctx.Export("certManagerNamespace", cm.Namespace)
	}
	cert, err := edgecert.NewEdgeCertificate(ctx, "edge-certificate", &edgecert.Args{
		Mode: edgecert.ModeInCluster, DNSNames: dns, Namespace: env.Namespace, SecretName: EdgeTLSSecret, Issuer: env.TLS.Issuer,
	}, certOpts)
	if err != nil {
		return nil, err
	}
	out.Certificate = cert
	ctx.Export("tlsSecret", cert.SecretName)
	ctx.Export("tlsNamespace", cert.Namespace)
	ctx.Export("tlsCaSecret", cert.CASecretName)
	ctx.Export("tlsDnsNames", cert.DNSNames)
	return out, nil
}
