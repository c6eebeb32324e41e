package pulumicli

import (
	"encoding/json"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/internal/cluster"
	"github.com/scaleplane/scaleplane/stacks"
)

// skipAwaitAnnotation tells the kubernetes provider not to wait for a
// workload to become ready. The provider's wait is all-or-nothing and lasts
// ten minutes per workload; scaleplane waits itself instead (cluster.Rollouts),
// knowing which workloads can start and why the others cannot.
const skipAwaitAnnotation = "pulumi.com/skipAwait"

// programWithoutAwait is stacks.Program with a stack transformation that
// annotates every Deployment and StatefulSet with skipAwait.
func programWithoutAwait(ctx *pulumi.Context) error {
	if err := ctx.RegisterStackTransformation(skipAwait); err != nil {
		return err
	}
	return stacks.Program(ctx)
}

func skipAwait(args *pulumi.ResourceTransformationArgs) *pulumi.ResourceTransformationResult {
	switch p := args.Props.(type) {
	case *appsv1.DeploymentArgs:
		c := *p
		c.Metadata = annotate(c.Metadata)
		return &pulumi.ResourceTransformationResult{Props: &c, Opts: args.Opts}
	case *appsv1.StatefulSetArgs:
		c := *p
		c.Metadata = annotate(c.Metadata)
		return &pulumi.ResourceTransformationResult{Props: &c, Opts: args.Opts}
	}
	return nil
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

// workloadsOf lists the Deployments and StatefulSets in an exported state.
func workloadsOf(deployment json.RawMessage) ([]cluster.Workload, error) {
	var state struct {
		Resources []struct {
			Type    string `json:"type"`
			Outputs struct {
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			} `json:"outputs"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(deployment, &state); err != nil {
		return nil, err
	}
	var out []cluster.Workload
	for _, r := range state.Resources {
		kind := ""
		switch r.Type {
		case "kubernetes:apps/v1:Deployment":
			kind = "Deployment"
		case "kubernetes:apps/v1:StatefulSet":
			kind = "StatefulSet"
		default:
			continue
		}
		out = append(out, cluster.Workload{Kind: kind, Namespace: r.Outputs.Metadata.Namespace, Name: r.Outputs.Metadata.Name})
	}
	return out, nil
}
