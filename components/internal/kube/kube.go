// Package kube is the Kubernetes vocabulary the components share: the
// recommended labels and object metadata, where pods go (topology spread,
// anti-affinity), the disruption budget and autoscaler every workload
// gets, the restricted Pod Security contexts, a container's requests and
// limits, and the validators of names and images. One definition each, so a rule
// (a label, a security setting) cannot drift between components.
//
// Go's internal rule keeps it to components/: stacks see these types only
// through the components' own (microservice re-exports the sizing types).
package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Values of the recommended labels every scaleplane object carries besides
// its workload's own, so `kubectl get -l app.kubernetes.io/part-of=scaleplane`
// finds the whole platform.
const (
	PartOf    = "scaleplane"
	ManagedBy = "pulumi"
)

// SelectorLabels are the immutable labels that select a workload's pods:
// a Deployment's or StatefulSet's selector cannot change, so it carries
// only these two and never the version.
func SelectorLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     name,
		"app.kubernetes.io/instance": name,
	}
}

// Labels are the recommended app.kubernetes.io/* labels of a workload's
// objects: the selector labels plus component, part-of, managed-by and
// version (when known).
func Labels(name, component, version string) map[string]string {
	l := SelectorLabels(name)
	l["app.kubernetes.io/component"] = component
	l["app.kubernetes.io/part-of"] = PartOf
	l["app.kubernetes.io/managed-by"] = ManagedBy
	if version != "" {
		l["app.kubernetes.io/version"] = version
	}
	return l
}

// Meta is an object's metadata with an explicit name, so render, policies
// and tests see stable names instead of Pulumi's auto-named suffixes. An
// empty namespace leaves it out, for cluster-scoped objects.
func Meta(name, namespace string, labels map[string]string) *metav1.ObjectMetaArgs {
	m := &metav1.ObjectMetaArgs{Name: pulumi.String(name), Labels: pulumi.ToStringMap(labels)}
	if namespace != "" {
		m.Namespace = pulumi.String(namespace)
	}
	return m
}

// ConfigChecksumAnnotation is the pod-template annotation that holds a
// checksum of the pods' config: changing it rolls the pods.
const ConfigChecksumAnnotation = "scaleplane.dev/config-checksum"

// ConfigChecksum is a short digest of config texts, put on pod templates
// so a config change rolls the pods of a server that does not reload its
// config by itself.
func ConfigChecksum(texts ...string) string {
	h := sha256.New()
	for _, t := range texts {
		fmt.Fprintf(h, "%s\x00", t)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// SelectorOf returns the selector labels of a workload's labels, for
// workloads whose instance label differs from their name (one of several
// Prometheus servers): the immutable part its pods are selected by.
func SelectorOf(labels map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance"} {
		out[k] = labels[k]
	}
	return out
}
