package certmanager

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// mocks records what a component registers; outputs echo the inputs.
type mocks struct {
	mu  sync.Mutex
	res []pulumi.MockResourceArgs
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.res = append(m.res, args)
	m.mu.Unlock()
	return args.Name + "-id", args.Inputs.Copy(), nil
}

func (m *mocks) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (m *mocks) byType(typ string) []pulumi.MockResourceArgs {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pulumi.MockResourceArgs
	for _, r := range m.res {
		if r.TypeToken == typ {
			out = append(out, r)
		}
	}
	return out
}

// dependsOn returns the Pulumi names of a resource's declared dependencies.
func dependsOn(r pulumi.MockResourceArgs) []string {
	var out []string
	for _, u := range r.RegisterRPC.GetDependencies() {
		out = append(out, u[strings.LastIndex(u, "::")+2:])
	}
	return out
}

func testArgs() Args {
	return Args{
		Namespace:       "cert-manager",
		Image:           "scaleplane.local/cert-manager:" + Version,
		WebhookReplicas: kube.Replicas{Min: 2, Max: 3},
		Autoscaling:     kube.Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80, ScaleDownWindowSeconds: 300},
	}
}

// declare runs NewCertManager under mocks.
func declare(t *testing.T, a Args) *mocks {
	t.Helper()
	m := &mocks{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewCertManager(ctx, "cert-manager", &a)
		return err
	}, pulumi.WithMocks("scaleplane", "test", m))
	require.NoError(t, err, "declare cert-manager")
	return m
}

func TestValidateNamesFieldValueAndWhatIsAllowed(t *testing.T) {
	a := testArgs()
	require.NoError(t, a.Validate("cert-manager"), "the test args are valid")
	bad := Args{Namespace: "Bad_NS", Image: "cert-manager:latest", WebhookReplicas: kube.Replicas{Min: 2, Max: 2},
		Autoscaling: kube.Autoscaling{CPUTargetPercent: 0, MemoryTargetPercent: 80}, WebhookTimeoutSeconds: 31}
	err := bad.Validate("cert-manager")
	require.Error(t, err, "bad args are refused")
	for _, want := range []string{`namespace "Bad_NS": must be a DNS label`, `image "cert-manager:latest"`, "webhookReplicas 2..2",
		"autoscaling targets 0%/80%", "webhookTimeoutSeconds 31: must be in 1..30"} {
		assert.Contains(t, err.Error(), want, "the error names the field and what is allowed")
	}
	_, err = NewCertManager(nil, "cert-manager", &bad)
	require.Error(t, err, "NewCertManager validates before it touches the context")
}

