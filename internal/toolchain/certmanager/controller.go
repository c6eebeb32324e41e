//go:build scaleplane_certmanager

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	logsapi "k8s.io/component-base/logs/api/v1"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager"
	"github.com/cert-manager/cert-manager/pkg/controller"
	challenges "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	orders "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	ingressshim "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	cracme "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	crvault "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/vault"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	certmetrics "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Issuer implementations register themselves with the issuer factory
	// when imported: these are the kinds of issuer this binary serves.
	// Venafi is left out: its client module (github.com/Venafi/vcert/v5)
	// is not served by the module proxy, and scaleplane has no use for it.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
)

// shutdownGrace bounds how long the HTTP servers drain on SIGTERM; the
// pod's termination grace period must be longer.
const shutdownGrace = 5 * time.Second

// defaultControllers is upstream's default controller set without the two
// Venafi controllers (see the imports). Importing a controller's package
// registers it with controller.Known, so this list is also what is built in.
var defaultControllers = []string{
	issuers.ControllerName, clusterissuers.ControllerName, certmetrics.ControllerName, ingressshim.ControllerName,
	orders.ControllerName, challenges.ControllerName,
	cracme.CRControllerName, crapprover.ControllerName, crca.CRControllerName, crselfsigned.CRControllerName, crvault.CRControllerName,
	trigger.ControllerName, issuing.ControllerName, keymanager.ControllerName, requestmanager.ControllerName,
	readiness.ControllerName, revisionmanager.ControllerName,
}

// clusterScopedControllers cannot run when --watch-namespace limits
// cert-manager to one namespace.
var clusterScopedControllers = []string{clusterissuers.ControllerName}

// controllerOptions are the controller's command line. cert-manager's own
// configuration types cannot be used: their defaults package imports the
// Venafi controllers. The defaults below are upstream's v1.21 defaults.
type controllerOptions struct {
	// namespace is where cert-manager itself runs: its leader-election
	// Lease lives there and it is the default for ClusterIssuers' Secrets.
	namespace string
	// watchNamespace limits cert-manager to one namespace (upstream's
	// --namespace); empty watches all.
	watchNamespace           string
	clusterResourceNamespace string
	kubeconfig               string
	controllers              []string
	metricsAddress           string
	healthzAddress           string
	leaderElect              bool
	leaseDuration            time.Duration
	renewDeadline            time.Duration
	retryPeriod              time.Duration
	solverImage              string
	workers                  int
	logging                  *logsapi.LoggingConfiguration
}

func controllerFlags(fs *pflag.FlagSet) func(context.Context) error {
	o := &controllerOptions{logging: logsapi.NewLoggingConfiguration()}
	fs.StringVar(&o.namespace, "namespace", "",
		"namespace cert-manager runs in: its leader-election Lease lives there, and it is the default of --cluster-resource-namespace. "+
			"Unlike upstream's flag of this name it does not limit what is watched (see --watch-namespace)")
	fs.StringVar(&o.watchNamespace, "watch-namespace", "",
		"if set, only resources in this namespace are managed and ClusterIssuers are disabled (upstream's --namespace); empty watches every namespace")
	fs.StringVar(&o.clusterResourceNamespace, "cluster-resource-namespace", "",
		"namespace holding the Secrets of ClusterIssuers (their CA key pairs, ACME account keys); default --namespace")
	fs.BoolVar(&o.leaderElect, "leader-elect", true,
		"elect one leader among replicas through the Lease cert-manager-controller in --namespace; false runs the controllers at once (one replica only)")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 60*time.Second, "how long a leader's Lease lasts unrenewed")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 40*time.Second, "how long the leader keeps retrying to renew before it stops leading")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 15*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.StringVar(&o.metricsAddress, "metrics-listen-address", "0.0.0.0:9402", "address of the Prometheus metrics server (GET /metrics)")
	fs.StringVar(&o.healthzAddress, "healthz-listen-address", "0.0.0.0:9403", "address of the liveness server (GET /livez)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses the pod's ServiceAccount (in-cluster config)")
	fs.StringSliceVar(&o.controllers, "controllers", []string{"*"},
		"controllers to run: '*' is the default set, 'name' adds one, '-name' removes one. Known: "+strings.Join(defaultControllers, ", "))
	fs.StringVar(&o.solverImage, "acme-http01-solver-image", "quay.io/jetstack/cert-manager-acmesolver:"+versionString(),
		"image of the pods that answer ACME HTTP-01 challenges (scaleplane does not build one: use DNS-01, or provide the image)")
	fs.IntVar(&o.workers, "concurrent-workers", 5, "workers per controller")
	logf.AddFlags(o.logging, fs)
	return o.run
}

