package certmanager

import (
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	apiextensionsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"
)

// crdFiles are the CRDs of Version, copied unchanged from the module's
// deploy/crds/ (github.com/cert-manager/cert-manager@v1.21.2): the same
// schemas upstream's chart installs, without its templating. A test checks
// them against the module cache; refresh with
//
//	cp $(go env GOMODCACHE)/github.com/cert-manager/cert-manager@<version>/deploy/crds/*.yaml components/certmanager/crds/
//
// after bumping Version.
//
//go:embed crds/*.yaml
var crdFiles embed.FS

// crdTypeToken is the provider's type of a CustomResourceDefinition.
const crdTypeToken = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"

// CRD is one embedded definition, parsed.
type CRD struct {
	// File is its file under crds/.
	File string
	// Name is metadata.name (<plural>.<group>).
	Name string
	// Kind is spec.names.kind.
	Kind string
	// Object is the whole definition as decoded YAML.
	Object map[string]any
}

// CRDs parses the embedded definitions, sorted by file name.
func CRDs() ([]CRD, error) {
	files, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list embedded CRDs: %w", err)
	}
	slices.Sort(files)
	var out []CRD
	for _, f := range files {
		data, err := crdFiles.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		meta, _ := obj["metadata"].(map[string]any)
		names, _ := lookup(obj, "spec", "names").(map[string]any)
		name, _ := meta["name"].(string)
		kind, _ := names["kind"].(string)
		if obj["kind"] != "CustomResourceDefinition" || name == "" || kind == "" {
			return nil, fmt.Errorf("%s: not a CustomResourceDefinition with a name and spec.names.kind", f)
		}
		out = append(out, CRD{File: path.Base(f), Name: name, Kind: kind, Object: obj})
	}
	return out, nil
}

// lookup walks nested maps by key; nil when a step is missing.
func lookup(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// newCRDs declares the embedded CRDs, each carrying labels and the await
// annotation, so the provider waits until the API server reports it
// Established (a custom resource created before that is refused).
func newCRDs(ctx *pulumi.Context, name string, labels map[string]string, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	var out []pulumi.Resource
	for _, c := range crds {
		obj := maps.Clone(c.Object)
		meta := maps.Clone(obj["metadata"].(map[string]any))
		l := map[string]any{}
		for k, v := range labels {
			l[k] = v
		}
		meta["labels"] = l
		ann := map[string]any{AwaitAnnotation: "true"}
		if a, ok := meta["annotations"].(map[string]any); ok {
			maps.Copy(ann, a)
		}
		meta["annotations"] = ann
		obj["metadata"] = meta
		// Registered with the provider's CRD type through untyped args (as
		// the provider's own YAML support does): the schemas are ~1 MB of
		// nested OpenAPI that the typed args would have to spell out.
		var res apiextensionsv1.CustomResourceDefinition
		role := "crd-" + strings.ToLower(c.Kind)
		if err := ctx.RegisterResource(crdTypeToken, name+"-"+role, kubernetes.UntypedArgs(obj), &res, opts...); err != nil {
			return nil, fmt.Errorf("crd %s: %w", c.Name, err)
		}
		out = append(out, &res)
	}
	return out, nil
}
