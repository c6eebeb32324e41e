// Package observability declares what lets the platform be watched: the
// OpenTelemetry Collector every service sends traces to, Jaeger that stores
// and shows them, Prometheus that scrapes every annotated pod and evaluates
// the alert rules the articles call for, kube-state-metrics that exposes
// the HPA state those rules read, and metrics-server that the HPAs
// themselves need. Each is its own component (Args validated before any
// child, children named "<name>-<role>"); the configuration files are pure
// render functions beside them, proven by the real binaries in the tests.
package observability

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// Pinned images. The collector image is the contrib distribution of the
// same collector release (v0.140) that Jaeger 2.13 is built on, so the
// binary that validates the rendered collector config in the tests and the
// one that runs it accept the same components and settings.
const (
	CollectorImage        = "otel/opentelemetry-collector-contrib:0.140.1"
	JaegerImage           = "jaegertracing/jaeger:2.13.0"
	PrometheusImage       = "quay.io/prometheus/prometheus:v2.55.1"
	MetricsServerImage    = "registry.k8s.io/metrics-server/metrics-server:v0.9.0"
	KubeStateMetricsImage = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0"
)

// Component is the app.kubernetes.io/component label of everything here.
const Component = "observability"

// nobodyUID is the unprivileged user the Prometheus, Jaeger, metrics-server
// and kube-state-metrics images expect; restricted Pod Security needs a
// non-root user anyway.
const nobodyUID = 65534

// labels are the recommended labels of one workload; the first two select it.
func labels(name, version string) map[string]string { return kube.Labels(name, Component, version) }

// checkWorkload validates what every component here has: its name, its
// namespace and its image, which must be pinned.
func checkWorkload(name, namespace, image string) error {
	return errors.Join(kube.CheckName(name, 50), kube.CheckLabel("namespace", namespace), kube.CheckImage("image", image))
}

// mib is a quantity in whole mebibytes, rounded down.
func mib(q resource.Quantity) int64 { return q.Value() / (1 << 20) }

// Scaling is the HPA of a stateless observability workload (Jaeger with
// external storage, metrics-server): the same rules as every service.
type Scaling struct {
	Replicas    kube.Replicas
	Autoscaling kube.Autoscaling
}

// validate reports what the HPA would refuse.
func (s Scaling) validate(who string) error {
	var errs []error
	if s.Replicas.Min < 1 || s.Replicas.Max < s.Replicas.Min {
		errs = append(errs, fmt.Errorf("%s replicas %d..%d: need 1 <= min <= max", who, s.Replicas.Min, s.Replicas.Max))
	}
	if s.Autoscaling.CPUTargetPercent < 1 || s.Autoscaling.CPUTargetPercent > 100 ||
		s.Autoscaling.MemoryTargetPercent < 1 || s.Autoscaling.MemoryTargetPercent > 100 {
		errs = append(errs, fmt.Errorf("%s autoscaling targets %d%%/%d%%: must be in 1..100", who,
			s.Autoscaling.CPUTargetPercent, s.Autoscaling.MemoryTargetPercent))
	}
	return errors.Join(errs...)
}