// check completes the options from --namespace and refuses values that
// cannot work, naming the flag, the value and what is allowed.
func (o *controllerOptions) check() error {
	if o.clusterResourceNamespace == "" {
		o.clusterResourceNamespace = o.namespace
	}
	if o.clusterResourceNamespace == "" {
		return badFlag("cluster-resource-namespace", "", "set it or --namespace: ClusterIssuers keep their Secrets there")
	}
	if o.leaderElect && o.namespace == "" {
		return badFlag("namespace", "", "leader election keeps its Lease in --namespace: set it, or --leader-elect=false")
	}
	if o.leaderElect && !(o.retryPeriod > 0 && o.retryPeriod < o.renewDeadline && o.renewDeadline < o.leaseDuration) {
		return badFlag("leader-election-renew-deadline", o.renewDeadline.String(),
			fmt.Sprintf("want 0 < retry period (%s) < renew deadline < lease duration (%s)", o.retryPeriod, o.leaseDuration))
	}
	if o.workers < 1 {
		return badFlag("concurrent-workers", fmt.Sprint(o.workers), "at least 1")
	}
	known := controller.Known()
	for _, c := range o.controllers {
		name := strings.TrimPrefix(c, "-")
		if _, ok := known[name]; !ok && name != "*" {
			return badFlag("controllers", strings.Join(o.controllers, ","),
				fmt.Sprintf("controller %q is not built into this binary; known: %s", name, strings.Join(sets.List(sets.KeySet(known)), ", ")))
		}
	}
	if len(o.enabledControllers()) == 0 {
		return badFlag("controllers", strings.Join(o.controllers, ","), "enables no controller")
	}
	if err := logf.ValidateAndApply(o.logging); err != nil {
		return usageError{fmt.Errorf("invalid logging flags: %w", err)}
	}
	return nil
}

// enabledControllers expands --controllers ('*', 'name', '-name') into the
// set to run. Namespaced operation drops the cluster-scoped controllers,
// as upstream does.
func (o *controllerOptions) enabledControllers() sets.Set[string] {
	enabled, disabled := sets.New[string](), sets.New[string]()
	for _, c := range o.controllers {
		switch {
		case c == "*":
			enabled.Insert(defaultControllers...)
		case strings.HasPrefix(c, "-"):
			disabled.Insert(strings.TrimPrefix(c, "-"))
		case c != "":
			enabled.Insert(c)
		}
	}
	if enabled.Len() == 0 && disabled.Len() > 0 {
		enabled.Insert(defaultControllers...)
	}
	if o.watchNamespace != "" {
		enabled.Delete(clusterScopedControllers...)
	}
	return enabled.Difference(disabled)
}