func TestDeclaresCertManagerLeastPrivilegedAndRestricted(t *testing.T) {
	m := declare(t, testArgs())

	crds := m.byType(crdTypeToken)
	require.Len(t, crds, 6, "the six CRDs of %s", Version)
	for _, c := range crds {
		meta := c.Inputs["metadata"].ObjectValue()
		assert.Equal(t, "true", meta["annotations"].ObjectValue()[AwaitAnnotation].StringValue(), "%s is awaited until Established", c.Name)
		assert.Equal(t, "scaleplane", meta["labels"].ObjectValue()["app.kubernetes.io/part-of"].StringValue(), "%s carries the platform's labels", c.Name)
		assert.True(t, c.Inputs["spec"].ObjectValue()["versions"].IsArray(), "%s keeps its schema", c.Name)
	}

	deps := map[string]resource.PropertyMap{}
	for _, d := range m.byType("kubernetes:apps/v1:Deployment") {
		deps[d.Inputs["metadata"].ObjectValue()["name"].StringValue()] = d.Inputs
		assert.Subset(t, dependsOn(d), []string{"cert-manager-crd-issuer", "cert-manager-crd-certificate"}, "%s starts after the CRDs exist", d.Name)
	}
	require.Len(t, deps, 3, "controller, webhook and cainjector")
	for name, d := range deps {
		spec := d["spec"].ObjectValue()
		pod := spec["template"].ObjectValue()["spec"].ObjectValue()
		assert.True(t, pod["automountServiceAccountToken"].BoolValue(), "%s talks to the API server with its token", name)
		assert.Equal(t, name, pod["serviceAccountName"].StringValue(), "%s has its own service account", name)
		assert.True(t, pod["securityContext"].ObjectValue()["runAsNonRoot"].BoolValue(), "%s runs as non-root", name)
		c := pod["containers"].ArrayValue()[0].ObjectValue()
		sc := c["securityContext"].ObjectValue()
		assert.True(t, sc["readOnlyRootFilesystem"].BoolValue(), "%s has a read-only root filesystem", name)
		assert.Equal(t, "ALL", sc["capabilities"].ObjectValue()["drop"].ArrayValue()[0].StringValue(), "%s drops every capability", name)
		assert.True(t, c["readinessProbe"].IsObject() && c["livenessProbe"].IsObject(), "%s has readiness and liveness probes", name)
		assert.True(t, c["resources"].ObjectValue()["limits"].ObjectValue()["memory"].IsString(), "%s has a memory limit", name)
		assert.Equal(t, "scaleplane.local/cert-manager:"+Version, c["image"].StringValue(), "%s runs the one multi-call image", name)
		sub := c["args"].ArrayValue()[0].StringValue()
		assert.Equal(t, strings.TrimPrefix(name, "cert-manager-"), sub, "%s runs its own subcommand", name)
		if name == WebhookName {
			assert.False(t, spec["replicas"].HasValue(), "the webhook's size is its HPA's")
			continue
		}
		assert.Equal(t, 1.0, spec["replicas"].NumberValue(), "%s runs one pod: no leader election", name)
		assert.Equal(t, "Recreate", spec["strategy"].ObjectValue()["type"].StringValue(), "%s never runs two pods during a rollout", name)
	}
	ctrlArgs := strings.Join(toStrings(deps["cert-manager-controller"]["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()["args"]), " ")
	assert.Contains(t, ctrlArgs, "--cluster-resource-namespace=cert-manager --leader-elect=false", "the controller keeps ClusterIssuer Secrets in its namespace")
	assert.NotContains(t, ctrlArgs, "--watch-namespace", "the controller watches every namespace (Certificates live in the application's)")
	whArgs := strings.Join(toStrings(deps[WebhookName]["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()["args"]), " ")
	assert.Contains(t, whArgs, "--dynamic-serving-dns-names=cert-manager-webhook,cert-manager-webhook.cert-manager,cert-manager-webhook.cert-manager.svc", "the serving certificate names the Service")

	assert.Len(t, m.byType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"), 1, "the webhook is autoscaled")
	assert.Len(t, m.byType("kubernetes:policy/v1:PodDisruptionBudget"), 1, "the webhook has a disruption budget")
	assert.Len(t, m.byType("kubernetes:networking.k8s.io/v1:NetworkPolicy"), 2, "webhook and controller metrics are let through the default-deny")

	roles := map[string]bool{}
	for _, typ := range []string{"kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kubernetes:rbac.authorization.k8s.io/v1:Role"} {
		for _, r := range m.byType(typ) {
			roles[r.Inputs["metadata"].ObjectValue()["name"].StringValue()] = true
			for _, rule := range r.Inputs["rules"].ArrayValue() {
				res := toStrings(rule.ObjectValue()["resources"])
				assert.NotContains(t, res, "leases", "%s grants no leader-election leases (none is used)", r.Name)
				assert.NotContains(t, res, "*", "%s names its resources", r.Name)
				assert.NotContains(t, toStrings(rule.ObjectValue()["verbs"]), "*", "%s names its verbs", r.Name)
			}
		}
	}
	for _, want := range []string{"cert-manager-controller-certificates", "cert-manager-cainjector", "cert-manager-webhook:dynamic-serving", "cert-manager-apicheck"} {
		assert.True(t, roles[want], "role %s is declared", want)
	}
	assert.Len(t, m.byType("kubernetes:core/v1:ServiceAccount"), 4, "one identity per process and the apicheck")

	for _, typ := range []string{"kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration", "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"} {
		hooks := m.byType(typ)
		require.Len(t, hooks, 1, "one %s", typ)
		in := hooks[0].Inputs
		assert.Equal(t, "cert-manager/"+WebhookCASecret, in["metadata"].ObjectValue()["annotations"].ObjectValue()[InjectCAAnnotation].StringValue(), "the CA injector fills %s", typ)
		wh := in["webhooks"].ArrayValue()[0].ObjectValue()
		assert.Equal(t, "Fail", wh["failurePolicy"].StringValue(), "%s fails closed", typ)
		assert.False(t, wh["clientConfig"].ObjectValue()["caBundle"].HasValue(), "%s leaves caBundle to the injector", typ)
		assert.Equal(t, WebhookName, wh["clientConfig"].ObjectValue()["service"].ObjectValue()["name"].StringValue(), "%s calls the webhook Service", typ)
	}

	jobs := m.byType("kubernetes:batch/v1:Job")
	require.Len(t, jobs, 1, "one apicheck Job")
	job := jobs[0]
	assert.Equal(t, "true", job.Inputs["metadata"].ObjectValue()["annotations"].ObjectValue()[AwaitAnnotation].StringValue(), "the provider waits for the apicheck to complete")
	jc := job.Inputs["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, []string{"apicheck", "--namespace=cert-manager", "--timeout=5m0s"}, toStrings(jc["args"]), "apicheck dry-runs an Issuer in cert-manager's namespace")
	jd := dependsOn(job)
	for _, want := range []string{"cert-manager-crd-issuer", "cert-manager-webhook-deployment", "cert-manager-controller-deployment",
		"cert-manager-cainjector-deployment", "cert-manager-webhook-service", "cert-manager-validating-webhook", "cert-manager-mutating-webhook"} {
		assert.Contains(t, jd, want, "the apicheck starts after %s", want)
	}

	for _, r := range m.res {
		if r.Custom && strings.HasPrefix(r.TypeToken, "kubernetes:") {
			assert.True(t, strings.HasPrefix(r.Name, "cert-manager-"), "%s is named after the component", r.Name)
			assert.NotEmpty(t, r.Inputs["metadata"].ObjectValue()["name"].StringValue(), "%s has an explicit metadata.name", r.Name)
		}
	}
}

// TestReadyIsTheCRDsAndTheAPICheck: what custom resources wait for.
func TestReadyIsTheCRDsAndTheAPICheck(t *testing.T) {
	m := &mocks{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := testArgs()
		c, err := NewCertManager(ctx, "cert-manager", &a)
		if err != nil {
			return err
		}
		require.Len(t, c.Ready, 7, "six CRDs and the apicheck Job")
		_, err = NewCertManager(ctx, "second", &a)
		return err
	}, pulumi.WithMocks("scaleplane", "test", m))
	require.NoError(t, err, "declare twice under distinct names")
	assert.True(t, slices.ContainsFunc(m.byType("kubernetes:batch/v1:Job"), func(r pulumi.MockResourceArgs) bool { return r.Name == "cert-manager-apicheck-job" }),
		"the Job's Pulumi name follows the component's")
}

func toStrings(v resource.PropertyValue) []string {
	var out []string
	for _, e := range v.ArrayValue() {
		out = append(out, e.StringValue())
	}
	return out
}
