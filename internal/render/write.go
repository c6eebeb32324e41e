package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Files are the paths Write produced.
type Files struct {
	Manifests string
	Objects   string
	Graph     string
	DOT       string
	// Pictures are the SVG and PNG files, when Graphviz's dot is installed.
	Pictures []string
}

// Write writes the graph's outputs under dir: manifests.yaml (every
// Kubernetes object, one document each), objects/<kind>-<namespace>-<name>.yaml,
// graph.json, topology.dot and, where dot exists, topology.svg and .png.
func Write(g *Graph, dir string) (Files, error) {
	f := Files{
		Manifests: filepath.Join(dir, "manifests.yaml"),
		Objects:   filepath.Join(dir, "objects"),
		Graph:     filepath.Join(dir, "graph.json"),
		DOT:       filepath.Join(dir, "topology.dot"),
	}
	if err := os.MkdirAll(f.Objects, 0o755); err != nil {
		return f, err
	}
	var all bytes.Buffer
	for _, r := range g.Kubernetes() {
		doc, err := yaml.Marshal(r.Inputs)
		if err != nil {
			return f, fmt.Errorf("%s: %w", r.URN, err)
		}
		fmt.Fprintf(&all, "---\n# %s\n%s", r.URN, doc)
		if err := os.WriteFile(filepath.Join(f.Objects, ObjectFileName(r)), doc, 0o644); err != nil {
			return f, err
		}
	}
	if err := os.WriteFile(f.Manifests, all.Bytes(), 0o644); err != nil {
		return f, err
	}
	js, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return f, err
	}
	if err := os.WriteFile(f.Graph, append(js, '\n'), 0o644); err != nil {
		return f, err
	}
	if err := os.WriteFile(f.DOT, []byte(g.DOT()), 0o644); err != nil {
		return f, err
	}
	if dot, err := exec.LookPath("dot"); err == nil {
		for _, format := range []string{"svg", "png"} {
			out := filepath.Join(dir, "topology."+format)
			if b, err := exec.Command(dot, "-T"+format, "-o", out, f.DOT).CombinedOutput(); err != nil {
				return f, fmt.Errorf("dot -T%s: %v: %s", format, err, b)
			}
			f.Pictures = append(f.Pictures, out)
		}
	}
	return f, nil
}

// ObjectFileName is "<kind>-<namespace>-<name>.yaml" (namespace omitted
// for cluster-scoped objects), lower case.
func ObjectFileName(r Resource) string {
	kind, _ := r.Inputs["kind"].(string)
	meta, _ := r.Inputs["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	parts := []string{kind}
	if ns, ok := meta["namespace"].(string); ok && ns != "" {
		parts = append(parts, ns)
	}
	parts = append(parts, name)
	return strings.ToLower(strings.Join(parts, "-")) + ".yaml"
}

// DOT draws the components as clusters holding their resources.
func (g *Graph) DOT() string {
	children := map[string][]Resource{}
	for _, r := range g.Resources {
		children[r.Parent] = append(children[r.Parent], r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  fontname=\"Helvetica\";\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\", fontsize=10];\n", "scaleplane-"+g.Stack)
	fmt.Fprintf(&b, "  label=%q;\n", "scaleplane stack "+g.Stack)
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		indent := strings.Repeat("  ", depth+1)
		for _, r := range children[parent] {
			if r.Custom {
				fmt.Fprintf(&b, "%s%q [label=%q];\n", indent, r.URN, shortType(r.Type)+"\n"+objectName(r))
				continue
			}
			fmt.Fprintf(&b, "%ssubgraph %q {\n%s  label=%q; style=\"rounded\"; color=\"#7a8fb3\";\n", indent, "cluster_"+r.URN, indent, shortType(r.Type)+" "+r.Name)
			fmt.Fprintf(&b, "%s  %q [shape=point, style=invis];\n", indent, r.URN)
			walk(r.URN, depth+1)
			fmt.Fprintf(&b, "%s}\n", indent)
		}
	}
	roots := map[string]bool{}
	known := map[string]bool{}
	for _, r := range g.Resources {
		known[r.URN] = true
	}
	for _, r := range g.Resources {
		if !known[r.Parent] {
			roots[r.Parent] = true
		}
	}
	for _, root := range slices.Sorted(maps.Keys(roots)) {
		walk(root, 0)
	}
	g.writeFlows(&b)
	b.WriteString("}\n")
	return b.String()
}

func shortType(t string) string {
	parts := strings.Split(t, ":")
	return parts[len(parts)-1]
}

func objectName(r Resource) string {
	if meta, ok := r.Inputs["metadata"].(map[string]any); ok {
		if n, ok := meta["name"].(string); ok {
			return n
		}
	}
	return r.Name
}

// writeFlows draws who may call whom, read from the NetworkPolicies: an
// arrow from each allowed caller's workload to the workload it protects,
// and from the outside world to workloads open to every source.
func (g *Graph) writeFlows(b *strings.Builder) {
	workloads := map[string]string{} // app name -> URN of its Deployment or StatefulSet
	for _, r := range g.Resources {
		if r.Type == "kubernetes:apps/v1:Deployment" || r.Type == "kubernetes:apps/v1:StatefulSet" {
			workloads[objectName(r)] = r.URN
		}
	}
	seen := map[string]bool{}
	edge := func(from, to, style string) {
		key := from + "->" + to
		if from == "" || to == "" || seen[key] {
			return
		}
		seen[key] = true
		fmt.Fprintf(b, "  %q -> %q [%s];\n", from, to, style)
	}
	for _, r := range g.ByType("kubernetes:networking.k8s.io/v1:NetworkPolicy") {
		target := workloads[appName(lookup(r.Inputs, "spec", "podSelector"))]
		rules, _ := lookup(r.Inputs, "spec", "ingress").([]any)
		for _, rule := range rules {
			peers, ok := lookup(rule, "from").([]any)
			if !ok {
				b.WriteString("  \"clients\" [shape=ellipse, fillcolor=\"#fdf0d5\"];\n")
				edge("clients", target, `color="#c0392b", penwidth=2`)
				continue
			}
			for _, p := range peers {
				edge(workloads[appName(lookup(p, "podSelector"))], target, `color="#2c6fbb", penwidth=1.5`)
			}
		}
	}
}

func appName(selector any) string {
	s, _ := lookup(selector, "matchLabels", "app.kubernetes.io/name").(string)
	return s
}

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
