package pulumicli

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/cluster"
)

// recorder is a Pulumi mock that keeps the inputs of every resource.
type recorder struct {
	mu     sync.Mutex
	inputs map[string]resource.PropertyMap
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inputs[args.Name] = args.Inputs
	return args.Name + "-id", args.Inputs, nil
}

func (r *recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

func annotations(t *testing.T, props resource.PropertyMap) map[string]string {
	t.Helper()
	md, ok := props["metadata"]
	require.True(t, ok, "the resource has metadata")
	out := map[string]string{}
	if a, ok := md.ObjectValue()["annotations"]; ok {
		for k, v := range a.ObjectValue() {
			out[string(k)] = v.StringValue()
		}
	}
	return out
}

func TestSkipAwaitAnnotatesKubernetesObjects(t *testing.T) {
	rec := &recorder{inputs: map[string]resource.PropertyMap{}}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		if err := ctx.RegisterStackTransformation(skipAwait); err != nil {
			return err
		}
		spec := &appsv1.DeploymentSpecArgs{
			Selector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"app": pulumi.String("a")}},
			Template: &corev1.PodTemplateSpecArgs{Spec: &corev1.PodSpecArgs{Containers: corev1.ContainerArray{corev1.ContainerArgs{Name: pulumi.String("c"), Image: pulumi.String("i:1")}}}},
		}
		if _, err := appsv1.NewDeployment(ctx, "with-annotations", &appsv1.DeploymentArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("a"), Annotations: pulumi.StringMap{"keep": pulumi.String("me")}},
			Spec:     spec,
		}); err != nil {
			return err
		}
		if _, err := appsv1.NewDeployment(ctx, "bare", &appsv1.DeploymentArgs{Spec: spec}); err != nil {
			return err
		}
		if _, err := corev1.NewService(ctx, "svc", &corev1.ServiceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("svc")}}); err != nil {
			return err
		}
		_, err := pulumi.NewStackReference(ctx, "other", nil)
		return err
	}, pulumi.WithMocks("scaleplane", "test", rec))
	require.NoError(t, err, "program under mocks")

	a := annotations(t, rec.inputs["with-annotations"])
	assert.Equal(t, "true", a[skipAwaitAnnotation], "a Deployment is not awaited by the provider")
	assert.Equal(t, "me", a["keep"], "its own annotations are kept")
	assert.Equal(t, "true", annotations(t, rec.inputs["bare"])[skipAwaitAnnotation], "a Deployment without metadata gets it too")
	assert.Equal(t, "true", annotations(t, rec.inputs["svc"])[skipAwaitAnnotation], "a Service is not awaited either (the provider waits for its endpoints)")
	_, hasMeta := rec.inputs["other"]["metadata"]
	assert.False(t, hasMeta, "resources of other providers are untouched")
}

func TestWorkloadsOfReadsDeploymentsAndStatefulSets(t *testing.T) {
	state := map[string]any{"resources": []map[string]any{
		{"type": "kubernetes:apps/v1:Deployment", "outputs": map[string]any{"metadata": map[string]any{"name": "gateway", "namespace": "sp"}}},
		{"type": "kubernetes:apps/v1:StatefulSet", "outputs": map[string]any{"metadata": map[string]any{"name": "redis", "namespace": "sp"}}},
		{"type": "kubernetes:core/v1:Service", "outputs": map[string]any{"metadata": map[string]any{"name": "gateway", "namespace": "sp"}}},
	}}
	raw, err := json.Marshal(state)
	require.NoError(t, err, "marshal")
	ws, err := workloadsOf(raw)
	require.NoError(t, err, "workloadsOf")
	assert.Equal(t, []cluster.Workload{{Kind: "Deployment", Namespace: "sp", Name: "gateway"}, {Kind: "StatefulSet", Namespace: "sp", Name: "redis"}}, ws, "only workloads, with kind, namespace and name")
}

func TestPassphraseIsCreatedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	a, err := passphrase(dir)
	require.NoError(t, err, "first")
	b, err := passphrase(dir)
	require.NoError(t, err, "second")
	assert.Len(t, a, 32, "16 random bytes in hex")
	assert.Equal(t, a, b, "the same passphrase decrypts the state next time")
}

// TestSummaryReportsPolicyResults: the summary names the packs, counts the
// resources they checked and the violations, counts as mandatory only the
// violations no exception covers, and lists each one on one line.
func TestSummaryReportsPolicyResults(t *testing.T) {
	r := Result{Operation: "up", Stack: "local", Policy: &PolicyReport{
		Packs:   []string{"scaleplane"},
		Checked: 112,
		Violations: []apitype.PolicyEvent{
			{PolicyName: "zone-spread", EnforcementLevel: "advisory", Message: "Deployment gateway: no zone spread\nmore detail"},
			{PolicyName: "hpa-replicas", EnforcementLevel: "mandatory", Message: "minReplicas 1 < 2"},
			{PolicyName: "hpa-replicas", EnforcementLevel: "mandatory", Message: "excepted", Exceptions: []apitype.PolicyEventException{{ID: "EXC-1"}}},
		},
	}}
	if got := r.Policy.Mandatory(); got != 1 {
		t.Errorf("Mandatory() = %d, want 1 (the excepted violation does not count)", got)
	}
	var b strings.Builder
	r.Print(&b)
	for _, want := range []string{
		"policy: scaleplane checked 112 resources: 3 violations, 1 mandatory",
		"  [advisory] zone-spread: Deployment gateway: no zone spread\n",
		"  [mandatory] hpa-replicas: minReplicas 1 < 2\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "more detail") {
		t.Errorf("summary shows only a message's first line:\n%s", b.String())
	}
	r.Policy = nil
	b.Reset()
	r.Print(&b)
	if strings.Contains(b.String(), "policy:") {
		t.Errorf("without a pack the summary says nothing about policy:\n%s", b.String())
	}
}
