package microservice

import (
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/internal/plainvalue"
)

// mocks records the inputs of every resource by type token.
type mocks struct {
	mu    sync.Mutex
	byTok map[string][]map[string]any
	names []string
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byTok == nil {
		m.byTok = map[string][]map[string]any{}
	}
	switch args.TypeToken {
	case "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service", "kubernetes:core/v1:ServiceAccount",
		"kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:policy/v1:PodDisruptionBudget",
		"kubernetes:networking.k8s.io/v1:NetworkPolicy", "kubernetes:core/v1:ConfigMap", TypeToken:
		m.byTok[args.TypeToken] = append(m.byTok[args.TypeToken], args.Inputs.Mappable())
		m.names = append(m.names, args.Name)
	default:
		return "", nil, &unexpectedType{args.TypeToken}
	}
	return args.Name + "-id", args.Inputs, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

type unexpectedType struct{ tok string }

func (e *unexpectedType) Error() string { return "unexpected resource type " + e.tok }

func q(s string) k8sresource.Quantity { return k8sresource.MustParse(s) }

func validArgs() *Args {
	return &Args{
		Namespace: "apps",
		Image:     "registry.example/gateway:1.2.3",
		Component: "gateway",
		Version:   "1.2.3",
		Ports:     []Port{{Name: "http", Port: 8080, Protocol: "http"}},
		Env:       pulumi.StringMap{"KAFKA_BROKERS": pulumi.String("kafka:9092")},
		SecretEnv: map[string]string{"REDIS_PASSWORD": "redis-auth/password"},
		Resources: Resources{CPURequest: q("250m"), CPULimit: q("1500m"), MemoryRequest: q("128Mi"), MemoryLimit: q("256Mi")},
		Replicas:  Replicas{Min: 2, Max: 10},
		Autoscaling: Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80,
			ScaleDownWindowSeconds: 300},
		Shutdown:        Shutdown{PreStopSeconds: 5, DrainSeconds: 20},
		Liveness:        Probe{Port: "http", HTTPPath: "/healthz"},
		Readiness:       Probe{Port: "http", HTTPPath: "/readyz"},
		GoRuntime:       true,
		MetricsPort:     "http",
		OTLPEndpoint:    "http://otel-collector.apps:4317",
		Headless:        true,
		AllowFrom:       []string{"edge"},
		ConfigFiles:     map[string]string{"app.yaml": "a: 1"},
		ConfigMountPath: "/etc/app",
	}
}

func deploy(t *testing.T, args *Args) *mocks {
	t.Helper()
	m := &mocks{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewMicroservice(ctx, "gateway", args)
		return err
	}, pulumi.WithMocks("project", "stack", m))
	require.NoError(t, err, "declare the microservice")
	return m
}

// get is plainvalue.Get, the walk the policy rules read resources with.
var get = plainvalue.Get

func envOf(container any) map[string]any {
	out := map[string]any{}
	list, _ := get(container, "env").([]any)
	for _, e := range list {
		name, _ := get(e, "name").(string)
		if v := get(e, "value"); v != nil {
			out[name] = v
		} else {
			out[name] = get(e, "valueFrom")
		}
	}
	return out
}

func TestMicroserviceDeclaresEveryScalingObject(t *testing.T) {
	m := deploy(t, validArgs())
	for tok, n := range map[string]int{
		"kubernetes:apps/v1:Deployment":                     1,
		"kubernetes:core/v1:Service":                        2,
		"kubernetes:core/v1:ServiceAccount":                 1,
		"kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 1,
		"kubernetes:policy/v1:PodDisruptionBudget":          1,
		"kubernetes:networking.k8s.io/v1:NetworkPolicy":     1,
		"kubernetes:core/v1:ConfigMap":                      1,
	} {
		assert.Len(t, m.byTok[tok], n, "%s objects", tok)
	}
	for _, name := range m.names {
		assert.True(t, strings.HasPrefix(name, "gateway"), "child %q is named after the component", name)
	}
	sa := m.byTok["kubernetes:core/v1:ServiceAccount"][0]
	assert.Equal(t, false, sa["automountServiceAccountToken"], "no service account token is mounted")
}

