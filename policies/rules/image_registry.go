package rules

import (
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// ImageRegistry requires every image to come from the stack's registry.
var ImageRegistry = register(&Rule{
	ID:       "image-registry",
	Name:     "Images only from the stack's registry",
	Category: Security,
	// Advisory, not mandatory, while the shipped stacks still pull their
	// third-party images (Prometheus, Jaeger, the OpenTelemetry
	// Collector, kube-state-metrics, metrics-server, the cluster
	// autoscaler, PgBouncer and, in dev, the data tier) from public
	// registries: mandatory, it would stop every deployment of dev,
	// staging and prod. Every such image is still reported on each check
	// and preview; promote the rule once the stacks mirror them.
	Level:       Advisory,
	Thresholds:  []string{"imageRegistry"},
	Description: "Every container and init container image starts with the stack's registry (imageRegistry followed by '/'); with no registry known the rule judges nothing.",
	Remediation: "Reference images under the stack's imageRegistry (local: scaleplane.local, built by `scaleplane images build`; aws stacks: the ECR repositories the stack declares, filled by `scaleplane images push`); point the image knobs of third-party servers and tools there too and build or mirror them.",
	Rationale:   "Issue #27: 'Images point at registry.scaleplane.example. There is no registry resource and no way to push.' An image from anywhere else is one the stack neither built nor scanned (ECR's scan on push), can vanish or change under a tag, and is pulled through a rate-limited public registry on every scale-out.",
	CheckResource: func(r Resource, t Thresholds) []string {
		registry := strings.TrimSuffix(t.ImageRegistry, "/")
		if registry == "" || registry == Unknown {
			return nil
		}
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, c := range object.Containers(spec, true) {
			img := object.Str(c.Fields["image"])
			if img == Unknown || strings.HasPrefix(img, registry+"/") {
				continue
			}
			out = append(out, msgf("%s %s: image %q is not from the stack's registry %s", object.Display(r), c.Label(), img, registry))
		}
		return out
	},
})
