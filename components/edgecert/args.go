// Package edgecert declares the edge's TLS certificate as one component
// with two paths. In-cluster (local, dev) cert-manager issues it into a
// Kubernetes TLS Secret the edge mounts: from a self-signed CA chain
// (SelfSigned Issuer -> CA Certificate -> CA Issuer -> leaf) or from an
// existing Issuer or ClusterIssuer named by the stack (ACME). On AWS
// (staging, prod) it is an ACM certificate, DNS-validated, whose ARN the
// load balancer's TLS listener takes. Both paths report the DNS names.
package edgecert

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// Mode says where the certificate comes from.
type Mode string

// The modes.
const (
	// ModeInCluster has cert-manager issue it into a Secret.
	ModeInCluster Mode = "in-cluster"
	// ModeACM requests it from AWS Certificate Manager.
	ModeACM Mode = "acm"
)

// Issuer kinds an in-cluster certificate may name.
const (
	KindIssuer        = "Issuer"
	KindClusterIssuer = "ClusterIssuer"
)

// Lifetimes of the self-signed chain's certificates. The leaf follows the
// ACME convention (90 days, renewed 30 days before expiry), so the local
// chain exercises renewal like Let's Encrypt would; the CA outlives many
// leaves, since every renewal of it means trusting a new CA file.
const (
	LeafDuration       = 90 * 24 * time.Hour
	LeafRenewBefore    = 30 * 24 * time.Hour
	CADuration         = 365 * 24 * time.Hour
	CARenewBefore      = 30 * 24 * time.Hour
	PrivateKeyAlgo     = "ECDSA"
	PrivateKeySize     = 256
	CertManagerGroupV1 = "cert-manager.io/v1"
)

// IssuerRef names an existing cert-manager issuer (an ACME one, say).
type IssuerRef struct {
	// Kind is KindIssuer (in Args.Namespace) or KindClusterIssuer.
	Kind string
	// Name is the issuer's metadata.name.
	Name string
}

// Args configure the edge certificate.
type Args struct {
	// Mode is ModeInCluster or ModeACM.
	Mode Mode
	// DNSNames are the names the certificate covers; the first is the
	// common name (in-cluster) or the domain name (ACM). A leading "*."
	// makes a wildcard.
	DNSNames []string

	// Namespace holds the Certificate, its Secret and the self-signed
	// chain's Issuers (in-cluster): the edge's namespace, since a pod can
	// mount only its own namespace's Secrets.
	Namespace string
	// SecretName is the kubernetes.io/tls Secret the edge mounts (in-cluster).
	SecretName string
	// Issuer names an existing issuer; nil builds the self-signed CA chain.
	Issuer *IssuerRef

	// HostedZoneID is the Route53 zone that validates the ACM
	// certificate; empty leaves the validation records to the DNS owner
	// (the stack then exports them) and the ARN is usable once AWS sees them.
	HostedZoneID string
	// Tags go on the AWS resources.
	Tags map[string]string
}

// hostname is an RFC 1123 DNS name, optionally a wildcard's "*." first label.
var hostname = regexp.MustCompile(`^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// hostedZone is a Route53 hosted zone id (Z and upper-case letters and digits).
var hostedZone = regexp.MustCompile(`^Z[A-Z0-9]{1,31}$`)

// Validate reports every problem in the arguments, naming the field, the
// value and what is allowed, before any resource is declared.
func (a *Args) Validate(name string) error {
	var errs []error
	check := func(ok bool, format string, v ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, v...))
		}
	}
	errs = append(errs, kube.CheckName(name, 40))
	check(len(a.DNSNames) > 0, "dnsNames: at least one name is required")
	// ACM's default quota is ten names per certificate.
	check(len(a.DNSNames) <= 10, "dnsNames: %d names, at most 10 (ACM's default quota)", len(a.DNSNames))
	for i, n := range a.DNSNames {
		check(len(n) <= 253 && hostname.MatchString(n), "dnsNames[%d] %q: must be a lower-case DNS name (a leading *. for a wildcard)", i, n)
		check(!slices.Contains(a.DNSNames[:i], n), "dnsNames[%d] %q: listed twice", i, n)
	}
	if len(a.DNSNames) > 0 {
		// A common name is limited to 64 bytes (RFC 5280 ub-common-name).
		check(len(a.DNSNames[0]) <= 64, "dnsNames[0] %q: the first name becomes the common name, at most 64 characters", a.DNSNames[0])
	}
	switch a.Mode {
	case ModeInCluster:
		errs = append(errs, kube.CheckLabel("namespace", a.Namespace), kube.CheckLabel("secretName", a.SecretName))
		if a.Issuer != nil {
			check(a.Issuer.Kind == KindIssuer || a.Issuer.Kind == KindClusterIssuer,
				"issuer.kind %q: must be %s or %s", a.Issuer.Kind, KindIssuer, KindClusterIssuer)
			check(a.Issuer.Name != "" && len(a.Issuer.Name) <= 253 && hostname.MatchString(a.Issuer.Name) && !strings.HasPrefix(a.Issuer.Name, "*"),
				"issuer.name %q: must be an object name (a lower-case DNS name)", a.Issuer.Name)
		}
		check(a.HostedZoneID == "", "hostedZoneId %q: only for mode %s", a.HostedZoneID, ModeACM)
	case ModeACM:
		check(a.Issuer == nil, "issuer: only for mode %s (ACM issues the certificate itself)", ModeInCluster)
		check(a.SecretName == "", "secretName %q: only for mode %s (an ACM certificate's key never leaves AWS)", a.SecretName, ModeInCluster)
		check(a.HostedZoneID == "" || hostedZone.MatchString(a.HostedZoneID),
			"hostedZoneId %q: must be a Route53 hosted zone id such as Z0123456789ABCDEFGHIJ", a.HostedZoneID)
	default:
		check(false, "mode %q: must be %s or %s", a.Mode, ModeInCluster, ModeACM)
	}
	return errors.Join(errs...)
}
