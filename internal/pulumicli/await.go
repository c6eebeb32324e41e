package pulumicli

import (
	"reflect"
	"strings"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
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

// programWithoutAwait is stacks.Program with a stack transformation that
// annotates every Kubernetes object with skipAwait.
func programWithoutAwait(ctx *pulumi.Context) error {
	if err := ctx.RegisterStackTransformation(skipAwait); err != nil {
		return err
	}
	return stacks.Program(ctx)
}

// metaPtrType is the type of the Metadata field of every generated
// kubernetes <Kind>Args struct.
var metaPtrType = reflect.TypeOf((*metav1.ObjectMetaPtrInput)(nil)).Elem()

// skipAwait annotates the args of any kubernetes resource (a pointer to a
// generated <Kind>Args struct with a Metadata field); other resources are
// left alone. The args are copied, never changed in place.
func skipAwait(args *pulumi.ResourceTransformationArgs) *pulumi.ResourceTransformationResult {
	if !strings.HasPrefix(args.Type, "kubernetes:") {
		return nil
	}
	v := reflect.ValueOf(args.Props)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	field := v.Elem().FieldByName("Metadata")
	if !field.IsValid() || field.Type() != metaPtrType {
		return nil
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	var in metav1.ObjectMetaPtrInput
	if !field.IsNil() {
		in = field.Interface().(metav1.ObjectMetaPtrInput)
	}
	cp.Elem().FieldByName("Metadata").Set(reflect.ValueOf(annotate(in)))
	return &pulumi.ResourceTransformationResult{Props: cp.Interface().(pulumi.Input), Opts: args.Opts}
}

// annotate returns a copy of the metadata with the skipAwait annotation
// added to whatever annotations it has.
func annotate(in metav1.ObjectMetaPtrInput) metav1.ObjectMetaPtrInput {
	var m metav1.ObjectMetaArgs
	switch v := in.(type) {
	case *metav1.ObjectMetaArgs:
		if v != nil {
			m = *v
		}
	case nil:
	default:
		// An output-typed metadata: leave it, the provider then waits.
		return in
	}
	if m.Annotations == nil {
		m.Annotations = pulumi.StringMap{skipAwaitAnnotation: pulumi.String("true")}
	} else {
		m.Annotations = m.Annotations.ToStringMapOutput().ApplyT(func(a map[string]string) map[string]string {
			out := make(map[string]string, len(a)+1)
			for k, v := range a {
				out[k] = v
			}
			out[skipAwaitAnnotation] = "true"
			return out
		}).(pulumi.StringMapOutput)
	}
	return &m
}
