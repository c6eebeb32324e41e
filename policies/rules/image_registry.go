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
	// Advisory, not mandatory, while staging and prod still pull two
	// images from registries they do not control: the cluster
	// autoscaler (registry.k8s.io, no image knob, no ECR repository) and
	// the in-cluster PgBouncer (ghcr.io; the ECR repositories and `images
	// build` leave the data tier out on aws). Mandatory, the rule would
	// stop every deployment of those stacks; advisory, every such image is
	// still reported by each check and preview. local and dev pass it:
	// promote the rule once staging and prod do.
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