func (o *controllerOptions) run(ctx context.Context) error {
	if err := o.check(); err != nil {
		return err
	}
	log := logf.FromContext(ctx)
	log.Info("starting cert-manager controller", "version", versionString(),
		"namespace", o.namespace, "clusterResourceNamespace", o.clusterResourceNamespace, "watchNamespace", o.watchNamespace)

	factory, err := o.contextFactory(ctx)
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	cctx, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	enabled := o.enabledControllers()
	log.Info("enabled controllers", "controllers", sets.List(enabled))

	// Listen before anything runs so a taken port fails the start, not a
	// probe minutes later.
	var lc net.ListenConfig
	metricsLn, err := lc.Listen(ctx, "tcp", o.metricsAddress)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", o.metricsAddress, err)
	}
	healthzLn, err := lc.Listen(ctx, "tcp", o.healthzAddress)
	if err != nil {
		_ = metricsLn.Close()
		return fmt.Errorf("listening for health checks on %s: %w", o.healthzAddress, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)

	cctx.Metrics.SetupACMECollector(cctx.SharedInformerFactory.Acme().V1().Challenges().Lister())
	cctx.Metrics.SetupCertificateCollector(cctx.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
	cctx.Metrics.SetupIssuerCollector(cctx.SharedInformerFactory.Certmanager().V1().Issuers().Lister())
	if enabled.Has(clusterissuers.ControllerName) {
		cctx.Metrics.SetupClusterIssuerCollector(cctx.SharedInformerFactory.Certmanager().V1().ClusterIssuers().Lister())
	}
	metrics := cctx.Metrics.NewServer(metricsLn)
	g.Go(func() error {
		<-ctx.Done()
		sctx, done := context.WithTimeout(context.Background(), shutdownGrace)
		defer done()
		return metrics.Shutdown(sctx) //nolint:contextcheck // ctx has ended: drain on a fresh one
	})
	g.Go(func() error {
		if err := metrics.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving metrics: %w", err)
		}
		return nil
	})

	// /livez fails when the elected leader stops renewing its Lease, so the
	// kubelet restarts a stuck leader.
	health := healthz.NewServer(leaderHealthzTimeout)
	g.Go(func() error { return health.Start(ctx, healthzLn) })

	elected := make(chan struct{})
	if o.leaderElect {
		g.Go(func() error { return o.leaderElection(ctx, factory, health, elected) })
	} else {
		close(elected)
	}
	select {
	case <-ctx.Done():
		return o.wait(g)
	case <-elected:
	}

	known := controller.Known()
	for _, name := range sets.List(enabled) {
		iface, err := known[name](factory)
		if err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("starting controller %s: %w", name, err)
		}
		g.Go(func() error {
			log.V(logf.InfoLevel).Info("starting controller", "controller", name)
			return iface.Run(o.workers, ctx)
		})
	}
	cctx.SharedInformerFactory.Start(ctx.Done())
	cctx.KubeSharedInformerFactory.Start(ctx.Done())
	cctx.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())

	err = o.wait(g)
	cctx.HTTP01ResourceMetadataInformersFactory.Shutdown()
	cctx.KubeSharedInformerFactory.Shutdown()
	cctx.SharedInformerFactory.Shutdown()
	return err
}

// wait returns the first error of the running parts; an end by signal is
// a clean exit.
func (o *controllerOptions) wait(g *errgroup.Group) error {
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// leaderElection campaigns for the Lease cert-manager-controller in
// --namespace, closes elected once this replica leads, and fails when
// leadership is lost while running (the pod restarts rather than run
// beside a new leader).
func (o *controllerOptions) leaderElection(ctx context.Context, factory *controller.ContextFactory, health *healthz.Server, elected chan<- struct{}) error {
	lctx, err := factory.Build("leader-election")
	if err != nil {
		return fmt.Errorf("building the leader-election client: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("naming this replica for leader election: %w", err)
	}
	lock, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.namespace, "cert-manager-controller",
		lctx.Client.CoreV1(), lctx.Client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: host + "-external-cert-manager-controller", EventRecorder: lctx.Recorder},
		map[string]string{"app.kubernetes.io/managed-by": "cert-manager"})
	if err != nil {
		return fmt.Errorf("creating the leader-election lock %s/cert-manager-controller: %w", o.namespace, err)
	}
	lost := make(chan struct{})
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod,
		ReleaseOnCancel: true, WatchDog: health.LeaderHealthzAdaptor,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(elected) },
			OnStoppedLeading: func() { close(lost) },
		},
	})
	if err != nil {
		return fmt.Errorf("configuring leader election: %w", err)
	}
	elector.Run(ctx)
	if ctx.Err() == nil {
		return errors.New("leader election lost")
	}
	return nil
}

// leaderHealthzTimeout is how long past its Lease's renewal a leader is
// still live (upstream's default, Kubernetes controller-manager's too).
const leaderHealthzTimeout = 20 * time.Second

// contextFactory builds the shared controller context with upstream's
// defaults for everything scaleplane does not set.
func (o *controllerOptions) contextFactory(ctx context.Context) (*controller.ContextFactory, error) {
	return controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         o.kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		Namespace:          o.watchNamespace,
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 o.solverImage,
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			DNS01Nameservers:                  dnsutil.RecursiveNameservers,
			DNS01CheckRetryPeriod:             10 * time.Second,
			DNS01CheckAuthoritative:           true,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        o.clusterResourceNamespace,
			ClusterIssuerAmbientCredentials: true,
			IssuerAmbientCredentials:        false,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                cmapi.GroupName,
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
			GatewayAPIExtraProtocols:          sets.New[string](),
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
}
