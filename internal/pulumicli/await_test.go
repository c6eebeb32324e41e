package pulumicli

import (
	"context"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/certmanager"
)

// transformRecorder is a Pulumi mock that keeps the stack's registered
// resource transforms (the mock monitor does not run them itself).
type transformRecorder struct {
	transforms []pulumi.ResourceTransform
}

func (r *transformRecorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	return args.Name + "-id", args.Inputs, nil
}

func (r *transformRecorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

func (r *transformRecorder) RegisterTransform(t pulumi.ResourceTransform) {
	r.transforms = append(r.transforms, t)
}

func (r *transformRecorder) RegisterInvokeTransform(pulumi.InvokeTransform) {}

// TestProgramRegistersTheSkipAwaitTransform: the program the Automation API
// runs (withoutAwait around the stack's) registers one stack-wide resource
// transform before declaring anything.
func TestProgramRegistersTheSkipAwaitTransform(t *testing.T) {
	rec := &transformRecorder{}
	declared := false
	err := pulumi.RunErr(withoutAwait(func(*pulumi.Context) error {
		declared = true
		return nil
	}), pulumi.WithMocks("scaleplane", "test", rec))
	require.True(t, declared, "the wrapped program runs")
	require.NoError(t, err, "registering the transform under mocks")
	require.Len(t, rec.transforms, 1, "one stack transform is registered")
	out := rec.transforms[0](context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:core/v1:Service", Props: pulumi.Map{}})
	require.NotNil(t, out, "the registered transform is skipAwait: it annotates a Service")
}

// annotationsOf returns the annotations a transform result sets, as strings.
func annotationsOf(t *testing.T, res *pulumi.ResourceTransformResult) map[string]string {
	t.Helper()
	require.NotNil(t, res, "the object is transformed")
	meta, ok := res.Props["metadata"].(pulumi.Map)
	require.True(t, ok, "the result has a metadata map, got %T", res.Props["metadata"])
	raw, ok := meta["annotations"].(pulumi.Map)
	require.True(t, ok, "the metadata has an annotations map, got %T", meta["annotations"])
	out := map[string]string{}
	for k, v := range raw {
		s, ok := v.(pulumi.String)
		require.True(t, ok, "annotation %s is a string, got %T", k, v)
		out[k] = string(s)
	}
	return out
}

// TestSkipAwaitAnnotatesKubernetesObjects feeds skipAwait the property maps
// the engine hands a resource transform (objects as pulumi.Map, strings as
// pulumi.String) and checks which objects it annotates and that it copies.
func TestSkipAwaitAnnotatesKubernetesObjects(t *testing.T) {
	original := pulumi.Map{
		"metadata": pulumi.Map{"name": pulumi.String("a"), "annotations": pulumi.Map{"keep": pulumi.String("me")}},
		"spec":     pulumi.Map{"replicas": pulumi.Float64(2)},
	}
	res := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:apps/v1:Deployment", Name: "a", Props: original})
	a := annotationsOf(t, res)
	assert.Equal(t, "true", a[skipAwaitAnnotation], "a Deployment is not awaited by the provider")
	assert.Equal(t, "me", a["keep"], "its own annotations are kept")
	assert.Equal(t, pulumi.Map{"replicas": pulumi.Float64(2)}, res.Props["spec"], "the rest of the object is passed through")
	_, changed := original["metadata"].(pulumi.Map)["annotations"].(pulumi.Map)[skipAwaitAnnotation]
	assert.False(t, changed, "the caller's property map is not changed in place")

	bare := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:apps/v1:Deployment", Props: pulumi.Map{"spec": pulumi.Map{}}})
	assert.Equal(t, "true", annotationsOf(t, bare)[skipAwaitAnnotation], "a Deployment without metadata gets it too")
	svc := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:core/v1:Service", Props: pulumi.Map{"metadata": pulumi.Map{"name": pulumi.String("svc")}}})
	assert.Equal(t, "true", annotationsOf(t, svc)[skipAwaitAnnotation], "a Service is not awaited either (the provider waits for its endpoints)")

	for _, tc := range []struct {
		why  string
		args pulumi.ResourceTransformArgs
	}{
		{"another provider's resource", pulumi.ResourceTransformArgs{Custom: true, Type: "random:index/randomPassword:RandomPassword", Props: pulumi.Map{}}},
		{"a component", pulumi.ResourceTransformArgs{Custom: false, Type: "kubernetes:helm.sh/v4:Chart", Props: pulumi.Map{}}},
		{"a Helm release (not an object: no metadata)", pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:helm.sh/v3:Release", Props: pulumi.Map{"chart": pulumi.String("x")}}},
		{"metadata not yet known", pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:core/v1:Service", Props: pulumi.Map{"metadata": pulumi.Map{}.ToMapOutput()}}},
		{"annotations not yet known", pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:core/v1:Service", Props: pulumi.Map{"metadata": pulumi.Map{"annotations": pulumi.StringMap{}.ToStringMapOutput()}}}},
	} {
		assert.Nil(t, skipAwait(context.Background(), &tc.args), "%s is left alone", tc.why)
	}
}

// TestSkipAwaitLeavesGatesAwaited: the objects others depend on keep the
// provider's wait. A CRD (by kind) and an object its component annotated
// scaleplane.dev/await=true (cert-manager's apicheck Job) pass untouched;
// a Job without the annotation (the data tier's) is still not awaited.
func TestSkipAwaitLeavesGatesAwaited(t *testing.T) {
	assert.Equal(t, certmanager.AwaitAnnotation, awaitAnnotation, "the transform reads the annotation the component writes")
	crd := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
		Props: pulumi.Map{"metadata": pulumi.Map{"name": pulumi.String("issuers.cert-manager.io")}}})
	assert.Nil(t, crd, "a CRD is awaited until Established")
	gate := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:batch/v1:Job",
		Props: pulumi.Map{"metadata": pulumi.Map{"name": pulumi.String("cert-manager-apicheck"),
			"annotations": pulumi.Map{awaitAnnotation: pulumi.String("true")}}}})
	assert.Nil(t, gate, "a Job annotated %s=true is awaited until it completes", awaitAnnotation)
	off := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:batch/v1:Job",
		Props: pulumi.Map{"metadata": pulumi.Map{"name": pulumi.String("x"), "annotations": pulumi.Map{awaitAnnotation: pulumi.String("false")}}}})
	assert.Equal(t, "true", annotationsOf(t, off)[skipAwaitAnnotation], "%s=false does not exempt", awaitAnnotation)
	plain := skipAwait(context.Background(), &pulumi.ResourceTransformArgs{Custom: true, Type: "kubernetes:batch/v1:Job",
		Props: pulumi.Map{"metadata": pulumi.Map{"name": pulumi.String("redis-cluster-init")}}})
	assert.Equal(t, "true", annotationsOf(t, plain)[skipAwaitAnnotation], "a Job without the annotation is not awaited")
}