func TestDeploymentCarriesTheRuntimeRules(t *testing.T) {
	a := validArgs()
	a.GoGC = GoGC
	m := deploy(t, a)
	dep := m.byTok["kubernetes:apps/v1:Deployment"][0]
	assert.Equal(t, "gateway", get(dep, "metadata", "name"), "explicit metadata.name")
	pod := get(dep, "spec", "template", "spec")
	c := get(pod, "containers", 0)

	env := envOf(c)
	assert.Equal(t, "230MiB", env["GOMEMLIMIT"], "GOMEMLIMIT is 90 % of the 256Mi limit")
	assert.Equal(t, "2", env["GOMAXPROCS"], "GOMAXPROCS is the CPU limit 1500m rounded up")
	assert.Equal(t, GoGC, env["GOGC"], "GOGC trades a little heap for fewer collections")
	assert.Equal(t, "http://otel-collector.apps:4317", env["OTEL_EXPORTER_OTLP_ENDPOINT"], "traces go to the collector")
	assert.Equal(t, "gateway", env["OTEL_SERVICE_NAME"], "service name for traces")
	assert.Equal(t, "20s", env["SHUTDOWN_TIMEOUT"], "the app learns its drain budget")
	assert.Equal(t, "0s", env["DRAIN_DELAY"], "the preStop sleep already drained the endpoints")
	assert.Equal(t, "kafka:9092", env["KAFKA_BROKERS"], "plain env passes through")
	assert.Equal(t, "redis-auth", get(env["REDIS_PASSWORD"], "secretKeyRef", "name"), "secrets come from a Secret, not the spec")

	assert.Equal(t, "250m", get(c, "resources", "requests", "cpu"), "cpu request")
	assert.Equal(t, "128Mi", get(c, "resources", "requests", "memory"), "memory request")
	assert.Equal(t, "256Mi", get(c, "resources", "limits", "memory"), "memory limit")
	assert.Equal(t, "/healthz", get(c, "livenessProbe", "httpGet", "path"), "liveness probe")
	assert.Equal(t, "/readyz", get(c, "readinessProbe", "httpGet", "path"), "readiness probe")
	assert.NotNil(t, get(c, "startupProbe"), "startup probe")
	assert.Equal(t, 5.0, get(c, "lifecycle", "preStop", "sleep", "seconds"), "preStop sleep")
	assert.Equal(t, 30.0, get(pod, "terminationGracePeriodSeconds"), "grace = preStop 5 + drain 20 + margin 5")

	sc := get(c, "securityContext")
	assert.Equal(t, false, get(sc, "allowPrivilegeEscalation"), "no privilege escalation")
	assert.Equal(t, true, get(sc, "readOnlyRootFilesystem"), "read-only root")
	assert.Equal(t, true, get(sc, "runAsNonRoot"), "non-root")
	assert.Equal(t, []any{"ALL"}, get(sc, "capabilities", "drop"), "drop all capabilities")
	assert.Equal(t, "RuntimeDefault", get(pod, "securityContext", "seccompProfile", "type"), "seccomp RuntimeDefault")

	assert.Equal(t, "topology.kubernetes.io/zone", get(pod, "topologySpreadConstraints", 0, "topologyKey"), "zone spread")
	assert.Equal(t, "ScheduleAnyway", get(pod, "topologySpreadConstraints", 0, "whenUnsatisfiable"), "zone spread is soft unless required")
	assert.Equal(t, "kubernetes.io/hostname", get(pod, "topologySpreadConstraints", 1, "topologyKey"), "node spread")

	ann := get(dep, "spec", "template", "metadata", "annotations")
	assert.Equal(t, "true", get(ann, "prometheus.io/scrape"), "scraped by Prometheus")
	assert.Equal(t, "8080", get(ann, "prometheus.io/port"), "scrape port")
	assert.NotEmpty(t, get(ann, "scaleplane.dev/config-checksum"), "config changes roll the pods")
	for _, l := range []string{"name", "instance", "component", "part-of", "managed-by", "version"} {
		assert.NotEmpty(t, get(dep, "metadata", "labels", "app.kubernetes.io/"+l), "recommended label app.kubernetes.io/%s", l)
	}
}

