//go:build scaleplane_certmanager

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	logsapi "k8s.io/component-base/logs/api/v1"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
)

// cainjectorOptions are the cainjector's command line. Its defaults inject
// only into webhook configurations from Secrets, which is what scaleplane's
// webhook needs: upstream also watches CRDs, APIServices and Certificates
// by default, which asks for more RBAC and waits for the Certificate CRD.
type cainjectorOptions struct {
	namespace, leaderElectionNamespace, kubeconfig, metricsAddress string
	leaderElect                                                    bool
	leaseDuration, renewDeadline, retryPeriod                      time.Duration
	webhooks, crds, apiServices, certificates                      bool
	logging                                                        *logsapi.LoggingConfiguration
}

func cainjectorFlags(fs *pflag.FlagSet) func(context.Context) error {
	o := &cainjectorOptions{logging: logsapi.NewLoggingConfiguration()}
	fs.StringVar(&o.namespace, "namespace", "",
		"only Secrets (and Certificates) in this namespace are CA sources, and the leader-election Lease lives there; empty reads every namespace")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect one leader among replicas through a Lease; false injects at once (one replica only)")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease; default --namespace, else kube-system")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 60*time.Second, "how long a leader's Lease lasts unrenewed")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 40*time.Second, "how long the leader keeps retrying to renew before it stops leading")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 15*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses the pod's ServiceAccount (in-cluster config)")
	fs.StringVar(&o.metricsAddress, "metrics-listen-address", "0.0.0.0:9402", "address of the Prometheus metrics server; '0' disables it")
	fs.BoolVar(&o.webhooks, "enable-webhookconfigurations-injectable", true, "inject into Validating and MutatingWebhookConfigurations annotated cert-manager.io/inject-ca-from*")
	fs.BoolVar(&o.crds, "enable-customresourcedefinitions-injectable", false, "inject into CustomResourceDefinitions' conversion webhooks (needs RBAC on CRDs)")
	fs.BoolVar(&o.apiServices, "enable-apiservices-injectable", false, "inject into APIServices (needs RBAC on APIServices)")
	fs.BoolVar(&o.certificates, "enable-certificates-data-source", false, "also take CAs from cert-manager Certificates (cert-manager.io/inject-ca-from), not only Secrets")
	logf.AddFlags(o.logging, fs)
	return o.run
}

func (o *cainjectorOptions) run(ctx context.Context) error {
	if err := logf.ValidateAndApply(o.logging); err != nil {
		return usageError{fmt.Errorf("invalid logging flags: %w", err)}
	}
	if !o.webhooks && !o.crds && !o.apiServices {
		return badFlag("enable-webhookconfigurations-injectable", "false", "at least one --enable-*-injectable must be true, or there is nothing to inject into")
	}
	leNamespace := o.leaderElectionNamespace
	if leNamespace == "" {
		leNamespace = o.namespace
	}
	if leNamespace == "" {
		leNamespace = "kube-system"
	}
	log := logf.FromContext(ctx)
	log.Info("starting cert-manager cainjector", "version", versionString(), "namespace", o.namespace)
	// The controller-runtime logger is the one cert-manager's reconcilers
	// log through.
	ctrl.SetLogger(log)

	restConfig, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading the API server's client configuration: %w", err)
	}
	restConfig = util.RestConfigWithUserAgent(restConfig, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	var namespaces map[string]cache.Config
	if o.namespace != "" {
		namespaces = map[string]cache.Config{o.namespace: {}}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true, DefaultNamespaces: namespaces},
		// Secrets are read directly, not cached: caching them would list
		// every Secret of the cluster (and need the RBAC to).
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		LeaderElection:                o.leaderElect,
		LeaderElectionNamespace:       leNamespace,
		LeaderElectionID:              "cert-manager-cainjector-leader-election",
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionResourceLock:    resourcelock.LeasesResourceLock,
		LeaderElectionLabels:          map[string]string{"app.kubernetes.io/managed-by": "cert-manager-cainjector"},
		LeaseDuration:                 &o.leaseDuration,
		RenewDeadline:                 &o.renewDeadline,
		RetryPeriod:                   &o.retryPeriod,
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddress},
	})
	if err != nil {
		return fmt.Errorf("creating the controller manager: %w", err)
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    o.namespace,
		EnableCertificatesDataSource: o.certificates,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   o.webhooks,
			cainjector.ValidatingWebhookConfigurationName: o.webhooks,
			cainjector.CustomResourceDefinitionName:       o.crds,
			cainjector.APIServiceName:                     o.apiServices,
		},
	}); err != nil {
		return fmt.Errorf("registering the CA injectors: %w", err)
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the CA injectors: %w", err)
	}
	return nil
}
