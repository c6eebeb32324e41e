// Package certmanager deploys cert-manager (the controller, its admission
// webhook and the CA injector) as one component: its CRDs, least-privilege
// RBAC, the three Deployments, the webhook's Service and admission
// configurations, NetworkPolicies for a default-deny namespace, and the
// apicheck Job whose completion means "Issuers and Certificates can be
// created now". Custom resources of cert-manager depend on Ready, so they
// are created only once the CRDs are established and the webhook answers.
package certmanager

import (
	"errors"
	"fmt"
	"time"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// Version is the cert-manager release whose CRDs are embedded under crds/
// and whose binary the image must carry (toolchain.CertManagerVersion; a
// component may not import the toolchain, so the stack checks they agree).
const Version = "v1.21.2"

// Ports and names the contract with the cert-manager binary fixes.
const (
	// WebhookPort is the webhook's HTTPS port (--secure-port): 10250 is
	// the kubelet's port, the one port every managed control plane (EKS,
	// GKE private) may reach on a node, so the webhook works there too.
	WebhookPort = 10250
	// WebhookHealthPort serves /healthz and /livez (--healthz-port).
	WebhookHealthPort = 6080
	// ControllerMetricsPort serves the controller's Prometheus metrics.
	ControllerMetricsPort = 9402
	// ControllerHealthPort serves the controller's /livez.
	ControllerHealthPort = 9403
	// CAInjectorMetricsPort is where the CA injector serves its metrics
	// (upstream's default address, :9402); its probes check the port.
	CAInjectorMetricsPort = 9402
	// WebhookName is the webhook's Service, Deployment and admission
	// configurations' name; its serving certificate names it.
	WebhookName = "cert-manager-webhook"
	// WebhookCASecret is the Secret the webhook keeps its self-signed CA
	// in; the CA injector copies it into the admission configurations.
	WebhookCASecret = "cert-manager-webhook-ca"
	// InjectCAAnnotation tells the CA injector which Secret's CA to put
	// into an admission configuration's caBundle.
	InjectCAAnnotation = "cert-manager.io/inject-ca-from-secret"
	// AwaitAnnotation marks the objects whose readiness others depend on
	// (the CRDs, the apicheck Job): the deploy command's transform, which
	// otherwise turns the provider's readiness wait off, leaves them
	// awaited (internal/pulumicli).
	AwaitAnnotation = "scaleplane.dev/await"
)

// Defaults of the knobs a caller may leave at zero.
const (
	// DefaultAPICheckTimeout bounds apicheck: on a warm node the webhook
	// answers within seconds; five minutes covers a cold image pull.
	DefaultAPICheckTimeout = 5 * time.Minute
	// DefaultWebhookTimeoutSeconds is how long the API server waits for
	// the webhook per request (upstream's chart: 30; 10 keeps a wedged
	// webhook from holding every kubectl apply for half a minute).
	DefaultWebhookTimeoutSeconds = 10
)

// Args configure cert-manager.
type Args struct {
	// Namespace is cert-manager's own namespace (created by the caller,
	// restricted Pod Security and default-deny ingress): its Deployments,
	// the webhook's CA Secret and, as the cluster resource namespace, the
	// Secrets of ClusterIssuers live there.
	Namespace string
	// Image is the one multi-call image (`cert-manager controller|webhook|
	// cainjector|apicheck`) of Version; tag or digest pinned.
	Image string
	// WebhookReplicas bound the webhook's autoscaler. The API server
	// calls the webhook for every cert-manager object with failurePolicy
	// Fail, so it is a serving workload like any other: two pods keep it
	// answering through a node drain. The controller and the CA injector
	// run without leader election and therefore exactly one pod each.
	WebhookReplicas kube.Replicas
	// Autoscaling is the webhook HPA's targets and windows.
	Autoscaling kube.Autoscaling
	// APICheckTimeout bounds the apicheck Job; zero means DefaultAPICheckTimeout.
	APICheckTimeout time.Duration
	// WebhookTimeoutSeconds is the admission call's timeout; zero means
	// DefaultWebhookTimeoutSeconds.
	WebhookTimeoutSeconds int
	// ZoneSpreadRequired makes the webhook's zone spread a hard rule.
	ZoneSpreadRequired bool
}

// withDefaults returns a copy with every zero knob set to its default.
func (a Args) withDefaults() Args {
	if a.APICheckTimeout == 0 {
		a.APICheckTimeout = DefaultAPICheckTimeout
	}
	if a.WebhookTimeoutSeconds == 0 {
		a.WebhookTimeoutSeconds = DefaultWebhookTimeoutSeconds
	}
	return a
}

// Validate reports every problem in the arguments, naming the field, the
// value and what is allowed, before any resource is declared.
func (a *Args) Validate(name string) error {
	d := a.withDefaults()
	var errs []error
	check := func(ok bool, format string, v ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, v...))
		}
	}
	// Object names are fixed (cert-manager-*); the component name only
	// prefixes Pulumi names, so any DNS label up to 40 characters works.
	errs = append(errs, kube.CheckName(name, 40), kube.CheckLabel("namespace", a.Namespace), kube.CheckImage("image", a.Image))
	check(d.WebhookReplicas.Min >= 1 && d.WebhookReplicas.Max > d.WebhookReplicas.Min,
		"webhookReplicas %d..%d: need 1 <= min < max (the autoscaler needs room to scale out)", d.WebhookReplicas.Min, d.WebhookReplicas.Max)
	check(d.Autoscaling.CPUTargetPercent >= 1 && d.Autoscaling.CPUTargetPercent <= 100 &&
		d.Autoscaling.MemoryTargetPercent >= 1 && d.Autoscaling.MemoryTargetPercent <= 100,
		"autoscaling targets %d%%/%d%%: must be in 1..100", d.Autoscaling.CPUTargetPercent, d.Autoscaling.MemoryTargetPercent)
	check(d.APICheckTimeout >= 30*time.Second && d.APICheckTimeout <= 30*time.Minute,
		"apiCheckTimeout %s: must be in 30s..30m", d.APICheckTimeout)
	// The API server caps an admission webhook's timeout at 30 s.
	check(d.WebhookTimeoutSeconds >= 1 && d.WebhookTimeoutSeconds <= 30,
		"webhookTimeoutSeconds %d: must be in 1..30 (the API server's range)", d.WebhookTimeoutSeconds)
	return errors.Join(errs...)
}
