package edge

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/internal/plainvalue"
)

// recorder keeps every declared resource's inputs by type token.
type recorder struct {
	mu    sync.Mutex
	byTok map[string][]map[string]any
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byTok == nil {
		r.byTok = map[string][]map[string]any{}
	}
	r.byTok[args.TypeToken] = append(r.byTok[args.TypeToken], args.Inputs.Mappable())
	return args.Name + "-id", args.Inputs, nil
}

func (r *recorder) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func edgeArgs(kind Kind) *Args {
	c := testConfig()
	c.HTTPSPort, c.HTTPPort, c.StatusPort, c.RuntimeDir, c.TLS = 0, 0, 0, "", nil
	return &Args{
		Kind: kind, Namespace: "apps", Image: "registry.example/edge:1.0.0", Version: "1.0.0",
		Config: c, TLSSecretName: "edge-tls",
		Resources: microservice.Resources{CPURequest: k8sresource.MustParse("100m"), CPULimit: k8sresource.MustParse("1"),
			MemoryRequest: k8sresource.MustParse("64Mi"), MemoryLimit: k8sresource.MustParse("128Mi")},
		Replicas:    microservice.Replicas{Min: 2, Max: 4},
		Autoscaling: microservice.Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80},
		Shutdown:    microservice.Shutdown{PreStopSeconds: 5, DrainSeconds: 20},
	}
}

func declare(t *testing.T, a *Args) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewEdge(ctx, "edge", a)
		return err
	}, pulumi.WithMocks("project", "stack", r))
	return r, err
}

var get = plainvalue.Get

func TestEdgeDeclaresTheListenersAndTheCertificate(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			a := edgeArgs(kind)
			a.ServiceAnnotations = pulumi.StringMap{"service.beta.kubernetes.io/aws-load-balancer-type": pulumi.String("external")}
			r, err := declare(t, a)
			require.NoError(t, err, "declare the edge")
			svc := r.byTok["kubernetes:core/v1:Service"][0]
			assert.Equal(t, "LoadBalancer", get(svc, "spec", "type"), "the edge is the way in")
			assert.Equal(t, "Local", get(svc, "spec", "externalTrafficPolicy"), "Local by default: the client's address survives")
			assert.Equal(t, "external", get(svc, "metadata", "annotations", "service.beta.kubernetes.io/aws-load-balancer-type"), "annotations pass through")
			var ports []string
			for _, p := range get(svc, "spec", "ports").([]any) {
				ports = append(ports, get(p, "name").(string))
			}
			assert.Equal(t, []string{"https", "http"}, ports, "the status port is not in the Service")

			dep := r.byTok["kubernetes:apps/v1:Deployment"][0]
			pod := get(dep, "spec", "template")
			c := get(pod, "spec", "containers", 0)
			assert.Equal(t, "status", get(c, "readinessProbe", "httpGet", "port"), "probes on the status port")
			assert.Equal(t, "/healthz", get(c, "livenessProbe", "httpGet", "path"), "liveness path")
			scraped := get(pod, "metadata", "annotations", "prometheus.io/port")
			if kind == KindHAProxy {
				assert.Equal(t, "8081", scraped, "HAProxy's exporter is scraped on the status port")
			} else {
				assert.Nil(t, scraped, "nginx has no exporter to scrape")
			}
			vols := get(pod, "spec", "volumes")
			assert.Contains(t, fmtAny(vols), "edge-tls", "the TLS Secret is mounted")
			cm := r.byTok["kubernetes:core/v1:ConfigMap"][0]
			for _, text := range get(cm, "data").(map[string]any) {
				assert.Contains(t, text, TLSCertFile, "the config reads the mounted certificate")
			}
		})
	}
}

func TestEdgeRefusesArgsWithoutExactlyOneTLSMode(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"no tls":          {func(a *Args) { a.TLSSecretName = "" }, "tls: required"},
		"both tls modes":  {func(a *Args) { a.TLSTerminatedUpstream = true }, "set exactly one"},
		"config tls":      {func(a *Args) { a.Config.TLS = &TLSFiles{CertFile: "/c", KeyFile: "/c.key"} }, "set by the component"},
		"traffic policy":  {func(a *Args) { a.ExternalTrafficPolicy = "Nearest" }, `externalTrafficPolicy "Nearest"`},
		"internal prefix": {func(a *Args) { a.Config.Backends[0].PathPrefix = "/debug/" }, `internal path "debug"`},
	} {
		t.Run(name, func(t *testing.T) {
			a := edgeArgs(KindHAProxy)
			tc.mutate(a)
			r, err := declare(t, a)
			require.Error(t, err, "%s must be refused", name)
			assert.Contains(t, err.Error(), tc.want, "the error names the problem")
			assert.Empty(t, r.byTok, "nothing is declared when the args are bad")
		})
	}
}

func TestEdgeTLSTerminatedUpstreamMountsNoSecret(t *testing.T) {
	a := edgeArgs(KindNginx)
	a.TLSSecretName, a.TLSTerminatedUpstream = "", true
	a.Config.ProxyProtocol = ProxyProtocol{Enabled: true, TrustedCIDRs: []string{"10.0.0.0/16"}}
	r, err := declare(t, a)
	require.NoError(t, err, "declare the edge")
	dep := r.byTok["kubernetes:apps/v1:Deployment"][0]
	assert.NotContains(t, fmtAny(get(dep, "spec", "template", "spec", "volumes")), "secret", "no certificate at the edge")
	svc := r.byTok["kubernetes:core/v1:Service"][0]
	assert.Equal(t, 443.0, get(svc, "spec", "ports", 0, "port"), "the load balancer's TLS listener forwards to the https port")
	assert.Equal(t, "http", get(svc, "spec", "ports", 0, "appProtocol"), "which speaks plain HTTP here")
}

func fmtAny(v any) string { return strings.TrimSpace(fmt.Sprint(v)) }