func TestZoneSpreadRequiredIsAHardRule(t *testing.T) {
	a := validArgs()
	a.ZoneSpreadRequired = true
	m := deploy(t, a)
	dep := m.byTok["kubernetes:apps/v1:Deployment"][0]
	assert.Equal(t, "DoNotSchedule", get(dep, "spec", "template", "spec", "topologySpreadConstraints", 0, "whenUnsatisfiable"), "prod refuses to pile pods into one zone")
}

func TestAutoscalerAndBudget(t *testing.T) {
	m := deploy(t, validArgs())
	hpa := m.byTok["kubernetes:autoscaling/v2:HorizontalPodAutoscaler"][0]
	assert.Equal(t, "gateway", get(hpa, "spec", "scaleTargetRef", "name"), "the HPA targets the Deployment")
	assert.Equal(t, 2.0, get(hpa, "spec", "minReplicas"), "minReplicas")
	assert.Equal(t, 10.0, get(hpa, "spec", "maxReplicas"), "maxReplicas")
	assert.Equal(t, "cpu", get(hpa, "spec", "metrics", 0, "resource", "name"), "first metric is CPU")
	assert.Equal(t, 70.0, get(hpa, "spec", "metrics", 0, "resource", "target", "averageUtilization"), "CPU target 70 %")
	assert.Equal(t, "memory", get(hpa, "spec", "metrics", 1, "resource", "name"), "second metric is memory")
	assert.Equal(t, 80.0, get(hpa, "spec", "metrics", 1, "resource", "target", "averageUtilization"), "memory target 80 %")
	assert.Equal(t, 300.0, get(hpa, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds"), "scale-down stabilization window")
	assert.NotNil(t, get(hpa, "spec", "behavior", "scaleUp", "policies"), "scale-up policies")

	pdb := m.byTok["kubernetes:policy/v1:PodDisruptionBudget"][0]
	assert.Equal(t, 1.0, get(pdb, "spec", "maxUnavailable"), "PDB lets a drain proceed one pod at a time")
	assert.Equal(t, "gateway", get(pdb, "spec", "selector", "matchLabels", "app.kubernetes.io/name"), "PDB selects the pods")

	for _, svc := range m.byTok["kubernetes:core/v1:Service"] {
		assert.Equal(t, "None", get(svc, "spec", "sessionAffinity"), "no sticky sessions on %v", get(svc, "metadata", "name"))
	}
	np := m.byTok["kubernetes:networking.k8s.io/v1:NetworkPolicy"][0]
	assert.Equal(t, "edge", get(np, "spec", "ingress", 0, "from", 0, "podSelector", "matchLabels", "app.kubernetes.io/name"), "only the declared caller")
	assert.Equal(t, "prometheus", get(np, "spec", "ingress", 0, "from", 1, "podSelector", "matchLabels", "app.kubernetes.io/name"), "and Prometheus")
}

func TestValidateRefusesBadArgsBeforeDeclaringAnything(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"latest image":     {func(a *Args) { a.Image = "gateway:latest" }, `image "gateway:latest"`},
		"untagged image":   {func(a *Args) { a.Image = "registry:5000/gateway" }, "explicit tag"},
		"min above max":    {func(a *Args) { a.Replicas = Replicas{Min: 5, Max: 3} }, "replicas.max 3"},
		"zero min":         {func(a *Args) { a.Replicas.Min = 0 }, "replicas.min 0"},
		"limit < request":  {func(a *Args) { a.Resources.MemoryLimit = q("64Mi") }, `resources.memoryLimit "64Mi"`},
		"cpu limit < req":  {func(a *Args) { a.Resources.CPULimit = q("100m") }, `resources.cpuLimit "100m"`},
		"no cpu request":   {func(a *Args) { a.Resources.CPURequest = k8sresource.Quantity{} }, "resources.cpuRequest"},
		"cpu target 0":     {func(a *Args) { a.CPUTargetPercent = 0 }, "cpuTargetPercent 0"},
		"probe port":       {func(a *Args) { a.Readiness.Port = "grpc" }, `readiness probe port "grpc"`},
		"probe kind":       {func(a *Args) { a.Liveness.GRPC = true }, "exactly one of httpPath or grpc"},
		"bad env name":     {func(a *Args) { a.Env = pulumi.StringMap{"1X": pulumi.String("")} }, `env "1X"`},
		"bad secret ref":   {func(a *Args) { a.SecretEnv = map[string]string{"X": "nokey"} }, `secretEnv X="nokey"`},
		"service type":     {func(a *Args) { a.ServiceType = "ExternalName" }, `serviceType "ExternalName"`},
		"no drain":         {func(a *Args) { a.DrainSeconds = 0 }, "shutdown.drainSeconds 0"},
		"bad namespace":    {func(a *Args) { a.Namespace = "Apps" }, `namespace "Apps"`},
		"config, no mount": {func(a *Args) { a.ConfigMountPath = "" }, "configMountPath"},
		"unknown metrics":  {func(a *Args) { a.MetricsPort = "admin" }, `metricsPort "admin"`},
		"traffic policy":   {func(a *Args) { a.ExternalTrafficPolicy = "Local" }, `externalTrafficPolicy "Local": only for LoadBalancer or NodePort`},
		"traffic value":    {func(a *Args) { a.ServiceType, a.ExternalTrafficPolicy = "LoadBalancer", "Node" }, `externalTrafficPolicy "Node": must be Local or Cluster`},
		"all private":      {func(a *Args) { a.Ports[0].ContainerOnly = true }, "at least one must be in the Service"},
		"private mapped": {func(a *Args) {
			a.Ports = append(a.Ports, Port{Name: "s", Port: 9, ContainerOnly: true, ServicePort: 90})
		}, "servicePort 90 on a containerOnly port"},
		"secret no items": {func(a *Args) { a.SecretVolumes = []SecretVolume{{Secret: "tls", MountPath: "/etc/tls"}} }, "secretVolumes[0].items"},
		"secret rel mount": {func(a *Args) {
			a.SecretVolumes = []SecretVolume{{Secret: "tls", MountPath: "tls", Items: map[string]string{"k": "f"}}}
		}, `secretVolumes[0].mountPath "tls"`},
	} {
		t.Run(name, func(t *testing.T) {
			a := validArgs()
			tc.mutate(a)
			m := &mocks{}
			err := pulumi.RunErr(func(ctx *pulumi.Context) error {
				_, err := NewMicroservice(ctx, "gateway", a)
				return err
			}, pulumi.WithMocks("project", "stack", m))
			require.Error(t, err, "%s must be refused", name)
			assert.Contains(t, err.Error(), tc.want, "the error names the field and value")
			assert.Contains(t, err.Error(), "microservice gateway", "the error names the component")
			assert.Empty(t, m.names, "nothing is declared when the args are bad")
		})
	}
}

// TestPublicAndPrivatePorts is the edge's shape: Service ports mapped to
// unprivileged container ports, a status port no Service exposes but
// Prometheus may reach, annotations and externalTrafficPolicy on the
// LoadBalancer Service, and a Secret mounted as named files.
func TestPublicAndPrivatePorts(t *testing.T) {
	a := validArgs()
	a.Headless, a.AllowFrom, a.AllowFromAnywhere = false, nil, true
	a.ServiceType, a.ExternalTrafficPolicy = "LoadBalancer", "Local"
	a.ServiceAnnotations = pulumi.StringMap{"example.com/lb": pulumi.String("nlb")}
	a.Ports = []Port{
		{Name: "https", Port: 8443, ServicePort: 443},
		{Name: "http", Port: 8080, ServicePort: 80},
		{Name: "status", Port: 8081, ContainerOnly: true},
	}
	a.Liveness.Port, a.Readiness.Port, a.MetricsPort = "status", "status", "status"
	a.SecretVolumes = []SecretVolume{{Secret: "edge-tls", MountPath: "/etc/edge-tls", Items: map[string]string{"tls.crt": "edge.pem", "tls.key": "edge.pem.key"}}}
	m := deploy(t, a)

	svc := m.byTok["kubernetes:core/v1:Service"][0]
	assert.Equal(t, []any{
		map[string]any{"name": "https", "port": 443.0, "targetPort": "https", "protocol": "TCP"},
		map[string]any{"name": "http", "port": 80.0, "targetPort": "http", "protocol": "TCP"},
	}, get(svc, "spec", "ports"), "the Service maps 443 and 80 and never exposes the status port")
	assert.Equal(t, "Local", get(svc, "spec", "externalTrafficPolicy"), "the client's address survives kube-proxy")
	assert.Equal(t, "nlb", get(svc, "metadata", "annotations", "example.com/lb"), "the load balancer's annotations")

	dep := m.byTok["kubernetes:apps/v1:Deployment"][0]
	c := get(dep, "spec", "template", "spec", "containers", 0)
	assert.Len(t, get(c, "ports"), 3, "every port is a container port")
	assert.Equal(t, "status", get(c, "livenessProbe", "httpGet", "port"), "probes on the status port")
	assert.Equal(t, "8081", get(dep, "spec", "template", "metadata", "annotations", "prometheus.io/port"), "scraped on the status port")
	var secret any
	for _, v := range get(dep, "spec", "template", "spec", "volumes").([]any) {
		if get(v, "name") == "secret-0" {
			secret = get(v, "secret")
		}
	}
	assert.Equal(t, "edge-tls", get(secret, "secretName"), "the TLS Secret is mounted")
	assert.Equal(t, []any{map[string]any{"key": "tls.crt", "path": "edge.pem"}, map[string]any{"key": "tls.key", "path": "edge.pem.key"}},
		get(secret, "items"), "keys mounted under the names the program reads")
	mounted := 0
	for _, mnt := range get(c, "volumeMounts").([]any) {
		if get(mnt, "name") == "secret-0" {
			mounted++
			assert.Equal(t, "/etc/edge-tls", get(mnt, "mountPath"), "mounted where the config reads it")
			assert.Equal(t, true, get(mnt, "readOnly"), "read-only")
		}
	}
	assert.Equal(t, 1, mounted, "the Secret's volume is mounted once")

	np := m.byTok["kubernetes:networking.k8s.io/v1:NetworkPolicy"][0]
	assert.Nil(t, get(np, "spec", "ingress", 0, "from"), "the public ports admit anyone")
	assert.Len(t, get(np, "spec", "ingress", 0, "ports"), 2, "the public rule has the two public ports")
	assert.Equal(t, 8081.0, get(np, "spec", "ingress", 1, "ports", 0, "port"), "a second rule for the status port")
	assert.Equal(t, "prometheus", get(np, "spec", "ingress", 1, "from", 0, "podSelector", "matchLabels", "app.kubernetes.io/name"), "which only Prometheus reaches")
}

func TestGoRuntimeDerivations(t *testing.T) {
	assert.Equal(t, "115MiB", GoMemLimit(q("128Mi")), "90 %% of 128Mi")
	assert.Equal(t, "921MiB", GoMemLimit(q("1Gi")), "90 %% of 1Gi")
	assert.Equal(t, 1, GoMaxProcs(Resources{CPURequest: q("100m")}), "a fraction of a core is one P")
	assert.Equal(t, 2, GoMaxProcs(Resources{CPURequest: q("500m"), CPULimit: q("2")}), "the limit wins when set")
	assert.Equal(t, 3, GoMaxProcs(Resources{CPURequest: q("2500m")}), "the request, rounded up, without a limit")
}
