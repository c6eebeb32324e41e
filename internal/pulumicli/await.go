package pulumicli

import (
	"context"
	"maps"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/stacks"
)

// skipAwaitAnnotation tells the kubernetes provider not to wait for an
// object to become ready. The provider's wait is all-or-nothing and lasts
// ten minutes per object (a Deployment until its pods are available, a
// Service until it has endpoints, a Job until it succeeds): one pod waiting
// for a Secret another component has not created yet stalls the whole
// update. scaleplane waits itself instead (rollout.Checker), knowing which
// workloads can start and why the others cannot.
const skipAwaitAnnotation = "pulumi.com/skipAwait"

// programWithoutAwait is stacks.Program with a resource transform that
// annotates every Kubernetes object with skipAwait. The transform runs in
// the engine over the resource's property map (RegisterResourceTransform),
// so it sees every object, whatever Go type declared it.
var programWithoutAwait = withoutAwait(stacks.Program)

// withoutAwait runs program after registering the skipAwait transform.
func withoutAwait(program pulumi.RunFunc) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		if err := ctx.RegisterResourceTransform(skipAwait); err != nil {
			return err
		}
		return program(ctx)
	}
}

// awaitAnnotation is set by a component on the objects whose readiness
// other resources depend on: the transform leaves them awaited. It is the
// value of certmanager.AwaitAnnotation (this package may not import a
// component; a test checks they agree).
//
// Why an annotation the component sets rather than a list of kinds here:
// only the component knows which of its objects gate others. cert-manager's
// apicheck Job must be awaited (Issuers and Certificates wait for it), while
// the data tier's Jobs (redis cluster-init, kafka topics) must not be:
// they may wait minutes for pods the provider would otherwise hold the
// whole update for. CustomResourceDefinitions are the one kind exempt by
// kind: a custom resource created before its CRD is Established is refused,
// the wait is a second, and nothing about a CRD can be "not yet startable".
const awaitAnnotation = "scaleplane.dev/await"

// crdType is the provider's type of a CustomResourceDefinition.
const crdType = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"

// helmTypePrefix starts the type tokens of the provider's Helm resources:
// a Release is not a Kubernetes object and has no metadata to annotate.
const helmTypePrefix = "kubernetes:helm.sh/"

// skipAwait adds the skipAwait annotation to the metadata of any Kubernetes
// object except CustomResourceDefinitions and objects annotated
// awaitAnnotation "true" (see there); Helm releases, components, other providers' resources and objects whose
// metadata or annotations are not yet known are left alone (the provider
// then waits, as it would without us). The properties are copied, never
// changed in place.
func skipAwait(_ context.Context, args *pulumi.ResourceTransformArgs) *pulumi.ResourceTransformResult {
	if !args.Custom || !strings.HasPrefix(args.Type, "kubernetes:") || strings.HasPrefix(args.Type, helmTypePrefix) || args.Type == crdType {
		return nil
	}
	meta := pulumi.Map{}
	switch m := args.Props["metadata"].(type) {
	case nil:
	case pulumi.Map:
		meta = maps.Clone(m)
	default:
		return nil
	}
	annotations := pulumi.Map{}
	switch a := meta["annotations"].(type) {
	case nil:
	case pulumi.Map:
		annotations = maps.Clone(a)
	default:
		return nil
	}
	if v, ok := annotations[awaitAnnotation].(pulumi.String); ok && v == "true" {
		return nil
	}
	annotations[skipAwaitAnnotation] = pulumi.String("true")
	meta["annotations"] = annotations
	props := maps.Clone(args.Props)
	if props == nil {
		props = pulumi.Map{}
	}
	props["metadata"] = meta
	return &pulumi.ResourceTransformResult{Props: props, Opts: args.Opts}
}
